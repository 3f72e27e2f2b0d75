from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from dicomrst.dicomweb.transcode import (
    TranscodeError,
    can_produce,
    choose_transfer_syntax,
    little_endian_pixels,
    transcode,
    transfer_syntax_of,
)

MPEG2 = "1.2.840.10008.1.2.4.100"
ENCAPSULATED_UNCOMPRESSED = "1.2.840.10008.1.2.1.98"
NATIVE = [ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
LOSSLESS_ENCODINGS = [RLELossless, JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless]


def data_file(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def read(part10: bytes) -> Dataset:
    return dcmread(BytesIO(part10))


def without_meta(ds: Dataset) -> dict:
    return {tag: ds[tag].value for tag in ds.keys() if tag != 0x7FE00010}


# --- transfer_syntax_of ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CT_small.dcm", ExplicitVRLittleEndian),
        ("MR_small_implicit.dcm", ImplicitVRLittleEndian),
        ("MR_small_bigendian.dcm", ExplicitVRBigEndian),
        ("image_dfl.dcm", DeflatedExplicitVRLittleEndian),
        ("JPEG2000.dcm", JPEG2000),
        ("SC_rgb_rle.dcm", RLELossless),
    ],
)
def test_transfer_syntax_of_reads_the_file_meta(name, expected):
    assert transfer_syntax_of(data_file(name)) == expected


def test_transfer_syntax_of_does_not_parse_the_dataset():
    part10 = data_file("CT_small.dcm")
    meta_end = 132 + 12 + read(part10).file_meta.FileMetaInformationGroupLength
    assert transfer_syntax_of(part10[:meta_end] + b"\xff" * 64) == ExplicitVRLittleEndian


@pytest.mark.parametrize("part10", [b"", b"DICM", b"\0" * 128 + b"DICX" + b"\0" * 20, data_file("no_meta.dcm")])
def test_transfer_syntax_of_refuses_non_part10(part10):
    with pytest.raises(TranscodeError, match="not a DICOM Part-10 object"):
        transfer_syntax_of(part10)


def test_transfer_syntax_of_requires_the_uid():
    with pytest.raises(TranscodeError, match="no Transfer Syntax UID"):
        transfer_syntax_of(data_file("meta_missing_tsyntax.dcm"))


# --- can_produce / choose_transfer_syntax -----------------------------------------------------------


@pytest.mark.parametrize("stored", NATIVE)
@pytest.mark.parametrize("target", NATIVE)
def test_native_to_native_is_always_possible(stored, target):
    assert can_produce(stored, target)


@pytest.mark.parametrize(
    ("stored", "target", "expected"),
    [
        (JPEG2000, ExplicitVRLittleEndian, True),
        (JPEGBaseline8Bit, ImplicitVRLittleEndian, True),
        (RLELossless, ExplicitVRBigEndian, True),
        (JPEGLSLossless, DeflatedExplicitVRLittleEndian, True),
        ("1.2.840.10008.1.2.4.70", ExplicitVRLittleEndian, True),
        ("1.2.840.10008.1.2.4.201", ExplicitVRLittleEndian, True),  # HTJ2K via pylibjpeg-openjpeg
        (MPEG2, ExplicitVRLittleEndian, False),  # no decoder
        (ENCAPSULATED_UNCOMPRESSED, ExplicitVRLittleEndian, False),
        (ExplicitVRLittleEndian, RLELossless, True),
        (ImplicitVRLittleEndian, JPEG2000Lossless, True),
        (ExplicitVRBigEndian, JPEGLSLossless, True),
        (ExplicitVRLittleEndian, JPEGLSNearLossless, True),
        (ExplicitVRLittleEndian, JPEG2000, False),  # would need a lossy quality nobody gave
        (ExplicitVRLittleEndian, JPEGBaseline8Bit, False),
        (JPEG2000, RLELossless, False),
        (RLELossless, JPEG2000Lossless, False),
        (JPEG2000, JPEG2000, True),
        ("1.2.3.4", "1.2.3.4", True),
        ("1.2.3.4", ExplicitVRLittleEndian, False),
        (ExplicitVRLittleEndian, "1.2.3.4", False),
        (ExplicitVRLittleEndian, "1.2.840.10008.5.1.4.1.1.2", False),
    ],
)
def test_can_produce(stored, target, expected):
    assert can_produce(stored, target) is expected


def test_choose_transfer_syntax_takes_the_first_producible():
    assert choose_transfer_syntax(JPEG2000, ["*"]) == JPEG2000
    assert choose_transfer_syntax(JPEG2000, [RLELossless, ExplicitVRLittleEndian, JPEG2000]) == ExplicitVRLittleEndian
    assert choose_transfer_syntax(JPEG2000, [RLELossless, JPEG2000, ExplicitVRLittleEndian]) == JPEG2000
    assert choose_transfer_syntax(ExplicitVRLittleEndian, [JPEG2000, "*"]) == ExplicitVRLittleEndian
    assert choose_transfer_syntax(MPEG2, [ExplicitVRLittleEndian, JPEG2000]) is None
    assert choose_transfer_syntax(ExplicitVRLittleEndian, []) is None


