"""Rendered images of DICOM instances and frames (PS3.18 8.3.5 and 10.4.1.1.3): JPEG, PNG and GIF made
from the pixel data the way PS3.4 N.2 (Pixel Transformation Sequence) displays it, with the query
parameters of ``rendered_params.py`` (re-exported here, so that the web layer imports one module).

The pixel transformations are pydicom's (``pydicom.pixels``): decoding (YCbCr converted to RGB by the
decoders), the Modality LUT or rescale, the VOI LUT or window, palette colour lookup, ICC profile
transformation. Pillow crops, scales and encodes.

How an image is rendered, and the choices made where the standard leaves room:
- Grayscale (MONOCHROME1/2): Modality LUT (PS3.3 C.11.1), then the VOI transformation (PS3.3
  C.11.2) to 8-bit P-values. The VOI is the `window` parameter when given; otherwise the instance's
  VOI LUT Sequence (preferred, as pydicom prefers it, when both are present), else its first Window
  Center/Width with its VOI LUT Function; a stored VOI that cannot be applied is passed over. Without
  any, the frame's own range (minimum to maximum of the Modality LUT output) is spread over 0..255,
  and for an animated GIF the range of all its frames, so that the brightness does not flicker. A
  VOI LUT's output is scaled from its nominal range (0 to 2^n - 1, n its LUT Descriptor's third
  value). MONOCHROME1 is inverted after the VOI (PS3.3 C.7.6.3.1.2), so that it displays as
  MONOCHROME2 does; Presentation LUT Shape in the image is taken to agree with it, as PS3.3 requires.
- Enhanced multi-frame images: the Pixel Value Transformation and Frame VOI LUT macros of the Shared
  and Per-Frame Functional Groups (PS3.3 C.7.6.16) apply to their frame.
- Colour: RGB as decoded; YBR_FULL and YBR_FULL_422 converted to RGB (pydicom's decoders do it, or
  convert_color_space where they did not); PALETTE COLOR through its lookup tables (an alpha table is
  dropped; Supplemental Palette Color images are not rendered). More than 8 bits are scaled to 8. The
  `window` parameter has no meaning for colour and is ignored there.
- iccprofile (PS3.18 8.3.5.1.5), for colour output only (an 8-bit grayscale image takes no RGB
  profile): `yes` embeds the instance's ICC Profile (0028,2000), or sRGB when it has none (the colour
  space it is then assumed to be in); `srgb` transforms the pixels from the instance's profile to sRGB
  (when it has one) and embeds sRGB; `no`, `adobergb` and `rommrgb` embed nothing and transform
  nothing. GIF carries no profile.
- Geometry: the source region of the viewport is cut (in source pixels, clipped to the image; a
  region wholly outside it is a RenderingError), then fitted into vw x vh keeping its aspect ratio
  (scaled down or up, never past the box; Lanczos resampling), then flipped where sw or sh is
  negative. Non-square pixels, from Pixel Aspect Ratio (0028,0034) or else a Pixel Spacing (0028,0030)
  whose two values differ, are made square by stretching the image along one axis, as a viewer
  displays them.
- Multi-frame: image/gif holds the frames asked for (all of them for an instance) as an animation
  at Frame Time (0018,1063), else Recommended Display Frame Rate or Cine Rate, else 10 frames a second.
  image/jpeg and image/png hold one frame: an instance renders its first one. The multipart/related
  response PS3.18 allows for several rendered frames is not produced here; a caller wanting one sends
  each frame's render() as a part.
- Annotations (PS3.18 8.3.5.1.1) are accepted and not drawn; overlays, display shutters and
  presentation states are not applied.
- Encoding: JPEG at the `quality` parameter (default 90) in L or RGB; PNG and GIF losslessly
  encode the 8-bit rendered image (GIF reduces an RGB image to 256 colours).

Errors: RenderingError (a ValueError, 400) for parameters that do not fit the image; FrameError (400)
for a frame the instance does not have; NotRenderable (a TranscodeError, 406) for an instance that
cannot be rendered (no pixel data, no decoder, a photometric interpretation not rendered here).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageCms
from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import (
    apply_color_lut,
    apply_icc_profile,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
    as_pixel_options,
    convert_color_space,
    create_icc_transform,
    get_decoder,
)
from pydicom.valuerep import DSfloat

from .frames import FrameError, check_frame_numbers, number_of_frames
from .part10 import TranscodeError
from .rendered_params import (
    MAX_VIEWPORT_SIDE,
    IccProfile,
    RenderingError,
    RenderParameters,
    SourceRegion,
    Viewport,
    Window,
    WindowFunction,
)

__all__ = ["NotRenderable", "render", "render_frames", "render_instance"]

_GIF = "image/gif"
_PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", _GIF: "GIF"}
_GREY = ("MONOCHROME1", "MONOCHROME2")
_YBR = ("YBR_FULL", "YBR_FULL_422")
_PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# What the Modality LUT and VOI LUT transformations read, at the top level of the data set or in the
# functional group macros of PS3.3 C.7.6.16.2.9 (Pixel Value Transformation) and C.7.6.16.2.10
# (Frame VOI LUT).
_TRANSFORMATION_KEYWORDS = (
    "PhotometricInterpretation", "BitsStored", "PixelRepresentation",
    "RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence",
    "WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence",
)
_FRAME_MACROS = ("PixelValueTransformationSequence", "FrameVOILUTSequence")
_DEFAULT_FRAME_MS = 100
# Browsers show GIF frames of less than 20 ms at 100 ms; ten seconds bounds a stray Frame Time.
_FRAME_MS_RANGE = (20, 10_000)
# Pixels at most this much taller than wide (or wider than tall) are made square; past it the value is
# taken as an error in the data set and ignored.
_MAX_PIXEL_ASPECT = 16.0


class NotRenderable(TranscodeError):
    """The instance has no rendered representation here: no pixel data, no decoder for it, a
    photometric interpretation not rendered, or several frames for a one-frame media type (406)."""


@dataclass(frozen=True)
class _Geometry:
    box: tuple[float, float, float, float]  # the source region: left, top, right, bottom
    size: tuple[int, int]  # the rendered width and height
    flip_x: bool
    flip_y: bool


def render(ds: Dataset, frame_index: int, params: RenderParameters, media_type: str) -> bytes:
    """Frame `frame_index` (0-based) of `ds` rendered as `media_type`, one of RENDERED_MEDIA_TYPES."""
    return render_frames(ds, [frame_index], params, media_type)


def render_instance(ds: Dataset, params: RenderParameters, media_type: str) -> bytes:
    """A rendered instance (PS3.18 10.4.1.1.3): every frame as an animated GIF for image/gif, the first
    frame for the one-frame media types."""
    count = number_of_frames(ds) if media_type == _GIF else 1
    return render_frames(ds, range(count), params, media_type)


def render_frames(ds: Dataset, frame_indexes: Sequence[int], params: RenderParameters, media_type: str = _GIF) -> bytes:
    """The frames `frame_indexes` (0-based, in the order given) of `ds` as one image: an animated GIF
    for image/gif; image/jpeg and image/png hold a single frame (NotRenderable for more).

    Every rendered frame is held until the GIF is written: the caller bounds how many are asked for.
    Consecutive identical frames become one GIF frame shown for as long as they together are.
    """
    if media_type not in _PILLOW_FORMATS:
        raise ValueError(f"{media_type} is not a rendered media type")
    if not frame_indexes:
        raise FrameError("no frame to render")
    if len(frame_indexes) > 1 and media_type != _GIF:
        raise NotRenderable(f"{media_type} holds one frame; {_GIF} holds several")
    if not any(keyword in ds for keyword in _PIXEL_DATA_KEYWORDS):
        raise NotRenderable("the instance has no pixel data to render")
    check_frame_numbers([index + 1 for index in frame_indexes], number_of_frames(ds))
    value_range = _common_range(ds, frame_indexes, params) if len(frame_indexes) > 1 else None
    icc = _output_profile(ds, params.icc_profile)
    images = [_fitted(_image(ds, index, params, value_range), ds, params.viewport) for index in frame_indexes]
    return _encode(images, media_type, params.quality, _frame_ms(ds), icc if images[0].mode == "RGB" else None)


# --- decoding ----------------------------------------------------------------------------------------


def _decoded(ds: Dataset, index: int) -> tuple[np.ndarray, str]:
    """Frame `index` as pydicom's pixel_array(ds, index=index) decodes it, with the photometric
    interpretation of the decoded pixels (RGB where the decoder converted YCbCr)."""
    try:
        decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    except (AttributeError, NotImplementedError) as exc:
        raise NotRenderable("no decoder for the instance's transfer syntax is installed") from exc
    try:
        arr, properties = decoder.as_array(ds, index=index, validate=True, **as_pixel_options(ds, as_rgb=True))
    except Exception as exc:
        raise NotRenderable(f"frame {index + 1} cannot be decoded") from exc
    return arr, str(properties.get("photometric_interpretation", ds.get("PhotometricInterpretation", "")))


def _frame_attributes(ds: Dataset, index: int) -> Dataset:
    """The attributes the Modality LUT and VOI LUT transformations of frame `index` read: those at the
    top level, replaced by the Shared, then the Per-Frame Functional Groups' (PS3.3 C.7.6.16)."""
    attributes = Dataset()
    if hasattr(ds, "file_meta"):
        attributes.file_meta = ds.file_meta  # an OW LUT is read in the transfer syntax's byte order
    attributes.set_original_encoding(*ds.original_encoding)
    for keyword in _TRANSFORMATION_KEYWORDS:
        if keyword in ds:
            attributes[keyword] = ds[keyword]
    shared = ds.get("SharedFunctionalGroupsSequence") or []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    groups = [shared[0] if shared else None, per_frame[index] if index < len(per_frame) else None]
    for group in groups:
        for macro in _FRAME_MACROS:
            items = group.get(macro) if group is not None else None
            if items:
                for element in items[0]:
                    attributes[element.tag] = element
    return attributes


