from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import get_frame
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid

from dicomrst.dicomweb.frames import (
    FRAME_MEDIA_TYPES,
    MAX_FRAMES_PER_REQUEST,
    FrameError,
    extract_frames,
    frame_media_type,
    parse_frame_list,
)
from dicomrst.dicomweb.transcode import TranscodeError


def data_file(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def read(part10: bytes) -> Dataset:
    return dcmread(BytesIO(part10))


def part10(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# --- media types -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "media_type"),
    [
        ("1.2.840.10008.1.2", "application/octet-stream"),
        ("1.2.840.10008.1.2.1", "application/octet-stream"),
        ("1.2.840.10008.1.2.1.99", "application/octet-stream"),
        ("1.2.840.10008.1.2.2", "application/octet-stream"),
        ("1.2.840.10008.1.2.4.50", "image/jpeg"),
        ("1.2.840.10008.1.2.4.51", "image/jpeg"),
        ("1.2.840.10008.1.2.4.57", "image/jpeg"),
        ("1.2.840.10008.1.2.4.70", "image/jpeg"),
        ("1.2.840.10008.1.2.4.80", "image/jls"),
        ("1.2.840.10008.1.2.4.81", "image/jls"),
        ("1.2.840.10008.1.2.4.90", "image/jp2"),
        ("1.2.840.10008.1.2.4.91", "image/jp2"),
        ("1.2.840.10008.1.2.4.92", "image/jpx"),
        ("1.2.840.10008.1.2.4.93", "image/jpx"),
        ("1.2.840.10008.1.2.5", "image/dicom-rle"),
        ("1.2.840.10008.1.2.4.201", "image/jphc"),
        ("1.2.840.10008.1.2.4.202", "image/jphc"),
        ("1.2.840.10008.1.2.4.203", "image/jphc"),
        ("1.2.840.10008.1.2.4.100", "video/mpeg"),
        ("1.2.840.10008.1.2.4.101.1", "video/mpeg"),
        ("1.2.840.10008.1.2.4.102", "video/mp4"),
        ("1.2.840.10008.1.2.4.106.1", "video/mp4"),
        ("1.2.840.10008.1.2.4.107", "video/H265"),
        ("1.2.840.10008.1.2.4.108", "video/H265"),
    ],
)
def test_frame_media_type(ts, media_type):
    assert frame_media_type(ts) == media_type == FRAME_MEDIA_TYPES[ts]


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2.4.52", "1.2.3.4", ""])
def test_frame_media_type_unknown(ts):
    with pytest.raises(FrameError):
        frame_media_type(ts)


def test_every_mapped_syntax_is_one_pydicom_knows():
    from pydicom.uid import UID

    assert all(UID(ts).is_transfer_syntax for ts in FRAME_MEDIA_TYPES)


# --- parse_frame_list -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1", [1]), ("1,3,5", [1, 3, 5]), ("5,1,5", [5, 1, 5]), ("0010", [10]), ("9999999999", [9999999999])],
)
def test_parse_frame_list(text, expected):
    assert parse_frame_list(text) == expected


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("", "''"),
        ("0", "'0'"),
        ("1,0", "'0'"),
        ("1,", "''"),
        (",1", "''"),
        ("1,,2", "''"),
        ("a", "'a'"),
        ("-1", "'-1'"),
        ("+1", "'+1'"),
        (" 1", "' 1'"),
        ("1 ", "'1 '"),
        ("1.0", "'1.0'"),
        ("1;2", "'1;2'"),
        ("\u0661", "'\u0661'"),  # an Arabic-Indic digit: a digit to str.isdigit, not to a URL
        ("12345678901", "'12345678901'"),
    ],
)
def test_parse_frame_list_names_the_bad_piece(text, bad):
    with pytest.raises(FrameError) as info:
        parse_frame_list(text)
    assert bad in str(info.value)