# --- native <-> native -----------------------------------------------------------------------------


def test_already_in_the_target_syntax_is_the_same_object():
    part10 = data_file("JPEG2000.dcm")
    assert transcode(part10, JPEG2000) is part10


def test_explicit_implicit_explicit_keeps_every_value():
    original = data_file("CT_small.dcm")
    implicit = transcode(original, ImplicitVRLittleEndian)
    back = transcode(implicit, ExplicitVRLittleEndian)
    assert transfer_syntax_of(implicit) == ImplicitVRLittleEndian
    assert read(implicit).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert read(implicit).PixelData == read(back).PixelData == read(original).PixelData
    assert without_meta(read(back)) == without_meta(read(original))
    assert read(back).file_meta.MediaStorageSOPInstanceUID == read(original).SOPInstanceUID


def test_deflated_both_ways():
    deflated = transcode(data_file("CT_small.dcm"), DeflatedExplicitVRLittleEndian)
    assert transfer_syntax_of(deflated) == DeflatedExplicitVRLittleEndian
    assert len(deflated) < len(data_file("CT_small.dcm"))
    assert read(deflated).PixelData == read(data_file("CT_small.dcm")).PixelData
    inflated = transcode(data_file("image_dfl.dcm"), ExplicitVRLittleEndian)
    assert np.array_equal(read(inflated).pixel_array, read(data_file("image_dfl.dcm")).pixel_array)


@pytest.mark.parametrize(
    ("little", "big"),
    [
        ("MR_small.dcm", "MR_small_bigendian.dcm"),  # 16-bit: swapped in pairs
        ("rtdose.dcm", "rtdose_expb.dcm"),  # 32-bit, implicit VR source: swapped in fours
        ("SC_rgb_small_odd.dcm", "SC_rgb_small_odd_big_endian.dcm"),  # 8-bit OW: word-swapped when big
        ("liver_1frame.dcm", "liver_expb_1frame.dcm"),  # 1-bit OB: a byte stream either way
    ],
)
def test_big_endian_matches_real_big_endian_files(little, big):
    from_big = read(transcode(data_file(big), ExplicitVRLittleEndian))
    from_little = read(transcode(data_file(little), ExplicitVRBigEndian))
    assert np.array_equal(from_big.pixel_array, read(data_file(little)).pixel_array)
    assert np.array_equal(from_little.pixel_array, read(data_file(big)).pixel_array)
    if read(data_file(little)).BitsAllocated > 8:
        assert from_big.PixelData == read(data_file(little)).PixelData
        assert from_little.PixelData == read(data_file(big)).PixelData


def test_big_endian_round_trip_keeps_values():
    original = data_file("MR_small.dcm")
    back = read(transcode(transcode(original, ExplicitVRBigEndian), ExplicitVRLittleEndian))
    assert back.PixelData == read(original).PixelData
    assert without_meta(back) == without_meta(read(original))


def _part10(ds: Dataset, transfer_syntax: str) -> bytes:
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_big_endian_refuses_values_of_unknown_vr():
    ds = read(data_file("MR_small.dcm"))
    ds.add_new(0x00091010, "UN", b"\x01\x02\x03\x04")
    with pytest.raises(TranscodeError, match=r"\(0009,1010\)"):
        transcode(_part10(ds, ExplicitVRLittleEndian), ExplicitVRBigEndian)
    # Staying little endian, the value needs no interpretation.
    assert read(transcode(_part10(ds, ExplicitVRLittleEndian), ImplicitVRLittleEndian))[0x00091010].value == (
        b"\x01\x02\x03\x04"
    )


def test_big_endian_swaps_nested_binary_values_by_their_word_size():
    ds = read(data_file("MR_small.dcm"))
    item = Dataset()
    item.add_new(0x00660016, "OF", np.array([1.5, -2.25], "<f4").tobytes())  # Point Coordinates Data
    item.add_new(0x00660040, "OL", np.array([1, 70000], "<u4").tobytes())  # Long Primitive Point Index List
    ds.add_new(0x00660002, "SQ", [item])  # Surface Sequence
    big = read(transcode(_part10(ds, ExplicitVRLittleEndian), ExplicitVRBigEndian))
    nested = big[0x00660002].value[0]
    assert nested[0x00660016].value == np.array([1.5, -2.25], ">f4").tobytes()
    assert nested[0x00660040].value == np.array([1, 70000], ">u4").tobytes()


def test_pixel_byte_order_rules():
    assert little_endian_pixels(b"\x01\x02\x03\x04", 16, "OW") == b"\x02\x01\x04\x03"
    assert little_endian_pixels(b"\x01\x02\x03\x04", 32, "OW") == b"\x04\x03\x02\x01"
    assert little_endian_pixels(b"\x01\x02\x03\x04", 8, "OW") == b"\x02\x01\x04\x03"
    assert little_endian_pixels(b"\x01\x02\x03\x04", 8, "OB") == b"\x01\x02\x03\x04"
    assert little_endian_pixels(b"\x01\x02", 1, "OB") == b"\x01\x02"
    with pytest.raises(TranscodeError, match="1-bit OW"):
        little_endian_pixels(b"\x01\x02", 1, "OW")
    with pytest.raises(TranscodeError, match="12-bit"):
        little_endian_pixels(b"\x01\x02", 12, "OW")


