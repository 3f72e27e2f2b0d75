"""Transfer syntax conversion of Part-10 instances for WADO-RS (PS3.18 8.7.3.5.2).

Supported: any of the four native syntaxes (Implicit and Explicit VR Little Endian, Deflated
Explicit VR Little Endian, Explicit VR Big Endian) to any other; an encapsulated syntax to a native
one where a pydicom decoder is installed; a native syntax to a lossless encoding pydicom can write
(RLE Lossless, JPEG-LS, JPEG 2000 Lossless). Encapsulated to another encapsulated syntax is refused:
from a lossy source it would be a second lossy generation, made without the client knowing.
An instance without pixel data can be labelled with any of these syntaxes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.filewriter import dcmwrite
from pydicom.pixels import get_decoder, get_encoder, pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from .uids import is_known_transfer_syntax
from .part10 import PIXEL_DATA_TAGS, TranscodeError, read_instance, transfer_syntax_of

__all__ = [
    "NATIVE_TRANSFER_SYNTAXES", "PIXEL_DATA_TAGS", "TranscodeError", "can_produce", "choose_transfer_syntax",
    "little_endian_pixels", "read_instance", "transcode", "transfer_syntax_of",
]

__all__ = [
    "NATIVE_TRANSFER_SYNTAXES",
    "PIXEL_DATA_TAGS",
    "TranscodeError",
    "can_produce",
    "choose_transfer_syntax",
    "little_endian_pixels",
    "read_instance",
    "transcode",
    "transfer_syntax_of",
]

NATIVE_TRANSFER_SYNTAXES = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian}
)

# Encoders are used only where they can be lossless: the client names a transfer syntax, not a
# quality, and a lossy result would need Lossy Image Compression attributes nobody asked for.
# JPEG-LS Near-Lossless with an error of 0 is lossless, and still a valid stream of that syntax.
_LOSSLESS_ENCODING_OPTIONS: dict[str, dict[str, Any]] = {
    RLELossless: {},
    JPEGLSLossless: {},
    JPEGLSNearLossless: {"jls_error": 0},
    JPEG2000Lossless: {},
}

_PIXEL_DATA = 0x7FE00010
_SWAP_UNIT_BY_VR = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}

def _name(uid: str) -> str:
    return UID(uid).name if is_known_transfer_syntax(uid) else uid


def _decoder_available(uid: str) -> bool:
    try:
        return bool(get_decoder(uid).is_available)
    except NotImplementedError:
        return False


def _encoder_available(uid: str) -> bool:
    if uid not in _LOSSLESS_ENCODING_OPTIONS:
        return False
    try:
        return bool(get_encoder(uid).is_available)
    except NotImplementedError:
        return False


def can_produce(stored_ts: str, target_ts: str) -> bool:
    """Whether `transcode` can turn `stored_ts` into `target_ts`, judged without decoding anything.

    True does not promise success: a particular image may still be beyond an encoder's limits.
    """
    if stored_ts == target_ts:
        return True
    if not (is_known_transfer_syntax(stored_ts) and is_known_transfer_syntax(target_ts)):
        return False
    stored_native = stored_ts in NATIVE_TRANSFER_SYNTAXES
    target_native = target_ts in NATIVE_TRANSFER_SYNTAXES
    if stored_native and target_native:
        return True
    if target_native:
        return _decoder_available(stored_ts)
    if stored_native:
        return _encoder_available(target_ts)
    return False


def choose_transfer_syntax(stored_ts: str, acceptable: Sequence[str]) -> str | None:
    """The first of `acceptable` ("*" meaning as stored) that can be produced from `stored_ts`."""
    for candidate in acceptable:
        if candidate in ("*", stored_ts):
            return stored_ts
        if can_produce(stored_ts, candidate):
            return candidate
    return None


def _pixel_swap_unit(bits_allocated: int, vr: str, source_big_endian: bool) -> int:
    """Bytes per swapped unit when native Pixel Data changes byte order; 1 means none."""
    if bits_allocated in (16, 32, 64):
        return bits_allocated // 8
    if bits_allocated in (1, 8):
        if not (source_big_endian and vr == "OW"):
            return 1  # OB is a byte stream: the same in either byte order
        if bits_allocated == 8:
            return 2  # PS3.5 8.1.1: 8-bit samples in big endian OW words are swapped in pairs
    raise TranscodeError(f"cannot change the byte order of {bits_allocated}-bit {vr} pixel data")


def _swap(value: bytes, unit: int) -> bytes:
    if unit == 1:
        return value
    if len(value) % unit:
        raise TranscodeError(f"a binary value of {len(value)} bytes is not made of {unit}-byte words")
    swapped = bytearray(value)
    for i in range(unit):
        # Reversing each word: byte i of every word takes byte unit-1-i's place.
        swapped[i::unit] = value[unit - 1 - i :: unit]
    return bytes(swapped)


def little_endian_pixels(value: bytes, bits_allocated: int, vr: str) -> bytes:
    """Native Pixel Data bytes of an Explicit VR Big Endian instance, in little endian order."""
    return _swap(value, _pixel_swap_unit(bits_allocated, vr, source_big_endian=True))


def _swap_element(ds: Dataset, elem: DataElement, source_big_endian: bool) -> None:
    if elem.is_empty:
        return
    if elem.tag == _PIXEL_DATA:
        bits_allocated = int(ds.get("BitsAllocated", 0) or 0)
        elem.value = _swap(elem.value, _pixel_swap_unit(bits_allocated, elem.VR, source_big_endian))
        # Written as a byte stream where it is one, so no later reader has to guess its order.
        elem.VR = "OW" if bits_allocated > 8 else "OB"
    elif elem.VR in _SWAP_UNIT_BY_VR:
        elem.value = _swap(elem.value, _SWAP_UNIT_BY_VR[elem.VR])
    elif elem.VR == "UN" or (" or " in elem.VR and isinstance(elem.value, bytes)):
        # The word size of a value of unknown VR cannot be known, so neither can its byte order.
        raise TranscodeError(f"cannot change the byte order of element ({elem.tag.group:04X},{elem.tag.element:04X})")


def _swap_byte_order(ds: Dataset, source_big_endian: bool) -> None:
    """Reverse the byte order of every binary value, at any depth: pydicom writes them as it holds them."""
    # Not Dataset.walk: it rewrites the message of any exception raised inside it.
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _swap_byte_order(item, source_big_endian)
        else:
            _swap_element(ds, elem, source_big_endian)


def _write(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    try:
        # dcmwrite, unlike save_as, lets the byte order differ from the one the file was read in;
        # _swap_byte_order has already converted what pydicom does not.
        dcmwrite(buffer, ds, enforce_file_format=True)
    except Exception as exc:
        raise TranscodeError("the converted instance cannot be written") from exc
    return buffer.getvalue()


def _has_pixel_data(ds: Dataset) -> bool:
    return any(tag in ds for tag in PIXEL_DATA_TAGS)


def _to_native_syntax(ds: Dataset, target_ts: str) -> None:
    """Label `ds` with a native `target_ts`, reversing byte orders where the endianness changes."""
    current_ts = ds.file_meta.TransferSyntaxUID
    current_big = current_ts == ExplicitVRBigEndian
    if current_big != (target_ts == ExplicitVRBigEndian):
        if current_ts.is_encapsulated and "PixelData" in ds:
            raise TranscodeError("encapsulated pixel data has no big endian form")
        _swap_byte_order(ds, source_big_endian=current_big)
    ds.file_meta.TransferSyntaxUID = UID(target_ts)


def _decompress(ds: Dataset, stored_ts: str) -> None:
    if not _decoder_available(stored_ts):
        raise TranscodeError(f"no decoder for {_name(stored_ts)} is installed")
    try:
        # The instance keeps its identity: the client asked for this SOP instance in another encoding.
        # YCbCr comes out as RGB, colour by pixel, and decompress says so in Photometric
        # Interpretation and Planar Configuration: the same pixels, described the same way, as
        # decoded frames and the metadata (frames.decoded_colour_attributes).
        ds.decompress(as_rgb=True, generate_instance_uid=False)
    except Exception as exc:
        raise TranscodeError(f"cannot decode the {_name(stored_ts)} pixel data") from exc


def _compress(ds: Dataset, target_ts: str) -> None:
    if not _encoder_available(target_ts):
        raise TranscodeError(f"cannot encode {_name(target_ts)}")
    _to_native_syntax(ds, ExplicitVRLittleEndian)  # encoders read little endian pixel data
    try:
        # pydicom 3.0.2 encodes a colour-by-plane buffer as if it were interleaved (RLE gets it
        # wrong); from the decoded array it is right.
        arr = pixel_array(ds, raw=True) if ds.get("PlanarConfiguration") == 1 else None
        ds.compress(target_ts, arr, generate_instance_uid=False, **_LOSSLESS_ENCODING_OPTIONS[target_ts])
    except Exception as exc:
        raise TranscodeError(f"cannot encode this image as {_name(target_ts)}") from exc


def transcode(part10: bytes, target_ts: str) -> bytes:
    """`part10` re-encoded in `target_ts`; the very same object when it is already in it.

    Raises TranscodeError with a short reason when the conversion is not possible.
    """
    stored_ts = transfer_syntax_of(part10)
    if stored_ts == target_ts:
        return part10
    if not is_known_transfer_syntax(target_ts):
        raise TranscodeError(f"{target_ts} is not a known transfer syntax")
    if not is_known_transfer_syntax(stored_ts):
        raise TranscodeError(f"the stored transfer syntax {stored_ts} is not a known one")
    ds = read_instance(part10)
    stored_native = stored_ts in NATIVE_TRANSFER_SYNTAXES
    target_native = target_ts in NATIVE_TRANSFER_SYNTAXES
    if not _has_pixel_data(ds):
        # Without pixel data an encapsulated syntax encodes the dataset as Explicit VR Little
        # Endian does, so only the byte order can need converting.
        _to_native_syntax(ds, target_ts if target_native else ExplicitVRLittleEndian)
        ds.file_meta.TransferSyntaxUID = UID(target_ts)
    elif stored_native and target_native:
        _to_native_syntax(ds, target_ts)
    elif target_native:
        _decompress(ds, stored_ts)
        _to_native_syntax(ds, target_ts)
    elif stored_native:
        _compress(ds, target_ts)
    else:
        raise TranscodeError(f"{_name(stored_ts)} is not converted to {_name(target_ts)}")
    return _write(ds)
