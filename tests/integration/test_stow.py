"""STOW-RS through the gateway into Orthanc (and the sample PACS, which refuses compressed syntaxes)."""
from __future__ import annotations

import random
import subprocess
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file, get_testdata_files

from dicomrst.dicomweb.multipart import write_multipart
from dicomrst.sample_pacs.studies import generate_study
from tests.integration.conftest import MAX_UPLOAD_SIZE, part10
from tests.integration.dicom_json import tag, value
from tests.peers import REPO, Gateway, Orthanc, StoreScp

BOUNDARY = "dicomrst-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
CANNOT_UNDERSTAND = 0xC000


def body_of(parts: list[bytes]) -> bytes:
    return b"".join(write_multipart(parts, "application/dicom", BOUNDARY))


def stow(gateway: Gateway, parts: list[bytes] | bytes, path: str = "/studies", aet: str = "ORTHANC",
         **headers: str) -> requests.Response:
    data = parts if isinstance(parts, bytes) else body_of(parts)
    return requests.post(f"{gateway.url}/aets/{aet}{path}", data=data, timeout=120,
                         headers={"Content-Type": CONTENT_TYPE, **headers})


def new_study(seed: int, instances: int = 3) -> list[Dataset]:
    return generate_study(random.Random(seed), n_series=1, instances_per_series=instances, rows=32, columns=32)


def referenced(module: dict) -> dict[str, dict]:
    return {value(item, "ReferencedSOPInstanceUID"): item for item in module.get(tag("ReferencedSOPSequence"), {}).get("Value", [])}


def failed(module: dict) -> list[dict]:
    return module.get(tag("FailedSOPSequence"), {}).get("Value", [])


def orthanc_holds(orthanc: Orthanc, sop_uid: str) -> bool:
    found = requests.post(f"{orthanc.url}/tools/lookup", data=sop_uid, timeout=10).json()
    return any(entry["Type"] == "Instance" for entry in found)


def test_new_instances_are_stored(gateway: Gateway, orthanc: Orthanc):
    study = new_study(41)
    response = stow(gateway, [part10(d) for d in study])
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/dicom+json")
    module = response.json()
    study_uid = study[0].StudyInstanceUID
    assert value(module, "RetrieveURL") == f"{gateway.url}/aets/ORTHANC/studies/{study_uid}"
    stored = referenced(module)
    assert set(stored) == {str(d.SOPInstanceUID) for d in study}
    for dataset in study:
        item = stored[str(dataset.SOPInstanceUID)]
        assert value(item, "ReferencedSOPClassUID") == dataset.SOPClassUID
        assert value(item, "RetrieveURL").endswith(f"/series/{dataset.SeriesInstanceUID}/instances/{dataset.SOPInstanceUID}")
        assert orthanc_holds(orthanc, str(dataset.SOPInstanceUID))
    assert failed(module) == []
    # What was stored comes back through the gateway, byte for byte in its pixel data.
    back = requests.get(f"{gateway.url}/aets/ORTHANC/studies/{study_uid}", timeout=30)
    assert back.status_code == 200 and study[0].PixelData in back.content


def test_every_real_world_file_is_stored_or_reported(gateway: Gateway, orthanc: Orthanc):
    files = sorted(name for name in get_testdata_files() if Path(name).is_file())
    response = stow(gateway, [Path(name).read_bytes() for name in files])
    assert response.status_code == 202, response.text
    module = response.json()
    stored, failures = referenced(module), failed(module)
    stored_items = module[tag("ReferencedSOPSequence")]["Value"]
    # Every part has its line in the answer: stored or failed, none dropped.
    assert len(stored_items) + len(failures) == len(files)
    for sop_uid in stored:
        assert orthanc_holds(orthanc, sop_uid), sop_uid
    readable = {str(d.SOPInstanceUID) for d in _readable(files)}
    assert set(stored) <= readable
    assert all(value(item, "FailureReason") for item in failures)


def _readable(files: list[str]) -> Iterator[Dataset]:
    for name in files:
        try:
            dataset = dcmread(name, stop_before_pixels=True)
            if "SOPInstanceUID" in dataset:
                yield dataset
        except Exception:
            continue


def _spooled_parts() -> set[str]:
    import tempfile

    return {path.name for path in Path(tempfile.gettempdir()).glob("dicomrst-stow-*")}


def test_every_part_is_accounted_for(gateway: Gateway):
    """A part for each outcome: stored, not DICOM, truncated, without SOP Instance UID, of another media type."""
    good = new_study(42, instances=2)
    truncated = part10(new_study(43, instances=1)[0])[:-500]
    no_uid = new_study(44, instances=1)[0]
    del no_uid.SOPInstanceUID
    no_uid_bytes = BytesIO()
    no_uid.save_as(no_uid_bytes, enforce_file_format=False)
    parts = [part10(good[0]), b"this is not DICOM", truncated, no_uid_bytes.getvalue(), part10(good[1])]
    before = _spooled_parts()
    response = stow(gateway, parts)
    assert _spooled_parts() - before == set()  # every spooled part is removed
    assert response.status_code == 202
    module = response.json()
    assert set(referenced(module)) == {str(d.SOPInstanceUID) for d in good}
    reasons = [value(item, "FailureReason") for item in failed(module)]
    assert reasons == [CANNOT_UNDERSTAND] * 3


