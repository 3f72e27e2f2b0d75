"""WADO-RS against real Orthanc for instances of storage SOP classes outside pynetdicom's usual list
(retired and private ones), and the difference between "not found" and "the PACS could not send"
(PS3.4 C.4.2.1.5)."""
from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO

import numpy
import pytest
import requests
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

from tests.integration.conftest import KnownData, part10
from tests.integration.multipart import parse_multipart
from tests.peers import Gateway, Orthanc, gateway_config, receiver_of

US_IMAGE_STORAGE_RETIRED = "1.2.840.10008.5.1.4.1.1.6"
# Outside the 120 classes pynetdicom proposes by default (StoragePresentationContexts): C-GET must
# learn of them by C-FIND and propose them.
BREAST_PROJECTION_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.13.1.4"
TEXT_SR_TRIAL_RETIRED = "1.2.840.10008.5.1.4.1.1.88.1"
# A private storage SOP class of our own, under pydicom's UID root.
PRIVATE_STORAGE = "1.2.826.0.1.3680043.8.498.20261126.1"
AS_STORED = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}


def instance_of(sop_class_uid: str, image: bool = True) -> Dataset:
    """A small 8-bit image (or no image) of its own study, in the given SOP class."""
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = sop_class_uid
    dataset.SOPClassUID = sop_class_uid
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.PatientID = "PID-SOP-CLASSES"
    dataset.PatientName = "Classes^Sop"
    dataset.Modality = "US" if sop_class_uid == US_IMAGE_STORAGE_RETIRED else "OT"
    dataset.StudyDate = "20240101"
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = 1
    if not image:
        return dataset
    dataset.Rows = 2
    dataset.Columns = 3
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = 8
    dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.PixelData = bytes([0, 40, 80, 120, 160, 200])
    return dataset


@pytest.fixture(scope="module")
def unusual(orthanc: Orthanc, known_data: KnownData) -> Iterator[dict[str, Dataset]]:
    """Instances of classes outside the usual ones (retired, private, newer than pynetdicom's list), each
    in a study of its own in the session's Orthanc; removed at the end, because other modules compare
    Orthanc's whole study list with `known_data`."""
    rle = instance_of(US_IMAGE_STORAGE_RETIRED)
    rle.compress(RLELossless)
    datasets = {"us-retired": instance_of(US_IMAGE_STORAGE_RETIRED), "private": instance_of(PRIVATE_STORAGE),
                "us-retired-rle": rle, "breast-projection": instance_of(BREAST_PROJECTION_FOR_PRESENTATION),
                "text-sr-trial": instance_of(TEXT_SR_TRIAL_RETIRED, image=False)}
    try:
        for dataset in datasets.values():
            assert orthanc.upload(part10(dataset))["Status"] == "Success"
            # Orthanc keeps the class as sent (it does not refuse an unknown one).
            stored = requests.get(f"{orthanc.dicomweb_url}/studies/{dataset.StudyInstanceUID}/instances",
                                  timeout=10).json()
            assert stored[0]["00080016"]["Value"] == [dataset.SOPClassUID]
        yield datasets
    finally:
        for dataset in datasets.values():
            orthanc.delete_study(dataset.StudyInstanceUID)


def retrieve(gateway: Gateway, aet: str, path: str) -> requests.Response:
    return requests.get(f"{gateway.url}/aets/{aet}{path}", headers=AS_STORED, timeout=60)


def instances_of(response: requests.Response) -> list[Dataset]:
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.headers["Content-Type"], response.content)
    return [dcmread(BytesIO(body)) for _, body in parts]


@pytest.mark.parametrize(("aet", "kind"), [("ORTHANC", "us-retired"), ("ORTHANCGET", "us-retired"),
                                         ("ORTHANC", "private"), ("ORTHANC", "us-retired-rle"),
                                         ("ORTHANCGET", "us-retired-rle")])
def test_any_storage_sop_class_reaches_the_client(gateway: Gateway, unusual: dict[str, Dataset], aet: str,
                                                  kind: str):
    original = unusual[kind]
    (received,) = instances_of(retrieve(gateway, aet, f"/studies/{original.StudyInstanceUID}"))
    assert received.SOPClassUID == original.SOPClassUID
    assert received.SOPInstanceUID == original.SOPInstanceUID
    if aet == "ORTHANC":  # the receiver of this gateway accepts every syntax: as stored
        assert received.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert (received.pixel_array == original.pixel_array).all()


