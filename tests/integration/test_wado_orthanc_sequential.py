"""WADO-RS against Orthanc through a gateway in sequential mode whose receiver accepts only uncompressed
transfer syntaxes (the DICOM-RST defaults for a PACS that omits the Move Originator Message ID)."""
from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from io import BytesIO

import pytest
import requests
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from tests.integration.conftest import KnownData
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, Orthanc, gateway_config, receiver_of

UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


@pytest.fixture(scope="module")
def sequential_gateway(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc,
                       known_data: KnownData) -> Iterator[Gateway]:
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "wado-rs": {"mode": "sequential", "receivers": ["DICOMRST-SEQ"]}}],
                            receiver_aet="DICOMRST-SEQ", uncompressed=True)
    orthanc.add_modality(*receiver_of(config))
    gateway = Gateway(config, tmp_path_factory.mktemp("sequential"), workers=2)
    gateway.start()
    yield gateway
    gateway.stop()


def retrieve(gateway: Gateway, path: str) -> list:
    response = requests.get(f"{gateway.url}/aets/ORTHANC{path}", timeout=60,
                            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
    assert response.status_code == 200, response.text
    return [dcmread(BytesIO(body)) for _, body in parse_multipart(response.headers["Content-Type"], response.content)]


def test_concurrent_requests_in_sequential_mode(sequential_gateway: Gateway, known_data: KnownData):
    wanted = [known_data.study(0), known_data.study(0), known_data.study(2), known_data.study(3)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda study: retrieve(sequential_gateway, f"/studies/{study[0].StudyInstanceUID}"),
                                wanted))
    for study, received in zip(wanted, results):
        assert sorted(str(d.SOPInstanceUID) for d in received) == sorted(str(d.SOPInstanceUID) for d in study)


def test_uncompressed_receiver_gets_compressed_instances_decoded_by_the_pacs(sequential_gateway: Gateway,
                                                                            orthanc: Orthanc):
    # A copy alone in a series of its own: pydicom's files share series, among them a JPEG 2000 one that
    # Orthanc cannot decompress, which the gateway then fetches (with the rest) as stored instead.
    original = dcmread(get_testdata_file("SC_rgb_rle.dcm"))
    original.StudyInstanceUID, original.SeriesInstanceUID = generate_uid(), generate_uid()
    original.SOPInstanceUID = original.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    buffer = BytesIO()
    original.save_as(buffer, enforce_file_format=True)
    orthanc.upload(buffer.getvalue())
    try:
        (received,) = retrieve(sequential_gateway, f"/studies/{original.StudyInstanceUID}/series/"
                                                   f"{original.SeriesInstanceUID}/instances/{original.SOPInstanceUID}")
        # Asked for "as stored", but the receiver accepted only uncompressed syntaxes, so Orthanc transcoded.
        assert received.file_meta.TransferSyntaxUID in UNCOMPRESSED
        assert (received.pixel_array == original.pixel_array).all()
    finally:
        orthanc.delete_study(original.StudyInstanceUID)