# --- grayscale ---------------------------------------------------------------------------------------


def _ds(value: float) -> DSfloat:
    return DSfloat(value, auto_format=True)


def _windowed(values: np.ndarray, window: Window) -> np.ndarray:
    """`values` (Modality LUT output) through `window` to 0..255 (PS3.3 C.11.2.1.2 and C.11.2.1.3).

    pydicom's apply_windowing maps to the output range of the data set it is given: here one of 8-bit
    unsigned pixels without a Modality LUT, so that its output is 0..255.
    """
    voi = Dataset()
    voi.PhotometricInterpretation = "MONOCHROME2"
    voi.BitsStored = 8
    voi.PixelRepresentation = 0
    voi.WindowCenter = _ds(window.center)
    voi.WindowWidth = _ds(window.width)
    voi.VOILUTFunction = window.function.value
    return _as_8_bits(apply_windowing(values, voi))


def _first(value: object) -> float:
    """The first value of a DS element that may hold several (Window Center and Width are VM 1-n)."""
    if isinstance(value, MultiValue | list | tuple):
        value = value[0]
    return float(value)  # type: ignore[arg-type]


def _stored_window(attributes: Dataset) -> Window | None:
    """The first Window Center/Width of the data set with its VOI LUT Function, when they are usable."""
    try:
        center, width = _first(attributes.WindowCenter), _first(attributes.WindowWidth)
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    try:
        function = WindowFunction(str(attributes.get("VOILUTFunction") or "LINEAR").strip().upper())
    except ValueError:
        function = WindowFunction.LINEAR  # PS3.3 C.11.2.1.3: LINEAR when absent; an unknown one likewise
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        return None
    if function is WindowFunction.LINEAR and width < 1:
        return None
    return Window(center, width, function)


