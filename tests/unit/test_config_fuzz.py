"""Property tests of the config loader: whatever the document or the file, ``parse_config`` and
``load_config`` either return a Config or raise ConfigError whose message starts with the key path that
is wrong (a path that leads into the document) or names the file. Never any other exception: a bad config
must stop start-up with a message an operator can act on, not a traceback.

The inputs that once broke that promise (a file that is not UTF-8, deeply nested YAML, scalars PyYAML
cannot construct, huge numbers, a root that is not a mapping) have their own tests at the end.
"""
from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dicomrst.config import Config, ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent.parent
SAMPLE_CONFIG_PATH = REPO / "etc" / "dicomrst.yaml"
SAMPLE_TEXT = SAMPLE_CONFIG_PATH.read_text(encoding="utf-8")
SAMPLE = yaml.safe_load(SAMPLE_TEXT)
# The sample config has DIMSE AETs only; this one reaches the S3, credentials and receiver-list branches.
RICH: dict[str, Any] = {
    "telemetry": {"level": "warn", "sentry": "https://key@sentry.example/1"},
    "server": {
        "aet": "GATEWAY",
        "http": {"interface": "::", "port": 8042, "max-upload-size": 1000, "request-timeout": 5000,
                 "graceful-shutdown": False, "base-path": "/dicomweb/", "trusted-proxies": ["10.0.0.0/8", "::1"]},
        "dimse": [{"aet": "RECV-A", "interface": "0.0.0.0", "port": 7001, "uncompressed": False},
                  {"aet": "RECV-B", "port": 7002}],
    },
    "aets": [
        {"aet": "PACS", "backend": "dimse", "host": "pacs.local", "port": 104,
         "pool": {"size": 2, "timeout": 100}, "qido-rs": {"timeout": 100}, "stow-rs": {"timeout": 100},
         "wado-rs": {"timeout": 100, "mode": "sequential", "receivers": ["RECV-B"], "method": "move"}},
        {"aet": "GETTER", "host": "pacs.local", "port": 105, "wado-rs": {"method": "get"}},
        {"aet": "BUCKET", "backend": "S3", "endpoint": "http://s3.local:9000", "endpoint-style": "path",
         "bucket": "research-data", "region": "eu-central-1", "concurrency": 4,
         "credentials": {"access-key-env": "KEY", "secret-key-env": "SECRET"}},
        {"aet": "OPEN", "backend": "s3", "endpoint": "https://s3.example", "bucket": "open.data",
         "credentials": {"access-key": "a", "secret-key": "s"}},
    ],
}
VALID_DOCUMENTS = (SAMPLE, RICH)

SCHEMA_KEYS = (
    "telemetry", "server", "aets", "level", "sentry", "aet", "http", "dimse", "interface", "port",
    "max-upload-size", "request-timeout", "graceful-shutdown", "base-path", "trusted-proxies", "uncompressed",
    "backend", "host", "pool", "size", "timeout", "qido-rs", "stow-rs", "wado-rs", "mode", "receivers", "method",
    "calling-aets", "complete-attributes", "cache", "enabled", "max-size", "ttl", "prefetch", "path",
    "endpoint", "endpoint-style", "bucket", "region", "concurrency", "credentials", "access-key", "secret-key",
    "access-key-env", "secret-key-env",
)
# Values that get past the type checks and reach the deeper rules (choices, ranges, cross-checks).
PLAUSIBLE = (
    "DICOM-RST", "PACS", "RECV-A", "RECV-B", "S3", "s3", "DIMSE", "FTP", "http://s3.local:9000", "https://x",
    "ftp://x", "research-data", "Bad_Bucket", "127.0.0.1", "10.0.0.0/8", "::1", "not-an-ip", "/", "/api", "api",
    "/a//b", "concurrent", "sequential", "parallel", "get", "move", "path", "vhost", "INFO", "warn", "TRACE",
    "A\\B", "THIS-AET-IS-FAR-TOO-LONG", "", " ", 0, 1, -1, 104, 65535, 65536, True, False, None, 1.5,
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.sampled_from(PLAUSIBLE),
)
keys = st.one_of(st.sampled_from(SCHEMA_KEYS), st.text(max_size=10), st.integers(), st.none(), st.booleans())
# Anything a YAML document can hold (short of aliases and tags): nested mappings, lists and scalars.
yamlish = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)


