"""WADO-RS through the gateway (gunicorn, 3 gevent workers, the shared move receiver) against Orthanc."""
from __future__ import annotations

import concurrent.futures
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from tests.integration.conftest import KnownData
from tests.integration.dicom_json import tag, value
from tests.integration.multipart import IncompleteMultipart, parse_multipart
from tests.peers import Gateway, receiver_of

EXPLICIT_LE = "1.2.840.10008.1.2.1"
ALL_SYNTAXES = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def get(gateway: Gateway, path: str, aet: str = "ORTHANC", accept: str | None = None, **kwargs) -> requests.Response:
    headers = {"Accept": accept} if accept else {}
    return requests.get(f"{gateway.url}/aets/{aet}{path}", headers=headers, timeout=60, **kwargs)


def instances_of(response: requests.Response) -> list[tuple[dict[str, str], Dataset]]:
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    return [(headers, dcmread(BytesIO(body))) for headers, body in parts]


def by_sop_uid(datasets: list[Dataset]) -> dict[str, Dataset]:
    return {str(dataset.SOPInstanceUID): dataset for dataset in datasets}


def test_study_series_and_instance_levels(gateway: Gateway, known_data: KnownData):
    study = known_data.study(2)
    originals = by_sop_uid(study)
    study_uid = study[0].StudyInstanceUID

    received = instances_of(get(gateway, f"/studies/{study_uid}"))
    assert sorted(str(d.SOPInstanceUID) for _, d in received) == sorted(originals)
    for headers, dataset in received:
        assert headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
        assert dataset.file_meta.TransferSyntaxUID == EXPLICIT_LE
        assert dataset.PixelData == originals[str(dataset.SOPInstanceUID)].PixelData
        assert dataset.PatientName == "Doe^Jane"

    series_uid = study[0].SeriesInstanceUID
    series = instances_of(get(gateway, f"/studies/{study_uid}/series/{series_uid}"))
    assert {str(d.SOPInstanceUID) for _, d in series} == {str(d.SOPInstanceUID) for d in study if d.SeriesInstanceUID == series_uid}

    sop_uid = study[0].SOPInstanceUID
    single = instances_of(get(gateway, f"/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"))
    assert [str(d.SOPInstanceUID) for _, d in single] == [sop_uid]


def test_bare_application_dicom_for_one_instance(gateway: Gateway, known_data: KnownData):
    original = known_data.study(3)[0]
    response = get(gateway, f"/studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}"
                            f"/instances/{original.SOPInstanceUID}", accept="application/dicom")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/dicom")
    assert dcmread(BytesIO(response.content)).PixelData == original.PixelData


def test_c_get_method(gateway: Gateway, known_data: KnownData):
    study = known_data.study(0)
    received = instances_of(get(gateway, f"/studies/{study[0].StudyInstanceUID}", aet="ORTHANCGET"))
    originals = by_sop_uid(study)
    assert sorted(str(d.SOPInstanceUID) for _, d in received) == sorted(originals)
    assert all(d.PixelData == originals[str(d.SOPInstanceUID)].PixelData for _, d in received)


def test_concurrent_retrievals_of_different_and_identical_studies(gateway: Gateway, known_data: KnownData):
    requests_to_make = [study for study in known_data.studies for _ in range(3)]

    def fetch(study: list[Dataset]) -> tuple[list[Dataset], list[str]]:
        received = instances_of(get(gateway, f"/studies/{study[0].StudyInstanceUID}"))
        return study, [str(d.SOPInstanceUID) for _, d in received]

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(fetch, requests_to_make))
    for study, received in results:
        # Every instance exactly once, whoever else asked for the same study at the same time.
        assert sorted(received) == sorted(str(d.SOPInstanceUID) for d in study)


