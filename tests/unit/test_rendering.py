"""Rendered resources: query parameters, media type negotiation, and rendered pixels compared with
references computed here from the formulas of PS3.3 (rescale C.11.1.1.2, windows C.11.2.1.2 and
C.11.2.1.3, YBR_FULL C.7.6.3.1.2, palette lookup C.7.6.3.1.5/6), not with the functions the renderer
uses. Images are pydicom's test files; the few attributes a test needs that none of them has (a
MONOCHROME1 image, a VOI LUT, functional groups, a pixel aspect ratio) are set on a copy."""

from __future__ import annotations

import copy
import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array
from pydicom.sequence import Sequence

from dicomrst.dicomweb.accept import NotAcceptable
from dicomrst.dicomweb.frames import FrameError
from dicomrst.dicomweb.rendered_params import (
    _MAX_TEXT,
    DEFAULT_QUALITY,
    MAX_VIEWPORT_SIDE,
    RENDERED_MEDIA_TYPES,
    THUMBNAIL_VIEWPORT,
    Annotation,
    IccProfile,
    RenderingError,
    RenderParameters,
    SourceRegion,
    Viewport,
    Window,
    WindowFunction,
    negotiate_rendered,
    parse_rendered_parameters,
    thumbnail_parameters,
)
from dicomrst.dicomweb.rendering import NotRenderable, _colour, render, render_frames, render_instance
from dicomrst.dicomweb.transcode import TranscodeError

PNG, JPEG, GIF = "image/png", "image/jpeg", "image/gif"
NO_PARAMETERS = RenderParameters()


def read(name: str) -> Dataset:
    return dcmread(get_testdata_file(name))


def params(**query: str) -> RenderParameters:
    return parse_rendered_parameters(query.items())


def decoded(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)))


def rendered(ds: Dataset, parameters: RenderParameters = NO_PARAMETERS, media_type: str = PNG, frame: int = 0) -> np.ndarray:
    return decoded(render(ds, frame, parameters, media_type)).astype(np.float64)


def stored(ds: Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float64)


def rescaled(ds: Dataset) -> np.ndarray:
    # PS3.3 C.11.1.1.2: output units = m * SV + b
    return stored(ds) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    # PS3.3 C.11.2.1.2.1, output range 0..255
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    y = np.where(x <= center - 0.5 - (width - 1) / 2, 0, y)
    y = np.where(x > center - 0.5 + (width - 1) / 2, 255, y)
    return np.rint(y)


def linear_exact(x: np.ndarray, center: float, width: float) -> np.ndarray:
    # PS3.3 C.11.2.1.3.2
    return np.rint(np.clip(((x - center) / width + 0.5) * 255, 0, 255))


def sigmoid(x: np.ndarray, center: float, width: float) -> np.ndarray:
    # PS3.3 C.11.2.1.3.1
    return np.rint(255 / (1 + np.exp(-4 * (x - center) / width)))


def full_range(x: np.ndarray) -> np.ndarray:
    return np.rint((x - x.min()) / (x.max() - x.min()) * 255)


def max_error(actual: np.ndarray, expected: np.ndarray) -> float:
    assert actual.shape == expected.shape
    return float(np.abs(actual - expected).max())


def mean_error(actual: np.ndarray, expected: np.ndarray) -> float:
    assert actual.shape == expected.shape
    return float(np.abs(actual - expected).mean())


# --- query parameters ----------------------------------------------------------------------------------


def test_no_parameters_mean_the_defaults() -> None:
    parsed = parse_rendered_parameters([])
    assert parsed == RenderParameters()
    assert parsed.window is None and parsed.viewport is None
    assert parsed.quality == DEFAULT_QUALITY == 90
    assert parsed.annotation == frozenset() and parsed.icc_profile is IccProfile.NO


def test_content_negotiation_parameters_are_left_to_the_web_layer() -> None:
    assert parse_rendered_parameters([("accept", "image/png"), ("charset", "utf-8")]) == RenderParameters()


