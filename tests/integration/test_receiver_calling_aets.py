"""A PACS whose storage SCU has another AE title than its query/retrieve AE (common in real PACS):
``aets[].wado-rs.calling-aets`` lets the move receiver take that PACS's C-STOREs. Orthanc is told to call
the receiver with another AET (a modality's ``LocalAet``); the sample PACS answers to any called AET and
sends with its own, so a gateway that names it otherwise sees the same split. With the key a retrieval
works; without it the receiver refuses the PACS's association and the retrieval fails (502)."""
from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
import requests
from pydicom import dcmread

from dicomrst.sample_pacs.scp import serve
from dicomrst.sample_pacs.studies import sample_studies
from tests.integration.conftest import KnownData
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, Orthanc, free_port, gateway_config, receiver_of

ORTHANC_STORE_AET = "ORTHANC-STORE"
SAMPLE_STORE_AET = "SAMPLE-STORE"  # the sample PACS's own AE title, which it sends with
SAMPLE_QR_AET = "SAMPLE-QR"  # what the gateway calls it
ACCEPT = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}


def _config(orthanc: Orthanc, sample_port: int, receiver_aet: str, with_key: bool) -> dict:
    def entry(aet: str, port: int, caller: str) -> dict:
        wado: dict = {"receivers": [receiver_aet], "timeout": 10_000}
        if with_key:
            wado["calling-aets"] = [caller]
        return {"aet": aet, "host": "127.0.0.1", "port": port, "wado-rs": wado}

    return gateway_config([entry(orthanc.aet, orthanc.dicom_port, ORTHANC_STORE_AET),
                           entry(SAMPLE_QR_AET, sample_port, SAMPLE_STORE_AET)],
                          receiver_aet=receiver_aet, uncompressed=False)


def _orthanc_sends_as(orthanc: Orthanc, receiver: tuple[str, int], local_aet: str) -> None:
    """Orthanc's C-MOVE sub-operations to this receiver call with ``local_aet`` (Orthanc >= 1.9.0)."""
    aet, port = receiver
    response = requests.put(f"{orthanc.url}/modalities/{aet}", timeout=10,
                            json={"AET": aet, "Host": "127.0.0.1", "Port": port, "LocalAet": local_aet})
    response.raise_for_status()


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc,
             known_data: KnownData) -> Iterator[dict[bool, Gateway]]:
    sample_port = free_port()
    configs = {with_key: _config(orthanc, sample_port, f"DICOMRST-{'CA' if with_key else 'NOCA'}", with_key)
               for with_key in (True, False)}
    pacs = serve(tmp_path_factory.mktemp("sample-pacs"), aet=SAMPLE_STORE_AET, port=sample_port, block=False,
                 destinations={receiver_of(config)[0]: ("127.0.0.1", receiver_of(config)[1])
                               for config in configs.values()})
    assert pacs is not None
    started: dict[bool, Gateway] = {}
    try:
        for with_key, config in configs.items():
            _orthanc_sends_as(orthanc, receiver_of(config), ORTHANC_STORE_AET)
            gateway = Gateway(config, tmp_path_factory.mktemp("calling-aets"), workers=1)
            gateway.start()
            started[with_key] = gateway
        yield started
    finally:
        for gateway in started.values():
            gateway.stop()
        pacs.shutdown()


def retrieve(gateway: Gateway, aet: str, study_uid: str) -> requests.Response:
    return requests.get(f"{gateway.url}/aets/{aet}/studies/{study_uid}", headers=ACCEPT, timeout=60)


def sop_uids(response: requests.Response) -> list[str]:
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    return sorted(str(dcmread(BytesIO(body)).SOPInstanceUID) for _, body in parts)


def test_orthanc_sending_as_another_aet(gateways: dict[bool, Gateway], known_data: KnownData):
    study = known_data.study(1)
    assert sop_uids(retrieve(gateways[True], "ORTHANC", study[0].StudyInstanceUID)) == sorted(
        str(d.SOPInstanceUID) for d in study)
    refused = retrieve(gateways[False], "ORTHANC", study[0].StudyInstanceUID)
    assert refused.status_code == 502, refused.text


def test_the_sample_pacs_named_otherwise_than_it_sends(gateways: dict[bool, Gateway]):
    study = sample_studies()[3]
    assert sop_uids(retrieve(gateways[True], SAMPLE_QR_AET, study[0].StudyInstanceUID)) == sorted(
        str(d.SOPInstanceUID) for d in study)
    refused = retrieve(gateways[False], SAMPLE_QR_AET, study[0].StudyInstanceUID)
    assert refused.status_code == 502, refused.text


def test_the_receiver_says_whom_it_refused(gateways: dict[bool, Gateway], known_data: KnownData):
    """The refusal is the receiver's (an association from an AET no entry names), and its log says so."""
    retrieve(gateways[False], "ORTHANC", known_data.study(1)[0].StudyInstanceUID)
    log = Path(gateways[False].log_path).read_text(errors="replace")
    assert f"refused an association from {ORTHANC_STORE_AET}: not the AET of a configured PACS" in log
    assert "refused an association" not in Path(gateways[True].log_path).read_text(errors="replace")
