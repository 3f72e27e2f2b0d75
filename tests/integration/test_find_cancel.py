"""QIDO-RS ``limit`` ends the C-FIND with C-CANCEL (PS3.7 9.3.2.3) and releases the association, against
Orthanc and DCMTK's dcmqrscp, through the gateway under gunicorn. A search with more matches than the
limit: the page is right, the gateway's log shows the C-FIND cancelled and the association released (not
aborted), and dcmqrscp, which took the A-RELEASE-RQ that used to come in the middle of its responses for
a failure of its C-FIND ("Find SCP Failed: DUL Peer Requested Release"), reports none."""
from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import KnownData, part10
from tests.peers import DcmQrScp, Gateway, Orthanc, gateway_config

SERIES_SIZE = 400  # far more than the limit, and than dcmqrscp sends before the gateway has read two


@pytest.fixture(scope="module")
def large_series(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, list[Path]]:
    folder = tmp_path_factory.mktemp("large-series")
    study = generate_study(random.Random(7), n_series=1, instances_per_series=SERIES_SIZE, rows=8, columns=8,
                           modalities=("CT",))
    files = []
    for index, dataset in enumerate(study):
        path = folder / f"{index:04d}.dcm"
        path.write_bytes(part10(dataset))
        files.append(path)
    return str(study[0].StudyInstanceUID), str(study[0].SeriesInstanceUID), files


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory, large_series: tuple[str, str, list[Path]]) -> Iterator[DcmQrScp]:
    peer = DcmQrScp(tmp_path_factory.mktemp("dcmqrscp-cancel"))
    peer.start({})
    peer.store(large_series[2])
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def debug_gateway(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc, known_data: KnownData,
                  pacs: DcmQrScp) -> Iterator[Gateway]:
    config = gateway_config([
        {"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port},
        {"aet": pacs.aet, "host": "127.0.0.1", "port": pacs.port},
    ], receiver_aet="DICOMRST-CANCEL")
    config["telemetry"]["level"] = "DEBUG"  # the association's end and the cancel are DEBUG lines
    gateway = Gateway(config, tmp_path_factory.mktemp("find-cancel"), workers=1)
    gateway.start()
    yield gateway
    gateway.stop()


def log_during(gateway: Gateway, run) -> str:
    """The gateway's log from `run` until the association it opened has ended: the release follows
    the response, once the client has it all."""
    before = gateway.log_path.stat().st_size
    run()
    deadline = time.monotonic() + 10
    while True:
        with open(gateway.log_path, "rb") as log:
            log.seek(before)
            text = log.read().decode(errors="replace")
        if re.search(r"association with \S+ (released|aborted)", text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def assert_cancelled_and_released(log: str, aet: str) -> None:
    assert re.search(r"dicomrst\.backends\.dimse\.find: C-FIND \(message id \d+\) cancelled after \d+ more matches, "
                     r"final status 0x(FE00|0000)", log), log[-3000:]
    assert f"association with {aet}@" in log
    assert re.search(rf"association with {re.escape(aet)}@\S+ released", log)
    assert not re.search(rf"association with {re.escape(aet)}@\S+ aborted", log)


def test_limit_cancels_orthancs_c_find(debug_gateway: Gateway, known_data: KnownData):
    responses: list[requests.Response] = []
    log = log_during(debug_gateway, lambda: responses.append(
        requests.get(f"{debug_gateway.url}/aets/ORTHANC/instances", params={"limit": "2"}, timeout=60)))
    assert responses[0].status_code == 200 and len(responses[0].json()) == 2
    assert_cancelled_and_released(log, "ORTHANC")


def test_limit_cancels_dcmqrscps_c_find(debug_gateway: Gateway, pacs: DcmQrScp,
                                        large_series: tuple[str, str, list[Path]]):
    study_uid, series_uid, _ = large_series
    path = f"/aets/{pacs.aet}/studies/{study_uid}/series/{series_uid}/instances"
    pacs_log = pacs.folder / "dcmqrscp.log"
    before = pacs_log.stat().st_size
    responses: list[requests.Response] = []
    log = log_during(debug_gateway, lambda: responses.append(
        requests.get(f"{debug_gateway.url}{path}", params={"limit": "2"}, timeout=60)))
    assert responses[0].status_code == 200 and len(responses[0].json()) == 2
    assert_cancelled_and_released(log, pacs.aet)
    with open(pacs_log, "rb") as log_file:
        log_file.seek(before)
        assert "Find SCP Failed" not in log_file.read().decode(errors="replace")
    # The whole series still answers when no limit cuts it short.
    assert len(requests.get(f"{debug_gateway.url}{path}", timeout=60).json()) == SERIES_SIZE
