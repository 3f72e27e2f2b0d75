"""The web layer over a scripted backend: status mapping, paging, streaming and closing."""
from __future__ import annotations

import json

import pytest

from dicomrst import create_app
from dicomrst.backends.base import (
    BackendBusy,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    SearchNotes,
)
from dicomrst.config import parse_config
from dicomrst.dicomweb.query import QueryLevel, parse_qido_query
from tests.unit.fakes import ScriptedBackend, client_for, study


def test_limit_and_offset_close_the_search_early():
    backend = ScriptedBackend([study(n) for n in range(10)])
    response = client_for(backend).get("/aets/PACS/studies?offset=2&limit=3")
    assert [m["0020000D"]["Value"][0] for m in response.get_json()] == ["1.2.3.2", "1.2.3.3", "1.2.3.4"]
    assert backend.closed


@pytest.mark.parametrize("error, status", [
    (BackendUnavailable("down"), 503), (BackendBusy("busy"), 503), (BackendTimeout("slow"), 504),
    (BackendProtocolError("odd"), 502),
])
def test_errors_before_the_first_match_become_statuses(error: Exception, status: int):
    response = client_for(ScriptedBackend([], error_after=error)).get("/aets/PACS/studies")
    assert response.status_code == status
    assert response.get_json() == {"error": str(error)}


def test_an_error_after_the_first_match_breaks_the_stream():
    backend = ScriptedBackend([study(1)], error_after=BackendTimeout("slow"))
    response = client_for(backend).get("/aets/PACS/studies")
    assert response.status_code == 200
    with pytest.raises(BackendTimeout):
        response.get_data()
    assert backend.closed


def test_the_search_finishes_once_the_response_is_out():
    """The backend's closing step (a DIMSE release) waits until the client has the whole answer."""
    backend = ScriptedBackend([study(n) for n in range(3)])
    response = client_for(backend).get("/aets/PACS/studies", buffered=False)
    body = b"".join(response.response)
    assert len(json.loads(body)) == 3
    assert backend.closed and not backend.finished
    response.close()
    assert backend.finished


def test_a_search_whose_caller_keeps_nothing_finishes_at_once():
    backend = ScriptedBackend([study(1)])
    assert len(list(backend.search(parse_qido_query(QueryLevel.STUDY, []), SearchNotes()))) == 1
    assert backend.finished


def test_a_failing_finish_is_logged_and_the_rest_still_run(caplog):
    ran: list[str] = []
    notes = SearchNotes(finishing=[])

    def fail() -> None:
        raise OSError("connection reset")

    notes.finish(fail)
    notes.finish(lambda: ran.append("release"))
    notes.run_finishing()
    assert ran == ["release"] and "finishing a search failed" in caplog.text
    notes.run_finishing()  # once only
    assert ran == ["release"]


def test_base_path_prefixes_every_route():
    client = client_for(ScriptedBackend([study(1)]), **{"base-path": "/dicomweb"})
    assert client.get("/dicomweb/aets").get_json() == ["PACS"]
    matches = client.get("/dicomweb/aets/PACS/studies").get_json()
    assert matches[0]["00081190"]["Value"] == ["http://localhost/dicomweb/aets/PACS/studies/1.2.3.1"]
    assert client.get("/aets").status_code == 404


