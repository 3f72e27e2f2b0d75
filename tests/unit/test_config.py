import logging

import pytest
import yaml

from dicomrst.backends.dimse.config import DimseAetConfig
from dicomrst.backends.s3.config import S3AetConfig
from dicomrst.config import ConfigError, load_config, parse_config

MINIMAL = {"aets": [{"aet": "PACS", "host": "pacs.local", "port": 104}]}


def parse(text: str):
    return parse_config(yaml.safe_load(text))


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return str(caught.value)


def test_defaults_follow_dicom_rst():
    config = parse_config(MINIMAL)
    assert config.telemetry.level == "INFO"
    assert config.server.aet == "DICOM-RST"
    http = config.server.http
    assert (http.interface, http.port, http.max_upload_size, http.request_timeout) == ("0.0.0.0", 8080, 50_000_000, 60_000)
    assert http.graceful_shutdown is True and http.base_path == "/"
    assert [(r.aet, r.port, r.uncompressed) for r in config.server.dimse] == [("DICOM-RST", 7001, True)]
    pacs = config.aets[0]
    assert isinstance(pacs, DimseAetConfig)
    assert (pacs.pool.size, pacs.pool.timeout) == (16, 10_000)
    assert (pacs.qido_rs.timeout, pacs.stow_rs.timeout, pacs.wado_rs.timeout) == (10_000, 10_000, 30_000)
    assert pacs.wado_rs.mode == "concurrent" and pacs.wado_rs.method == "move"
    # An AET naming no receivers uses the first Storage SCP.
    assert pacs.wado_rs.receivers == ("DICOM-RST",)


def test_full_dicom_rst_example_reads():
    config = load_config("etc/dicomrst.yaml")
    assert [entry.aet for entry in config.aets] == ["SAMPLE"]


def test_s3_entry():
    config = parse("""
aets:
  - aet: RESEARCH
    backend: s3
    endpoint: http://s3.local:9000/
    endpoint-style: path
    bucket: research
    region: local
    concurrency: 8
    credentials: {access-key-env: KEY, secret-key-env: SECRET}
""")
    entry = config.aets[0]
    assert isinstance(entry, S3AetConfig)
    assert entry.endpoint == "http://s3.local:9000" and entry.endpoint_style == "path"
    assert entry.credentials is not None and entry.credentials.access_key_env == "KEY"
    assert parse("aets: [{aet: R, backend: S3, endpoint: 'http://x', bucket: abc}]").aets[0].credentials is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("aets: [{aet: A, backend: FTP, host: h, port: 1}]", "aets[0].backend: must be one of DIMSE, S3"),
        ("aets: [{aet: A, host: h}]", "aets[0].port: is required"),
        ("aets: [{aet: A, host: h, port: 70000}]", "aets[0].port: must be between 1 and 65535"),
        ("aets: [{aet: A, host: h, port: '104'}]", "aets[0].port: expected a whole number"),
        ("aets: [{aet: A, host: h, port: 1}, {aet: A, host: g, port: 2}]", "aets[1].aet: duplicate AE title 'A'"),
        ("aets: [{aet: THIS-AET-IS-FAR-TOO-LONG, host: h, port: 1}]", "aets[0].aet: 'THIS-AET-IS-FAR-TOO-LONG' is not a valid AE title"),
        ("aets: [{aet: A, host: h, port: 1, wado-rs: {receivers: [NOPE]}}]",
         "aets[0].wado-rs.receivers[0]: receiver 'NOPE' is not listed under server.dimse"),
        ("aets: [{aet: A, host: h, port: 1, wado-rs: {mode: parallel}}]", "aets[0].wado-rs.mode: must be one of concurrent, sequential"),
        ("aets: [{aet: A, host: h, port: 1, pool: {size: 0}}]", "aets[0].pool.size: must be at least 1"),
        ("server: {http: {base-path: api}}", "server.http.base-path: must start with '/'"),
        ("server: {http: {graceful-shutdown: maybe}}", "server.http.graceful-shutdown: expected true or false"),
        ("server: {dimse: [{aet: R, port: 1}, {aet: R, port: 2}]}", "server.dimse[1].aet: duplicate AE title 'R'"),
        ("server: {http: {trusted-proxies: [nonsense]}}", "server.http.trusted-proxies[0]: 'nonsense' is not an IP address"),
        ("aets: [{aet: R, backend: S3, endpoint: 'http://x', bucket: bkt, credentials: {access-key: k}}]",
         "aets[0].credentials: needs both an access key and a secret key"),
        ("aets: [{aet: R, backend: S3, bucket: b1}]", "aets[0].endpoint: is required"),
        ("aets: {aet: A}", "aets: expected a list"),
        ("telemetry: {level: LOUD}", "telemetry.level: must be one of"),
        ("- just a list", "expected a mapping"),
        ("server: {http: {auth: {tokens: [{aets: [A]}]}}}", "server.http.auth.tokens[0]: give either token or token-env"),
        ("server: {http: {auth: {tokens: [{token: t}]}}}", "server.http.auth.tokens[0].aets: is required"),
        ("server: {http: {allowed-origins: [ftp://x]}}", "server.http.allowed-origins[0]: 'ftp://x' is not an origin"),
        ("server: {dimse: []}\naets: [{aet: A, host: h, port: 1}]", "aets[0].wado-rs: C-MOVE needs a receiver"),
    ],
)
def test_errors_name_the_key_path(text: str, expected: str):
    assert expected in error_of(text)


def test_unknown_keys_are_warned(caplog):
    with caplog.at_level(logging.WARNING, logger="dicomrst.config"):
        parse("server: {http: {port: 9000, colour: blue}}\naets: [{aet: A, host: h, port: 1, extra: 1}]\nmystery: 1")
    warned = caplog.text
    assert "server.http.colour" in warned and "aets[0].extra" in warned and "mystery" in warned


def test_c_get_needs_no_receiver():
    config = parse("server: {dimse: []}\naets: [{aet: A, host: h, port: 1, wado-rs: {method: get}}]")
    assert config.aets[0].wado_rs.method == "get" and config.aets[0].wado_rs.receivers == ()


def test_base_path_is_normalised():
    assert parse("server: {http: {base-path: /dicomweb/}}").server.http.base_path == "/dicomweb"


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("aets: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_config_from_environment(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    monkeypatch.setenv("DICOMRST_CONFIG", str(path))
    assert load_config().aets[0].aet == "PACS"