def section(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """A mapping with some of the section's keys (each value from its own strategy), or anything."""
    return st.one_of(st.fixed_dictionaries({}, optional=fields), yamlish)


def listed(item: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(item, max_size=3), yamlish)


def leaf() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(PLAUSIBLE), scalars)


timeout_section = section({"timeout": leaf()})
config_shaped = section({
    "telemetry": section({"level": leaf(), "sentry": leaf()}),
    "server": section({
        "aet": leaf(),
        "http": section({key: leaf() for key in ("interface", "port", "max-upload-size", "request-timeout",
                                                   "graceful-shutdown", "base-path")}
                        | {"trusted-proxies": listed(leaf())}),
        "dimse": listed(section({key: leaf() for key in ("aet", "interface", "port", "uncompressed")})),
    }),
    "aets": listed(section({
        **{key: leaf() for key in ("aet", "backend", "host", "port", "endpoint", "endpoint-style", "bucket",
                                   "region", "concurrency")},
        "pool": section({"size": leaf(), "timeout": leaf()}),
        "qido-rs": section({"timeout": leaf(), "complete-attributes": leaf()}),
        "stow-rs": timeout_section,
        "wado-rs": section({"timeout": leaf(), "mode": leaf(), "method": leaf(), "receivers": listed(leaf()),
                            "calling-aets": listed(leaf())}),
        "cache": section({key: leaf() for key in ("enabled", "max-size", "ttl", "prefetch")}),
        "credentials": section({key: leaf() for key in ("access-key", "secret-key", "access-key-env",
                                                          "secret-key-env")}),
    })),
})

Path_ = tuple[Any, ...]  # a location in a document: mapping keys and list indices from the root


def locations(node: Any, here: Path_ = ()) -> Iterator[tuple[Path_, Any]]:
    yield here, node
    if isinstance(node, dict):
        for key, child in node.items():
            yield from locations(child, here + (key,))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from locations(child, here + (index,))


def replaced(document: Any, where: Path_, new: Any) -> Any:
    if not where:
        return new
    parent = document
    for step in where[:-1]:
        parent = parent[step]
    parent[where[-1]] = new
    return document


@st.composite
def mutated_configs(draw: st.DrawFn) -> Any:
    """A valid config where random places get random values, lose keys, gain keys or repeat items."""
    document = copy.deepcopy(draw(st.sampled_from(VALID_DOCUMENTS)))
    for _ in range(draw(st.integers(1, 4))):
        where, node = draw(st.sampled_from(list(locations(document))))
        operation = draw(st.sampled_from(("replace", "delete", "add", "repeat")))
        if operation == "replace" or (operation != "replace" and not isinstance(node, (dict, list))):
            document = replaced(document, where, draw(st.one_of(yamlish, st.sampled_from(PLAUSIBLE))))
        elif operation == "delete" and node:
            key = draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
            del node[key]
        elif operation == "add":
            if isinstance(node, dict):
                node[draw(keys)] = draw(yamlish)
            else:
                node.append(draw(yamlish))
        elif operation == "repeat" and isinstance(node, list) and node:
            # The same AE title twice, in aets or server.dimse, must be named as a duplicate.
            node.append(copy.deepcopy(draw(st.sampled_from(node))))
    return document


# -------------------------------------------------------------------------------------------- checks

_SEGMENT = re.compile(r"(?:^|\.)([A-Za-z][A-Za-z0-9-]*)|\[(\d+)\]")


def key_path_segments(path: str) -> list[str | int]:
    """``aets[1].wado-rs.receivers[0]`` -> ["aets", 1, "wado-rs", "receivers", 0]; fails on anything else."""
    segments: list[str | int] = []
    position = 0
    for match in _SEGMENT.finditer(path):
        assert match.start() == position, f"key path {path!r} does not parse at {position}"
        segments.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    assert position == len(path) and segments, f"key path {path!r} does not parse"
    return segments