@pytest.mark.parametrize("aet", ["ORTHANC", "ORTHANCGET"])
@pytest.mark.parametrize("kind", ["breast-projection", "text-sr-trial"])
def test_classes_beyond_the_usual_list(gateway: Gateway, unusual: dict[str, Dataset], aet: str, kind: str):
    original = unusual[kind]
    (received,) = instances_of(retrieve(gateway, aet, f"/studies/{original.StudyInstanceUID}"))
    assert (received.SOPClassUID, received.SOPInstanceUID) == (original.SOPClassUID, original.SOPInstanceUID)


def test_a_private_class_over_c_get_is_proposed_but_orthanc_cannot_send_it(gateway: Gateway,
                                                                            unusual: dict[str, Dataset]):
    """The C-GET association proposes the private class (a C-FIND found it), but Orthanc 1.10 accepts
    no presentation context for a class it does not know unless UnknownSopClassAccepted is set, and even
    then answers no SCP role for it: the failed sub-operation is reported, not a 404."""
    original = unusual["private"]
    response = retrieve(gateway, "ORTHANCGET", f"/studies/{original.StudyInstanceUID}")
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert "could not send 1 of 1 instances (C-GET status 0x" in error and "1 failed" in error, error


def test_uncompressed_receiver_gets_a_retired_class_decompressed(uncompressed_gateway: Gateway,
                                                                 unusual: dict[str, Dataset]):
    """A class the receiver accepts on demand gets the receiver's transfer syntaxes, not the PACS's
    first choice: Orthanc decompresses the RLE instance for it."""
    original = unusual["us-retired-rle"]
    (received,) = instances_of(retrieve(uncompressed_gateway, "ORTHANC", f"/studies/{original.StudyInstanceUID}"))
    assert received.SOPClassUID == US_IMAGE_STORAGE_RETIRED
    assert received.file_meta.TransferSyntaxUID in {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
    assert (received.pixel_array == original.pixel_array).all()


@pytest.mark.parametrize("aet", ["ORTHANC", "ORTHANCGET"])
def test_series_and_instance_levels_of_a_retired_class(gateway: Gateway, unusual: dict[str, Dataset], aet: str):
    original = unusual["us-retired"]
    series = f"/studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}"
    assert [d.SOPInstanceUID for d in instances_of(retrieve(gateway, aet, series))] == [original.SOPInstanceUID]
    instance = f"{series}/instances/{original.SOPInstanceUID}"
    assert [d.SOPInstanceUID for d in instances_of(retrieve(gateway, aet, instance))] == [original.SOPInstanceUID]


def test_a_study_of_usual_classes_over_c_get(gateway: Gateway, known_data: KnownData):
    """The usual classes, proposed on the first association, still arrive."""
    study = known_data.study(2)
    received = instances_of(retrieve(gateway, "ORTHANCGET", f"/studies/{study[0].StudyInstanceUID}"))
    assert sorted(d.SOPInstanceUID for d in received) == sorted(d.SOPInstanceUID for d in study)


@pytest.fixture(scope="module")
def uncompressed_gateway(tmp_path_factory: pytest.TempPathFactory, orthanc: Orthanc,
                         known_data: KnownData) -> Iterator[Gateway]:
    """A gateway whose receiver accepts only uncompressed syntaxes: Orthanc 1.10 cannot transcode JPEG 2000,
    so it cannot send JPEG2000.dcm there, and answers the C-MOVE with 0xC000 and no failed count; the
    gateway then asks for it by C-GET."""
    config = gateway_config([{"aet": orthanc.aet, "host": "127.0.0.1", "port": orthanc.dicom_port,
                              "wado-rs": {"receivers": ["DICOMRST-UNC"]}}],
                            receiver_aet="DICOMRST-UNC", uncompressed=True)
    orthanc.add_modality(*receiver_of(config))
    gateway = Gateway(config, tmp_path_factory.mktemp("uncompressed"), workers=1)
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def alone_in_their_studies(orthanc: Orthanc) -> Iterator[dict[str, Dataset]]:
    """Copies of pydicom's JPEG2000.dcm and SC_rgb_rle.dcm, each the only instance of a study of its
    own: other tests may add instances to the studies the originals share."""
    copies = {}
    for name in ("JPEG2000.dcm", "SC_rgb_rle.dcm"):
        dataset = dcmread(get_testdata_file(name))
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = generate_uid(), generate_uid()
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        orthanc.upload(part10(dataset))
        copies[name] = dataset
    yield copies
    for dataset in copies.values():
        orthanc.delete_study(dataset.StudyInstanceUID)


def test_an_instance_the_pacs_cannot_decompress_still_arrives(uncompressed_gateway: Gateway, alone_in_their_studies):
    """Orthanc fails the C-MOVE sub-operation (it cannot decompress JPEG 2000 for the uncompressed
    receiver); the gateway fetches the instance by C-GET as stored and decompresses it itself."""
    j2k = alone_in_their_studies["JPEG2000.dcm"]
    for path in (f"/studies/{j2k.StudyInstanceUID}",
                 f"/studies/{j2k.StudyInstanceUID}/series/{j2k.SeriesInstanceUID}",
                 f"/studies/{j2k.StudyInstanceUID}/series/{j2k.SeriesInstanceUID}/instances/{j2k.SOPInstanceUID}"):
        response = retrieve(uncompressed_gateway, "ORTHANC", path)
        assert response.status_code == 200, (path, response.status_code, response.text)
        (received,) = instances_of(response)
        assert received.SOPInstanceUID == j2k.SOPInstanceUID
        assert (received.pixel_array == j2k.pixel_array).all()
    decompressed = requests.get(f"{uncompressed_gateway.url}/aets/ORTHANC/studies/{j2k.StudyInstanceUID}", timeout=60,
                                headers={"Accept": 'multipart/related; type="application/dicom"; '
                                                   "transfer-syntax=1.2.840.10008.1.2.1"})
    assert decompressed.status_code == 200
    (received,) = instances_of(decompressed)
    assert received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert numpy.abs(received.pixel_array.astype(int) - j2k.pixel_array.astype(int)).max() == 0
    assert "retrieved by C-GET as stored" in uncompressed_gateway.log_path.read_text()


def test_metadata_of_an_instance_the_pacs_cannot_decompress(uncompressed_gateway: Gateway, alone_in_their_studies):
    j2k = alone_in_their_studies["JPEG2000.dcm"]
    response = requests.get(f"{uncompressed_gateway.url}/aets/ORTHANC/studies/{j2k.StudyInstanceUID}/metadata",
                            timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()[0]["00080018"]["Value"] == [j2k.SOPInstanceUID]


@pytest.mark.parametrize("path", ["/studies/1.2.3.4.5.6.7.8.9",
                                  "/studies/1.2.3.4.5.6.7.8.9/series/1.2.3.4.5",
                                  "/studies/1.2.3.4.5.6.7.8.9/series/1.2.3.4.5/instances/1.2.3.4.5.6",
                                  "/studies/1.2.3.4.5.6.7.8.9/metadata"])
def test_unknown_uids_are_still_404(uncompressed_gateway: Gateway, gateway: Gateway, path: str):
    # Orthanc answers a C-MOVE or C-GET of unknown UIDs with 0xC000 too: the C-FIND tells them apart.
    for aet, through in (("ORTHANC", uncompressed_gateway), ("ORTHANC", gateway), ("ORTHANCGET", gateway)):
        response = requests.get(f"{through.url}/aets/{aet}{path}", timeout=60)
        assert response.status_code == 404, (aet, response.text)
        assert "error" in response.json()


def test_an_unknown_series_of_a_known_study_is_404_by_c_get(gateway: Gateway, alone_in_their_studies):
    # The C-GET of a series learns the classes from its study, which has instances: only a C-FIND of the
    # series itself tells that it has none.
    j2k = alone_in_their_studies["JPEG2000.dcm"]
    response = requests.get(f"{gateway.url}/aets/ORTHANCGET/studies/{j2k.StudyInstanceUID}/series/1.2.3.4.5",
                            timeout=60)
    assert response.status_code == 404, response.text


def test_a_compressed_instance_still_arrives_decompressed(uncompressed_gateway: Gateway, alone_in_their_studies):
    """The uncompressed receiver keeps refusing compressed syntaxes for the classes it now accepts
    on demand: Orthanc decompresses the RLE instance for it."""
    original = alone_in_their_studies["SC_rgb_rle.dcm"]
    (received,) = instances_of(retrieve(uncompressed_gateway, "ORTHANC", f"/studies/{original.StudyInstanceUID}"))
    assert received.file_meta.TransferSyntaxUID in {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
    assert (received.pixel_array == original.pixel_array).all()
