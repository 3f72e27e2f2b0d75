"""STOW-RS formats (PS3.18 10.5): what an uploaded part holds, and the Store Instances Response Module."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

from pydicom import Dataset, dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError

from dicomrst.dicomweb.multipart_reader import MultipartReader
from dicomrst.dicomweb.transcode import NATIVE_TRANSFER_SYNTAXES
from dicomrst.dicomweb.uids import is_valid_uid
from dicomrst.dicomweb.unconverted import text_value

DICOM_MEDIA_TYPE = "application/dicom"

# Failure and warning reasons of the response module (PS3.18 10.5.3, the C-STORE statuses of PS3.4 B.2.3).
FAILURE_PROCESSING = 0x0110
FAILURE_SOP_CLASS_NOT_SUPPORTED = 0x0122
FAILURE_OUT_OF_RESOURCES = 0xA700
FAILURE_CANNOT_UNDERSTAND = 0xC000
FAILURE_TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
WARNING_COERCION = 0xB000

# Values this size or larger are left on disk while the part is checked.
_DEFER_BYTES = 4096


@dataclass(frozen=True)
class UploadedInstance:
    """A Part-10 instance from a STOW-RS part, checked and written to ``path``."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax_uid: str


class UnusablePart(ValueError):
    """A part that cannot be stored; ``sop_class_uid``/``sop_instance_uid`` are what could be read."""

    def __init__(self, reason: str, sop_class_uid: str = "", sop_instance_uid: str = "") -> None:
        super().__init__(reason)
        self.sop_class_uid = sop_class_uid
        self.sop_instance_uid = sop_instance_uid


_PREAMBLE = b"\0" * 128 + b"DICM"


def write_part(chunks: Iterable[bytes], target: BinaryIO | IO[bytes]) -> None:
    """Write a part's bytes, restoring the 128-byte preamble and DICM prefix that some clients (such
    as dicomweb-client) leave out of a Part-10 instance that starts with its file meta group."""
    head = b""
    iterator = iter(chunks)
    for chunk in iterator:
        head += chunk
        if len(head) >= len(_PREAMBLE):
            break
    if not head[128:132] == b"DICM" and head[:2] == b"\x02\x00":
        target.write(_PREAMBLE)
    target.write(head)
    for chunk in iterator:
        target.write(chunk)


def inspect_part(path: Path) -> UploadedInstance:
    """Read the header of an uploaded part and make sure it is a whole Part-10 instance."""
    try:
        dataset = dcmread(path, defer_size=_DEFER_BYTES)
    except (InvalidDicomError, EOFError) as error:
        raise UnusablePart(f"not a DICOM Part-10 instance: {error}") from None
    except Exception as error:
        raise UnusablePart(f"unreadable DICOM: {error}") from None
    sop_class_uid = _uid(dataset, "SOPClassUID") or _uid(dataset.file_meta, "MediaStorageSOPClassUID")
    sop_instance_uid = _uid(dataset, "SOPInstanceUID")
    if not sop_instance_uid:
        raise UnusablePart("the instance has no valid SOP Instance UID", sop_class_uid)
    if not sop_class_uid:
        raise UnusablePart("the instance has no valid SOP Class UID", "", sop_instance_uid)
    transfer_syntax = _uid(dataset.file_meta, "TransferSyntaxUID")
    if not transfer_syntax:
        raise UnusablePart("the file meta names no transfer syntax", sop_class_uid, sop_instance_uid)
    if _truncated(dataset, path):
        raise UnusablePart("the instance is truncated", sop_class_uid, sop_instance_uid)
    return UploadedInstance(
        path=path,
        sop_class_uid=sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        study_uid=_uid(dataset, "StudyInstanceUID"),
        series_uid=_uid(dataset, "SeriesInstanceUID"),
        transfer_syntax_uid=transfer_syntax,
    )


def _uid(dataset: Dataset, keyword: str) -> str:
    try:
        value = text_value(dataset, tag_for_keyword(keyword) or 0).strip("\0 ")
    except Exception:
        return ""
    return value if is_valid_uid(value) else ""


def _truncated(dataset: Dataset, path: Path) -> bool:
    """A value that reaches past the end of the file means the upload was cut short (pydicom reads a
    short last value without complaint, and defers large ones unread)."""
    size = os.path.getsize(path)
    # values() leaves the elements as read: the large values stay unread, where get_item would read them.
    for element in dataset.values():
        if not isinstance(element, RawDataElement) or element.length == 0xFFFFFFFF:
            continue
        if element.value_tell is not None and element.value_tell + element.length > size:
            return True
    return _native_pixel_data_short(dataset, size)


