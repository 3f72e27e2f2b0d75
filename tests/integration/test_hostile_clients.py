"""Clients that send what a gateway on a hospital network gets from buggy scripts and attackers, byte for
byte on raw sockets where an HTTP library would refuse to: forged log lines, forwarded headers from
an untrusted client, a Host that is no host, bulk data asked of a search, requests gunicorn refuses
itself, and a chunked STOW body whose chunk size is not a number."""
from __future__ import annotations

import json
import random
import re
import socket
import time

import requests

from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import KnownData, part10
from tests.peers import Gateway, Orthanc, StoreScp, gateway_config


def raw_request(gateway: Gateway, data: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as is and read the whole answer (the connection is closed after one request)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as connection:
        connection.sendall(data)
        received = b""
        while True:
            try:
                chunk = connection.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
            if _complete(received):
                break
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split(" ")[1]), headers, body


def _complete(received: bytes) -> bool:
    head, separator, body = received.partition(b"\r\n\r\n")
    found = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(separator) and found is not None and len(body) >= int(found.group(1))


def test_a_path_cannot_forge_a_log_line(gateway: Gateway):
    marker = f"forged-{random.randrange(10**9)}"
    requests.get(f"{gateway.url}/aets/ORTHANC/studies%0A2026-01-01 00:00:00,000 INFO {marker}%00x", timeout=10)
    requests.get(f"{gateway.url}/aets%0D%0A{marker}-crlf", timeout=10)
    time.sleep(0.5)
    log = gateway.log_path.read_bytes()
    assert marker.encode() in log  # it was logged, on the request's own line
    assert b"\x00" not in log
    for line in log.split(b"\n"):
        assert not line.startswith(b"2026-01-01 00:00:00,000 INFO"), line
        assert not line.startswith(marker.encode()), line
    assert b"\\x0a2026-01-01" in log and b"\\x0d\\x0a" + marker.encode() in log


def test_forwarded_scheme_headers_from_an_untrusted_client_change_nothing(tmp_path, orthanc: Orthanc,
                                                                          known_data: KnownData):
    # Only a proxy on 10.9.9.0/24 is trusted; this client (loopback) is not.
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port}],
                            **{"trusted-proxies": ["10.9.9.0/24"]})
    untrusting = Gateway(config, tmp_path)
    untrusting.start()
    try:
        for header, value in (("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on"),
                              ("X-Forwarded-Protocol", "ssl"), ("X-Forwarded-Host", "evil.example"),
                              ("Forwarded", "proto=https;host=evil.example")):
            response = requests.get(f"{untrusting.url}/aets/{orthanc.aet}/studies", params={"limit": 1},
                                    headers={header: value}, timeout=30)
            assert response.status_code == 200
            [match] = response.json()
            assert match["00081190"]["Value"][0].startswith(f"{untrusting.url}/aets/{orthanc.aet}/studies/"), header
    finally:
        untrusting.stop()


def test_a_host_that_is_no_host_is_400(gateway: Gateway):
    for host in (b"", b"a b", b"x/y", b"evil.example/path"):
        status, headers, body = raw_request(gateway, b"GET /aets/ORTHANC/studies HTTP/1.1\r\nHost: " + host
                                            + b"\r\nConnection: close\r\n\r\n")
        assert status == 400, host
        assert headers["content-type"].startswith("application/json") and "host" in json.loads(body)["error"].lower()


def test_bulk_data_is_not_asked_of_a_search_it_is_400_at_once(gateway: Gateway):
    started = time.monotonic()
    for field in ("7FE00010", "PixelData", "00282000"):
        response = requests.get(f"{gateway.url}/aets/ORTHANC/studies", params={"includefield": field}, timeout=30)
        assert response.status_code == 400 and "bulk data" in response.json()["error"]
    assert time.monotonic() - started < 5


def test_what_gunicorn_refuses_itself_is_answered_in_json(gateway: Gateway):
    refusals = [
        (b"NOT A REQUEST LINE\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /aets HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
        (b"GET /aets HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(200)) + b"\r\n", 431),
    ]
    for request, expected in refusals:
        status, headers, body = raw_request(gateway, request)
        assert status == expected, (request[:40], status, body[:200])
        assert headers["content-type"] == "application/json"
        assert json.loads(body)["error"]


def test_a_malformed_chunk_mid_stow_is_400_and_what_was_stored_is_reported(gateway: Gateway, storescp: StoreScp,
                                                                         orthanc: Orthanc):
    instances = generate_study(random.Random(1414), n_series=1, instances_per_series=3, rows=16, columns=16)
    boundary = "hostile-chunks"
    parts = [f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10(d) + b"\r\n"
             for d in instances[:2]]
    body = b"".join(parts)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (body[:len(parts[0])], body[len(parts[0]):]))
    # The third part starts, then the chunk size is not hex.
    third = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10(instances[2])[:100]
    chunks += b"%x\r\n%s\r\n" % (len(third), third) + b"ZZZ\r\nmore\r\n"
    head = (f"POST /aets/{storescp.aet}/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom+json\r\n"
            f'Content-Type: multipart/related; type="application/dicom"; boundary={boundary}\r\n'
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    status, headers, answer = raw_request(gateway, head + chunks, timeout=60)
    assert status == 400, answer[:300]
    module = json.loads(answer)
    stored = {item["00081155"]["Value"][0] for item in module["00081199"]["Value"]}
    assert stored == {str(d.SOPInstanceUID) for d in instances[:2]}
    assert len(module["00081198"]["Value"]) == 1  # the part it was reading when the body broke
