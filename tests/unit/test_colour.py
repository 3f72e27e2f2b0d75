"""Colour as the gateway serves it: when it decodes a YCbCr image (JPEG, JPEG-LS, JPEG 2000, RLE),
pydicom hands it RGB, colour by pixel. The metadata (JSON and XML), the decoded frames and a
transcoded instance must all say so; pixel data sent as stored keeps its own description."""

import xml.etree.ElementTree as ET
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
import pydicom.data
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import convert_color_space
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from dicomrst.dicomweb import frames as frames_module
from dicomrst.dicomweb.frames import decoded_colour_attributes, decodes_frames, extract_frames
from dicomrst.dicomweb.metadata import instance_metadata, instance_metadata_xml
from dicomrst.dicomweb.transcode import TranscodeError, can_produce, transcode, transfer_syntax_of
from dicomrst.dicomweb.dicom_xml import NATIVE_DICOM_NS

URL = "https://gw.example/aets/PACS/rs/studies/1.2/series/1.2.3/instances/1.2.3.4"
NS = {"n": NATIVE_DICOM_NS}
PHOTOMETRIC_INTERPRETATION = "00280004"
PLANAR_CONFIGURATION = "00280006"
NATIVE = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's notes on odd sample files


def data_file(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def read(part10: bytes) -> Dataset:
    return dcmread(BytesIO(part10))


def save(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def json_colour(part10: bytes) -> tuple[str, int | None]:
    metadata = instance_metadata(part10, URL)
    planar = metadata.get(PLANAR_CONFIGURATION, {}).get("Value", [None])[0]
    return metadata[PHOTOMETRIC_INTERPRETATION]["Value"][0], planar


def xml_colour(part10: bytes) -> tuple[str, int | None]:
    root = ET.fromstring(instance_metadata_xml(part10, URL))

    def text(tag: str) -> str | None:
        value = root.find(f"n:DicomAttribute[@tag='{tag}']/n:Value", NS)
        return None if value is None else value.text

    planar = text(PLANAR_CONFIGURATION)
    return text(PHOTOMETRIC_INTERPRETATION), None if planar is None else int(planar)


def frame_count(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def decompressed(part10: bytes) -> Dataset:
    """pydicom's own decompression, the reference for what the gateway sends decoded."""
    ds = read(part10)
    ds.decompress(generate_instance_uid=False)
    return ds


# --- instances made for the purpose: a known RGB image stored as YCbCr in each codec -----------------


def rgb_source() -> Dataset:
    ds = read(data_file("SC_rgb_rle_2frame.dcm"))  # 2 frames of 100x100 8-bit RGB
    ds.decompress(generate_instance_uid=False)
    return ds


def stored_as(transfer_syntax: str, photometric: str, planar: int = 0, **options) -> tuple[bytes, np.ndarray]:
    """An instance of rgb_source's image in `transfer_syntax` labelled `photometric`, and the RGB
    pixels decoding it must give back."""
    ds = rgb_source()
    rgb = ds.pixel_array
    ds.PhotometricInterpretation = photometric
    if photometric == "YBR_FULL":
        # Lossless codecs keep the YCbCr samples exactly; pydicom's conversion back is the reference.
        ybr = convert_color_space(rgb, "RGB", "YBR_FULL")
        ds.compress(transfer_syntax, ybr, generate_instance_uid=False, **options)
        expected = convert_color_space(ybr, "YBR_FULL", "RGB")
    else:
        # YBR_ICT / YBR_RCT: the JPEG 2000 codestream carries the colour transform itself.
        ds.compress(transfer_syntax, rgb, generate_instance_uid=False, use_mct=True, **options)
        expected = rgb
    ds.PlanarConfiguration = planar
    return save(ds), expected


MADE = {
    "rle-ybr-full": lambda: stored_as(RLELossless, "YBR_FULL"),
    # RLE keeps colour by plane whatever the header says; decoded it is colour by pixel.
    "rle-ybr-full-planar-1": lambda: stored_as(RLELossless, "YBR_FULL", planar=1),
    "jpeg-ls-ybr-full": lambda: stored_as(JPEGLSLossless, "YBR_FULL"),
    "j2k-lossless-ybr-full": lambda: stored_as(JPEG2000Lossless, "YBR_FULL"),
    "j2k-lossless-ybr-rct": lambda: stored_as(JPEG2000Lossless, "YBR_RCT"),
    "j2k-ybr-ict": lambda: stored_as(JPEG2000, "YBR_ICT", j2k_cr=[20]),
}

# pydicom's sample files whose colour is stored as YCbCr in a compressed syntax.
YCBCR_SAMPLES = [
    "SC_rgb_dcmtk_+eb+cy+np.dcm",  # JPEG baseline, YBR_FULL_422
    "SC_rgb_dcmtk_+eb+cy+s2.dcm",  # JPEG baseline, YBR_FULL_422
    "examples_ybr_color.dcm",  # JPEG baseline, YBR_FULL_422, 30 frames
    "SC_rgb_dcmtk_+eb+cy+n2.dcm",  # JPEG baseline, YBR_FULL
    "SC_rgb_jpeg_lossy_gdcm.dcm",  # JPEG baseline, YBR_FULL
    "SC_rgb_small_odd_jpeg.dcm",  # JPEG baseline, YBR_FULL, 3x3
    "examples_jpeg2k.dcm",  # JPEG 2000 lossless, YBR_RCT
    "GDCMJ2K_TextGBR.dcm",  # JPEG 2000 lossless, YBR_RCT
]

# Colour already RGB, colour by pixel, in a compressed syntax: described as stored.
RGB_SAMPLES = ["SC_rgb_rle.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_gdcm_KY.dcm",
               "SC_rgb_jpeg.dcm", "SC_rgb_jls_lossy_line.dcm"]
MONOCHROME_SAMPLES = ["JPEG2000.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_small_odd.dcm"]


@pytest.fixture(scope="module", params=[*YCBCR_SAMPLES, *MADE])
def ycbcr(request) -> bytes:
    if request.param in MADE:
        return MADE[request.param]()[0]
    return data_file(request.param)


def test_the_samples_are_what_they_claim(ycbcr):
    ds = read(ycbcr)
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    assert ds.PhotometricInterpretation.startswith("YBR_")
    assert decodes_frames(ds.file_meta.TransferSyntaxUID)


# --- metadata ----------------------------------------------------------------------------------------


def test_metadata_of_a_ycbcr_image_says_rgb_colour_by_pixel(ycbcr):
    assert json_colour(ycbcr) == ("RGB", 0)
    assert xml_colour(ycbcr) == ("RGB", 0)


def test_metadata_changes_nothing_else(ycbcr):
    metadata = instance_metadata(ycbcr, URL)
    ds = read(ycbcr)
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    expected = instance_metadata(save(ds), URL)
    assert metadata == expected


def test_metadata_is_what_pydicom_decompress_writes(ycbcr):
    reference = decompressed(ycbcr)
    assert json_colour(ycbcr) == (reference.PhotometricInterpretation, reference.PlanarConfiguration)


@pytest.mark.parametrize("name", [*RGB_SAMPLES, *MONOCHROME_SAMPLES, "SC_ybr_full_422_uncompressed.dcm"])
def test_metadata_of_rgb_monochrome_and_native_images_is_as_stored(name, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded to describe an image whose description cannot change")

    monkeypatch.setattr(frames_module, "_decode", refuse)
    part10 = data_file(name)
    ds = read(part10)
    stored = (ds.PhotometricInterpretation, ds.get("PlanarConfiguration"))
    assert json_colour(part10) == stored
    assert xml_colour(part10) == stored


def test_native_ycbcr_is_described_and_sent_as_stored():
    part10 = data_file("SC_ybr_full_422_uncompressed.dcm")
    ds = read(part10)
    assert not ds.file_meta.TransferSyntaxUID.is_compressed and ds.PhotometricInterpretation == "YBR_FULL_422"
    assert json_colour(part10) == ("YBR_FULL_422", 0)
    # Frames are the stored bytes, two thirds of a full-colour frame, and a native-to-native
    # transcoding keeps them and their name.
    assert len(ds.PixelData) == ds.Rows * ds.Columns * 2
    assert extract_frames(part10, [1], decompress=True) == [ds.PixelData]
    implicit = read(transcode(part10, ImplicitVRLittleEndian))
    assert implicit.PhotometricInterpretation == "YBR_FULL_422" and implicit.PixelData == ds.PixelData


def test_rgb_colour_by_plane_stored_compressed_is_sent_and_described_colour_by_pixel():
    # RLE always encodes colour by plane; pydicom decodes it to colour by pixel whatever the header.
    ds = read(data_file("SC_rgb_rle.dcm"))
    ds.PlanarConfiguration = 1
    part10 = save(ds)
    assert json_colour(part10) == xml_colour(part10) == ("RGB", 0)
    assert read(transcode(part10, ExplicitVRLittleEndian)).PlanarConfiguration == 0
    assert extract_frames(part10, [1], decompress=True) == [read(data_file("SC_rgb_rle.dcm")).pixel_array.tobytes()]


def test_no_decoder_installed_means_described_as_stored(monkeypatch):
    monkeypatch.setattr(frames_module, "can_produce", lambda stored, target: False)
    part10 = data_file("SC_rgb_dcmtk_+eb+cy+np.dcm")
    assert json_colour(part10) == ("YBR_FULL_422", 0)


def test_a_first_frame_that_cannot_be_decoded_is_described_as_stored(monkeypatch, caplog):
    def broken(ds, index):
        raise ValueError("damaged codestream")

    monkeypatch.setattr(frames_module, "_decode", broken)
    part10 = data_file("SC_rgb_dcmtk_+eb+cy+np.dcm")
    assert json_colour(part10) == ("YBR_FULL_422", 0)
    assert xml_colour(part10) == ("YBR_FULL_422", 0)
    assert "cannot be decoded" in caplog.text


def test_only_the_first_frame_is_decoded_for_the_metadata(monkeypatch):
    decoded = []
    real = frames_module._decode

    def counting(ds, index):
        decoded.append(index)
        return real(ds, index)

    monkeypatch.setattr(frames_module, "_decode", counting)
    assert json_colour(data_file("examples_ybr_color.dcm")) == ("RGB", 0)
    assert decoded == [0]


def test_decoded_colour_attributes_lists_only_what_changes():
    assert decoded_colour_attributes(read(data_file("SC_rgb_dcmtk_+eb+cy+np.dcm"))) == {
        "PhotometricInterpretation": "RGB"
    }
    ds = read(data_file("SC_rgb_rle.dcm"))
    ds.PlanarConfiguration = 1
    assert decoded_colour_attributes(ds) == {"PlanarConfiguration": 0}
    assert decoded_colour_attributes(read(data_file("SC_rgb_rle.dcm"))) == {}
    assert decoded_colour_attributes(read(data_file("JPEG2000.dcm"))) == {}


# --- decoded frames --------------------------------------------------------------------------------------


def test_decoded_frames_are_pydicoms_rgb_colour_by_pixel(ycbcr):
    reference = decompressed(ycbcr)
    count = frame_count(reference)
    arr = reference.pixel_array.reshape(count, reference.Rows, reference.Columns, 3)  # colour by pixel
    numbers = sorted({1, count})
    assert extract_frames(ycbcr, numbers, decompress=True) == [arr[n - 1].tobytes() for n in numbers]


@pytest.mark.parametrize("name", sorted(MADE))
def test_decoded_frames_are_the_rgb_image_stored(name):
    part10, expected = MADE[name]()
    got = [np.frombuffer(frame, np.uint8).reshape(expected.shape[1:]) for frame in extract_frames(part10, [1, 2], True)]
    # Lossless codecs give the very pixels back; JPEG 2000 with YBR_ICT is lossy.
    tolerance = 4 if name == "j2k-ybr-ict" else 0
    assert all(np.abs(frame.astype(int) - want.astype(int)).max() <= tolerance for frame, want in zip(got, expected))


def test_frames_as_stored_are_the_stored_codestream():
    part10 = data_file("SC_rgb_dcmtk_+eb+cy+np.dcm")
    (frame,) = extract_frames(part10, [1], decompress=False)
    assert frame.startswith(b"\xff\xd8")  # the JPEG stream, in its own YCbCr
    assert frame.rstrip(b"\x00").endswith(b"\xff\xd9")


# --- transcoded instances --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", NATIVE)
def test_transcoded_to_a_native_syntax_says_rgb_colour_by_pixel(ycbcr, target):
    out = read(transcode(ycbcr, target))
    assert out.file_meta.TransferSyntaxUID == target
    assert (out.PhotometricInterpretation, out.PlanarConfiguration) == ("RGB", 0)
    assert np.array_equal(out.pixel_array, decompressed(ycbcr).pixel_array)
    assert out.SOPInstanceUID == read(ycbcr).SOPInstanceUID


def test_as_stored_keeps_its_own_photometric_interpretation(ycbcr):
    stored_ts = transfer_syntax_of(ycbcr)
    assert transcode(ycbcr, stored_ts) is ycbcr
    assert read(ycbcr).PhotometricInterpretation.startswith("YBR_")


# --- one description across metadata, frames and transcoded instances ----------------------------------


def test_metadata_frames_and_transcoded_instance_agree(ycbcr):
    transcoded = read(transcode(ycbcr, ExplicitVRLittleEndian))
    assert json_colour(ycbcr) == xml_colour(ycbcr) == (
        transcoded.PhotometricInterpretation,
        transcoded.PlanarConfiguration,
    )
    count = frame_count(transcoded)
    size = transcoded.Rows * transcoded.Columns * 3 * transcoded.BitsAllocated // 8
    frames = extract_frames(ycbcr, list(range(1, count + 1)), decompress=True)
    assert b"".join(frames) == transcoded.PixelData[: size * count]


def _colour_samples() -> list[str]:
    """Every local pydicom sample in a compressed syntax with 3 samples per pixel."""
    names = []
    for path in sorted((Path(pydicom.data.__file__).parent / "test_files").glob("*.dcm")):
        try:
            ds = dcmread(path, stop_before_pixels=True)
            if ds.file_meta.TransferSyntaxUID.is_compressed and int(ds.get("SamplesPerPixel") or 1) == 3:
                names.append(path.name)
        except Exception:
            continue
    return names


@pytest.mark.parametrize("name", _colour_samples())
def test_every_compressed_colour_sample_is_described_as_it_is_sent(name):
    part10 = data_file(name)
    stored = read(part10)
    stored_colour = (stored.PhotometricInterpretation, stored.get("PlanarConfiguration"))
    if not can_produce(stored.file_meta.TransferSyntaxUID, ExplicitVRLittleEndian):
        assert json_colour(part10) == stored_colour
        return
    try:
        reference = decompressed(part10)
    except Exception:
        assert json_colour(part10) == stored_colour
        with pytest.raises(TranscodeError):
            extract_frames(part10, [1], decompress=True)
        return
    assert json_colour(part10) == (reference.PhotometricInterpretation, reference.PlanarConfiguration)
    assert reference.PhotometricInterpretation in ("RGB", stored.PhotometricInterpretation)
    size = reference.Rows * reference.Columns * 3 * reference.BitsAllocated // 8
    assert extract_frames(part10, [1], decompress=True) == [reference.PixelData[:size]]