def assert_points_into(document: Any, path: str) -> None:
    """The key path leads into the document: every step exists, but the last may be an absent key
    (one that is required, or whose default conflicts with something else)."""
    node = document
    segments = key_path_segments(path)
    for number, segment in enumerate(segments):
        last = number == len(segments) - 1
        if isinstance(segment, int):
            if isinstance(node, str) and segment == 0:
                continue  # the loader takes a single string for a list of one (receivers, trusted-proxies)
            assert isinstance(node, list) and segment < len(node), f"{path}: no item {segment} there"
            node = node[segment]
        else:
            node = {} if node is None else node  # the loader reads an empty (null) section as {}
            assert isinstance(node, dict), f"{path}: {segment!r} is looked up in a {type(node).__name__}"
            if segment not in node:
                assert last, f"{path}: {segment!r} is not in the document"
                return
            node = node[segment]


def assert_names_its_key_path(error: ConfigError, document: Any) -> None:
    message = str(error)
    if not error.path:
        # Only the document itself has no key path: when its root is not a mapping.
        assert document is not None and not isinstance(document, dict), message
        assert message.startswith("expected a mapping"), message
        return
    assert message.startswith(f"{error.path}: ") and message[len(error.path) + 2:].strip(), message
    assert_points_into(document, error.path)


def check_parse(document: Any) -> Config | ConfigError:
    before = repr(document)
    try:
        config = parse_config(document)
    except ConfigError as error:
        assert_names_its_key_path(error, document)
        event("ConfigError")
        outcome: Config | ConfigError = error
    else:
        assert isinstance(config, Config)
        event("Config")
        outcome = config
    assert repr(document) == before, "parse_config changed the document it was given"
    return outcome




def check_load(path: Path) -> None:
    try:
        config = load_config(path)
    except ConfigError as error:
        if error.path:
            assert str(error).startswith(f"{error.path}: "), str(error)
            # The file parsed, or there would be no key path: the path must lead into what it holds.
            assert_points_into(yaml.safe_load(path.read_text(encoding="utf-8")), error.path)
        else:
            assert str(path) in str(error), f"{error} does not say which file is wrong"
    else:
        assert isinstance(config, Config)


# ------------------------------------------------------------------------------------- properties

FAST = settings(max_examples=300, deadline=None)


def test_the_valid_documents_are_valid():
    for document in VALID_DOCUMENTS:
        assert isinstance(parse_config(copy.deepcopy(document)), Config)
    assert isinstance(load_config(SAMPLE_CONFIG_PATH), Config)


@FAST
@given(yamlish)
def test_any_document_gives_a_config_or_names_the_key(document: Any):
    check_parse(document)


@FAST
@given(config_shaped)
def test_any_config_shaped_document_gives_a_config_or_names_the_key(document: Any):
    check_parse(document)


@FAST
@given(mutated_configs())
def test_a_mutated_valid_config_gives_a_config_or_names_the_key(document: Any):
    check_parse(document)


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def shown_key_path(where: Path_) -> str:
    """A location as the loader writes it: ``aets[0].pool.size``."""
    shown = ""
    for step in where:
        shown += f"[{step}]" if isinstance(step, int) else (f".{step}" if shown else str(step))
    return shown


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_unknown_keys_are_warned_about_never_refused(data: st.DataObject):
    """DICOM-RST configs may carry keys of newer versions: the same Config, plus a warning naming each."""
    original = data.draw(st.sampled_from(VALID_DOCUMENTS))
    document = copy.deepcopy(original)
    sections = [(where, node) for where, node in locations(document) if isinstance(node, dict)]
    added = []
    for _ in range(data.draw(st.integers(1, 3))):
        where, node = data.draw(st.sampled_from(sections))
        key = "x-" + data.draw(st.text(min_size=1, max_size=8))
        node[key] = data.draw(yamlish)
        added.append(shown_key_path(where + (key,)))
    handler = _Warnings()
    logger = logging.getLogger("dicomrst.config")
    logger.addHandler(handler)
    try:
        config = parse_config(document)
    finally:
        logger.removeHandler(handler)
    assert config == parse_config(copy.deepcopy(original))
    for key_path in added:
        assert f"config: unknown key {key_path} is ignored" in handler.messages, (key_path, handler.messages)


