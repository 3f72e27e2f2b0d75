"""The DICOM-RST YAML schema, read into frozen dataclasses: the core (telemetry, server) here, each
backend kind's ``aets[]`` entry with the kind (``backends/<kind>/config.py``, registered in
``backends/kinds.py``).

Every error names the key path that is wrong (``aets[1].port``), so a bad config stops start-up with a
message the operator can act on, and every problem is reported at once. Unknown keys are warned about
rather than refused: DICOM-RST configs may carry keys from newer versions, and a typo should be visible
without taking the gateway down (a near miss of a top-level key is the exception). Times are
milliseconds, as in DICOM-RST.

Kept free of heavy imports: gunicorn's master reads the config before any worker exists.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dicomrst.config.reading import (
    ConfigError,
    ConfigErrors,
    Section,
    ae_title,
    base_path,
    boolean,
    choice,
    milliseconds,
    networks,
    port,
    positive,
    route_ae_title,
    sections,
    string,
    ae_titles,
    kind_of,
)

__all__ = [
    "CONFIG_ENV", "DEFAULT_CONFIG_PATH", "AetConfig", "Config", "ConfigError", "ConfigErrors", "HttpConfig",
    "ReceiverConfig", "ServerConfig", "TelemetryConfig", "TokenConfig", "config_problem_lines", "load_config",
    "parse_config",
]

DEFAULT_CONFIG_PATH = "etc/dicomrst.yaml"
CONFIG_ENV = "DICOMRST_CONFIG"

_TOP_LEVEL_KEYS = ("telemetry", "server", "aets")
_LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL")


def config_problem_lines(location: str | os.PathLike[str], error: ConfigError) -> list[str]:
    """One line per problem as check-config and start-up print them: ``FILE: key.path: message``.
    Problems of the file itself (unreadable, not YAML) already name it."""
    return [f"{location}: {problem}" if problem.path else str(problem) for problem in error.problems]


@dataclass(frozen=True)
class TelemetryConfig:
    level: str = "INFO"
    sentry: str | None = None


@dataclass(frozen=True)
class TokenConfig:
    """A bearer token (given directly, or by the environment variable that holds it) and the AETs it
    opens; ``*`` opens all."""

    aets: tuple[str, ...]
    token: str | None = None
    token_env: str | None = None


@dataclass(frozen=True)
class HttpConfig:
    interface: str = "0.0.0.0"
    port: int = 8080
    max_upload_size: int = 50_000_000
    request_timeout: int = 60_000
    graceful_shutdown: bool = True
    base_path: str = "/"
    # Our extensions: the proxies whose X-Forwarded-* headers are believed, and the origins browser
    # viewers may call from (CORS).
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    allowed_origins: tuple[str, ...] = ("*",)
    # Our extension: bearer tokens; none means no access control.
    auth: tuple[TokenConfig, ...] = ()


@dataclass(frozen=True)
class ReceiverConfig:
    """A Storage SCP that receives what C-MOVE sends (``server.dimse[]``)."""

    aet: str = "DICOM-RST"
    interface: str = "0.0.0.0"
    port: int = 7001
    uncompressed: bool = True


@dataclass(frozen=True)
class ServerConfig:
    aet: str = "DICOM-RST"
    http: HttpConfig = field(default_factory=HttpConfig)
    dimse: tuple[ReceiverConfig, ...] = (ReceiverConfig(),)
    # Our extension: where the retrieve cache keeps instances (aets[].cache); by default in the
    # host's runtime folder, which outlives the gateway's processes.
    cache_path: str | None = None


@dataclass(frozen=True)
class AetConfig:
    """What every ``aets[]`` entry has: its AE title, which is also the ``{aet}`` of its URLs. Each
    backend kind extends it with its own keys and names itself in ``backend``."""

    aet: str

    @property
    def backend(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Config:
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    aets: tuple[AetConfig, ...] = ()

    def aet(self, name: str) -> AetConfig | None:
        return next((entry for entry in self.aets if entry.aet == name), None)


# ---------------------------------------------------------------------------------------------- reading

def _auth(section: Section) -> tuple[TokenConfig, ...]:
    entries = sections(section, "tokens") or []
    section.warn_unknown()
    tokens = []
    for entry in entries:
        token = TokenConfig(
            aets=entry.require("aets", _aets_or_all),
            token=entry.get("token", string, None),
            token_env=entry.get("token-env", string, None),
        )
        if (token.token is None) == (token.token_env is None):
            entry.problem(entry.path, "give either token or token-env")
        entry.warn_unknown()
        tokens.append(token)
    return tuple(tokens)


def _aets_or_all(value: Any, path: str) -> tuple[str, ...]:
    if value == "*":
        return ("*",)
    if isinstance(value, list) and value == ["*"]:
        return ("*",)
    return ae_titles(value, path)


def _origins(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(path, f"expected a list of origins (or *), got {kind_of(value)}")
    origins = []
    for index, item in enumerate(value):
        origin = string(item, f"{path}[{index}]").rstrip("/")
        if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
            raise ConfigError(f"{path}[{index}]", f"{origin!r} is not an origin like https://viewer.example.org or *")
        origins.append(origin)
    return tuple(origins)


def _telemetry(section: Section) -> TelemetryConfig:
    level = section.get("level", choice(*_LOG_LEVELS, upper=True), "INFO")
    sentry = section.get("sentry", string, None)
    section.warn_unknown()
    return TelemetryConfig(level="WARNING" if level == "WARN" else level, sentry=sentry)


def _http(section: Section) -> HttpConfig:
    defaults = HttpConfig()
    http = HttpConfig(
        interface=section.get("interface", string, defaults.interface),
        port=section.get("port", port, defaults.port),
        max_upload_size=section.get("max-upload-size", positive, defaults.max_upload_size),
        request_timeout=section.get("request-timeout", milliseconds, defaults.request_timeout),
        graceful_shutdown=section.get("graceful-shutdown", boolean, defaults.graceful_shutdown),
        base_path=section.get("base-path", base_path, defaults.base_path),
        trusted_proxies=section.get("trusted-proxies", networks, defaults.trusted_proxies),
        allowed_origins=section.get("allowed-origins", _origins, defaults.allowed_origins),
        auth=_auth(section.section("auth")),
    )
    section.warn_unknown()
    return http


def _receiver(section: Section) -> ReceiverConfig:
    defaults = ReceiverConfig()
    receiver = ReceiverConfig(
        aet=section.get("aet", ae_title, defaults.aet),  # DICOM-RST's default, as the README says
        interface=section.get("interface", string, defaults.interface),
        port=section.get("port", port, defaults.port),
        uncompressed=section.get("uncompressed", boolean, defaults.uncompressed),
    )
    section.warn_unknown()
    return receiver


def _server(section: Section) -> ServerConfig:
    receivers = sections(section, "dimse")
    server = ServerConfig(
        aet=section.get("aet", ae_title, ServerConfig.aet),
        http=_http(section.section("http")),
        dimse=ServerConfig().dimse if receivers is None else tuple(_receiver(item) for item in receivers),
        cache_path=_cache_path(section.section("cache")),
    )
    _unique(section, [(r.aet, f"{section.key_path('dimse')}[{i}].aet") for i, r in enumerate(server.dimse)])
    section.warn_unknown()
    return server


def _cache_path(section: Section) -> str | None:
    path = section.get("path", string, None)
    section.warn_unknown()
    return path


def _aet_entry(section: Section) -> AetConfig:
    from dicomrst.backends.kinds import DEFAULT_KIND, KINDS  # the kinds' schemas import this package

    aet = section.require("aet", route_ae_title)
    name = section.get("backend", choice(*KINDS, upper=True), DEFAULT_KIND)
    entry = KINDS[name].read_config(section, aet)
    section.warn_unknown()
    return entry


def _unique(section: Section, names_and_paths: list[tuple[str | None, str]]) -> None:
    seen: dict[str, str] = {}
    for name, path in names_and_paths:
        if name is None:  # unreadable, and said so already
            continue
        if name in seen:
            section.problem(path, f"duplicate AE title {name!r} (first at {seen[name]})")
        seen.setdefault(name, path)


def parse_config(raw: Any) -> Config:
    """Turn the parsed YAML document into a Config, or raise ConfigError naming the key path."""
    root = Section(raw, "")
    entries = sections(root, "aets") or []
    config = Config(
        telemetry=_telemetry(root.section("telemetry")),
        server=_server(root.section("server")),
        aets=tuple(_aet_entry(entry) for entry in entries),
    )
    root.warn_unknown(near_misses_of=_TOP_LEVEL_KEYS)
    _unique(root, [(entry.aet, f"aets[{index}].aet") for index, entry in enumerate(config.aets)])
    from dicomrst.backends.kinds import KINDS

    # Each kind checks its entries against the server section (a C-MOVE needs a receiver, ...) and
    # fills what defaults to it.
    aets = tuple(KINDS[entry.backend].resolve(entry, config.server, f"aets[{index}]", root)
                 for index, entry in enumerate(config.aets))
    root.raise_problems()
    return Config(telemetry=config.telemetry, server=config.server, aets=aets)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the YAML file named by ``path``, else by $DICOMRST_CONFIG, else etc/dicomrst.yaml."""
    location = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    try:
        text = location.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError("", f"cannot read config file {location}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError("", f"{location} is not UTF-8 text: {error.reason} at byte {error.start}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        raise ConfigError("", _yaml_syntax_error(location, error)) from None
    except yaml.YAMLError as error:
        raise ConfigError("", f"{location} is not valid YAML: {error}") from None
    except RecursionError:
        raise ConfigError("", f"{location} is nested too deeply to read") from None
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as error:
        # PyYAML's constructors raise these for scalars they cannot build (2024-02-30, !!int abc).
        raise ConfigError("", f"{location} holds a value YAML cannot read: {error}") from None
    try:
        return parse_config(raw)
    except ConfigError as error:
        # A problem of the document as a whole (its root is not a mapping) names the file.
        problems = [problem if problem.path else ConfigError("", f"{location}: {problem}")
                    for problem in error.problems]
        raise (problems[0] if len(problems) == 1 else ConfigErrors(problems)) from None


def _yaml_syntax_error(location: Path, error: yaml.MarkedYAMLError) -> str:
    """``FILE, line L, column C: not valid YAML: what``, naming the file once (PyYAML's own message
    names the string it was given and repeats the position for each mark)."""
    mark = error.problem_mark or error.context_mark
    where = f"{location}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(location)
    what = "; ".join(part for part in (error.context, error.problem) if part)
    return f"{where}: not valid YAML: {what}"