def _has_voi_lut(attributes: Dataset) -> bool:
    items = attributes.get("VOILUTSequence")
    return bool(items) and "LUTDescriptor" in items[0] and "LUTData" in items[0]


def _voi_lut(values: np.ndarray, attributes: Dataset) -> np.ndarray | None:
    """`values` through the first VOI LUT of the data set, scaled to 0..255; None when it has none that
    pydicom can apply."""
    if not _has_voi_lut(attributes):
        return None
    if values.dtype.kind == "f":
        # A LUT is indexed by integers: a rescaled image's values are, in all but name.
        values = np.rint(values).astype(np.int64)
    try:
        bits = int(attributes.VOILUTSequence[0].LUTDescriptor[2])
        return _scaled(apply_voi(values, attributes, index=0), 2**bits - 1)
    except Exception:
        return None


def _grey(values: np.ndarray, attributes: Dataset, window: Window | None,
          value_range: tuple[float, float] | None) -> np.ndarray:
    """Modality LUT output to 8-bit MONOCHROME2 P-values by the VOI the module docstring describes."""
    if window is None:
        looked_up = _voi_lut(values, attributes)
        if looked_up is not None:
            return looked_up
        window = _stored_window(attributes)
    if window is None:
        low, high = value_range if value_range is not None else (float(values.min()), float(values.max()))
        if not high > low:
            return np.zeros(values.shape, np.uint8)
        # The full range as a window: LINEAR_EXACT maps `low` to 0 and `high` to 255.
        window = Window((low + high) / 2, high - low, WindowFunction.LINEAR_EXACT)
    return _windowed(values, window)


