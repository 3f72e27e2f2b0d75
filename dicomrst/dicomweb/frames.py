"""Frame-level retrieval for WADO-RS (PS3.18 8.7.3.5.3 and 10.4.1.1.3): frame lists, the media type
of stored frames, and the frames themselves, as stored or decoded."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.encaps import generate_frames
from pydicom.pixels import as_pixel_options, get_decoder
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian

from dicomrst.messages import shown
from .part10 import TranscodeError, read_instance
from .transcode import can_produce, little_endian_pixels

__all__ = [
    "FRAME_MEDIA_TYPES",
    "MAX_FRAMES_PER_REQUEST",
    "FrameError",
    "check_frame_numbers",
    "decoded_colour_attributes",
    "decodes_frames",
    "extract_frames",
    "frame_bits",
    "frame_media_type",
    "number_of_frames",
    "parse_frame_list",
]

log = logging.getLogger(__name__)

_OCTET_STREAM = "application/octet-stream"
_ENCAPSULATED_UNCOMPRESSED = "1.2.840.10008.1.2.1.98"  # not named in pydicom 3.0


def _media_types() -> dict[str, str]:
    # Suffixes of the transfer syntax UID root 1.2.840.10008.1.2.
    by_type = {
        # .1.98 is encapsulated, but each of its fragments is a raw frame.
        _OCTET_STREAM: ["", ".1", ".1.98", ".1.99", ".2"],
        "image/jpeg": [".4.50", ".4.51", ".4.57", ".4.70"],
        "image/jls": [".4.80", ".4.81"],
        "image/jp2": [".4.90", ".4.91"],
        "image/jpx": [".4.92", ".4.93"],
        "image/dicom-rle": [".5"],
        "image/jphc": [".4.201", ".4.202", ".4.203"],
        "video/mpeg": [".4.100", ".4.100.1", ".4.101", ".4.101.1"],
        "video/mp4": [f".4.{number}{fragmentable}" for number in range(102, 107) for fragmentable in ("", ".1")],
        "video/H265": [".4.107", ".4.108"],
    }
    return {f"1.2.840.10008.1.2{suffix}": media_type for media_type, suffixes in by_type.items() for suffix in suffixes}


# Transfer syntax UID -> media type of one stored frame (PS3.18 Tables 8.7.3-2 and 8.7.3-5).
FRAME_MEDIA_TYPES: Mapping[str, str] = MappingProxyType(_media_types())

MAX_FRAMES_PER_REQUEST = 10000
# Ten digits reach past any real NumberOfFrames (IS holds at most 12 characters) while keeping
# int() far from Python's limit on digit strings.
_FRAME_NUMBER = re.compile(r"[0-9]{1,10}")

_PIXEL_DATA = 0x7FE00010
# Float and Double Float Pixel Data are never encapsulated; their element width is fixed.
_PIXEL_DATA_BITS = ((0x7FE00010, None), (0x7FE00008, 32), (0x7FE00009, 64))


class FrameError(ValueError):
    """A frame request that names frames the instance does not have, or is malformed (answer 4xx)."""


def frame_media_type(ts: str) -> str:
    """The media type of a frame stored in transfer syntax `ts`."""
    try:
        return FRAME_MEDIA_TYPES[ts]
    except KeyError:
        raise FrameError(f"frames stored in transfer syntax {ts} cannot be retrieved") from None


def parse_frame_list(text: str) -> list[int]:
    """The 1-based frame numbers of a `{frames}` path segment such as `1,3,5`, in the order given."""
    if text.count(",") >= MAX_FRAMES_PER_REQUEST:
        raise FrameError(f"at most {MAX_FRAMES_PER_REQUEST} frames can be retrieved at once")
    numbers = []
    for piece in text.split(","):
        if _FRAME_NUMBER.fullmatch(piece) is None:
            raise FrameError(f"{shown(piece, 20)} is not a frame number")
        number = int(piece)
        if number < 1:
            raise FrameError(f"{shown(piece, 20)} is not a frame number; frames are numbered from 1")
        numbers.append(number)
    return numbers


def _pixel_element(ds: Dataset) -> tuple[DataElement, int]:
    for tag, element_bits in _PIXEL_DATA_BITS:
        if tag in ds and not ds[tag].is_empty:
            return ds[tag], int(ds.get("BitsAllocated") or element_bits or 0)
    raise FrameError("the instance has no pixel data")


def number_of_frames(ds: Dataset) -> int:
    value = ds.get("NumberOfFrames")
    if value is None or value == "":
        return 1
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TranscodeError(f"the stored NumberOfFrames {str(value)[:16]!r} is not a number") from None


def check_frame_numbers(numbers: Sequence[int], count: int) -> None:
    for number in numbers:
        if not 1 <= number <= count:
            raise FrameError(f"frame {number} does not exist; the instance has {count}")


def frame_bits(ds: Dataset, bits_allocated: int) -> int:
    try:
        bits = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel") or 1) * bits_allocated
    except (AttributeError, TypeError, ValueError):
        raise TranscodeError("the stored instance lacks a valid Rows or Columns") from None
    if ds.get("PhotometricInterpretation") == "YBR_FULL_422":
        # Native YBR_FULL_422 holds one Cb and one Cr for every two Y (PS3.3 C.7.6.3.1.2): two
        # thirds of the samples, as pydicom's get_expected_length counts them. Sent as stored.
        bits = bits // 3 * 2
    return bits


def _bit_slice(value: bytes, start: int, length: int) -> bytes:
    """Bits [start, start + length) of bit-packed data, packed from bit 0 again (PS3.5 8.1.1)."""
    first, end = start // 8, (start + length + 7) // 8
    # DICOM packs the first pixel into the least significant bit, so a little endian integer
    # numbers the bits in pixel order.
    bits = int.from_bytes(value[first:end], "little") >> (start - first * 8)
    return (bits & ((1 << length) - 1)).to_bytes((length + 7) // 8, "little")


def _native_frames(
    ds: Dataset, elem: DataElement, bits_allocated: int, numbers: Sequence[int], count: int
) -> list[bytes]:
    value = elem.value
    if ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian:
        value = little_endian_pixels(value, bits_allocated, elem.VR)  # frames are sent little endian
    bits_per_frame = frame_bits(ds, bits_allocated)
    if len(value) * 8 < bits_per_frame * count:
        raise TranscodeError("the stored pixel data is shorter than its frames")
    if bits_per_frame % 8 == 0:
        size = bits_per_frame // 8
        return [value[(n - 1) * size : n * size] for n in numbers]
    # Only 1-bit frames can end mid-byte; frames follow each other without padding.
    return [_bit_slice(value, (n - 1) * bits_per_frame, bits_per_frame) for n in numbers]


def _extended_offsets(ds: Dataset) -> tuple[bytes, bytes] | None:
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        return ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths
    return None


def _encapsulated_frames(ds: Dataset, elem: DataElement, numbers: Sequence[int], count: int) -> list[bytes]:
    wanted = {number - 1 for number in numbers}
    last = max(wanted)
    found: dict[int, bytes] = {}
    frames = generate_frames(elem.value, number_of_frames=count, extended_offsets=_extended_offsets(ds))
    try:
        # One pass, stopping at the last frame wanted: get_frame would rescan from the start each time.
        for index, frame in enumerate(frames):
            if index in wanted:
                found[index] = frame
            if index >= last:
                break
    except Exception as exc:
        raise TranscodeError("the stored encapsulated pixel data is malformed") from exc
    if len(found) < len(wanted):
        raise TranscodeError("the stored encapsulated pixel data holds fewer frames than NumberOfFrames")
    return [found[number - 1] for number in numbers]


def _little_endian_bytes(arr: np.ndarray, bits_allocated: int) -> bytes:
    if bits_allocated == 1:
        return np.packbits(arr.ravel(), bitorder="little").tobytes()
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def _decode(ds: Dataset, index: int) -> tuple[np.ndarray, dict[str, str | int]]:
    """Frame `index` (0-based) decoded as pydicom's pixel_array(ds, index=index) decodes it, with
    pydicom's description of the decoded pixels (its Image Pixel properties after decoding).

    As Dataset.decompress, YCbCr comes out as RGB (as_rgb: YBR_FULL and YBR_FULL_422 converted by
    pydicom, YBR_ICT and YBR_RCT by the JPEG 2000 decoders) and colour as interleaved samples.
    """
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    return decoder.as_array(ds, index=index, validate=True, **as_pixel_options(ds, as_rgb=True))


def _decoded_frames(ds: Dataset, bits_allocated: int, numbers: Sequence[int]) -> list[bytes]:
    ts = ds.file_meta.TransferSyntaxUID
    if not can_produce(ts, ExplicitVRLittleEndian):
        raise TranscodeError(f"no decoder for {UID(ts).name} is installed")
    frames = []
    for number in numbers:
        try:
            arr, _ = _decode(ds, number - 1)
        except Exception as exc:
            raise TranscodeError(f"cannot decode frame {number}") from exc
        frames.append(_little_endian_bytes(arr, bits_allocated))
    return frames


def decodes_frames(ts: str) -> bool:
    """Whether frames stored in transfer syntax `ts` are decoded when asked for as
    application/octet-stream: they are not raw as stored (media.negotiate_frames then asks
    extract_frames to decompress) and a decoder for `ts` is installed (without one, there are no
    decoded frames to describe)."""
    return FRAME_MEDIA_TYPES.get(ts, _OCTET_STREAM) != _OCTET_STREAM and can_produce(ts, ExplicitVRLittleEndian)


def decoded_colour_attributes(ds: Dataset) -> dict[str, str | int]:
    """Photometric Interpretation and Planar Configuration, by keyword, of the frames extract_frames
    decodes from `ds`; empty where they are those stored.

    They are pydicom's own description of frame 1 once decoded, the values Dataset.decompress (so
    transcode) writes: a YCbCr image stored in JPEG, JPEG-LS, JPEG 2000 or RLE is sent as RGB, colour
    by pixel (Planar Configuration 0). Nothing is decoded, and nothing changes, for monochrome or
    palette images, for RGB already colour by pixel (pydicom's decoders send it as is), for native
    pixel data (sent as stored), or where no decoder is installed. A frame 1 that cannot be decoded
    leaves the stored values: decoded frames of it cannot be sent either.
    """
    try:
        if int(ds.get("SamplesPerPixel") or 1) < 2:
            return {}
        if ds.get("PhotometricInterpretation") == "RGB" and ds.get("PlanarConfiguration") == 0:
            return {}
        ts = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
        if _PIXEL_DATA not in ds or ds[_PIXEL_DATA].is_empty or ts is None or not decodes_frames(ts):
            return {}
    except Exception:
        return {}
    try:
        _, properties = _decode(ds, 0)
    except Exception as exc:
        log.warning("frame 1 cannot be decoded to describe its colour; described as stored: %s", exc)
        return {}
    described: dict[str, str | int] = {
        "PhotometricInterpretation": str(properties["photometric_interpretation"]),
        "PlanarConfiguration": int(properties["planar_configuration"]),
    }
    return {keyword: value for keyword, value in described.items() if ds.get(keyword) != value}


def _is_encapsulated(ds: Dataset) -> bool:
    ts = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
    try:
        if ts is not None:
            return bool(UID(ts).is_encapsulated)
    except ValueError:
        pass  # not a transfer syntax pydicom knows, so neither does it know its pixel encoding
    raise TranscodeError(f"the stored transfer syntax {ts} is not a known one")


def extract_frames(part10: bytes, numbers: Sequence[int], decompress: bool) -> list[bytes]:
    """The frames `numbers` (1-based) of an instance, in the order asked.

    Native pixel data is sliced as stored (big endian made little endian); encapsulated frames are
    returned as stored or, with `decompress`, decoded to little endian raw bytes.
    Raises FrameError for a frame the instance does not have or a missing Pixel Data, and
    TranscodeError for stored data that cannot be read or decoded.
    """
    ds = read_instance(part10)
    elem, bits_allocated = _pixel_element(ds)
    count = number_of_frames(ds)
    check_frame_numbers(numbers, count)
    encapsulated = _is_encapsulated(ds)  # also checks there is a known transfer syntax
    if not numbers:
        return []
    if elem.tag != _PIXEL_DATA or not encapsulated:
        return _native_frames(ds, elem, bits_allocated, numbers, count)
    if decompress and ds.file_meta.TransferSyntaxUID != _ENCAPSULATED_UNCOMPRESSED:
        return _decoded_frames(ds, bits_allocated, numbers)
    return _encapsulated_frames(ds, elem, numbers, count)
