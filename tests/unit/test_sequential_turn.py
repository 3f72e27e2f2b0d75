"""``wado-rs.mode: sequential`` holds the PACS's turn while the PACS sends, not while a client reads: the
turn is given up once the final C-MOVE response is in and its instances are in the spool, and the client
reads the rest from there. In one process: the sample PACS, the move receiver and the backend, with a
retrieval left unread standing for a slow client."""
from __future__ import annotations

import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread

from dicomrst.backends.base import BackendBusy, InstanceSelection
from dicomrst.backends.dimse.backend import DimseBackend
from dicomrst.backends.dimse.config import DimseAetConfig
from dicomrst.backends.dimse.receiver import start_receivers
from dicomrst.backends.dimse.spool import SEALED_FILE, pacs_directory, spool_root
from dicomrst.config import Config, parse_config
from dicomrst.sample_pacs.scp import serve
from dicomrst.sample_pacs.studies import sample_studies
from tests.peers import free_port

RECEIVER = "DICOMRST-SEQ"
TURN_TIMEOUT_MS = 3000


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Config, DimseBackend]]:
    monkeypatch.setenv("DICOMRST_SPOOL", str(tmp_path / "spool"))
    pacs_port, receiver_port = free_port(), free_port()
    config = parse_config({
        "server": {"aet": "DICOMRST-TEST",
                   "dimse": [{"aet": RECEIVER, "interface": "127.0.0.1", "port": receiver_port}]},
        "aets": [{"aet": "SAMPLE", "host": "127.0.0.1", "port": pacs_port,
                  "wado-rs": {"mode": "sequential", "timeout": TURN_TIMEOUT_MS}}],
    })
    receivers = start_receivers(config)
    pacs = serve(tmp_path / "pacs", aet="SAMPLE", port=pacs_port, block=False,
                 destinations={RECEIVER: ("127.0.0.1", receiver_port)})
    assert pacs is not None
    entry = config.aets[0]
    assert isinstance(entry, DimseAetConfig)
    try:
        yield config, DimseBackend(entry, calling_aet="DICOMRST-TEST", receiver=config.server.dimse[0])
    finally:
        pacs.shutdown()
        for server in receivers:
            server.shutdown()


def sop_uids(instances: list[bytes]) -> list[str]:
    return sorted(str(dcmread(BytesIO(data)).SOPInstanceUID) for data in instances)


def test_the_next_move_does_not_wait_for_a_slow_reader(gateway: tuple[Config, DimseBackend]):
    config, backend = gateway
    first_study, second_study = sample_studies()[0], sample_studies()[4]
    slow = backend.retrieve(InstanceSelection(str(first_study[0].StudyInstanceUID)))
    read = [next(slow)]  # the client has read one instance, and pauses
    started = time.monotonic()
    other = list(backend.retrieve(InstanceSelection(str(second_study[0].StudyInstanceUID))))
    assert time.monotonic() - started < TURN_TIMEOUT_MS / 1000 / 2
    assert sop_uids(other) == sorted(str(d.SOPInstanceUID) for d in second_study)
    # The slow client's instances wait in its sealed move, and it reads them all.
    [move] = [p for p in pacs_directory(spool_root(config.server.dimse[0]), "SAMPLE").iterdir() if p.is_dir()]
    assert (move / SEALED_FILE).exists() and len([p for p in move.iterdir() if p.suffix == ".dcm"]) > 0
    read.extend(slow)
    assert sop_uids(read) == sorted(str(d.SOPInstanceUID) for d in first_study)
    assert not move.exists()


def test_the_turn_is_still_one_move_at_a_time_while_the_pacs_sends(gateway: tuple[Config, DimseBackend],
                                                                    monkeypatch: pytest.MonkeyPatch):
    """Until the PACS's final response, the next move waits for the turn, and gives up after wado-rs.timeout."""
    from dicomrst.backends.dimse import move as move_module

    _config, backend = gateway
    first_study, second_study = sample_studies()[0], sample_studies()[4]
    # The first move's C-MOVE responses never finish: its turn stays held.
    monkeypatch.setattr(move_module, "_all_sent", lambda move, responses, progress: False)
    slow = backend.retrieve(InstanceSelection(str(first_study[0].StudyInstanceUID)))
    next(slow)
    started = time.monotonic()
    with pytest.raises(BackendBusy):
        list(backend.retrieve(InstanceSelection(str(second_study[0].StudyInstanceUID))))
    assert time.monotonic() - started >= TURN_TIMEOUT_MS / 1000 * 0.9
    slow.close()
