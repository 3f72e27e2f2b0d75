"""What real clients send, through the gateway under gunicorn in front of a real Orthanc, with the exact
header strings: curl for STOW-RS with an unquoted `type` and the 73-character boundary Orthanc's DICOMweb
client uses (and Orthanc's DICOMweb client itself), Accept headers with elements that are not valid
(PS3.18 8.7.7) and Java's default Accept, and the dicomweb_client command line, whose frames requests say
`Accept: multipart/related; type="*/*"`.

Nothing is left in the session's Orthanc: other modules compare its studies with known_data.
"""
from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
import requests
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file

from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import KnownData, part10
from tests.integration.dicom_json import tag, value
from tests.integration.multipart import parse_multipart
from tests.peers import REPO, Gateway, Orthanc, StoreScp

# What Orthanc's DICOMweb client (plugin 1.7) sends: two UUIDs joined by "-", 73 characters.
ORTHANC_BOUNDARY = "9ab04b14-998e-4fee-9019-e8848abf0ed0-9ab04b14-998e-4fee-9019-e8848abf0ed0"
JAVA_ACCEPT = "text/html, image/gif, image/jpeg, */*; q=.2"
# What java.net.HttpURLConnection really sends: with a bare "*", which is no media range.
JAVA_ACCEPT_AS_SENT = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DICOMWEB_CLIENT = REPO / ".venv-test" / "bin" / "dicomweb_client"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def curl(*args: str, tmp_path: Path) -> Answer:
    """curl with exactly the arguments given (headers as `-H "Name: value"`)."""
    head, body = tmp_path / "curl-head", tmp_path / "curl-body"
    result = subprocess.run(["curl", "-sS", "--max-time", "120", "-D", str(head), "-o", str(body),
                             "-w", "%{http_code}", *args], capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stderr
    headers = {}
    for line in head.read_bytes().decode("latin-1").split("\r\n")[1:]:
        name, colon, field_value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = field_value.strip()
    return Answer(int(result.stdout), headers, body.read_bytes())


def multipart_body(parts: list[bytes], boundary: str) -> bytes:
    # By hand: the gateway's own writer keeps to RFC 2046's 70 characters for what it sends.
    delimiter = b"--" + boundary.encode()
    return b"".join(delimiter + b"\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n"
                    for part in parts) + delimiter + b"--\r\n"


def new_instance(seed: int) -> Dataset:
    return generate_study(random.Random(seed), n_series=1, instances_per_series=1, rows=16, columns=16)[0]


def orthanc_ids(orthanc: Orthanc, uid: str, kind: str) -> list[str]:
    found = requests.post(f"{orthanc.url}/tools/lookup", data=uid, timeout=10).json()
    return [entry["ID"] for entry in found if entry["Type"] == kind]


@pytest.fixture
def cleanup_orthanc(orthanc: Orthanc) -> Iterator[list[str]]:
    """Study UIDs to delete from the session's Orthanc after the test."""
    study_uids: list[str] = []
    yield study_uids
    for study_uid in study_uids:
        for study_id in orthanc_ids(orthanc, study_uid, "Study"):
            requests.delete(f"{orthanc.url}/studies/{study_id}", timeout=30)


def instance_path(dataset: Dataset) -> str:
    return (f"/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
            f"/instances/{dataset.SOPInstanceUID}")


# --- STOW-RS Content-Type ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed, content_type", [
    (61, f"Content-Type: multipart/related; type=application/dicom; boundary={ORTHANC_BOUNDARY}"),
    (62, f'Content-Type: multipart/related; type="application/dicom"; boundary={ORTHANC_BOUNDARY}'),
    (63, f'Content-Type: multipart/related; Type = "application/dicom" ; BOUNDARY="{ORTHANC_BOUNDARY}"'),
    (64, "Content-Type: multipart/related; type=application/dicom; boundary=short-one"),
])
def test_curl_stow_unquoted_type_and_73_character_boundary(gateway: Gateway, orthanc: Orthanc, tmp_path: Path,
                                                           cleanup_orthanc: list[str], seed: int,
                                                           content_type: str):
    dataset = new_instance(seed)
    cleanup_orthanc.append(dataset.StudyInstanceUID)
    boundary = content_type.rpartition("=")[2].strip('"')
    body = tmp_path / "body"
    body.write_bytes(multipart_body([part10(dataset)], boundary))
    answer = curl("-X", "POST", "-H", content_type, "-H", "Accept: application/dicom+json",
                  "--data-binary", f"@{body}", f"{gateway.url}/aets/ORTHANC/studies", tmp_path=tmp_path)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/dicom+json"
    module = answer.json()
    (item,) = module[tag("ReferencedSOPSequence")]["Value"]
    assert value(item, "ReferencedSOPInstanceUID") == dataset.SOPInstanceUID
    assert orthanc_ids(orthanc, str(dataset.SOPInstanceUID), "Instance")