def test_foreign_instance_on_the_study_resource_is_not_stored(gateway: Gateway, orthanc: Orthanc):
    study, foreign = new_study(45, instances=2), new_study(46, instances=1)[0]
    response = stow(gateway, [part10(study[0]), part10(foreign), part10(study[1])],
                    path=f"/studies/{study[0].StudyInstanceUID}")
    assert response.status_code == 202
    module = response.json()
    assert set(referenced(module)) == {str(d.SOPInstanceUID) for d in study}
    assert [value(item, "ReferencedSOPInstanceUID") for item in failed(module)] == [str(foreign.SOPInstanceUID)]
    assert not orthanc_holds(orthanc, str(foreign.SOPInstanceUID))


def test_nothing_stored_is_409(gateway: Gateway):
    response = stow(gateway, [b"garbage", b"more garbage"])
    assert response.status_code == 409
    assert len(failed(response.json())) == 2


def test_body_over_the_limit_is_413_early(gateway: Gateway):
    started = time.monotonic()
    response = stow(gateway, [b"\0" * (MAX_UPLOAD_SIZE + 1000)])
    assert response.status_code == 413 and "limit" in response.json()["error"]
    assert time.monotonic() - started < 5


def test_chunked_body_over_the_limit_reports_what_was_stored(gateway: Gateway, orthanc: Orthanc):
    first = new_study(47, instances=1)[0]
    body = body_of([part10(first), b"\0" * (MAX_UPLOAD_SIZE + 1000)])

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1 << 16):
            yield body[start:start + (1 << 16)]

    response = requests.post(f"{gateway.url}/aets/ORTHANC/studies", data=chunks(), timeout=60,
                             headers={"Content-Type": CONTENT_TYPE})
    assert response.status_code == 413
    assert set(referenced(response.json())) == {str(first.SOPInstanceUID)}
    assert orthanc_holds(orthanc, str(first.SOPInstanceUID))


@pytest.mark.parametrize("content_type, status", [
    ("application/dicom", 415),
    ("application/json", 415),
    ('multipart/related; type="application/dicom+json"; boundary=x', 415),
    ('multipart/related; type="application/dicom"', 400),
])
def test_wrong_media_types(gateway: Gateway, content_type: str, status: int):
    response = requests.post(f"{gateway.url}/aets/ORTHANC/studies", data=b"whatever", timeout=10,
                             headers={"Content-Type": content_type})
    assert response.status_code == status and "error" in response.json()


@pytest.mark.parametrize("body", [b"", b"no multipart here", f"--{BOUNDARY}--\r\n".encode()])
def test_unparseable_or_empty_bodies_are_400(gateway: Gateway, body: bytes):
    response = stow(gateway, body)
    assert response.status_code == 400 and "error" in response.json()


def test_xml_response(gateway: Gateway):
    study = new_study(48, instances=1)
    response = stow(gateway, [part10(study[0])], Accept="application/dicom+xml")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/dicom+xml")
    root = ElementTree.fromstring(response.content)
    namespace = "{http://dicom.nema.org/PS3.19/models/NativeDICOM}"
    uids = [v.text for v in root.iter(f"{namespace}Value")]
    assert str(study[0].SOPInstanceUID) in uids


def test_pacs_down_is_503(gateway: Gateway):
    response = stow(gateway, [part10(new_study(49, instances=1)[0])], aet="DOWN")
    assert response.status_code == 503


def test_compressed_instance_falls_back_to_uncompressed_with_a_warning(gateway: Gateway, storescp: StoreScp):
    original = dcmread(get_testdata_file("JPEG2000.dcm"))
    response = stow(gateway, [Path(get_testdata_file("JPEG2000.dcm")).read_bytes()], aet=storescp.aet)
    assert response.status_code == 202, response.text
    item = referenced(response.json())[str(original.SOPInstanceUID)]
    assert value(item, "WarningReason") == 0xB000
    received = storescp.received(str(original.SOPInstanceUID))
    assert received is not None
    stored = dcmread(received)
    assert stored.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (stored.pixel_array == original.pixel_array).all()


def test_dicomweb_client_store_instances(gateway: Gateway, orthanc: Orthanc):
    study = new_study(50, instances=2)
    client = DICOMwebClient(url=f"{gateway.url}/aets/ORTHANC")
    module = client.store_instances(study)
    assert len(module.ReferencedSOPSequence) == 2
    assert all(orthanc_holds(orthanc, str(d.SOPInstanceUID)) for d in study)


def test_curl_as_the_readme_shows(gateway: Gateway, orthanc: Orthanc, tmp_path: Path):
    study = new_study(51, instances=2)
    files = []
    for index, dataset in enumerate(study):
        path = tmp_path / f"{index}.dcm"
        path.write_bytes(part10(dataset))
        files.append(str(path))
    readme = (REPO / "README.md").read_text()
    snippet = readme.split("<!-- stow-curl -->")[1].split("```sh")[1].split("```")[0]
    script = snippet.replace("http://localhost:8080/aets/SAMPLE", f"{gateway.url}/aets/ORTHANC")
    result = subprocess.run(["bash", "-c", script, "stow", *files], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert all(str(d.SOPInstanceUID) in result.stdout for d in study)
    assert all(orthanc_holds(orthanc, str(d.SOPInstanceUID)) for d in study)