def test_compressed_instance_as_stored_and_decompressed(gateway: Gateway):
    original = dcmread(get_testdata_file("JPEG2000.dcm"))
    path = (f"/studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}"
            f"/instances/{original.SOPInstanceUID}")
    ((headers, as_stored),) = instances_of(get(gateway, path, accept=ALL_SYNTAXES))
    assert headers["content-type"] == f"application/dicom; transfer-syntax={original.file_meta.TransferSyntaxUID}"
    assert as_stored.PixelData == original.PixelData

    ((headers, decompressed),) = instances_of(get(gateway, path))
    assert headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
    assert (decompressed.pixel_array == original.pixel_array).all()


def test_rle_instance_decompressed(gateway: Gateway):
    original = dcmread(get_testdata_file("SC_rgb_rle.dcm"))
    ((_, received),) = instances_of(get(gateway, f"/studies/{original.StudyInstanceUID}/series/"
                                                 f"{original.SeriesInstanceUID}/instances/{original.SOPInstanceUID}"))
    assert received.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert (received.pixel_array == original.pixel_array).all()


def test_zip_of_a_series(gateway: Gateway, known_data: KnownData):
    import zipfile

    study = known_data.study(0)
    response = get(gateway, f"/studies/{study[0].StudyInstanceUID}/series/{study[0].SeriesInstanceUID}",
                   accept="application/zip")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(BytesIO(response.content))
    received = {str(dcmread(BytesIO(archive.read(name))).SOPInstanceUID) for name in archive.namelist()}
    assert received == {str(d.SOPInstanceUID) for d in study if d.SeriesInstanceUID == study[0].SeriesInstanceUID}


def test_metadata_with_bulk_data_uris(gateway: Gateway, known_data: KnownData):
    study = known_data.study(1)
    study_uid = study[0].StudyInstanceUID
    response = get(gateway, f"/studies/{study_uid}/metadata")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/dicom+json")
    documents = response.json()
    assert sorted(value(d, "SOPInstanceUID") for d in documents) == sorted(str(d.SOPInstanceUID) for d in study)
    first = documents[0]
    pixel_data = first[tag("PixelData")]
    assert "InlineBinary" not in pixel_data and "Value" not in pixel_data
    uri = pixel_data["BulkDataURI"]
    sop_uid = value(first, "SOPInstanceUID")
    assert uri.startswith(f"{gateway.url}/aets/ORTHANC/studies/{study_uid}/series/") and sop_uid in uri
    bulk = requests.get(uri, timeout=30)
    assert bulk.status_code == 200
    ((_, content),) = parse_multipart(bulk.headers["Content-Type"], bulk.content)
    assert content == by_sop_uid(study)[sop_uid].PixelData

    series_uid = study[0].SeriesInstanceUID
    assert len(get(gateway, f"/studies/{study_uid}/series/{series_uid}/metadata").json()) == len(study)
    instance = get(gateway, f"/studies/{study_uid}/series/{series_uid}/instances/{study[0].SOPInstanceUID}/metadata")
    assert [value(d, "SOPInstanceUID") for d in instance.json()] == [study[0].SOPInstanceUID]


def test_metadata_through_dicomweb_client(gateway: Gateway, known_data: KnownData):
    study = known_data.study(4)
    client = DICOMwebClient(url=f"{gateway.url}/aets/ORTHANC")
    metadata = client.retrieve_series_metadata(study[0].StudyInstanceUID, study[0].SeriesInstanceUID)
    assert len(metadata) == len(study)
    instances = client.retrieve_study(study[0].StudyInstanceUID)
    assert sorted(str(d.SOPInstanceUID) for d in instances) == sorted(str(d.SOPInstanceUID) for d in study)


def test_metadata_xml(gateway: Gateway, known_data: KnownData):
    study = known_data.study(1)
    response = get(gateway, f"/studies/{study[0].StudyInstanceUID}/metadata",
                   accept='multipart/related; type="application/dicom+xml"')
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert len(parts) == len(study)
    assert all(b"NativeDicomModel" in body and b"BulkData" in body for _, body in parts)