@pytest.mark.parametrize(
    ("value", "window"),
    [
        ("40,400", Window(40, 400, WindowFunction.LINEAR)),
        ("40,400,LINEAR", Window(40, 400, WindowFunction.LINEAR)),
        ("40,400,", Window(40, 400, WindowFunction.LINEAR)),
        ("-600.5, 1500.25, linear_exact", Window(-600.5, 1500.25, WindowFunction.LINEAR_EXACT)),
        ("1e2,0.5,SIGMOID", Window(100, 0.5, WindowFunction.SIGMOID)),
        ("+.5,1,LINEAR", Window(0.5, 1, WindowFunction.LINEAR)),
    ],
)
def test_window(value: str, window: Window) -> None:
    assert params(window=value).window == window


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("40", "'40' is not 'center,width,function'"),
        ("40,400,LINEAR,1", "'40,400,LINEAR,1' is not 'center,width,function'"),
        ("a,400", "center 'a' is not a number"),
        ("40,", "width '' is not a number"),
        ("nan,400", "center 'nan' is not a number"),
        ("1e999,400", "center '1e999' is not a number"),
        ("40,0x10", "width '0x10' is not a number"),
        ("40,0.5", "width '0.5' is below 1, the least a LINEAR window can have"),
        ("40,0,SIGMOID", "width '0' is not above 0"),
        ("40,-3,LINEAR_EXACT", "width '-3' is not above 0"),
        ("40,400,CUBIC", "function 'CUBIC' is not one of LINEAR, LINEAR_EXACT, SIGMOID"),
    ],
)
def test_malformed_window(value: str, reason: str) -> None:
    with pytest.raises(RenderingError) as raised:
        params(window=value)
    assert str(raised.value) == f"query parameter 'window': {reason}"
    assert raised.value.parameter == "window"


@pytest.mark.parametrize(
    ("value", "viewport"),
    [
        ("128,64", Viewport(128, 64)),
        (" 128 , 64 ", Viewport(128, 64)),
        ("512,512,10,20,100,200", Viewport(512, 512, SourceRegion(10, 20, 100, 200))),
        ("512,512,10.5,0,100.25,200", Viewport(512, 512, SourceRegion(10.5, 0, 100.25, 200))),
        ("512,512,,,100,", Viewport(512, 512, SourceRegion(None, None, 100, None))),
        ("512,512,,,,", Viewport(512, 512)),
        ("256,256,100,0,-50,80", Viewport(256, 256, SourceRegion(100, 0, -50, 80))),
        (f"{MAX_VIEWPORT_SIDE},1", Viewport(MAX_VIEWPORT_SIDE, 1)),
    ],
)
def test_viewport(value: str, viewport: Viewport) -> None:
    assert params(viewport=value).viewport == viewport


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10", "'10' is neither 'vw,vh' nor 'vw,vh,sx,sy,sw,sh'"),
        ("10,10,1,2,3", "'10,10,1,2,3' is neither 'vw,vh' nor 'vw,vh,sx,sy,sw,sh'"),
        ("0,10", f"vw '0' is not an integer from 1 to {MAX_VIEWPORT_SIDE}"),
        ("10,8193", f"vh '8193' is not an integer from 1 to {MAX_VIEWPORT_SIDE}"),
        ("10.5,10", f"vw '10.5' is not an integer from 1 to {MAX_VIEWPORT_SIDE}"),
        ("9" * 30 + ",10", f"vw '{'9' * 30}' is not an integer from 1 to {MAX_VIEWPORT_SIDE}"),
        (",10", f"vw '' is not an integer from 1 to {MAX_VIEWPORT_SIDE}"),
        ("10,10,-1,0,5,5", "sx '-1' is not a number from 0 to 65535"),
        ("10,10,0,x,5,5", "sy 'x' is not a number from 0 to 65535"),
        ("10,10,0,0,0,5", "sw '0' is not a non-zero number from -65535 to 65535"),
        ("10,10,0,0,5,70000", "sh '70000' is not a non-zero number from -65535 to 65535"),
        ("10,10,0,0,5,1e3", "sh '1e3' is not a non-zero number from -65535 to 65535"),
    ],
)
def test_malformed_viewport(value: str, reason: str) -> None:
    with pytest.raises(RenderingError) as raised:
        params(viewport=value)
    assert str(raised.value) == f"query parameter 'viewport': {reason}"


@pytest.mark.parametrize(("value", "quality"), [("1", 1), ("75", 75), ("100", 100), ("007", 7)])
def test_quality(value: str, quality: int) -> None:
    assert params(quality=value).quality == quality


@pytest.mark.parametrize("value", ["0", "101", "abc", "50.5", "-5", "1" + "0" * 100])
def test_malformed_quality(value: str) -> None:
    with pytest.raises(RenderingError, match=r"^query parameter 'quality': '.*' is not an integer from 1 to 100$"):
        params(quality=value)


