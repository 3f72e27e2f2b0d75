"""Where each frame of a stored Part-10 object lies in its bytes, found from the header alone, so that a
frame can be read from a file without parsing (or even reading) the rest of the instance.

Only the layouts whose frames are plain byte ranges are indexed: native little endian pixel data whose
frames end on a byte boundary (PS3.5 8.1.1, one frame after another), and encapsulated pixel data
(PS3.5 A.4) whose fragments map to frames without guessing: one frame, one fragment per frame, or an
(extended) offset table. Anything else (big endian, 1-bit frames, several fragments per frame with no
offset table, a malformed item) has no index; ``frames.extract_frames`` reads it as before.
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from pydicom import Dataset, dcmread
from pydicom.uid import UID, ExplicitVRBigEndian

from .frames import frame_bits, number_of_frames

__all__ = ["FrameOffsets", "Header", "frame_offsets", "read_header"]

_PIXEL_DATA = 0x7FE00010
_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
_UNDEFINED_LENGTH = 0xFFFFFFFF

# A frame is the concatenation of one or more (offset, length) byte ranges of the Part-10 object.
Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class FrameOffsets:
    transfer_syntax: str
    frames: tuple[Ranges, ...]

    @property
    def count(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class Header:
    """The data set of a Part-10 object up to its pixel data, and where the pixel data element starts."""

    dataset: Dataset
    pixel_data_offset: int


def read_header(part10: bytes) -> Header:
    source = io.BytesIO(part10)
    dataset = dcmread(source, stop_before_pixels=True)
    # dcmread leaves the file at the start of the element it stopped before.
    return Header(dataset, source.tell())


def frame_offsets(part10: bytes, header: Header | None = None) -> FrameOffsets | None:
    """The byte ranges of every frame of ``part10``, or None when its layout is not one indexed here.
    ``header`` saves reading it again where it was read already."""
    try:
        if header is None:
            header = read_header(part10)
        ds, element_offset = header.dataset, header.pixel_data_offset
        transfer_syntax = UID(ds.file_meta.TransferSyntaxUID)
        count = number_of_frames(ds)
        if transfer_syntax == ExplicitVRBigEndian or transfer_syntax.is_deflated or count < 1:
            return None
        pixel_data = _pixel_data_header(part10, element_offset, transfer_syntax.is_implicit_VR)
        if pixel_data is None:
            return None
        value_offset, length = pixel_data
        if transfer_syntax.is_encapsulated:
            if length != _UNDEFINED_LENGTH:
                return None
            frames = _encapsulated(part10, value_offset, count, ds)
        elif value_offset + length > len(part10):
            return None
        else:
            frames = _native(ds, value_offset, length, count)
    except Exception:  # whatever cannot be indexed is read the ordinary way, which reports it properly
        return None
    return None if frames is None else FrameOffsets(str(transfer_syntax), frames)


def _pixel_data_header(part10: bytes, offset: int, implicit_vr: bool) -> tuple[int, int] | None:
    """The offset and length of the Pixel Data value whose element starts at ``offset``."""
    if offset + 8 > len(part10):
        return None
    group, element = struct.unpack_from("<HH", part10, offset)
    if (group << 16 | element) != _PIXEL_DATA:
        return None
    if implicit_vr:
        (length,) = struct.unpack_from("<L", part10, offset + 4)
        return offset + 8, length
    if part10[offset + 4 : offset + 6] not in (b"OB", b"OW"):
        return None
    (length,) = struct.unpack_from("<L", part10, offset + 8)
    return offset + 12, length


def _native(ds: Dataset, value_offset: int, length: int, count: int) -> tuple[Ranges, ...] | None:
    bits = frame_bits(ds, int(ds.BitsAllocated))
    if bits % 8 or bits * count > length * 8:
        return None
    size = bits // 8
    return tuple(((value_offset + index * size, size),) for index in range(count))


def _items(part10: bytes, offset: int) -> list[tuple[int, int]] | None:
    """The (value offset, length) of each item of an encapsulated value, the offset table first."""
    items: list[tuple[int, int]] = []
    while offset + 8 <= len(part10):
        group, element, length = struct.unpack_from("<HHL", part10, offset)
        if (group, element) == _SEQUENCE_DELIMITER:
            return items
        if (group, element) != _ITEM or length == _UNDEFINED_LENGTH or offset + 8 + length > len(part10):
            return None
        items.append((offset + 8, length))
        offset += 8 + length
    return None


def _encapsulated(part10: bytes, value_offset: int, count: int, ds: Dataset) -> tuple[Ranges, ...] | None:
    items = _items(part10, value_offset)
    if not items:
        return None
    (table_offset, table_length), fragments = items[0], items[1:]
    if not fragments:
        return None
    if count == 1:
        return (tuple(fragments),)
    if len(fragments) == count:
        return tuple((fragment,) for fragment in fragments)
    # Offsets count from the first byte of the first fragment's item tag (PS3.5 A.4).
    first_item = fragments[0][0] - 8
    if "ExtendedOffsetTable" in ds:
        starts = list(struct.unpack(f"<{len(ds.ExtendedOffsetTable) // 8}Q", ds.ExtendedOffsetTable))
    elif table_length:
        starts = list(struct.unpack_from(f"<{table_length // 4}L", part10, table_offset))
    else:
        return None
    if len(starts) != count or starts[0] != 0:
        return None
    by_start = {offset - 8 - first_item: (offset, length) for offset, length in fragments}
    frames: list[Ranges] = []
    position = 0
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < count else None
        ranges = []
        position = start
        while position in by_start and (end is None or position < end):
            offset, length = by_start[position]
            ranges.append((offset, length))
            position += 8 + length
        if not ranges or (end is not None and position != end):
            return None
        frames.append(tuple(ranges))
    return tuple(frames)
