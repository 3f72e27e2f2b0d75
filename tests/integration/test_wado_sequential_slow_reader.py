"""Sequential mode (``wado-rs.mode: sequential``) holds Orthanc's turn while Orthanc sends, not while a
client reads: a client that reads a large study slowly does not hold back the next retrieval, whose move
starts and finishes while the first client is still reading. Orthanc of its own, so that the large study
stays out of the session's data."""
from __future__ import annotations

import http.client
import random
import socket
import time
from collections.abc import Iterator
from io import BytesIO

import pytest
import requests
from pydicom import Dataset, dcmread

from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import part10
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, Orthanc, gateway_config, receiver_of, start_orthanc

ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
TURN_TIMEOUT_MS = 5000
# Far more than the kernel buffers between the gateway and a client that stops reading (the gateway's
# send buffer grows to 4 MiB on Linux; the client's receive buffer is set small), so the first response
# cannot be written out while its client pauses.
LARGE_INSTANCES, LARGE_ROWS, LARGE_COLUMNS = 12, 1024, 1024  # 2 MiB each


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Dataset], list[Dataset]]:
    rng = random.Random(20261126)
    large = generate_study(rng, n_series=1, instances_per_series=LARGE_INSTANCES, rows=LARGE_ROWS,
                           columns=LARGE_COLUMNS, modalities=("CT",))
    small = generate_study(rng, n_series=1, instances_per_series=3, rows=16, columns=16, modalities=("MR",))
    return large, small


@pytest.fixture(scope="module")
def sequential_gateway(tmp_path_factory: pytest.TempPathFactory,
                       studies: tuple[list[Dataset], list[Dataset]]) -> Iterator[Gateway]:
    orthanc: Orthanc = start_orthanc(tmp_path_factory.mktemp("orthanc-slow-reader"), aet="ORTHANC-SLOW")
    try:
        for dataset in (*studies[0], *studies[1]):
            orthanc.upload(part10(dataset))
        config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port,
                                  "wado-rs": {"mode": "sequential", "timeout": TURN_TIMEOUT_MS}}],
                                receiver_aet="DICOMRST-SLOW", uncompressed=False)
        orthanc.add_modality(*receiver_of(config))
        gateway = Gateway(config, tmp_path_factory.mktemp("sequential-slow-reader"), workers=2)
        gateway.start()
        try:
            yield gateway
        finally:
            gateway.stop()
    finally:
        orthanc.stop()


def slow_client(gateway: Gateway, path: str) -> http.client.HTTPResponse:
    """A client with a small receive buffer that has sent its request and read nothing yet."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=60)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", gateway.port))
    connection.sock = sock
    connection.request("GET", path, headers={"Accept": ACCEPT})
    return connection.getresponse()


def sop_uids(content_type: str, body: bytes) -> list[str]:
    return sorted(str(dcmread(BytesIO(part)).SOPInstanceUID) for _, part in parse_multipart(content_type, body))


def test_a_slow_reader_does_not_hold_the_pacs_turn(sequential_gateway: Gateway,
                                                   studies: tuple[list[Dataset], list[Dataset]]):
    large, small = studies
    first = slow_client(sequential_gateway, f"/aets/ORTHANC-SLOW/studies/{large[0].StudyInstanceUID}")
    assert first.status == 200
    head = first.read(256 * 1024)  # the first chunks; then the client pauses
    second_started = time.monotonic()
    second = requests.get(f"{sequential_gateway.url}/aets/ORTHANC-SLOW/studies/{small[0].StudyInstanceUID}",
                          headers={"Accept": ACCEPT}, timeout=60)
    second_took = time.monotonic() - second_started
    assert second.status_code == 200, second.text
    assert sop_uids(second.headers["Content-Type"], second.content) == sorted(str(d.SOPInstanceUID) for d in small)
    # It did not wait for the turn (a wait would have ended with 503 after wado-rs.timeout).
    assert second_took < TURN_TIMEOUT_MS / 1000 / 2
    # The first client is still reading: the rest of its study, read slowly, is whole.
    rest = bytearray()
    while chunk := first.read(512 * 1024):
        rest += chunk
        time.sleep(0.01)
    assert sop_uids(first.getheader("Content-Type") or "", head + bytes(rest)) == sorted(
        str(d.SOPInstanceUID) for d in large)
