"""What the index keeps of an instance: its header, read without its pixel data, as DICOM JSON, and the
values of the attributes it matches on.

An object of a bucket is read with ranged GETs, from its start until the parse reaches the pixel data
(or the object's end): 64 KiB first, four times more each time a header is longer.
"""
from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dicomrst.dicomweb.qido_attributes import INSTANCE_DEFAULTS, SERIES_DEFAULTS, STUDY_DEFAULTS
from dicomrst.dicomweb.metadata import kept_metadata_document
from dicomrst.index.values import Row, value_rows
from dicomrst.vrs import BINARY_VRS

FIRST_RANGE = 64 * 1024

# Computed from the instances of an entity, not read from one header (PS3.4 C.3.4, C.6.1.1.5).
COMPUTED_KEYWORDS = frozenset({
    "ModalitiesInStudy", "SOPClassesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances",
    "NumberOfSeriesRelatedInstances", "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries",
    "NumberOfPatientRelatedInstances", "InstanceAvailability", "RetrieveAETitle",
})


def _tags(keywords: Iterable[str]) -> frozenset[int]:
    tags = {tag_for_keyword(keyword) for keyword in keywords if keyword not in COMPUTED_KEYWORDS}
    return frozenset(tag for tag in tags if tag is not None)


# The attributes a QIDO-RS search returns by default at some level (PS3.18 tables 10.6.3-3 to -5): those a
# client searches by, and StudyDescription, which OHIF's study list searches too. Not the UIDs, which are
# columns of their own; not the includefield=all lists, which are returned from the stored header and
# matched there when asked (aets[].index.attributes adds to these).
QIDO_TAGS = _tags(STUDY_DEFAULTS + SERIES_DEFAULTS + INSTANCE_DEFAULTS + ("StudyDescription",)) \
    - {0x0020000D, 0x0020000E, 0x00080018}


class NotAnInstance(ValueError):
    """The object is not a DICOM instance the index can hold (not DICOM, or no UIDs)."""


@dataclass(frozen=True)
class IndexedInstance:
    study_uid: str
    series_uid: str
    sop_uid: str
    patient_id: str
    header: str  # DICOM JSON
    values: list[Row]
    metadata: str | None  # the WADO-RS metadata document, when the object itself was given


def indexed_instance(header: Dataset, indexed_tags: frozenset[int], part10: bytes | None = None) -> IndexedInstance:
    uids = [str(header.get(keyword, "") or "") for keyword in ("StudyInstanceUID", "SeriesInstanceUID",
                                                                "SOPInstanceUID")]
    if not all(uids):
        raise NotAnInstance("it lacks a Study, Series or SOP Instance UID")
    kept = Dataset()
    values: list[Row] = []
    for element in header:
        # Bulk data is not searched for and not returned by a search (PS3.18 8.3.4.6).
        if element.VR in BINARY_VRS or element.tag.element == 0:
            continue
        kept.add(element)
        if int(element.tag) in indexed_tags and element.VR != "SQ":
            values.extend(value_rows(element))
    return IndexedInstance(uids[0], uids[1], uids[2], str(header.get("PatientID", "") or ""),
                           json.dumps(kept.to_json_dict(suppress_invalid_tags=True), ensure_ascii=False), values,
                           None if part10 is None else kept_metadata_document(part10))


def read_file_header(path: Path) -> Dataset:
    try:
        return dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, struct.error) as error:
        raise NotAnInstance(f"not a DICOM file: {error}") from None


def read_object_header(read_range: Callable[[int, int], bytes], size: int) -> Dataset:
    """The header of an object of ``size`` bytes; ``read_range(start, end)`` returns bytes start..end-1."""
    length = FIRST_RANGE
    while True:
        data = read_range(0, min(length, size)) if size > 0 else b""
        whole = len(data) >= size
        stream = BytesIO(data)
        try:
            header = dcmread(stream, stop_before_pixels=True)
        # pydicom says a broken or cut data set in several ways.
        except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OverflowError, struct.error) as error:
            if whole or isinstance(error, InvalidDicomError):
                raise NotAnInstance(f"not a DICOM file: {error}") from None
        else:
            # Stopped before the end of what was read: at the pixel data, so the header is whole.
            if whole or stream.tell() < len(data):
                return header
        length *= 4


def header_json(document: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(document)
    return loaded
