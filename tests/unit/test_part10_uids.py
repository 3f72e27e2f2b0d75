"""``uids_of`` reads the UIDs past a hand-walked File Meta Information; it must agree with pydicom's
dcmread of the header in every transfer syntax and shape of header."""
import io

import pytest
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from dicomrst.dicomweb.part10 import TranscodeError, transfer_syntax_of, uids_of


def _part10(transfer_syntax: str, uids: dict[str, str], before_uids: bool = True) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    for keyword, value in uids.items():
        setattr(ds, keyword, value)
    if before_uids:
        # A sequence of undefined length ahead of the UIDs: its items hold UIDs of other instances.
        item = Dataset()
        item.ReferencedSOPInstanceUID = "9.9.9"
        item.StudyInstanceUID = "8.8.8"
        ds.ReferencedImageSequence = Sequence([item])
    ds.PatientName = "Doe^J"
    pixels = b"\0" * 64
    ds.add_new(0x7FE00010, "OB", encapsulate([pixels]) if transfer_syntax == JPEGBaseline8Bit else pixels)
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = 8
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = uids.get("SOPInstanceUID", "1.2.3")
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _by_dcmread(part10: bytes) -> tuple[str, str, str]:
    header = dcmread(io.BytesIO(part10), stop_before_pixels=True)
    return (str(header.get("StudyInstanceUID", "")), str(header.get("SeriesInstanceUID", "")),
            str(header.get("SOPInstanceUID", "")))


@pytest.mark.parametrize("transfer_syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
                                             DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit])
@pytest.mark.parametrize("uids", [
    {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4", "SOPInstanceUID": "1.2.3.4.5"},
    {"StudyInstanceUID": "1.2.3", "SOPInstanceUID": "1.2.3.4.5"},  # no series
    {"SeriesInstanceUID": "1.2.33", "SOPInstanceUID": "1.2.3.4.56"},  # no study
    {},
])
@pytest.mark.parametrize("before_uids", [True, False])
def test_agrees_with_dcmread(transfer_syntax, uids, before_uids):
    part10 = _part10(transfer_syntax, uids, before_uids)
    assert uids_of(part10) == _by_dcmread(part10) == (
        uids.get("StudyInstanceUID", ""), uids.get("SeriesInstanceUID", ""), uids.get("SOPInstanceUID", ""))
    assert transfer_syntax_of(part10) == transfer_syntax


def test_what_is_not_part10_is_a_transcode_error():
    with pytest.raises(TranscodeError):
        uids_of(b"not DICOM at all" * 20)
    with pytest.raises(TranscodeError):
        transfer_syntax_of(b"\0" * 128 + b"DICM")
