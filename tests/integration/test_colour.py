"""YCbCr colour images through the gateway: stored compressed in Orthanc, sent to the gateway as
stored (its receiver accepts compressed syntaxes), decoded by the gateway to RGB, and described as
RGB in the metadata that goes with those decoded frames."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from io import BytesIO

import numpy as np
import pytest
import requests
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from dicomrst.dicomweb.frames import frame_media_type
from dicomrst.dicomweb.dicom_xml import NATIVE_DICOM_NS
from tests.integration.conftest import part10
from tests.integration.dicom_json import value
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, Orthanc

EXPLICIT_LE = "1.2.840.10008.1.2.1"
RAW_FRAMES_ANY_SYNTAX = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
NS = {"n": NATIVE_DICOM_NS}

SAMPLES = [
    "SC_rgb_dcmtk_+eb+cy+np.dcm",  # JPEG baseline, YBR_FULL_422
    "examples_ybr_color.dcm",  # JPEG baseline, YBR_FULL_422, 30 frames (ultrasound)
    "examples_jpeg2k.dcm",  # JPEG 2000 lossless, YBR_RCT
]


def get(gateway: Gateway, path: str, accept: str | None = None) -> requests.Response:
    headers = {"Accept": accept} if accept else {}
    response = requests.get(f"{gateway.url}/aets/ORTHANC{path}", headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    return response


@pytest.fixture(scope="module", params=SAMPLES)
def stored(request, gateway: Gateway, orthanc: Orthanc) -> Iterator[Dataset]:
    """A copy of the sample under UIDs of its own, in Orthanc for this module only: the session's
    other tests see the studies they expect, and the original file is untouched if stored by them."""
    original = dcmread(get_testdata_file(request.param))
    original.StudyInstanceUID = generate_uid()
    original.SeriesInstanceUID = generate_uid()
    original.SOPInstanceUID = original.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    assert original.file_meta.TransferSyntaxUID.is_compressed and original.PhotometricInterpretation.startswith("YBR")
    uploaded = orthanc.upload(part10(original))
    yield original
    requests.delete(f"{orthanc.url}/studies/{uploaded['ParentStudy']}", timeout=30).raise_for_status()


def instance_path(ds: Dataset) -> str:
    return f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def decoded(ds: Dataset) -> np.ndarray:
    """pydicom's decoding, frames first: the RGB pixels the gateway must send."""
    arr = dcmread(BytesIO(part10(ds))).pixel_array
    return arr.reshape(int(ds.get("NumberOfFrames") or 1), ds.Rows, ds.Columns, 3)


def test_metadata_says_rgb_colour_by_pixel(gateway: Gateway, stored: Dataset):
    (document,) = get(gateway, f"{instance_path(stored)}/metadata").json()
    assert value(document, "PhotometricInterpretation") == "RGB"
    assert value(document, "PlanarConfiguration") == 0
    assert value(document, "SOPInstanceUID") == stored.SOPInstanceUID
    # The study-level metadata describes it the same way.
    study = get(gateway, f"/studies/{stored.StudyInstanceUID}/metadata").json()
    assert [value(d, "PhotometricInterpretation") for d in study] == ["RGB"]

    xml = get(gateway, f"{instance_path(stored)}/metadata", accept='multipart/related; type="application/dicom+xml"')
    ((_, body),) = parse_multipart(xml.headers["Content-Type"], xml.content)
    root = ET.fromstring(body)
    assert root.find("n:DicomAttribute[@tag='00280004']/n:Value", NS).text == "RGB"
    assert root.find("n:DicomAttribute[@tag='00280006']/n:Value", NS).text == "0"


def test_decoded_frames_are_the_rgb_pixels(gateway: Gateway, stored: Dataset):
    count = int(stored.get("NumberOfFrames") or 1)
    numbers = sorted({1, count})
    response = get(gateway, f"{instance_path(stored)}/frames/{','.join(map(str, numbers))}", accept=RAW_FRAMES_ANY_SYNTAX)
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    assert [headers["content-type"] for headers, _ in parts] == ["application/octet-stream"] * len(numbers)
    rgb = decoded(stored)
    assert [body for _, body in parts] == [rgb[n - 1].tobytes() for n in numbers]  # 8-bit RGB, colour by pixel


def test_frames_as_stored_keep_their_codestream(gateway: Gateway, stored: Dataset):
    media_type = frame_media_type(stored.file_meta.TransferSyntaxUID)
    response = get(gateway, f"{instance_path(stored)}/frames/1", accept=f'multipart/related; type="{media_type}"')
    ((headers, body),) = parse_multipart(response.headers["Content-Type"], response.content)
    assert headers["content-type"].startswith(media_type)
    count = int(stored.get("NumberOfFrames") or 1)
    assert body == next(generate_frames(stored.PixelData, number_of_frames=count))


def test_instance_decompressed_says_rgb(gateway: Gateway, stored: Dataset):
    response = get(gateway, instance_path(stored), accept="application/dicom")
    assert response.headers["Content-Type"] == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
    received = dcmread(BytesIO(response.content))
    assert (received.PhotometricInterpretation, received.PlanarConfiguration) == ("RGB", 0)
    assert np.array_equal(received.pixel_array.reshape(decoded(stored).shape), decoded(stored))


def test_instance_as_stored_keeps_its_photometric_interpretation(gateway: Gateway, stored: Dataset):
    response = get(gateway, instance_path(stored), accept="application/dicom; transfer-syntax=*")
    received = dcmread(BytesIO(response.content))
    assert received.file_meta.TransferSyntaxUID == stored.file_meta.TransferSyntaxUID
    assert received.PhotometricInterpretation == stored.PhotometricInterpretation
    assert received.PixelData == stored.PixelData