FILE_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FILE_SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_in_the_file_give_a_config_or_a_config_error(tmp_path: Path, content: bytes):
    path = tmp_path / "dicomrst.yaml"
    path.write_bytes(content)
    check_load(path)


@FILE_SETTINGS
@given(st.text(max_size=300))
def test_any_text_in_the_file_gives_a_config_or_a_config_error(tmp_path: Path, content: str):
    path = tmp_path / "dicomrst.yaml"
    path.write_text(content, encoding="utf-8")
    check_load(path)


@FILE_SETTINGS
@given(config_shaped)
def test_any_config_shaped_file_gives_a_config_or_a_config_error(tmp_path: Path, document: Any):
    path = tmp_path / "dicomrst.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    check_load(path)


# Pieces of YAML syntax and scalars PyYAML resolves specially (timestamps, sexagesimal and based numbers,
# booleans, tags, anchors), spliced into the sample file.
YAML_FRAGMENTS = (
    ":", ": ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "*b", "!!binary ", "!!set ", "!!str ", "!!int ",
    "!!float ", "!!timestamp ", "!!python/object:os.system ", "!custom ", "<<: *a", "? ", "|", ">", "#", "'", '"',
    "\n", "\n  ", "\t", "%YAML 1.1\n", "---\n", "...\n", "2001-02-30", "2019-13-01", "2024-01-01", "12:30:00",
    "1e999", ".nan", "-.inf", "0x1F", "0o17", "0b101", "1_000", "190:20:30", "yes", "off", "~", "null", "\\u00e9",
    "\x00", "\x85", "\ufeff", "é", "山", "\\",
)


@st.composite
def spliced_sample(draw: st.DrawFn) -> str:
    text = SAMPLE_TEXT
    for _ in range(draw(st.integers(1, 4))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 12)))
        piece = draw(st.one_of(st.sampled_from(YAML_FRAGMENTS), st.text(max_size=4)))
        text = text[:start] + piece + text[end:]
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spliced_sample())
def test_a_damaged_sample_file_gives_a_config_or_a_config_error(tmp_path: Path, content: str):
    path = tmp_path / "dicomrst.yaml"
    path.write_text(content, encoding="utf-8")
    check_load(path)


# ---------------------------------------------------------------------- the escapes known today


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "dicomrst.yaml"
    path.write_bytes(content)
    return path


def assert_config_error_naming(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value) or caught.value.path, str(caught.value)


def test_a_latin1_file_is_a_config_error(tmp_path: Path):
    # A config saved by an editor in Latin-1, with an umlaut in a comment.
    assert_config_error_naming(write(tmp_path, "# Konfiguration für München\naets: []\n".encode("latin-1")))


@pytest.mark.parametrize("scalar", [
    pytest.param(b"2024-02-30", id="day 30 of February"),            # ValueError
    pytest.param(b"2024-01-01 25:00:00", id="hour 25"),              # ValueError
    pytest.param(b"1" * 5000, id="5000 digits"),                     # ValueError: int() over 4300 digits
    pytest.param(b"!!int abc", id="!!int abc"),                      # ValueError
    pytest.param(b"!!float abc", id="!!float abc"),                  # ValueError
    pytest.param(b"!!timestamp x", id="!!timestamp x"),              # AttributeError ('groupdict' of None)
    pytest.param(b"!!bool x", id="!!bool x"),                        # KeyError
    pytest.param(b"!!int ''", id="!!int empty"),                     # IndexError
])
def test_a_scalar_yaml_cannot_construct_is_a_config_error(tmp_path: Path, scalar: bytes):
    assert_config_error_naming(write(tmp_path, b"telemetry: {sentry: " + scalar + b"}\n"))


def test_a_huge_number_in_the_document_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        parse_config({"server": {"http": {"port": 10**5000}}})
    assert caught.value.path == "server.http.port"


def test_deeply_nested_yaml_is_a_config_error(tmp_path: Path):
    assert_config_error_naming(write(tmp_path, b"aets: " + b"[" * 2000 + b"]" * 2000 + b"\n"))


def test_a_file_whose_root_is_a_list_names_the_file(tmp_path: Path):
    path = write(tmp_path, b"- aet: PACS\n  host: pacs\n  port: 104\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(path) in str(caught.value), str(caught.value)
