"""Reading a stored Part-10 object (PS3.10): its transfer syntax without parsing the data set, and the
data set itself. What cannot be read is a TranscodeError, answered 406 like an instance that cannot be
converted as asked."""
from __future__ import annotations

import io
import struct
from typing import Any

from pydicom import Dataset, dcmread

# Pixel Data, Float Pixel Data, Double Float Pixel Data.
PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})

_PREAMBLE_AND_PREFIX = 132
_TRANSFER_SYNTAX_UID = 0x00020010
# Explicit VR elements whose length field is 4 bytes after 2 reserved ones (PS3.5 7.1.2).
_LONG_LENGTH_VRS = frozenset(
    vr.encode() for vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV")
)



class TranscodeError(Exception):
    """The instance cannot be converted to the requested transfer syntax."""



def transfer_syntax_of(part10: bytes) -> str:
    """The Transfer Syntax UID in the File Meta Information, read without parsing the dataset."""
    if part10[128:_PREAMBLE_AND_PREFIX] != b"DICM":
        raise TranscodeError("not a DICOM Part-10 object (no DICM prefix)")
    offset = _PREAMBLE_AND_PREFIX
    # The File Meta Information is always Explicit VR Little Endian (PS3.10 7.1).
    while offset + 8 <= len(part10):
        group, element = struct.unpack_from("<HH", part10, offset)
        if group != 0x0002:
            break
        vr = part10[offset + 4 : offset + 6]
        if not (vr.isalpha() and vr.isupper()):
            # Some old writers encoded the meta group in Implicit VR, against PS3.10.
            (length,) = struct.unpack_from("<L", part10, offset + 4)
            value_offset = offset + 8
        elif vr in _LONG_LENGTH_VRS:
            (length,) = struct.unpack_from("<L", part10, offset + 8)
            value_offset = offset + 12
        else:
            (length,) = struct.unpack_from("<H", part10, offset + 6)
            value_offset = offset + 8
        if (group << 16 | element) == _TRANSFER_SYNTAX_UID:
            value = part10[value_offset : value_offset + length]
            return value.rstrip(b"\x00 ").decode("ascii", "replace")
        offset = value_offset + length
    raise TranscodeError("the File Meta Information has no Transfer Syntax UID")



def read_instance(part10: bytes, **dcmread_options: Any) -> Dataset:
    """The dataset of a stored Part-10 object (`dcmread_options` as for pydicom's dcmread)."""
    try:
        return dcmread(io.BytesIO(part10), **dcmread_options)
    except Exception as exc:
        raise TranscodeError("the stored instance cannot be read") from exc


def uids_of(part10: bytes) -> tuple[str, str, str]:
    """Study, Series and SOP Instance UIDs of a stored object, read from its header alone ("" for one
    it lacks)."""
    header = read_instance(part10, stop_before_pixels=True,
                           specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
    return (str(header.get("StudyInstanceUID", "")), str(header.get("SeriesInstanceUID", "")),
            str(header.get("SOPInstanceUID", "")))