def _modality_values(ds: Dataset, index: int) -> tuple[np.ndarray, str, Dataset]:
    arr, photometric = _decoded(ds, index)
    attributes = _frame_attributes(ds, index)
    if photometric not in _GREY:
        return arr, photometric, attributes
    try:
        return apply_modality_lut(arr, attributes), photometric, attributes
    except Exception as exc:
        raise NotRenderable("the instance's Modality LUT cannot be applied") from exc


def _needs_range(attributes: Dataset, params: RenderParameters) -> bool:
    return params.window is None and not _has_voi_lut(attributes) and _stored_window(attributes) is None


def _common_range(ds: Dataset, indexes: Sequence[int], params: RenderParameters) -> tuple[float, float] | None:
    """The range of the Modality LUT output over the frames rendered without any window (a first
    pass: frames are decoded again to render them, holding one at a time)."""
    if ds.get("PhotometricInterpretation") not in _GREY:
        return None
    low, high = math.inf, -math.inf
    for index in indexes:
        values, photometric, attributes = _modality_values(ds, index)
        if photometric in _GREY and _needs_range(attributes, params):
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    return (low, high) if low <= high else None


# --- colour ------------------------------------------------------------------------------------------


def _colour(arr: np.ndarray, photometric: str, ds: Dataset) -> np.ndarray:
    """Decoded colour pixels as 8-bit RGB."""
    if photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(arr, ds)[..., :3]  # an alpha table's channel is dropped
        except Exception as exc:
            raise NotRenderable("the instance's palette colour lookup tables cannot be applied") from exc
        return _scaled(rgb, int(np.iinfo(rgb.dtype).max))
    if photometric in _YBR:
        # PS3.3 C.7.6.3.1.2; pydicom's decoders convert these unless the data set said otherwise.
        arr = convert_color_space(arr, photometric, "RGB")
    elif photometric != "RGB":
        raise NotRenderable(f"images of photometric interpretation {photometric[:20]!r} are not rendered")
    return _scaled(arr, 2 ** int(ds.get("BitsStored") or 8) - 1)


def _colour_managed(rgb: np.ndarray, ds: Dataset, icc_profile: IccProfile) -> np.ndarray:
    """For iccprofile=srgb, the pixels transformed from the instance's ICC profile to sRGB."""
    if icc_profile is not IccProfile.SRGB or not ds.get("ICCProfile"):
        return rgb
    try:
        transform = create_icc_transform(icc_profile=bytes(ds.ICCProfile), color_space="sRGB")
        return apply_icc_profile(np.ascontiguousarray(rgb), transform=transform)
    except Exception as exc:
        raise NotRenderable("the instance's ICC profile cannot be applied") from exc


@cache
def _srgb_profile() -> bytes:
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def _output_profile(ds: Dataset, icc_profile: IccProfile) -> bytes | None:
    """The ICC profile the rendered colour image carries."""
    if icc_profile is IccProfile.YES:
        return bytes(ds.ICCProfile) if ds.get("ICCProfile") else _srgb_profile()
    if icc_profile is IccProfile.SRGB:
        return _srgb_profile()
    return None


# --- 8 bits ------------------------------------------------------------------------------------------