@pytest.mark.parametrize(
    ("value", "keywords"),
    [
        ("patient", {Annotation.PATIENT}),
        ("technique", {Annotation.TECHNIQUE}),
        ("patient,technique", {Annotation.PATIENT, Annotation.TECHNIQUE}),
        ("Technique , PATIENT", {Annotation.PATIENT, Annotation.TECHNIQUE}),
    ],
)
def test_annotation(value: str, keywords: set[Annotation]) -> None:
    assert params(annotation=value).annotation == keywords


@pytest.mark.parametrize("value", ["foo", "patient,foo", "patient,"])
def test_unknown_annotation(value: str) -> None:
    with pytest.raises(RenderingError, match=r"^query parameter 'annotation': '.*' is not 'patient' or 'technique'$"):
        params(annotation=value)


@pytest.mark.parametrize("value", ["no", "yes", "srgb", "adobergb", "rommrgb", "SRGB"])
def test_icc_profile(value: str) -> None:
    assert params(iccprofile=value).icc_profile is IccProfile(value.lower())


def test_unknown_icc_profile() -> None:
    with pytest.raises(RenderingError) as raised:
        params(iccprofile="displayp3")
    assert str(raised.value) == "query parameter 'iccprofile': 'displayp3' is not one of no, yes, srgb, adobergb, rommrgb"


@pytest.mark.parametrize("name", ["foo", "Window", "VIEWPORT", "windowcenter", "rows", "columns", "region", "frame", "", "accept "])
def test_no_unknown_parameter_passes_silently(name: str) -> None:
    with pytest.raises(RenderingError) as raised:
        parse_rendered_parameters([("quality", "50"), (name, "1")])
    assert str(raised.value).startswith(f"unknown query parameter {name!r} for a rendered resource; known: annotation, ")
    assert raised.value.parameter == name


def test_a_parameter_given_twice_is_refused() -> None:
    with pytest.raises(RenderingError, match=r"^query parameter 'window': given more than once$"):
        parse_rendered_parameters([("window", "40,400"), ("window", "40,400")])


@pytest.mark.parametrize("name", ["window", "viewport", "quality", "annotation", "iccprofile"])
def test_an_empty_value_is_refused(name: str) -> None:
    with pytest.raises(RenderingError, match=rf"^query parameter '{name}': has no value$"):
        parse_rendered_parameters([(name, " ")])


def test_a_long_value_is_refused_before_parsing() -> None:
    with pytest.raises(RenderingError, match=rf"^query parameter 'window': a value of {_MAX_TEXT + 1} characters is too long$"):
        params(window="1" * (_MAX_TEXT + 1))


def test_a_rendering_error_is_a_value_error() -> None:
    assert issubclass(RenderingError, ValueError)


def test_thumbnails_fit_a_small_box_unless_a_viewport_is_given() -> None:
    assert thumbnail_parameters(RenderParameters()).viewport == THUMBNAIL_VIEWPORT == Viewport(128, 128)
    assert thumbnail_parameters(params(viewport="64,32")).viewport == Viewport(64, 32)
    assert thumbnail_parameters(params(quality="50")).quality == 50


# --- media types -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, JPEG),
        ("", JPEG),
        ("*/*", JPEG),
        ("image/*", JPEG),
        ("image/png", PNG),
        ("image/gif", GIF),
        ("IMAGE/PNG", PNG),
        ("image/png;q=0.4, image/gif;q=0.9", GIF),
        ("application/dicom, image/png;q=0.1", PNG),
        ("image/webp, image/*;q=0.5", JPEG),
        ("image/webp, not a media type", JPEG),  # something was ignored: taken as */* (PS3.18 8.7.7)
    ],
)
def test_negotiate_rendered(accept: str | None, media_type: str) -> None:
    assert negotiate_rendered(accept) == media_type


@pytest.mark.parametrize("accept", ["application/dicom", "image/jp2", 'multipart/related; type="image/jpeg"', "image/png;q=0"])
def test_nothing_acceptable(accept: str) -> None:
    with pytest.raises(NotAcceptable) as raised:
        negotiate_rendered(accept)
    assert raised.value.available == RENDERED_MEDIA_TYPES == (JPEG, PNG, GIF)


# --- grayscale -------------------------------------------------------------------------------------------


def test_signed_ct_without_a_window_spreads_its_rescaled_range() -> None:
    ds = read("CT_small.dcm")  # signed 16-bit, Rescale Intercept -1024, no window
    assert ds.PixelRepresentation == 1 and "WindowCenter" not in ds
    assert max_error(rendered(ds), full_range(rescaled(ds))) <= 1


