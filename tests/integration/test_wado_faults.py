"""WADO-RS streaming and faults, against sample PACS run in this process whose C-STORE sub-operations
can be slowed down, stripped of the Move Originator Message ID, or cut off mid-move."""
from __future__ import annotations

import concurrent.futures
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from pydicom import Dataset
from pynetdicom.association import Association
from pynetdicom.transport import ThreadedAssociationServer

from dicomrst.sample_pacs.scp import serve
from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import part10
from tests.integration.multipart import IncompleteMultipart, parse_multipart
from tests.peers import Gateway, free_port, gateway_config, receiver_of

INSTANCES = 12


@dataclass
class Behaviour:
    """How one sample PACS sends its C-STOREs."""

    delay: float = 0.0
    omit_message_id: bool = False
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


BEHAVIOURS: dict[str, Behaviour] = {
    "SLOW": Behaviour(delay=0.25),
    "DYING": Behaviour(delay=0.25),
    "NOID": Behaviour(delay=0.02, omit_message_id=True),
    "SEQ": Behaviour(delay=0.02, omit_message_id=True),
    "SLOWEST": Behaviour(delay=2.5),
}


@pytest.fixture(scope="module", autouse=True)
def shaped_c_stores() -> Iterator[None]:
    original = Association.send_c_store

    def send_c_store(self, dataset, msg_id=1, priority=2, originator_aet=None, originator_id=None):
        behaviour = BEHAVIOURS.get(str(self.ae.ae_title))
        if behaviour is not None:
            time.sleep(behaviour.delay)
            if behaviour.omit_message_id:
                originator_aet = originator_id = None
            with behaviour.lock:
                behaviour.sent += 1
        return original(self, dataset, msg_id, priority, originator_aet, originator_id)

    Association.send_c_store = send_c_store
    yield
    Association.send_c_store = original


@pytest.fixture(scope="module")
def study() -> list[Dataset]:
    return generate_study(random.Random(7), n_series=2, instances_per_series=INSTANCES // 2, rows=64, columns=64)


@dataclass
class Setup:
    gateway: Gateway
    pacs: dict[str, ThreadedAssociationServer]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, study: list[Dataset]) -> Iterator[Setup]:
    ports = {aet: free_port() for aet in BEHAVIOURS}
    entries = [{"aet": aet, "host": "127.0.0.1", "port": port} for aet, port in ports.items()]
    for entry in entries:
        if entry["aet"] == "SEQ":
            entry["wado-rs"] = {"mode": "sequential"}
        if entry["aet"] == "SLOWEST":
            entry["wado-rs"] = {"timeout": 1000}
    config = gateway_config(entries)
    receiver_aet, receiver_port = receiver_of(config)
    servers = {}
    for aet, port in ports.items():
        folder = tmp_path_factory.mktemp(f"pacs-{aet}")
        for dataset in study:
            (folder / f"{dataset.SOPInstanceUID}.dcm").write_bytes(part10(dataset))
        servers[aet] = serve(folder, aet=aet, port=port, destinations={receiver_aet: ("127.0.0.1", receiver_port)},
                             seed=False, block=False)
    gateway = Gateway(config, tmp_path_factory.mktemp("gateway"), workers=1)
    gateway.start()
    yield Setup(gateway, servers)
    gateway.stop()
    for behaviour in BEHAVIOURS.values():
        behaviour.delay = 0  # the moves still under way finish quickly
    for server in servers.values():
        server.ae.shutdown()  # also for the one a test has shut down already


def study_url(setup: Setup, aet: str, study: list[Dataset]) -> str:
    return f"{setup.gateway.url}/aets/{aet}/studies/{study[0].StudyInstanceUID}"


def sop_uids(response: requests.Response) -> list[str]:
    from io import BytesIO

    from pydicom import dcmread

    assert response.status_code == 200, response.text
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    return [str(dcmread(BytesIO(body)).SOPInstanceUID) for _, body in parts]


def spool_leftovers(setup: Setup) -> list[Path]:
    from dicomrst.backends.dimse.spool import spool_root
    from dicomrst.config import parse_config

    root = spool_root(parse_config(setup.gateway.config).server.dimse[0])
    return [path for path in root.rglob("*") if path.is_dir() and path.name.isdigit()]


def test_first_instance_leaves_before_the_move_ends(setup: Setup, study: list[Dataset]):
    behaviour = BEHAVIOURS["SLOW"]
    behaviour.sent = 0
    with requests.get(study_url(setup, "SLOW", study), stream=True, timeout=60) as response:
        assert response.status_code == 200
        received = b""
        chunks = response.iter_content(chunk_size=None)
        while b"DICM" not in received:
            received += next(chunks)
        sent_when_first_arrived = behaviour.sent
        received += b"".join(chunks)
    assert sent_when_first_arrived < INSTANCES / 2
    parts = parse_multipart(response.headers["Content-Type"], received)
    assert len(parts) == INSTANCES


def test_pacs_stopped_mid_move_breaks_the_stream_visibly(setup: Setup, study: list[Dataset]):
    with requests.get(study_url(setup, "DYING", study), stream=True, timeout=60) as response:
        assert response.status_code == 200
        chunks = response.iter_content(chunk_size=None)
        received = next(chunks)
        setup.pacs["DYING"].ae.shutdown()  # closes the PACS and aborts its associations, the move included
        try:
            for chunk in chunks:
                received += chunk
        except requests.exceptions.ChunkedEncodingError:
            pass
    with pytest.raises(IncompleteMultipart):
        parse_multipart(response.headers["Content-Type"], received)
    deadline = time.monotonic() + 5
    while spool_leftovers(setup) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spool_leftovers(setup) == []
    log = setup.gateway.log_path.read_text()
    assert "response stream broken off" in log


def test_omitted_message_id_routes_by_uids_even_for_identical_moves(setup: Setup, study: list[Dataset]):
    expected = sorted(str(d.SOPInstanceUID) for d in study)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: sop_uids(requests.get(study_url(setup, "NOID", study), timeout=60)),
                                range(4)))
    assert all(sorted(result) == expected for result in results)


def test_sequential_mode_serves_identical_requests_one_after_another(setup: Setup, study: list[Dataset]):
    expected = sorted(str(d.SOPInstanceUID) for d in study)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: sop_uids(requests.get(study_url(setup, "SEQ", study), timeout=60)),
                                range(3)))
    assert all(sorted(result) == expected for result in results)


def test_wado_timeout_bounds_the_wait_for_an_instance(setup: Setup, study: list[Dataset]):
    started = time.monotonic()
    response = requests.get(study_url(setup, "SLOWEST", study), timeout=60)
    assert response.status_code == 504 and "within 1 s" in response.json()["error"]
    assert time.monotonic() - started < 5
