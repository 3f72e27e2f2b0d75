"""Graceful shutdown: on SIGTERM a retrieval in flight finishes whole, new connections are refused,
and the move receiver drains and stops last."""
from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pydicom import Dataset
from pynetdicom.association import Association

from dicomrst.sample_pacs.scp import serve
from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import part10
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, free_port, gateway_config, receiver_of

INSTANCES = 10
DELAY = 0.4


@pytest.fixture
def slow_c_stores() -> Iterator[None]:
    original = Association.send_c_store

    def send_c_store(self, dataset, *args, **kwargs):
        if str(self.ae.ae_title) == "GRACE":
            time.sleep(DELAY)
        return original(self, dataset, *args, **kwargs)

    Association.send_c_store = send_c_store
    yield
    Association.send_c_store = original


def test_sigterm_lets_the_retrieval_in_flight_finish(tmp_path: Path, slow_c_stores: None):
    study: list[Dataset] = generate_study(random.Random(9), n_series=1, instances_per_series=INSTANCES)
    folder = tmp_path / "pacs"
    folder.mkdir()
    for dataset in study:
        (folder / f"{dataset.SOPInstanceUID}.dcm").write_bytes(part10(dataset))
    pacs_port = free_port()
    config = gateway_config([{"aet": "GRACE", "host": "127.0.0.1", "port": pacs_port}],
                            **{"graceful-shutdown": True, "request-timeout": 30000})
    receiver_aet, receiver_port = receiver_of(config)
    server = serve(folder, aet="GRACE", port=pacs_port, destinations={receiver_aet: ("127.0.0.1", receiver_port)},
                   seed=False, block=False)
    gateway = Gateway(config, tmp_path / "gateway", workers=2)
    (tmp_path / "gateway").mkdir()
    gateway.start()
    assert gateway.process is not None
    try:
        with requests.get(f"{gateway.url}/aets/GRACE/studies/{study[0].StudyInstanceUID}", stream=True,
                          timeout=30) as response:
            assert response.status_code == 200
            chunks = response.iter_content(chunk_size=None)
            received = next(chunks)
            gateway.process.send_signal(signal.SIGTERM)
            # gevent workers notice within their one-second loop, then close their listeners.
            time.sleep(1.5)
            with pytest.raises((requests.ConnectionError, requests.Timeout)):
                requests.get(f"{gateway.url}/aets", timeout=2)
            received += b"".join(chunks)
        parts = parse_multipart(response.headers["Content-Type"], received)
        assert len(parts) == INSTANCES
        assert gateway.process.wait(30) == 0
        assert "move receivers stopping" in gateway.log_path.read_text()
    finally:
        gateway.stop()
        server.ae.shutdown()
