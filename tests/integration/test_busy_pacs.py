"""A busy PACS is not a broken one: DCMTK's dcmqrscp takes two associations and rejects more as transient
(local-limit-exceeded); the gateway, with a pool of eight, asks again and learns the limit, so every
request gets through. A permanent rejection (a called AE title dcmqrscp does not know) is 502 with its
reason, and a read-only AE that accepts no storage class has each STOW-RS instance reported refused."""
from __future__ import annotations

import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from dicomrst.backends.dimse.slot_files import default_slot_directory
from dicomrst.backends.dimse.slots import LEARNED_LIMIT_NAME
from dicomrst.dicomweb.multipart import write_multipart
from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import KnownData, part10
from tests.integration.dicom_json import tag, value
from tests.integration.multipart import parse_multipart
from tests.peers import DcmQrScp, Gateway, gateway_config, receiver_of

PACS_LIMIT = 2
POOL_SIZE = 8
SOP_CLASS_NOT_SUPPORTED = 0x0122
BOUNDARY = "dicomrst-busy-boundary"


@pytest.fixture(scope="module")
def busy_gateway(tmp_path_factory: pytest.TempPathFactory,
                 known_data: KnownData) -> Iterator[tuple[Gateway, DcmQrScp]]:
    folder = tmp_path_factory.mktemp("busy-gateway")
    pacs = DcmQrScp(folder / "dcmqrscp", aet="BUSYQR", max_associations=PACS_LIMIT, read_only_aet="READONLY")
    pool = {"size": POOL_SIZE, "timeout": 20_000}
    config = gateway_config([
        # Without the retrieve cache, which would join the concurrent retrievals into one: these tests
        # load the PACS past its association limit.
        {"aet": pacs.aet, "host": "127.0.0.1", "port": pacs.port, "pool": pool, "cache": {"enabled": False}},
        # The same dcmqrscp under an AE title it does not know, and under its read-only one.
        {"aet": "NOSUCHAE", "host": "127.0.0.1", "port": pacs.port, "pool": pool},
        {"aet": "READONLY", "host": "127.0.0.1", "port": pacs.port, "pool": pool},
    ], receiver_aet="DICOMRST-BUSY")
    files = []
    for index, dataset in enumerate(instance for study in known_data.studies for instance in study):
        path = folder / f"{index:03d}.dcm"
        path.write_bytes(part10(dataset))
        files.append(path)
    pacs.folder.mkdir()
    pacs.start({receiver_of(config)[0]: ("127.0.0.1", receiver_of(config)[1])})
    pacs.store(files)
    gateway = Gateway(config, folder / "gateway", workers=4)
    gateway.directory.mkdir()
    gateway.start()
    yield gateway, pacs
    gateway.stop()
    pacs.stop()


def retrieve(gateway: Gateway, aet: str, study_uid: str) -> requests.Response:
    return requests.get(f"{gateway.url}/aets/{aet}/studies/{study_uid}", timeout=120,
                        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})


def test_concurrent_retrievals_beyond_the_pacs_limit_all_succeed(busy_gateway: tuple[Gateway, DcmQrScp],
                                                                 known_data: KnownData):
    gateway, pacs = busy_gateway
    study = known_data.study(2)
    expected = {dataset.SOPInstanceUID for dataset in study}
    with ThreadPoolExecutor(max_workers=POOL_SIZE) as executor:
        responses = list(executor.map(lambda _: retrieve(gateway, pacs.aet, study[0].StudyInstanceUID),
                                      range(POOL_SIZE)))
    statuses = [response.status_code for response in responses]
    assert statuses == [200] * POOL_SIZE, [response.text[:300] for response in responses if response.status_code != 200]
    for response in responses:
        parts = parse_multipart(response.headers["Content-Type"], response.content)
        assert len(parts) == len(expected)
    # Rejected with fewer than pool.size associations open, the gateway learned to hand out fewer.
    learned = default_slot_directory(pacs.aet, "127.0.0.1", pacs.port) / LEARNED_LIMIT_NAME
    assert learned.exists(), "dcmqrscp rejected nothing: the test did not load it past its limit"
    assert json.loads(learned.read_text())["limit"] == PACS_LIMIT


def test_an_unknown_called_ae_title_is_502_with_the_pacs_reason(busy_gateway: tuple[Gateway, DcmQrScp]):
    gateway, _ = busy_gateway
    response = requests.get(f"{gateway.url}/aets/NOSUCHAE/studies", timeout=60)
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert "rejected-permanent" in error and "called-AE-title-not-recognized" in error, error


def test_stow_to_a_read_only_ae_reports_every_instance_refused(busy_gateway: tuple[Gateway, DcmQrScp]):
    gateway, _ = busy_gateway
    study = generate_study(random.Random(4711), n_series=1, instances_per_series=3, rows=16, columns=16)
    body = b"".join(write_multipart([part10(dataset) for dataset in study], "application/dicom", BOUNDARY))
    response = requests.post(f"{gateway.url}/aets/READONLY/studies", data=body, timeout=60,
                             headers={"Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
                                      "Accept": "application/dicom+json"})
    assert response.status_code == 409, response.text
    module = response.json()
    assert tag("ReferencedSOPSequence") not in module
    failed = module[tag("FailedSOPSequence")]["Value"]
    assert {value(item, "ReferencedSOPInstanceUID") for item in failed} == {d.SOPInstanceUID for d in study}
    assert {value(item, "FailureReason") for item in failed} == {SOP_CLASS_NOT_SUPPORTED}


def test_the_read_only_ae_still_answers_queries(busy_gateway: tuple[Gateway, DcmQrScp]):
    """Only storage is refused there; the same AE is no broken PACS for QIDO-RS."""
    gateway, _ = busy_gateway
    response = requests.get(f"{gateway.url}/aets/READONLY/studies", timeout=60)
    assert response.status_code == 200, response.text
    assert response.json() == []

