"""Reading an attribute of a dataset decoded from the wire without making pydicom convert it.

pydicom converts an element the first time it is accessed (VR lookup, value classes, validation),
which for a C-FIND answer costs more than the answer took to arrive. A search only asks whether a
count is there and what the UIDs are; the encoded bytes answer both.
"""
from __future__ import annotations

from pydicom import Dataset
from pydicom.dataelem import RawDataElement

# PS3.5 6.2: a trailing space pads text values to even length, a trailing NUL pads UIDs.
_PADDING = b"\0 "


def has_value(ds: Dataset, tag: int) -> bool:
    """Whether `ds` has `tag` with a value that is not empty."""
    element = ds.get_item(tag)
    if element is None:
        return False
    if isinstance(element, RawDataElement):
        return bool(element.value and element.value.strip(_PADDING))
    return element.value not in (None, "", [])


def text_value(ds: Dataset, tag: int) -> str:
    """The text of `tag` as pydicom reads a single-valued ASCII element, such as a UID: padding off;
    "" where `tag` is absent. A value that is not ASCII keeps its bytes as replacement characters,
    which no UID check lets through."""
    element = ds.get_item(tag)
    if element is None:
        return ""
    if isinstance(element, RawDataElement):
        return (element.value or b"").rstrip(_PADDING).decode("ascii", "replace")
    return str(element.value if element.value is not None else "")
