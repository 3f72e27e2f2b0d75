"""DICOM JSON (PS3.18 F.2) of an element still as read, without pydicom's conversion, and of an
element holding one plain string.

A C-FIND answer holds a dozen short elements of a few VRs. pydicom turns each into a DataElement
(VR lookup, hooks, value classes, validation) and only then into JSON, which costs more than receiving
the answer. Here the common cases go from the encoded bytes straight to the JSON pydicom would give;
``None`` hands every other element back to pydicom, so nothing here has to be right about the rare
cases. A property test compares the two element by element.
"""
from __future__ import annotations

import math
import re
import struct
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.uid import UID
from pydicom.valuerep import MAX_VALUE_LEN, STR_VR_REGEXES

# Character sets under which printable ASCII bytes mean the same characters (PS3.5 6.1.2.2, 6.1.2.3).
ASCII_COMPATIBLE_CHARSETS = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"})

# Printable ASCII only, bar a NUL padding a UID (PS3.5 6.2): no control characters (ESC would switch
# an ISO 2022 character set) and no bytes whose meaning depends on the character set.
_PRINTABLE = re.compile(rb"[\x20-\x7e]*\x00?\Z")

_BINARY_FORMATS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
# What pydicom strips from each value after splitting at backslashes (PS3.5 6.2: padding).
_STRIP_EACH = {"SH": "\0 ", "LO": "\0 ", "UC": "\0 "}
# Values pydicom takes padding off the whole string of, then splits, leaving each value as it is.
_PADDED_WHOLE = frozenset({"AS", "CS", "DA", "DT", "TM", "UI", "IS", "DS"})
_SINGLE_VALUED = frozenset({"LT", "ST", "UT"})
_PLAIN_TEXT = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "LO", "LT", "SH", "ST", "UC", "UI", "UR", "UT"})
_IS = re.compile(r"[+-]?[0-9]{1,12}\Z")
_DS = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


@lru_cache(maxsize=4096)
def _dictionary_vr(tag: int) -> str | None:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return None
    return vr if len(vr) == 2 else None  # "US or SS" and the like: pydicom resolves those


def encoded_element_json(element: RawDataElement) -> dict[str, Any] | None:
    """The DICOM JSON of `element` as pydicom's ``to_json_dict`` makes it, or None if the element is
    not one of the plain cases (then pydicom converts it). Text must be printable ASCII: the caller
    checks that the dataset's character set reads ASCII as ASCII."""
    tag = int(element.tag)  # a plain int hashes and compares without pydicom's BaseTag methods
    if tag & 0x10000 or not tag & 0xFFFF:  # private tags and group lengths: pydicom's business
        return None
    vr = element.VR or _dictionary_vr(tag)
    if vr is None:
        return None
    value: bytes | None = element.value
    if not value:
        return None if vr == "SQ" else {"vr": vr}
    if vr in _BINARY_FORMATS:
        return _binary_json(vr, value, element.is_little_endian)
    if _PRINTABLE.match(value) is None:
        return None
    text = value.decode("ascii")
    values = _text_values(vr, text)
    if values is None:
        return None
    if not values:
        return {"vr": vr}
    if not _valid(vr, text, values):
        return None
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": text} for text in values]}
    if vr == "IS":
        return _numbers_json(vr, values, _IS, int)
    if vr == "DS":
        return _numbers_json(vr, values, _DS, float)
    return {"vr": vr, "Value": values}


def text_element_json(element: DataElement) -> dict[str, Any] | None:
    """The DICOM JSON of a converted element holding one string of a plain text VR (RetrieveURL, as
    the gateway adds it, or a UID pydicom has converted), as pydicom makes it; None otherwise."""
    value = element.value
    if element.VR in _PLAIN_TEXT and value and type(value) in (str, UID):
        return {"vr": element.VR, "Value": [value]}
    return None


def _text_values(vr: str, text: str) -> list[str] | None:
    """The values of a text element as pydicom reads them, or None where its reading is not mirrored
    here. An empty list is an empty element."""
    if vr in _PADDED_WHOLE:
        values = text.rstrip("\0 ").split("\\")
    elif vr in _STRIP_EACH:
        values = [part.rstrip("\0 ") for part in text.split("\\")]
    elif vr in _SINGLE_VALUED:
        values = [text.rstrip("\0 ")]
    elif vr == "AE":
        values = [part.strip() for part in text.split("\\")]
    elif vr == "PN":
        if "=" in text:  # ideographic and phonetic groups: pydicom's PersonName splits those
            return None
        values = text.rstrip("\0 ").split("\\")
    else:
        return None
    if len(values) == 1:
        return values if values[0] else []
    # An empty value among several: pydicom's handling of those is left to pydicom.
    return values if all(values) else None


# What pydicom checks of a value when reading strictly: its length and, for some VRs, its form.
_MAX_LENGTHS = {**MAX_VALUE_LEN, "PN": 64}  # a PN component group (PS3.5 6.2) and there is one here
_FORMS = {vr: regex for vr, regex in STR_VR_REGEXES.items() if vr not in ("IS", "DS")}  # ours are stricter


def _valid(vr: str, text: str, values: list[str]) -> bool:
    """Whether pydicom, reading strictly, would take `values`. Lengths are checked before padding is
    taken off too, which may be stricter than pydicom, never looser."""
    max_length = _MAX_LENGTHS.get(vr)
    parts = [text] if vr in _SINGLE_VALUED else text.split("\\")
    if max_length is not None and max(map(len, parts)) > max_length:
        return False
    form = _FORMS.get(vr)
    return form is None or all(map(form.match, values))


def _numbers_json(vr: str, values: list[str], pattern: re.Pattern[str], number: type) -> dict[str, Any] | None:
    numbers = []
    for text in values:
        stripped = text.strip(" ")
        if pattern.match(stripped) is None:
            return None
        parsed = number(stripped)
        # pydicom refuses an IS out of its 32-bit range (PS3.5 6.2) when reading strictly.
        if vr == "IS" and not -2**31 <= parsed < 2**31 or vr == "DS" and not math.isfinite(parsed):
            return None
        numbers.append(parsed)
    return {"vr": vr, "Value": numbers}


def _binary_json(vr: str, value: bytes, little_endian: bool) -> dict[str, Any] | None:
    code = _BINARY_FORMATS[vr]
    size = struct.calcsize(code)
    if len(value) % size:
        return None
    numbers = list(struct.unpack(("<" if little_endian else ">") + code * (len(value) // size), value))
    if vr in ("FL", "FD") and not all(math.isfinite(number) for number in numbers):
        return None
    return {"vr": vr, "Value": numbers}
