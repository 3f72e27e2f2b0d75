"""telemetry.sentry: an unexpected error reaches the Sentry DSN, here a local HTTP server standing in
for Sentry's ingestion endpoint."""
from __future__ import annotations

import gzip
import http.server
import threading
from collections.abc import Iterator

import pytest
import sentry_sdk

from dicomrst import create_app
from dicomrst.config import parse_config
from tests.unit.fakes import ScriptedBackend


class Envelopes(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        Envelopes.received.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sentry_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Envelopes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Envelopes.received = []
    yield server.server_address[1]
    server.shutdown()
    sentry_sdk.init(dsn=None)  # leave no client behind for other tests


def test_unexpected_errors_reach_sentry(sentry_server: int):
    config = parse_config({"telemetry": {"sentry": f"http://publickey@127.0.0.1:{sentry_server}/1"},
                           "aets": [{"aet": "PACS", "host": "h", "port": 1}]})
    app = create_app(config, backends={"PACS": ScriptedBackend([], error_after=RuntimeError("kaboom 4711"))})
    response = app.test_client().get("/aets/PACS/studies")
    assert response.status_code == 500 and "kaboom" not in response.get_data(as_text=True)
    sentry_sdk.flush(timeout=5)
    assert any(b"kaboom 4711" in envelope for envelope in Envelopes.received)


def test_no_dsn_no_sentry():
    from dicomrst.telemetry import configure_sentry

    assert configure_sentry(parse_config({}).telemetry) is False