def _as_8_bits(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _scaled(values: np.ndarray, maximum: int) -> np.ndarray:
    """Values of the range 0..`maximum` in 0..255 (more than 8 bits reduced, in proportion)."""
    if maximum == 255:
        return _as_8_bits(values)
    return _as_8_bits(values.astype(np.float64) * (255 / maximum))


def _image(ds: Dataset, index: int, params: RenderParameters, value_range: tuple[float, float] | None) -> Image.Image:
    values, photometric, attributes = _modality_values(ds, index)
    if photometric in _GREY:
        grey = _grey(values, attributes, params.window, value_range)
        # PS3.3 C.7.6.3.1.2: MONOCHROME1's minimum is white.
        return Image.fromarray(255 - grey if photometric == "MONOCHROME1" else grey, "L")
    rgb = _colour_managed(_colour(values, photometric, ds), ds, params.icc_profile)
    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


# --- geometry ----------------------------------------------------------------------------------------


def _pixel_aspect(ds: Dataset) -> float:
    """Height over width of one pixel as displayed: Pixel Aspect Ratio (vertical, horizontal; PS3.3
    C.7.6.3.1.7), else Pixel Spacing (row spacing, column spacing; PS3.3 10.7.1.3); 1 when unknown."""
    for keyword in ("PixelAspectRatio", "PixelSpacing"):
        value = ds.get(keyword)
        try:
            vertical, horizontal = float(value[0]), float(value[1])
        except (TypeError, ValueError, IndexError):
            continue
        if vertical > 0 and horizontal > 0 and 1 / _MAX_PIXEL_ASPECT <= vertical / horizontal <= _MAX_PIXEL_ASPECT:
            return vertical / horizontal
    return 1.0


def _span(start: float | None, extent: float | None, size: int) -> tuple[float, float, bool]:
    """One axis of the source region, clipped to the image: (first, last, flipped)."""
    first = start or 0.0
    extent = size - first if extent is None else extent
    low, high = (first + extent, first) if extent < 0 else (first, first + extent)
    return max(0.0, low), min(float(size), high), extent < 0


def _fit(width: float, height: float, box_width: int, box_height: int) -> tuple[int, int]:
    scale = min(box_width / width, box_height / height)
    return min(box_width, max(1, round(width * scale))), min(box_height, max(1, round(height * scale)))


def _geometry(columns: int, rows: int, ds: Dataset, viewport: Viewport | None) -> _Geometry:
    region = viewport.region if viewport is not None and viewport.region is not None else SourceRegion()
    left, right, flip_x = _span(region.x, region.width, columns)
    top, bottom, flip_y = _span(region.y, region.height, rows)
    if right - left <= 0 or bottom - top <= 0:
        raise RenderingError(f"query parameter 'viewport': the source region lies outside the {columns} x {rows} image",
                             "viewport")
    aspect = _pixel_aspect(ds)
    # Displayed size of the region: non-square pixels stretched along one axis, never shrunk.
    width, height = (right - left) * max(1.0, 1 / aspect), (bottom - top) * max(1.0, aspect)
    if viewport is not None:
        size = _fit(width, height, viewport.width, viewport.height)
    elif max(width, height) > max(columns, rows, MAX_VIEWPORT_SIDE):
        size = _fit(width, height, MAX_VIEWPORT_SIDE, MAX_VIEWPORT_SIDE)
    else:
        size = max(1, round(width)), max(1, round(height))
    return _Geometry((left, top, right, bottom), size, flip_x, flip_y)


def _fitted(image: Image.Image, ds: Dataset, viewport: Viewport | None) -> Image.Image:
    """The rendered image cut to the source region, fitted to the viewport and flipped (PS3.18
    8.3.5.1.3: the region after the presentation, the viewport after the region)."""
    geometry = _geometry(image.width, image.height, ds, viewport)
    box = geometry.box
    if all(float(edge).is_integer() for edge in box) and geometry.size == (box[2] - box[0], box[3] - box[1]):
        fitted = image.crop((int(box[0]), int(box[1]), int(box[2]), int(box[3])))  # no resampling needed
    else:
        fitted = image.resize(geometry.size, Image.Resampling.LANCZOS, box=box)
    if geometry.flip_x:
        fitted = fitted.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if geometry.flip_y:
        fitted = fitted.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    return fitted


# --- encoding ----------------------------------------------------------------------------------------


def _frame_ms(ds: Dataset) -> int:
    """How long each frame of an animation shows: Frame Time (ms), else one over Recommended Display
    Frame Rate or Cine Rate (frames per second; PS3.3 C.7.6.5), bounded."""
    milliseconds: float = _DEFAULT_FRAME_MS
    try:
        if ds.get("FrameTime"):
            milliseconds = float(ds.FrameTime)
        elif ds.get("RecommendedDisplayFrameRate"):
            milliseconds = 1000 / float(ds.RecommendedDisplayFrameRate)
        elif ds.get("CineRate"):
            milliseconds = 1000 / float(ds.CineRate)
    except (TypeError, ValueError, ZeroDivisionError):
        milliseconds = _DEFAULT_FRAME_MS
    if not math.isfinite(milliseconds):
        milliseconds = _DEFAULT_FRAME_MS
    return round(min(max(milliseconds, _FRAME_MS_RANGE[0]), _FRAME_MS_RANGE[1]))


def _encode(images: list[Image.Image], media_type: str, quality: int, frame_ms: int, icc: bytes | None) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, object] = {}
    if icc is not None and media_type != _GIF:
        options["icc_profile"] = icc
    if media_type == "image/jpeg":
        options["quality"] = quality
    elif media_type == _GIF and len(images) > 1:
        options.update(save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    images[0].save(buffer, _PILLOW_FORMATS[media_type], **options)
    return buffer.getvalue()