def test_the_stored_window_is_applied() -> None:
    ds = read("MR_small.dcm")
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (600, 1600)
    assert max_error(rendered(ds), linear(stored(ds), 600, 1600)) <= 1


def test_the_first_of_several_stored_windows_is_applied() -> None:
    ds = read("examples_overlay.dcm")  # 12 of 16 bits, two windows
    center, width = float(ds.WindowCenter[0]), float(ds.WindowWidth[0])
    assert ds.BitsStored == 12 and len(ds.WindowCenter) == 2
    assert max_error(rendered(ds), linear(stored(ds), center, width)) <= 1


def test_a_window_parameter_overrides_the_stored_one_on_rescaled_values() -> None:
    ct = read("CT_small.dcm")
    assert max_error(rendered(ct, params(window="40,400")), linear(rescaled(ct), 40, 400)) <= 1
    mr = read("MR_small.dcm")
    assert max_error(rendered(mr, params(window="300,200,LINEAR")), linear(stored(mr), 300, 200)) <= 1


def test_linear_exact_window() -> None:
    ds = read("CT_small.dcm")
    assert max_error(rendered(ds, params(window="100,1000,LINEAR_EXACT")), linear_exact(rescaled(ds), 100, 1000)) <= 1


def test_sigmoid_window() -> None:
    ds = read("CT_small.dcm")
    assert max_error(rendered(ds, params(window="40,400,SIGMOID")), sigmoid(rescaled(ds), 40, 400)) <= 1


def test_a_stored_sigmoid_function_is_applied() -> None:
    ds = read("MR_small.dcm")
    ds.VOILUTFunction = "SIGMOID"
    assert max_error(rendered(ds), sigmoid(stored(ds), 600, 1600)) <= 1