# --- decompression ---------------------------------------------------------------------------------

COMPRESSED = [
    "JPEG2000.dcm",  # JPEG 2000, lossy
    "MR_small_jp2klossless.dcm",
    "GDCMJ2K_TextGBR.dcm",  # JPEG 2000 lossless, YBR_RCT
    "SC_rgb_rle.dcm",
    "SC_rgb_rle_2frame.dcm",
    "MR_small_RLE.dcm",
    "rtdose_rle.dcm",  # 15 frames, 32-bit
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEGLSNearLossless_16.dcm",
    "SC_rgb_jls_lossy_sample.dcm",
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless, first-order prediction
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline, YBR_FULL
    "examples_ybr_color.dcm",  # JPEG baseline, YBR_FULL_422, 30 frames
]


@pytest.mark.parametrize("name", COMPRESSED)
def test_decompression_gives_pydicoms_own_decoding(name):
    original = read(data_file(name))
    out = read(transcode(data_file(name), ExplicitVRLittleEndian))
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert not out["PixelData"].is_undefined_length
    assert np.array_equal(out.pixel_array, original.pixel_array)
    assert out.SOPInstanceUID == original.SOPInstanceUID


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_lossless_decompression_restores_the_uncompressed_original(name):
    out = read(transcode(data_file(name), ExplicitVRLittleEndian))
    assert out.PixelData == read(data_file("MR_small.dcm")).PixelData


@pytest.mark.parametrize("target", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_decompression_to_other_native_syntaxes(target):
    out = read(transcode(data_file("MR_small_RLE.dcm"), target))
    assert out.file_meta.TransferSyntaxUID == target
    assert np.array_equal(out.pixel_array, read(data_file("MR_small.dcm")).pixel_array)


# --- compression -------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", LOSSLESS_ENCODINGS)
@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "CT_small.dcm"])
def test_lossless_compression_decodes_to_the_original(name, target):
    out = read(transcode(data_file(name), target))
    assert out.file_meta.TransferSyntaxUID == target
    assert out["PixelData"].is_undefined_length
    assert np.array_equal(out.pixel_array, read(data_file(name)).pixel_array)
    assert out.SOPInstanceUID == read(data_file(name)).SOPInstanceUID
    assert "LossyImageCompression" not in out or out.LossyImageCompression == read(data_file(name)).get(
        "LossyImageCompression"
    )


@pytest.mark.parametrize("name", ["ExplVR_BigEnd.dcm", "examples_rgb_color.dcm"])
def test_colour_compression_keeps_the_colours(name):
    # ExplVR_BigEnd.dcm stores its colour planes one after the other (Planar Configuration 1).
    out = read(transcode(data_file(name), RLELossless))
    assert np.array_equal(out.pixel_array, read(data_file(name)).pixel_array)


@pytest.mark.parametrize(
    ("name", "target", "reason"),
    [
        ("MR_small.dcm", JPEG2000, "cannot encode"),
        ("MR_small.dcm", JPEGBaseline8Bit, "cannot encode"),
        ("JPEG2000.dcm", RLELossless, "is not converted to"),
        ("MR_small.dcm", "1.2.3.4", "not a known transfer syntax"),
        ("MR_small.dcm", MPEG2, "cannot encode"),
        ("rtdose.dcm", JPEG2000Lossless, "cannot encode this image"),  # 32 bits is beyond JPEG 2000
        ("JPEG-lossy.dcm", ExplicitVRLittleEndian, "cannot decode"),  # a stream no decoder accepts
    ],
)
def test_impossible_conversions_say_why_briefly(name, target, reason):
    with pytest.raises(TranscodeError, match=reason) as info:
        transcode(data_file(name), target)
    assert "\n" not in str(info.value) and len(str(info.value)) < 120


def test_unreadable_instance():
    part10 = data_file("CT_small.dcm")
    meta_end = 132 + 12 + read(part10).file_meta.FileMetaInformationGroupLength
    # A sequence of undefined length whose first item is no item at all.
    broken = part10[:meta_end] + b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + b"\x00\x00\x00\x00\x08\x00\x00\x00"
    with pytest.raises(TranscodeError, match="cannot be read"):
        transcode(broken, ImplicitVRLittleEndian)


# --- no pixel data ----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", [JPEG2000Lossless, JPEGBaseline8Bit, ExplicitVRBigEndian, ImplicitVRLittleEndian])
def test_an_instance_without_pixel_data_goes_in_any_syntax(target):
    original = data_file("test-SR.dcm")
    out = read(transcode(original, target))
    assert out.file_meta.TransferSyntaxUID == target
    assert out == read(original)
    assert out.ContentSequence == read(original).ContentSequence