def test_curl_stow_boundary_over_1024_characters_is_400(gateway: Gateway, tmp_path: Path):
    boundary = "b" * 1025
    body = tmp_path / "body"
    body.write_bytes(multipart_body([b"not even read"], boundary))
    answer = curl("-X", "POST", "-H", f"Content-Type: multipart/related; type=application/dicom; boundary={boundary}",
                  "--data-binary", f"@{body}", f"{gateway.url}/aets/ORTHANC/studies", tmp_path=tmp_path)
    assert answer.status == 400
    assert "1024" in answer.json()["error"]


def test_orthanc_dicomweb_client_stores_through_the_gateway(gateway: Gateway, orthanc: Orthanc, storescp: StoreScp,
                                                             cleanup_orthanc: list[str]):
    """Orthanc's own STOW-RS client (73-character boundary, chunked) sends an instance it holds to the
    gateway, which stores it into DCMTK's storescp."""
    dataset = new_instance(65)
    cleanup_orthanc.append(dataset.StudyInstanceUID)
    orthanc_id = orthanc.upload(part10(dataset))["ID"]
    server = f"{orthanc.url}/dicom-web/servers/dicomrst-dialects"
    requests.put(server, json={"Url": f"{gateway.url}/aets/{storescp.aet}/"}, timeout=10).raise_for_status()
    try:
        response = requests.post(f"{server}/stow", json={"Resources": [orthanc_id]}, timeout=120)
    finally:
        requests.delete(server, timeout=10)
    assert response.status_code == 200, response.text
    received = storescp.received(str(dataset.SOPInstanceUID))
    assert received is not None
    assert dcmread(received).PixelData == dataset.PixelData


# --- Accept --------------------------------------------------------------------------------------------


def test_curl_qido_with_an_invalid_element(gateway: Gateway, known_data: KnownData, tmp_path: Path):
    answer = curl("-H", "Accept: toto, application/dicom+json", f"{gateway.url}/aets/ORTHANC/studies",
                  tmp_path=tmp_path)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/dicom+json"
    assert {value(match, "StudyInstanceUID") for match in answer.json()} >= known_data.study_uids


@pytest.mark.parametrize("accept", [JAVA_ACCEPT, JAVA_ACCEPT_AS_SENT, "toto, application/dicom+json"])
def test_curl_metadata_with_java_default_accept(gateway: Gateway, known_data: KnownData, tmp_path: Path,
                                                accept: str):
    study = known_data.study(1)
    answer = curl("-H", f"Accept: {accept}", f"{gateway.url}/aets/ORTHANC/studies/{study[0].StudyInstanceUID}/metadata",
                  tmp_path=tmp_path)
    assert answer.status == 200, answer.body
    assert answer.headers["content-type"] == "application/dicom+json"
    assert sorted(value(item, "SOPInstanceUID") for item in answer.json()) == sorted(
        str(d.SOPInstanceUID) for d in study)


@pytest.mark.parametrize("accept", [JAVA_ACCEPT, JAVA_ACCEPT_AS_SENT])
def test_curl_study_retrieval_with_java_default_accept(gateway: Gateway, known_data: KnownData, tmp_path: Path,
                                                       accept: str):
    study = known_data.study(3)
    answer = curl("-H", f"Accept: {accept}", f"{gateway.url}/aets/ORTHANC/studies/{study[0].StudyInstanceUID}",
                  tmp_path=tmp_path)
    assert answer.status == 200, answer.body
    content_type = answer.headers["content-type"]
    assert content_type.startswith('multipart/related; type="application/dicom"; boundary=')
    parts = parse_multipart(content_type, answer.body)
    assert all(headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT_LE}" for headers, _ in parts)
    assert sorted(str(dcmread(BytesIO(body)).SOPInstanceUID) for _, body in parts) == sorted(
        str(d.SOPInstanceUID) for d in study)


