"""STOW-RS clients that are slow, pause or go silent, byte by byte on raw sockets: none of them holds an
association (or its pool slot) while it has nothing to store, a pause longer than the PACS's idle limit
goes on with a new association, and a body from which no read block (64 KiB, or its end) arrives for
request-timeout is ended (408) with what was stored before reported."""
from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from pydicom import Dataset

from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import part10
from tests.peers import Gateway, StoreScp, gateway_config

BOUNDARY = "slow-upload"
REQUEST_TIMEOUT_MS = 6000


@pytest.fixture(scope="module")
def slow_setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, StoreScp]]:
    # A PACS that drops an association idle for 2 s, as real ones do after their idle limit.
    storescp = StoreScp(tmp_path_factory.mktemp("slow-storescp"), options=["--dimse-timeout", "2"])
    storescp.start()
    config = gateway_config([{"aet": storescp.aet, "host": "127.0.0.1", "port": storescp.port,
                              "pool": {"size": 2, "timeout": 1000}}],
                            **{"request-timeout": REQUEST_TIMEOUT_MS})
    gateway = Gateway(config, tmp_path_factory.mktemp("slow-gateway"))
    gateway.start()
    yield gateway, storescp
    gateway.stop()
    storescp.stop()


def instances(seed: int, count: int, rows: int = 16) -> list[Dataset]:
    return generate_study(random.Random(seed), n_series=1, instances_per_series=count, rows=rows, columns=rows)


def part(dataset: Dataset) -> bytes:
    return f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part10(dataset) + b"\r\n"


class Upload:
    """A STOW-RS request sent in chunks whenever the test says, on a socket of its own."""

    def __init__(self, gateway: Gateway, aet: str) -> None:
        self.connection = socket.create_connection(("127.0.0.1", gateway.port), timeout=60)
        self.connection.sendall(
            (f"POST /aets/{aet}/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/dicom+json\r\n"
             f'Content-Type: multipart/related; type="application/dicom"; boundary={BOUNDARY}\r\n'
             "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode())

    def send(self, data: bytes) -> None:
        self.connection.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def trickle(self, data: bytes, seconds: float) -> None:
        """``data`` a byte at a time over ``seconds``."""
        for byte in data:
            self.send(bytes([byte]))
            time.sleep(seconds / len(data))

    def finish(self) -> tuple[int, dict]:
        self.send(f"--{BOUNDARY}--\r\n".encode())
        self.connection.sendall(b"0\r\n\r\n")
        return self.answer()

    def answer(self) -> tuple[int, dict]:
        received = b""
        while True:
            chunk = self.connection.recv(65536)
            if not chunk:
                break
            received += chunk
        self.connection.close()
        head, _, body = received.partition(b"\r\n\r\n")
        return int(head.split(b" ")[1]), json.loads(body)


def stored_uids(module: dict) -> set[str]:
    return {item["00081155"]["Value"][0] for item in module.get("00081199", {}).get("Value", [])}


def test_slow_uploads_leave_the_pool_to_everyone_else(slow_setup):
    gateway, storescp = slow_setup
    uploads = []
    datasets = instances(1818, 4)
    for dataset in datasets:
        upload = Upload(gateway, storescp.aet)
        upload.send(part(dataset)[:40])  # headers and the start of a part, then a byte a second
        uploads.append(upload)
    threads = [threading.Thread(target=upload.trickle, args=(part(dataset)[40:80], 3))
               for upload, dataset in zip(uploads, datasets)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    # Four slow clients, a pool of two: the PACS is still there for others.
    for _ in range(3):
        health = requests.get(f"{gateway.url}/aets/{storescp.aet}", timeout=30)
        assert health.status_code == 200, health.text
        time.sleep(0.3)
    for thread in threads:
        thread.join()
    for upload, dataset in zip(uploads, datasets):
        upload.send(part(dataset)[80:])
        status, module = upload.finish()
        assert status == 200 and stored_uids(module) == {str(dataset.SOPInstanceUID)}


def test_a_pause_past_the_pacs_idle_limit_goes_on_with_a_new_association(slow_setup):
    gateway, storescp = slow_setup
    datasets = instances(1919, 3)
    upload = Upload(gateway, storescp.aet)
    upload.send(part(datasets[0]))
    time.sleep(3.5)  # the PACS drops an association idle for 2 s
    upload.send(part(datasets[1]) + part(datasets[2]))
    status, module = upload.finish()
    assert status == 200, module
    assert stored_uids(module) == {str(d.SOPInstanceUID) for d in datasets}
    assert all(storescp.received(str(d.SOPInstanceUID)) for d in datasets)


def test_a_body_that_sends_nothing_for_request_timeout_is_ended(slow_setup):
    gateway, storescp = slow_setup
    datasets = instances(2020, 2, rows=256)
    upload = Upload(gateway, storescp.aet)
    # The first part whole, and more than a read block of the second (a server holds back what does not
    # fill a block): then nothing.
    upload.send(part(datasets[0]) + part(datasets[1])[:100_000])
    started = time.monotonic()
    status, module = upload.answer()  # nothing more is sent
    assert status == 408
    assert REQUEST_TIMEOUT_MS / 1000 <= time.monotonic() - started + 1.5 < REQUEST_TIMEOUT_MS / 1000 + 5
    assert stored_uids(module) == {str(datasets[0].SOPInstanceUID)}
    assert len(module["00081198"]["Value"]) == 1
