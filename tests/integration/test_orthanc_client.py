"""Orthanc's own DICOMweb client, a client nobody here wrote, against the gateway: a second Orthanc
searches through it, retrieves a whole study through it, and stores a study through it (its STOW sends
a 73-character boundary)."""
from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import requests

from dicomrst.sample_pacs.studies import Patient, generate_study
from tests.integration.conftest import KnownData, part10
from tests.integration.dicom_json import value
from tests.peers import Gateway, Orthanc, start_orthanc


@pytest.fixture(scope="module")
def client_orthanc(tmp_path_factory: pytest.TempPathFactory, gateway: Gateway) -> Iterator[Orthanc]:
    peer = start_orthanc(tmp_path_factory.mktemp("orthanc-client"), aet="CLIENT",
                         dicomweb_servers={"gw": f"{gateway.url}/aets/ORTHANC/"})
    yield peer
    peer.stop()


def client_call(client: Orthanc, action: str, body: dict, timeout: float = 120) -> requests.Response:
    return requests.post(f"{client.url}/dicom-web/servers/gw/{action}", json=body, timeout=timeout)


def test_orthanc_searches_through_the_gateway(client_orthanc: Orthanc, known_data: KnownData):
    response = client_call(client_orthanc, "qido", {"Uri": "/studies", "Arguments": {"PatientID": "PID-1001"}})
    assert response.status_code == 200, response.text
    # Orthanc hands back its own reading of the DICOM JSON it got: one Value per attribute.
    assert [match["0020000D"]["Value"] for match in response.json()] == [known_data.study(0)[0].StudyInstanceUID]


def test_orthanc_retrieves_a_whole_study_through_the_gateway(client_orthanc: Orthanc, known_data: KnownData):
    study = known_data.study(2)
    response = client_call(client_orthanc, "retrieve", {"Resources": [{"Study": study[0].StudyInstanceUID}]})
    assert response.status_code == 200, response.text
    found = requests.post(f"{client_orthanc.url}/tools/find", timeout=10, json={
        "Level": "Instance", "Query": {"StudyInstanceUID": study[0].StudyInstanceUID}, "Expand": True}).json()
    assert {instance["MainDicomTags"]["SOPInstanceUID"] for instance in found} == {d.SOPInstanceUID for d in study}


def test_orthanc_stores_a_study_through_the_gateway(client_orthanc: Orthanc, orthanc: Orthanc, gateway: Gateway):
    study = generate_study(random.Random(73), patient=Patient("Stow^Orthanc", "PID-7373", "19700101", "F"),
                           n_series=1, instances_per_series=3, rows=8, columns=8)
    uploaded = [client_orthanc.upload(part10(dataset)) for dataset in study]
    response = client_call(client_orthanc, "stow", {"Resources": [uploaded[0]["ParentStudy"]], "Synchronous": True})
    assert response.status_code == 200, response.text
    try:
        stored = requests.get(f"{gateway.url}/aets/ORTHANC/studies/{study[0].StudyInstanceUID}/instances",
                              timeout=30).json()
        assert {value(match, "SOPInstanceUID") for match in stored} == {d.SOPInstanceUID for d in study}
    finally:
        # The session's Orthanc holds a known set of studies that other tests compare against.
        orthanc.delete_study(study[0].StudyInstanceUID)