def test_forwarded_headers_only_from_trusted_proxies():
    client = client_for(ScriptedBackend([study(1)]), **{"trusted-proxies": ["10.0.0.0/8"]})
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
    untrusted = client.get("/aets/PACS/studies", headers=headers, environ_base={"REMOTE_ADDR": "192.168.1.5"})
    assert untrusted.get_json()[0]["00081190"]["Value"][0].startswith("http://localhost/")
    trusted = client.get("/aets/PACS/studies", headers=headers, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert trusted.get_json()[0]["00081190"]["Value"][0].startswith("https://evil.example/")


def test_wrong_method_is_405_json():
    response = client_for(ScriptedBackend([])).delete("/aets/PACS/studies")
    assert response.status_code == 405 and "error" in response.get_json()


def test_unexpected_errors_are_500_without_traceback():
    response = client_for(ScriptedBackend([], error_after=RuntimeError("secret detail"))).get("/aets/PACS/studies")
    assert response.status_code == 500
    assert "secret" not in response.get_data(as_text=True) and "Traceback" not in response.get_data(as_text=True)


def test_cors_preflight_and_exposed_headers():
    client = client_for(ScriptedBackend([study(1)]))
    preflight = client.options("/aets/PACS/studies", headers={
        "Origin": "https://viewer.example.org", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "Accept, Authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] in ("*", "https://viewer.example.org")
    assert "GET" in preflight.headers["Access-Control-Allow-Methods"]
    response = client.get("/aets/PACS/studies", headers={"Origin": "https://viewer.example.org"})
    exposed = response.headers["Access-Control-Expose-Headers"]
    assert all(name in exposed for name in ("Content-Type", "Content-Length", "Content-Location", "Warning"))


def test_cors_origins_are_configurable():
    client = client_for(ScriptedBackend([study(1)]), **{"allowed-origins": ["https://viewer.example.org"]})
    allowed = client.get("/aets", headers={"Origin": "https://viewer.example.org"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://viewer.example.org"
    other = client.get("/aets", headers={"Origin": "https://elsewhere.example.org"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_aets_detail_on_request():
    # The backends the config builds describe themselves (nothing is contacted to do so).
    client = create_app(parse_config({"aets": [{"aet": "PACS", "host": "h", "port": 1}]})).test_client()
    assert client.get("/aets").get_json() == ["PACS"]
    assert client.get("/aets?detail=true").get_json() == [{
        "aet": "PACS", "backend": "DIMSE", "host": "h", "port": 1,
        # The retrieve cache is on by default.
        "cache": {"max-size": 1_000_000_000, "prefetch": "series", "ttl": 300_000},
        # It moves to the default receiver, which this app did not start.
        "receiver": {"aet": "DICOM-RST", "port": 7001, "running": False},
    }]


def test_request_id_returned_and_logged(caplog):
    import logging

    client = client_for(ScriptedBackend([study(1), study(2)]))
    with caplog.at_level(logging.INFO, logger="dicomrst.requests"):
        generated = client.get("/aets/PACS/studies")
        generated.get_data()
        generated.close()
        kept = client.get("/aets", headers={"X-Request-Id": "client-id-42"})
        kept.close()
        forged = client.get("/aets", headers={"X-Request-Id": "bad id; with spaces"})
        forged.close()
    assert len(generated.headers["X-Request-Id"]) == 16
    assert kept.headers["X-Request-Id"] == "client-id-42"
    assert forged.headers["X-Request-Id"] != "bad id; with spaces"
    line = next(r.getMessage() for r in caplog.records if generated.headers["X-Request-Id"] in r.getMessage())
    assert "GET /aets/PACS/studies aet=PACS status=200" in line
    assert f"bytes={len(generated.get_data())}" in line


def auth_client(monkeypatch):
    monkeypatch.setenv("VIEWER_TOKEN", "viewer-secret")
    config = parse_config({
        "server": {"http": {"auth": {"tokens": [
            {"token": "admin-secret", "aets": ["*"]},
            {"token-env": "VIEWER_TOKEN", "aets": ["PACS"]},
        ]}}},
        "aets": [{"aet": "PACS", "host": "h", "port": 1}, {"aet": "OTHER", "host": "h", "port": 2}],
    })
    app = create_app(config, backends={"PACS": ScriptedBackend([study(1)]), "OTHER": ScriptedBackend([study(2)])})
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_bearer_tokens_open_their_aets(monkeypatch):
    client = auth_client(monkeypatch)
    missing = client.get("/aets/PACS/studies")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/aets/PACS/studies", headers=bearer("wrong")).status_code == 401
    assert client.get("/aets/PACS/studies", headers=bearer("viewer-secret")).status_code == 200
    forbidden = client.get("/aets/OTHER/studies", headers=bearer("viewer-secret"))
    assert forbidden.status_code == 403 and "OTHER" in forbidden.get_json()["error"]
    assert client.get("/aets/OTHER/studies", headers=bearer("admin-secret")).status_code == 200
    assert client.get("/aets", headers=bearer("viewer-secret")).get_json() == ["PACS"]
    assert client.get("/aets", headers=bearer("admin-secret")).get_json() == ["PACS", "OTHER"]
    # A CORS preflight carries no credentials and is answered all the same.
    preflight = client.options("/aets/PACS/studies", headers={"Origin": "https://v.example.org",
                                                              "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 200


def test_token_from_a_missing_environment_variable_stops_start_up(monkeypatch):
    from dicomrst.config import ConfigError

    monkeypatch.delenv("ABSENT_TOKEN", raising=False)
    config = parse_config({"server": {"http": {"auth": {"tokens": [{"token-env": "ABSENT_TOKEN", "aets": "*"}]}}}})
    with pytest.raises(ConfigError, match="ABSENT_TOKEN"):
        create_app(config)


def test_request_timeout_breaks_off_a_response_that_runs_past_it():
    import time as clock

    from dicomrst.web.request_log import RequestTimeout

    class SlowBackend(ScriptedBackend):
        def search(self, query, notes):
            yield study(1)
            clock.sleep(0.3)
            yield study(2)

    response = client_for(SlowBackend([]), **{"request-timeout": 200}).get("/aets/PACS/studies")
    assert response.status_code == 200
    with pytest.raises(RequestTimeout):
        response.get_data()