def test_parse_frame_list_bounds_the_count():
    assert len(parse_frame_list(",".join(["1"] * MAX_FRAMES_PER_REQUEST))) == MAX_FRAMES_PER_REQUEST
    with pytest.raises(FrameError, match="at most"):
        parse_frame_list(",".join(["1"] * (MAX_FRAMES_PER_REQUEST + 1)))


def test_parse_frame_list_shortens_what_it_echoes():
    with pytest.raises(FrameError) as info:
        parse_frame_list("x" * 5000)
    assert len(str(info.value)) < 80


@given(st.one_of(st.text(), st.text(alphabet="0123456789,-+ x", max_size=40)))
def test_parse_frame_list_only_raises_frame_error(text):
    try:
        numbers = parse_frame_list(text)
    except FrameError:
        return
    assert numbers and all(number >= 1 for number in numbers)
    assert ",".join(str(n) for n in numbers) == ",".join(piece.lstrip("0") for piece in text.split(","))


# --- native pixel data --------------------------------------------------------------------------------------


def test_uncompressed_multiframe_frames_concatenate_to_pixel_data():
    part = data_file("rtdose.dcm")  # 15 frames, Implicit VR Little Endian, 32 bits
    ds = read(part)
    frames = extract_frames(part, range(1, 16), decompress=False)
    assert len(frames) == 15
    assert b"".join(frames) == ds.PixelData
    assert frames[6] == ds.pixel_array[6].astype("<u4").tobytes()


def test_frames_come_in_the_order_asked_repeats_included():
    part = data_file("rtdose.dcm")
    all_frames = extract_frames(part, range(1, 16), decompress=False)
    assert extract_frames(part, [15, 2, 2], decompress=False) == [all_frames[14], all_frames[1], all_frames[1]]


def test_big_endian_frames_are_sent_little_endian():
    assert extract_frames(data_file("rtdose_expb.dcm"), [1, 15], decompress=True) == extract_frames(
        data_file("rtdose.dcm"), [1, 15], decompress=False
    )
    assert extract_frames(data_file("MR_small_bigendian.dcm"), [1], decompress=False) == [
        read(data_file("MR_small.dcm")).PixelData
    ]


def test_single_frame_instance():
    part = data_file("CT_small.dcm")
    assert extract_frames(part, [1], decompress=True) == [read(part).PixelData]
    with pytest.raises(FrameError, match="^frame 2 does not exist; the instance has 1$"):
        extract_frames(part, [1, 2], decompress=False)


def test_one_bit_frames_that_end_mid_byte():
    # Three 3x3 frames of 1-bit pixels: 9 bits each, packed back to back from bit 0 of byte 0.
    frames = [np.array(bits, np.uint8) for bits in ([1, 0, 1, 1, 0, 0, 1, 1, 1], [0] * 8 + [1], [1] * 9)]
    ds = Dataset()
    ds.Rows, ds.Columns, ds.NumberOfFrames = 3, 3, 3
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 1, 1, 0, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    packed = np.packbits(np.concatenate(frames), bitorder="little").tobytes()
    ds.PixelData = packed + b"\0" * (len(packed) % 2)
    ds["PixelData"].VR = "OB"
    got = extract_frames(part10(ds), [1, 2, 3], decompress=False)
    assert got == [np.packbits(frame, bitorder="little").tobytes() for frame in frames]
    assert [len(frame) for frame in got] == [2, 2, 2]


def test_one_bit_byte_aligned_frame():
    part = data_file("liver_1frame.dcm")  # 512x512 1-bit
    assert extract_frames(part, [1], decompress=False) == [read(part).PixelData]


def test_float_pixel_data_frames():
    values = np.arange(2 * 2 * 3, dtype="<f4").reshape(3, 2, 2)
    ds = Dataset()
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel, ds.BitsAllocated = 2, 2, 3, 1, 32
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.FloatPixelData = values.tobytes()
    assert extract_frames(part10(ds), [3, 1], decompress=False) == [values[2].tobytes(), values[0].tobytes()]