def test_curl_every_element_valid_none_producible_is_still_406(gateway: Gateway, known_data: KnownData,
                                                               tmp_path: Path):
    answer = curl("-H", "Accept: text/html, image/gif, image/jpeg",
                  f"{gateway.url}/aets/ORTHANC/studies/{known_data.study(3)[0].StudyInstanceUID}", tmp_path=tmp_path)
    assert answer.status == 406


# --- frames and bulk data with a wildcard inside `type` ------------------------------------------------------


def dicomweb_client_frames(gateway: Gateway, dataset: Dataset, output: Path) -> list[Path]:
    output.mkdir()
    result = subprocess.run(
        [str(DICOMWEB_CLIENT), "--url", f"{gateway.url}/aets/ORTHANC", "retrieve", "instances",
         "--study", str(dataset.StudyInstanceUID), "--series", str(dataset.SeriesInstanceUID),
         "--instance", str(dataset.SOPInstanceUID), "frames", "--numbers", "1", "--save", "--output-dir", str(output)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ERROR" not in result.stderr, result.stderr
    return sorted(output.iterdir())


def test_dicomweb_client_frames_compressed_come_as_stored(gateway: Gateway, known_data: KnownData, tmp_path: Path):
    original = dcmread(get_testdata_file("JPEG2000.dcm"))
    (saved,) = dicomweb_client_frames(gateway, original, tmp_path / "frames")
    assert saved.name == f"{original.SOPInstanceUID}_1.jp2"  # the client names it by the JPEG 2000 marker
    assert saved.read_bytes() == next(pydicom.encaps.generate_frames(original.PixelData, number_of_frames=1))


def test_dicomweb_client_frames_uncompressed(gateway: Gateway, known_data: KnownData, tmp_path: Path):
    original = known_data.study(0)[0]
    (saved,) = dicomweb_client_frames(gateway, original, tmp_path / "frames")
    assert saved.read_bytes() == original.PixelData


@pytest.mark.parametrize("accept, part_type", [
    ('multipart/related; type="*/*"', "image/jp2"),
    ("multipart/related; type=*/*", "image/jp2"),
    ('multipart/related; type="image/*"', "image/jp2"),
    ('multipart/related; type="application/*"', "application/octet-stream"),
])
def test_frames_wildcard_types_with_requests(gateway: Gateway, known_data: KnownData, accept: str, part_type: str):
    original = dcmread(get_testdata_file("JPEG2000.dcm"))
    response = requests.get(f"{gateway.url}/aets/ORTHANC{instance_path(original)}/frames/1",
                            headers={"Accept": accept}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(f'multipart/related; type="{part_type}"; boundary=')
    ((headers, body),) = parse_multipart(response.headers["Content-Type"], response.content)
    if part_type == "image/jp2":
        assert headers["content-type"] == f"image/jp2; transfer-syntax={original.file_meta.TransferSyntaxUID}"
        assert body == next(pydicom.encaps.generate_frames(original.PixelData, number_of_frames=1))
    else:
        assert headers["content-type"] == "application/octet-stream"
        assert body == original.pixel_array.tobytes()


@pytest.mark.parametrize("accept", ['multipart/related; type="*/*"', 'multipart/related; type="application/*"',
                                    JAVA_ACCEPT])
def test_bulkdata_wildcard_type(gateway: Gateway, known_data: KnownData, accept: str):
    original = known_data.study(2)[0]
    metadata = requests.get(f"{gateway.url}/aets/ORTHANC{instance_path(original)}/metadata", timeout=60).json()
    uri = metadata[0][tag("PixelData")]["BulkDataURI"]
    response = requests.get(uri, headers={"Accept": accept}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith('multipart/related; type="application/octet-stream"; boundary=')
    ((_, body),) = parse_multipart(response.headers["Content-Type"], response.content)
    assert body == original.PixelData