def _native_pixel_data_short(dataset: Dataset, size: int) -> bool:
    """Uncompressed pixel data shorter than its image description says."""
    if "PixelData" not in dataset or dataset.file_meta.get("TransferSyntaxUID") not in NATIVE_TRANSFER_SYNTAXES:
        return False
    try:
        frames = int(dataset.get("NumberOfFrames") or 1)
        expected = (int(dataset.Rows) * int(dataset.Columns) * int(dataset.get("SamplesPerPixel", 1))
                    * int(dataset.BitsAllocated) * frames + 7) // 8
    except (AttributeError, TypeError, ValueError):
        return False
    element = dataset.get_item("PixelData", keep_deferred=True)
    if isinstance(element, RawDataElement):
        available = element.length if element.value is None else len(element.value)
        if element.value is None and element.value_tell is not None:
            available = min(available, size - element.value_tell)
    else:
        available = len(element.value or b"")
    return available < expected


@dataclass
class SpooledPart:
    """One part of the body, written to ``path``: either a usable instance or the reason it is not."""

    path: Path
    instance: UploadedInstance | None = None
    failure: UnusablePart | None = None

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def spool_parts(read: Callable[[int], bytes], boundary: str, study_uid: str | None,
                chunk_size: int = 1 << 20) -> Iterator[SpooledPart]:
    """Each part of a multipart/related body of application/dicom, written to a temporary file and
    checked; on ``/studies/{study}`` an instance of another study is unusable. Raises MultipartError
    where the body breaks."""
    for headers, chunks in MultipartReader(read, boundary, chunk_size).parts():
        handle = tempfile.NamedTemporaryFile(prefix="dicomrst-stow-", suffix=".dcm", delete=False)
        part = SpooledPart(Path(handle.name))
        try:
            with handle:
                write_part(chunks, handle)
            part_type = headers.get("content-type", DICOM_MEDIA_TYPE).split(";")[0].strip().lower()
            if part_type != DICOM_MEDIA_TYPE:
                raise UnusablePart(f"a part of type {part_type}, not {DICOM_MEDIA_TYPE}")
            part.instance = inspect_part(part.path)
            if study_uid is not None and part.instance.study_uid != study_uid:
                raise UnusablePart(f"the instance belongs to study {part.instance.study_uid}, not {study_uid}",
                                   part.instance.sop_class_uid, part.instance.sop_instance_uid)
        except UnusablePart as error:
            part.instance, part.failure = None, error
        except BaseException:
            part.discard()
            raise
        yield part


@dataclass
class StoreReport:
    """What became of each part, for the Store Instances Response Module (PS3.18 10.5.3)."""

    stored: list[tuple[str, str, str, int | None]] = field(default_factory=list)  # class, instance, url, warning
    failed: list[tuple[str, str, int]] = field(default_factory=list)  # class, instance, reason
    study_urls: set[str] = field(default_factory=set)

    def add_stored(self, instance: UploadedInstance, url: str, study_url: str, warning: int | None = None) -> None:
        self.stored.append((instance.sop_class_uid, instance.sop_instance_uid, url, warning))
        self.study_urls.add(study_url)

    def add_failed(self, sop_class_uid: str, sop_instance_uid: str, reason: int) -> None:
        self.failed.append((sop_class_uid, sop_instance_uid, reason))

    @property
    def status(self) -> int:
        """200 all stored, 202 some stored with failures or warnings, 409 none stored (PS3.18 10.5.3)."""
        if not self.stored:
            return 409
        if self.failed or any(warning is not None for *_, warning in self.stored):
            return 202
        return 200

    def response_module(self) -> Dataset:
        module = Dataset()
        if len(self.study_urls) == 1:
            module.RetrieveURL = next(iter(self.study_urls))
        if self.failed:
            module.FailedSOPSequence = [_failed_item(*failure) for failure in self.failed]
        if self.stored:
            module.ReferencedSOPSequence = [_referenced_item(*stored) for stored in self.stored]
        return module


def _failed_item(sop_class_uid: str, sop_instance_uid: str, reason: int) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    item.FailureReason = reason
    return item


def _referenced_item(sop_class_uid: str, sop_instance_uid: str, url: str, warning: int | None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class_uid
    item.ReferencedSOPInstanceUID = sop_instance_uid
    item.RetrieveURL = url
    if warning is not None:
        item.WarningReason = warning
    return item