def test_no_pixel_data():
    with pytest.raises(FrameError, match="no pixel data"):
        extract_frames(data_file("test-SR.dcm"), [1], decompress=False)


def test_short_pixel_data_is_a_stored_data_fault():
    ds = read(data_file("rtdose.dcm"))
    ds.PixelData = ds.PixelData[:1000]
    with pytest.raises(TranscodeError, match="shorter"):
        extract_frames(part10(ds), [1], decompress=False)


# --- encapsulated pixel data ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "numbers"),
    [
        ("SC_rgb_rle_2frame.dcm", [2, 1]),
        ("rtdose_rle.dcm", [1, 8, 15]),
        ("examples_ybr_color.dcm", [30, 1, 17]),  # JPEG baseline, 30 frames
        ("JPEG2000.dcm", [1]),
        ("MR_small_jpeg_ls_lossless.dcm", [1]),
    ],
)
def test_encapsulated_frames_are_pydicoms_get_frame(name, numbers):
    part = data_file(name)
    ds = read(part)
    count = int(ds.get("NumberOfFrames") or 1)
    expected = [get_frame(ds.PixelData, n - 1, number_of_frames=count) for n in numbers]
    assert extract_frames(part, numbers, decompress=False) == expected


def test_encapsulated_frame_beyond_the_last():
    with pytest.raises(FrameError, match="^frame 3 does not exist; the instance has 2$"):
        extract_frames(data_file("SC_rgb_rle_2frame.dcm"), [1, 3], decompress=False)


@pytest.mark.parametrize(
    ("name", "numbers"),
    [
        ("SC_rgb_rle_2frame.dcm", [2, 1]),
        ("rtdose_rle.dcm", [15, 3]),
        ("examples_ybr_color.dcm", [2, 29]),
        ("JPEG2000.dcm", [1]),
        ("JPEGLSNearLossless_16.dcm", [1]),
        ("SC_rgb_jpeg_gdcm.dcm", [1]),
    ],
)
def test_decompressed_frames_are_pydicoms_decoding_little_endian(name, numbers):
    part = data_file(name)
    ds = read(part)
    expected = [pixel_array(ds, index=n - 1) for n in numbers]
    got = extract_frames(part, numbers, decompress=True)
    assert got == [arr.astype(arr.dtype.newbyteorder("<")).tobytes() for arr in expected]


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm"])
def test_decompressed_lossless_frame_is_the_uncompressed_original(name):
    assert extract_frames(data_file(name), [1], decompress=True) == [read(data_file("MR_small.dcm")).PixelData]


def test_a_frame_no_decoder_accepts():
    with pytest.raises(TranscodeError, match="cannot decode frame 1"):
        extract_frames(data_file("JPEG-lossy.dcm"), [1], decompress=True)
    # As stored, the same frame is fine.
    assert extract_frames(data_file("JPEG-lossy.dcm"), [1], decompress=False)


def test_big_endian_one_bit_ow_is_refused():
    # Whether 1-bit pixels in big endian 16-bit words are word-swapped is not settled: refused.
    ds = read(data_file("liver_expb_1frame.dcm"))
    ds["PixelData"].VR = "OW"
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRBigEndian
    with pytest.raises(TranscodeError, match="1-bit OW"):
        extract_frames(part10(ds, ExplicitVRBigEndian), [1], decompress=False)


def test_jpeg_lossless_decodes_with_the_permissively_licensed_gdcm():
    # GDCM comes with the install; the GPL-licensed pylibjpeg-libjpeg is an optional extra.
    from pydicom.pixels import get_decoder

    lossless = dcmread(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))
    decoder = get_decoder(lossless.file_meta.TransferSyntaxUID)
    assert "gdcm" in decoder.available_plugins
    decoded, _ = decoder.as_array(lossless, decoding_plugin="gdcm")
    assert np.array_equal(decoded, dcmread(get_testdata_file("SC_rgb_rle.dcm")).pixel_array)