def test_frames_of_a_multiframe_instance(gateway: Gateway):
    original = dcmread(get_testdata_file("rtdose.dcm"))
    frame_size = original.Rows * original.Columns * original.BitsAllocated // 8
    path = (f"/studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}"
            f"/instances/{original.SOPInstanceUID}/frames/2,4")
    response = get(gateway, path)
    assert response.status_code == 200
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert [headers["content-type"] for headers, _ in parts] == ["application/octet-stream"] * 2
    assert [body for _, body in parts] == [original.PixelData[frame_size:2 * frame_size],
                                            original.PixelData[3 * frame_size:4 * frame_size]]
    missing = get(gateway, path.replace("frames/2,4", f"frames/{int(original.NumberOfFrames) + 1}"))
    assert missing.status_code in (400, 404) and "error" in missing.json()


def test_compressed_frame_native_and_decompressed(gateway: Gateway):
    original = dcmread(get_testdata_file("JPEG2000.dcm"))
    path = (f"/studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}"
            f"/instances/{original.SOPInstanceUID}/frames/1")
    native = get(gateway, path, accept='multipart/related; type="image/jp2"')
    ((headers, body),) = parse_multipart(native.headers["Content-Type"], native.content)
    assert headers["content-type"].startswith("image/jp2")
    assert body == next(pydicom.encaps.generate_frames(original.PixelData, number_of_frames=1))
    raw = get(gateway, path, accept='multipart/related; type="application/octet-stream"')
    ((headers, body),) = parse_multipart(raw.headers["Content-Type"], raw.content)
    assert body == original.pixel_array.tobytes()  # little-endian on this machine, as the frame is


@pytest.mark.parametrize("path, status", [
    ("/studies/1.2.3.4.5.6.7.8.9", 404),
    ("/studies/1.2.3.4.5.6.7.8.9/metadata", 404),
    ("/studies/1.2.x", 400),
    ("/studies/1.2.3/series/1.2.abc", 400),
    ("/studies/1.2.3/series/1.2.3/instances/1.2.3%0A", 400),
    ("/studies/1.2.3/series/..%2F..", 404),
])
def test_not_found_and_bad_uids(gateway: Gateway, path: str, status: int):
    response = get(gateway, path)
    assert response.status_code == status and "error" in response.json()


def test_unacceptable_media_type_is_406(gateway: Gateway, known_data: KnownData):
    response = get(gateway, f"/studies/{known_data.study(0)[0].StudyInstanceUID}", accept="image/png")
    assert response.status_code == 406 and "error" in response.json()


def test_pacs_down_is_503(gateway: Gateway):
    response = get(gateway, "/studies/1.2.3", aet="DOWN")
    assert response.status_code == 503


def _spooled_files(gateway: Gateway) -> list[Path]:
    from dicomrst.backends.dimse.spool import RECEIVER_PID_FILE, spool_root
    from dicomrst.config import parse_config

    receiver = parse_config(gateway.config).server.dimse[0]
    # The receiver's own pid file says who receives, not what was received.
    return [path for path in spool_root(receiver).rglob("*") if path.is_file() and path.name != RECEIVER_PID_FILE]


def test_unsolicited_c_store_is_refused_and_nothing_kept(gateway: Gateway, known_data: KnownData):
    receiver_aet, receiver_port = receiver_of(gateway.config)
    instance = known_data.study(0)[0]
    configured = AE(ae_title="ORTHANC")
    configured.add_requested_context(CTImageStorage)
    association = configured.associate("127.0.0.1", receiver_port, ae_title=receiver_aet)
    assert association.is_established
    status = association.send_c_store(instance)
    association.release()
    assert status.Status == 0xA700
    stranger = AE(ae_title="STRANGER")
    stranger.add_requested_context(CTImageStorage)
    refused = stranger.associate("127.0.0.1", receiver_port, ae_title=receiver_aet)
    assert refused.is_rejected
    assert _spooled_files(gateway) == []


def test_incomplete_multipart_is_detected_by_the_parser():
    with pytest.raises(IncompleteMultipart):
        parse_multipart("multipart/related; boundary=abc", b"--abc\r\nContent-Type: x\r\n\r\ndata\r\n")