def test_monochrome1_is_inverted_after_the_window() -> None:
    ds = read("MR_small.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"
    image = rendered(ds)
    assert max_error(image, 255 - linear(stored(ds), 600, 1600)) <= 1
    # The lower the stored value, the brighter: the opposite of MONOCHROME2.
    values = stored(ds)
    assert image[values == values.min()].min() > 200 > 20 > image[values == values.max()].max()
    ds.PhotometricInterpretation = "MONOCHROME2"
    assert rendered(ds)[values == values.min()].max() < 55


def test_monochrome1_with_a_window_parameter() -> None:
    ds = read("CT_small.dcm")
    ds.PhotometricInterpretation = "MONOCHROME1"
    assert max_error(rendered(ds, params(window="40,400")), 255 - linear(rescaled(ds), 40, 400)) <= 1


def test_8_bit_grayscale_without_a_window() -> None:
    ds = read("image_dfl.dcm")  # 8-bit MONOCHROME2, deflated
    assert ds.BitsAllocated == 8 and "WindowCenter" not in ds
    assert max_error(rendered(ds), full_range(stored(ds))) <= 1


def test_1_bit_grayscale() -> None:
    ds = read("liver_1frame.dcm")
    image = rendered(ds)
    assert set(np.unique(image)) == {0, 255}
    assert max_error(image, stored(ds) * 255) == 0


def test_a_voi_lut_is_preferred_to_the_window() -> None:
    ds = read("MR_small.dcm")  # stored values 127..2145, a window too
    entries = 4096
    lut = (np.arange(entries) * 16)[::-1]  # an inverting LUT, unlike the window
    item = Dataset()
    item.LUTDescriptor = [entries, 0, 16]
    item.add_new(0x00283006, "US", lut.tolist())
    ds.VOILUTSequence = Sequence([item])
    # 16-bit entries: the LUT's output range is 0..65535 (PS3.3 C.11.2.1.1).
    expected = np.rint(lut[stored(ds).astype(int)] * 255 / 65535)
    assert max_error(rendered(ds), expected) <= 1


def test_a_modality_lut_sequence() -> None:
    ds = read("MR_small.dcm")
    del ds.WindowCenter, ds.WindowWidth
    lut = (np.arange(4096) % 1000) * 8  # not monotonic: only a lookup gives it
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.ModalityLUTType = "US"
    item.add_new(0x00283006, "US", lut.tolist())
    ds.ModalityLUTSequence = Sequence([item])
    assert max_error(rendered(ds), full_range(lut[stored(ds).astype(int)].astype(np.float64))) <= 1


def test_signed_12_bit_made_in_memory() -> None:
    ds = Dataset()
    values = (np.arange(32 * 64).reshape(32, 64) * 2 - 2048).astype(np.int16)  # -2048..2046
    ds.set_pixel_data(values, "MONOCHROME2", 12)
    assert ds.PixelRepresentation == 1 and ds.BitsStored == 12
    assert max_error(rendered(ds), full_range(values.astype(np.float64))) <= 1
    assert max_error(rendered(ds, params(window="0,1000")), linear(values.astype(np.float64), 0, 1000)) <= 1


def test_functional_groups_give_the_frame_its_rescale_and_window() -> None:
    ds = read("CT_small.dcm")
    del ds.RescaleSlope, ds.RescaleIntercept
    transformation = Dataset()
    transformation.RescaleSlope, transformation.RescaleIntercept, transformation.RescaleType = 2, -100, "US"
    window = Dataset()
    window.WindowCenter, window.WindowWidth = 300, 1200
    shared = Dataset()
    shared.PixelValueTransformationSequence = Sequence([transformation])
    per_frame = Dataset()
    per_frame.FrameVOILUTSequence = Sequence([window])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.PerFrameFunctionalGroupsSequence = Sequence([per_frame])
    assert max_error(rendered(ds), linear(stored(ds) * 2 - 100, 300, 1200)) <= 1


def test_jpeg_is_close_to_the_reference() -> None:
    ds = read("CT_small.dcm")
    expected = linear(rescaled(ds), 40, 400)
    assert mean_error(rendered(ds, params(window="40,400"), JPEG), expected) < 3
    assert Image.open(io.BytesIO(render(ds, 0, NO_PARAMETERS, JPEG))).mode == "L"


def test_quality_sets_the_jpeg_quality() -> None:
    ds = read("CT_small.dcm")
    small, large = (len(render(ds, 0, params(quality=q), JPEG)) for q in ("10", "95"))
    assert small < large
    # PNG is lossless: quality does not change it.
    assert render(ds, 0, params(quality="10"), PNG) == render(ds, 0, NO_PARAMETERS, PNG)


def test_gif_of_one_frame_is_lossless_grey() -> None:
    ds = read("MR_small.dcm")
    image = Image.open(io.BytesIO(render(ds, 0, NO_PARAMETERS, GIF))).convert("L")
    assert max_error(np.asarray(image, np.float64), linear(stored(ds), 600, 1600)) <= 1


def test_annotations_are_accepted_and_not_drawn() -> None:
    ds = read("CT_small.dcm")
    assert render(ds, 0, params(annotation="patient,technique"), PNG) == render(ds, 0, NO_PARAMETERS, PNG)


# --- colour ----------------------------------------------------------------------------------------------


def test_rgb_is_rendered_as_stored() -> None:
    ds = read("examples_rgb_color.dcm")
    assert ds.PhotometricInterpretation == "RGB" and ds.BitsStored == 8
    assert max_error(rendered(ds), stored(ds)) == 0


def test_16_bit_rgb_is_scaled_to_8_bits() -> None:
    ds = read("SC_rgb_rle_16bit.dcm")
    assert max_error(rendered(ds), np.rint(stored(ds) * 255 / 65535)) <= 1


def test_a_window_does_not_apply_to_colour() -> None:
    ds = read("examples_rgb_color.dcm")
    assert render(ds, 0, params(window="40,400"), PNG) == render(ds, 0, NO_PARAMETERS, PNG)


def test_palette_color() -> None:
    ds = read("examples_palette.dcm")
    assert ds.PhotometricInterpretation == "PALETTE COLOR"
    entries, first, _ = ds.RedPaletteColorLookupTableDescriptor
    indexes = np.clip(ds.pixel_array.astype(int) - first, 0, entries - 1)
    # 16-bit entries: their full range is 0..65535 (PS3.3 C.7.6.3.1.5).
    channels = [np.frombuffer(ds[f"{colour}PaletteColorLookupTableData"].value, "<u2").astype(np.float64)[indexes]
                for colour in ("Red", "Green", "Blue")]
    expected = np.rint(np.stack(channels, axis=-1) * 255 / 65535)
    assert max_error(rendered(ds), expected) <= 1


def ybr_full_to_rgb(ybr: np.ndarray) -> np.ndarray:
    # PS3.3 C.7.6.3.1.2 (YBR_FULL)
    y, cb, cr = ybr[..., 0], ybr[..., 1] - 128, ybr[..., 2] - 128
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.rint(np.clip(rgb, 0, 255))


def test_native_ybr_full_422_is_converted_to_rgb() -> None:
    ds = read("SC_ybr_full_422_uncompressed.dcm")
    ybr = pixel_array(ds, raw=True).astype(np.float64)  # as stored, the chroma repeated
    assert max_error(rendered(ds), ybr_full_to_rgb(ybr)) <= 1


def test_ybr_left_by_the_decoder_is_converted() -> None:
    ds = read("SC_ybr_full_422_uncompressed.dcm")
    ybr = pixel_array(ds, raw=True)
    assert max_error(_colour(ybr, "YBR_FULL", ds).astype(np.float64), ybr_full_to_rgb(ybr.astype(np.float64))) <= 1


@pytest.mark.parametrize("name", ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm"])
def test_ybr_jpeg_is_close_to_the_lossless_original(name: str) -> None:
    ds = read(name)  # JPEG baseline, YBR_FULL or YBR_FULL_422, of the picture SC_rgb_rle.dcm holds losslessly
    assert ds.PhotometricInterpretation.startswith("YBR_FULL")
    original = stored(read("SC_rgb_rle.dcm"))
    lossless = rendered(ds)
    assert mean_error(lossless, original) < 3
    assert mean_error(rendered(ds, media_type=JPEG), lossless) < 3


# --- ICC profiles ----------------------------------------------------------------------------------------


def profile_of(body: bytes) -> bytes | None:
    return Image.open(io.BytesIO(body)).info.get("icc_profile")


def srgb() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def is_srgb(profile: bytes | None) -> bool:
    """LittleCMS's sRGB profile, whenever it was made: the creation date and time (ICC.1 7.2.1, header
    bytes 24 to 35) differ between one made now and the one the renderer made first."""
    expected = srgb()
    return profile is not None and profile[:24] + profile[36:] == expected[:24] + expected[36:]


def with_profile(ds: Dataset) -> Dataset:
    ds.ICCProfile = Path(get_testdata_file("crayons.icc")).read_bytes()
    return ds


def swapped_primaries() -> bytes:
    """sRGB with its red and blue primaries exchanged (ICC.1 tag table: signature, offset, size): from
    it to sRGB, a colour's red and blue values trade places."""
    profile = bytearray(srgb())
    count = struct.unpack_from(">I", profile, 128)[0]
    entries = {struct.unpack_from(">4s", profile, 132 + 12 * i)[0]: i for i in range(count)}
    red, blue = (132 + 12 * entries[signature] for signature in (b"rXYZ", b"bXYZ"))
    red_place, blue_place = profile[red + 4 : red + 12], profile[blue + 4 : blue + 12]
    profile[red + 4 : red + 12], profile[blue + 4 : blue + 12] = blue_place, red_place
    return bytes(profile)


@pytest.mark.parametrize("media_type", [PNG, JPEG])
def test_no_profile_by_default(media_type: str) -> None:
    assert profile_of(render(with_profile(read("examples_rgb_color.dcm")), 0, NO_PARAMETERS, media_type)) is None


@pytest.mark.parametrize("media_type", [PNG, JPEG])
def test_yes_embeds_the_instance_profile_or_srgb(media_type: str) -> None:
    ds = read("examples_rgb_color.dcm")
    assert is_srgb(profile_of(render(ds, 0, params(iccprofile="yes"), media_type)))
    ds = with_profile(ds)
    body = render(ds, 0, params(iccprofile="yes"), media_type)
    assert profile_of(body) == bytes(ds.ICCProfile)
    if media_type == PNG:
        assert max_error(decoded(body).astype(np.float64), stored(ds)) == 0  # pixels untouched


def test_srgb_transforms_from_the_instance_profile() -> None:
    ds = read("examples_rgb_color.dcm")
    ds.ICCProfile = swapped_primaries()
    body = render(ds, 0, params(iccprofile="srgb"), PNG)
    assert is_srgb(profile_of(body))
    assert max_error(decoded(body).astype(np.float64), stored(ds)[..., ::-1]) <= 1
    # Without a profile of its own, the instance is taken to be sRGB already.
    del ds.ICCProfile
    body = render(ds, 0, params(iccprofile="srgb"), PNG)
    assert is_srgb(profile_of(body))
    assert max_error(decoded(body).astype(np.float64), stored(ds)) == 0


@pytest.mark.parametrize("value", ["no", "adobergb", "rommrgb"])
def test_profiles_not_at_hand_are_rendered_as_no(value: str) -> None:
    ds = with_profile(read("examples_rgb_color.dcm"))
    assert render(ds, 0, params(iccprofile=value), PNG) == render(ds, 0, NO_PARAMETERS, PNG)


def test_grayscale_takes_no_rgb_profile() -> None:
    assert profile_of(render(read("MR_small.dcm"), 0, params(iccprofile="yes"), PNG)) is None


# --- geometry --------------------------------------------------------------------------------------------


def size_of(body: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(body)).size


@pytest.mark.parametrize(
    ("name", "viewport", "size"),
    [
        ("MR_small.dcm", "32,16", (16, 16)),  # 64 x 64 fitted into a wide box
        ("MR_small.dcm", "16,48", (16, 16)),
        ("CT_small.dcm", "256,100", (100, 100)),  # scaled up to fill the box's height
        ("examples_palette.dcm", "400,400", (400, 175)),  # 800 x 350
        ("examples_palette.dcm", "100,100", (100, 44)),
        ("examples_rgb_color.dcm", "100,100", (100, 75)),  # 320 x 240
        ("MR_small.dcm", "100,100,0,0,64,32", (100, 50)),  # the region's aspect ratio, not the image's
        ("MR_small.dcm", "100,100,64,0,-64,32", (100, 50)),
    ],
)
def test_viewport_keeps_the_aspect_ratio(name: str, viewport: str, size: tuple[int, int]) -> None:
    assert size_of(render(read(name), 0, params(viewport=viewport), PNG)) == size


def test_a_viewport_scales_the_pixels() -> None:
    ds = read("CT_small.dcm")
    full = rendered(ds, params(window="40,400"))
    half = rendered(ds, params(window="40,400", viewport="64,64"))
    expected = full.reshape(64, 2, 64, 2).mean(axis=(1, 3))
    assert mean_error(half, expected) < 3


def test_the_source_region_is_cut_in_source_pixels() -> None:
    ds = read("MR_small.dcm")
    reference = linear(stored(ds), 600, 1600)
    assert max_error(rendered(ds, params(viewport="20,20,10,5,20,20")), reference[5:25, 10:30]) <= 1
    # sw and sh left out: the region reaches the right and bottom edges.
    assert max_error(rendered(ds, params(viewport="54,59,10,5,,")), reference[5:, 10:]) <= 1


def test_negative_extents_flip_the_region() -> None:
    ds = read("MR_small.dcm")
    reference = linear(stored(ds), 600, 1600)
    assert max_error(rendered(ds, params(viewport="20,20,30,5,-20,20")), reference[5:25, 10:30][:, ::-1]) <= 1
    assert max_error(rendered(ds, params(viewport="20,20,10,25,20,-20")), reference[5:25, 10:30][::-1, :]) <= 1


def test_a_region_beyond_the_image_is_clipped() -> None:
    ds = read("MR_small.dcm")
    reference = linear(stored(ds), 600, 1600)
    assert max_error(rendered(ds, params(viewport="14,4,50,60,100,100")), reference[60:64, 50:64]) <= 1


@pytest.mark.parametrize("viewport", ["10,10,64,0,10,10", "10,10,0,70,10,10", "10,10,0,0,-5,10"])
def test_a_region_outside_the_image_is_refused(viewport: str) -> None:
    with pytest.raises(RenderingError) as raised:
        render(read("MR_small.dcm"), 0, params(viewport=viewport), PNG)
    assert str(raised.value) == "query parameter 'viewport': the source region lies outside the 64 x 64 image"


def test_non_square_pixels_are_made_square() -> None:
    ds = read("MR_small.dcm")
    ds.PixelAspectRatio = [2, 1]  # each pixel twice as tall as wide
    assert size_of(render(ds, 0, NO_PARAMETERS, PNG)) == (64, 128)
    assert size_of(render(ds, 0, params(viewport="64,64"), PNG)) == (32, 64)
    del ds.PixelAspectRatio
    ds.PixelSpacing = [0.5, 1.0]  # rows closer than columns: wider than tall
    assert size_of(render(ds, 0, NO_PARAMETERS, PNG)) == (128, 64)


def test_thumbnail() -> None:
    assert size_of(render(read("CT_small.dcm"), 0, thumbnail_parameters(NO_PARAMETERS), JPEG)) == (128, 128)
    assert size_of(render(read("examples_palette.dcm"), 0, thumbnail_parameters(NO_PARAMETERS), JPEG)) == (128, 56)


# --- frames ----------------------------------------------------------------------------------------------


def gif_frames(body: bytes) -> list[np.ndarray]:
    image = Image.open(io.BytesIO(body))
    frames = []
    for index in range(image.n_frames):
        image.seek(index)
        frames.append(np.asarray(image.convert("L"), np.float64))
    return frames


def test_an_animated_gif_holds_every_frame_with_one_brightness() -> None:
    ds = read("rtdose.dcm")  # 15 frames, 32-bit, no window
    body = render_instance(ds, NO_PARAMETERS, GIF)
    frames = gif_frames(body)
    assert len(frames) == 15
    values = stored(ds)  # all frames
    expected = full_range(values)
    for index, frame in enumerate(frames):
        assert max_error(frame, expected[index]) <= 1
    assert Image.open(io.BytesIO(body)).info["loop"] == 0


def test_an_animated_gif_of_colour_frames() -> None:
    ds = read("SC_rgb_rle_2frame.dcm")
    image = Image.open(io.BytesIO(render_instance(ds, NO_PARAMETERS, GIF)))
    assert image.n_frames == 2


def test_the_frames_asked_in_the_order_asked() -> None:
    ds = read("rtdose.dcm")
    frames = gif_frames(render_frames(ds, [4, 1], params(window="1000000,500000"), GIF))
    expected = linear(stored(ds), 1000000, 500000)
    assert len(frames) == 2
    assert max_error(frames[0], expected[4]) <= 1 and max_error(frames[1], expected[1]) <= 1


def test_a_gif_of_a_one_frame_instance() -> None:
    image = Image.open(io.BytesIO(render_instance(read("CT_small.dcm"), NO_PARAMETERS, GIF)))
    assert image.n_frames == 1


def test_frame_time_sets_the_animation_speed() -> None:
    ds = read("SC_rgb_rle_2frame.dcm")
    ds.FrameTime = 200
    assert Image.open(io.BytesIO(render_instance(ds, NO_PARAMETERS, GIF))).info["duration"] == 200
    del ds.FrameTime
    ds.RecommendedDisplayFrameRate = 4
    assert Image.open(io.BytesIO(render_instance(ds, NO_PARAMETERS, GIF))).info["duration"] == 250


@pytest.mark.parametrize("media_type", [JPEG, PNG])
def test_a_one_frame_media_type_renders_the_first_frame_of_an_instance(media_type: str) -> None:
    ds = read("rtdose.dcm")
    assert render_instance(ds, NO_PARAMETERS, media_type) == render(ds, 0, NO_PARAMETERS, media_type)


def test_one_frame_of_a_multi_frame_instance() -> None:
    ds = read("rtdose.dcm")
    values = stored(ds)[7]
    assert max_error(rendered(ds, frame=7), full_range(values)) <= 1  # that frame's own range


def test_one_frame_media_types_hold_one_frame() -> None:
    with pytest.raises(NotRenderable, match="image/jpeg holds one frame"):
        render_frames(read("rtdose.dcm"), [0, 1], NO_PARAMETERS, JPEG)


@pytest.mark.parametrize("index", [15, -1])
def test_a_frame_the_instance_lacks(index: int) -> None:
    with pytest.raises(FrameError, match=rf"frame {index + 1} does not exist; the instance has 15"):
        render(read("rtdose.dcm"), index, NO_PARAMETERS, PNG)


def test_no_frames() -> None:
    with pytest.raises(FrameError):
        render_frames(read("rtdose.dcm"), [], NO_PARAMETERS, GIF)


# --- what cannot be rendered -----------------------------------------------------------------------------


def test_an_instance_without_pixel_data() -> None:
    ds = read("CT_small.dcm")
    del ds.PixelData
    with pytest.raises(NotRenderable, match="no pixel data"):
        render(ds, 0, NO_PARAMETERS, PNG)


def test_an_undecodable_transfer_syntax() -> None:
    ds = copy.deepcopy(read("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.3.4"
    with pytest.raises(NotRenderable, match="no decoder"):
        render(ds, 0, NO_PARAMETERS, PNG)


def test_an_unrendered_photometric_interpretation() -> None:
    ds = read("examples_rgb_color.dcm")
    ds.PhotometricInterpretation = "HSV"
    with pytest.raises(NotRenderable):
        render(ds, 0, NO_PARAMETERS, PNG)


def test_not_renderable_is_answered_as_a_transcoding_failure() -> None:
    assert issubclass(NotRenderable, TranscodeError)


def test_only_rendered_media_types() -> None:
    with pytest.raises(ValueError, match="image/jp2 is not a rendered media type"):
        render(read("CT_small.dcm"), 0, NO_PARAMETERS, "image/jp2")
