"""WADO-RS clients that read 1 KB a second: the retrieval from the PACS runs at the PACS's pace into the
retrieve cache and gives its association back when the PACS is done, so searches by everyone else go
on; and request-timeout bounds every write, so a reader that slow is cut off at the deadline instead of
holding the worker for as long as it trickles."""
from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from pydicom import Dataset

from dicomrst.sample_pacs.studies import Patient, generate_study
from tests.integration.conftest import part10
from tests.peers import Gateway, Orthanc, gateway_config, receiver_of

REQUEST_TIMEOUT_MS = 6000
READERS = 4


@pytest.fixture(scope="module")
def slow_readers(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc) -> Iterator[tuple[Gateway, list[Dataset]]]:
    study = generate_study(random.Random(2121), patient=Patient("Slow^Sam", "PID-2121", "19800101", "M"),
                           n_series=2, instances_per_series=12, rows=512, columns=512)
    for dataset in study:
        orthanc.upload(part10(dataset))
    config = gateway_config([{"aet": "SLOWREAD", "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "pool": {"size": 2, "timeout": 2000},
                              "wado-rs": {"calling-aets": [orthanc.aet]}}],
                            receiver_aet="DICOMRST-SLOW", **{"request-timeout": REQUEST_TIMEOUT_MS})
    orthanc.add_modality(*receiver_of(config))
    gateway = Gateway(config, tmp_path_factory.mktemp("slow-readers"))
    gateway.start()
    yield gateway, study
    gateway.stop()
    orthanc.delete_study(study[0].StudyInstanceUID)


class SlowReader:
    """Asks for ``path`` and then reads 1 KB a second, recording how much came and when it ended."""

    def __init__(self, gateway: Gateway, path: str) -> None:
        self.connection = socket.create_connection(("127.0.0.1", gateway.port), timeout=60)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.connection.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        self.received = 0
        self.ended_after: float | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.started = time.monotonic()
        self.thread.start()

    def _read(self) -> None:
        try:
            while True:
                chunk = self.connection.recv(1024)
                if not chunk:
                    break
                self.received += len(chunk)
                time.sleep(1)
        except OSError:
            pass
        self.ended_after = time.monotonic() - self.started
        self.connection.close()


def test_slow_readers_hold_no_association_and_are_cut_off_at_request_timeout(slow_readers):
    gateway, study = slow_readers
    first, second = sorted({d.SeriesInstanceUID for d in study})
    base = f"/aets/SLOWREAD/studies/{study[0].StudyInstanceUID}"
    paths = [f"{base}/series/{first}", f"{base}/series/{second}", base, f"{base}/series/{first}"]
    readers = [SlowReader(gateway, path) for path in paths[:READERS]]
    time.sleep(2)
    # Four readers at 1 KB/s, a pool of two: searches still find a free association.
    for _ in range(3):
        search = requests.get(f"{gateway.url}/aets/SLOWREAD/studies", params={"PatientID": "PID-2121"}, timeout=30)
        assert search.status_code == 200, search.text
        assert len(search.json()) == 1
        time.sleep(0.5)
    # Every slow reader's response was cut off at the deadline (a kernel may still hold some of it for
    # the client, but no greenlet, association or file of the gateway does).
    time.sleep(REQUEST_TIMEOUT_MS / 1000 + 3)
    cut_off = [line for line in gateway.log_path.read_text().splitlines()
               if "/aets/SLOWREAD/studies/" in line and "broken-off" in line]
    assert len(cut_off) == READERS, cut_off
    for line in cut_off:
        duration_ms = float(line.split("duration_ms=")[1].split()[0])
        assert duration_ms < REQUEST_TIMEOUT_MS + 3000, line
    log = gateway.log_path.read_text()
    assert "Traceback" not in log and "response cut off: the client read too slowly" in log
    for reader in readers:
        reader.connection.close()
