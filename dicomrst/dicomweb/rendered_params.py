"""What a client asks of a rendered resource (PS3.18 8.3.5 and 10.4.1.1.3): the rendering query
parameters (PS3.18 8.3.5.1, Table 8.3.5-1) and the rendered media type (PS3.18 8.7.4). Rendering
itself is in ``rendering.py``.

Policy where the standard leaves room (each refusal is a RenderingError, answered 400, whose message
names the parameter):
- parameter names are matched exactly (the ABNF of PS3.18 8.3.5.1 writes them as case-sensitive
  strings); `accept` and `charset` belong to content negotiation (PS3.18 8.3.3) and are skipped here;
  any other name is refused rather than ignored, so that a misspelt `windows=` never silently renders
  something other than what was asked;
- each parameter may be given once;
- keyword values (`LINEAR`, `patient`, `srgb`, ...) are matched in any case, and white space around
  the commas of a list is tolerated;
- `annotation`: `patient` and `technique` are accepted and recorded; nothing is burned in (PS3.18
  lets the origin server decide what the annotation looks like; this one draws none). Any other
  keyword is refused;
- `quality` only affects image/jpeg: PNG and GIF are lossless encodings of the rendered image;
- `iccprofile`: `no` (also the default), `yes` and `srgb` are honoured as ``rendering.py`` describes;
  `adobergb` and `rommrgb` are accepted and rendered as `no` (no colour transformation, no profile),
  since no profile for those colour spaces is at hand;
- `viewport`: ``vw,vh`` or ``vw,vh,sx,sy,sw,sh`` where any of the last four may be empty (their
  defaults: ``sx = sy = 0``, ``sw`` and ``sh`` reach to the image's right and bottom edges). vw and vh
  are integers from 1 to MAX_VIEWPORT_SIDE; sx and sy non-negative numbers, sw and sh non-zero
  numbers (a decimal part is allowed: the region is resampled with sub-pixel precision), at most
  65535 in magnitude (the largest Rows or Columns). A negative sw (sh) takes the region to the left of
  (above) sx (sy) and flips it horizontally (vertically);
- `window`: ``center,width[,function]`` with function LINEAR (default), LINEAR_EXACT or SIGMOID
  (PS3.3 C.11.2.1.2, C.11.2.1.3); width at least 1 for LINEAR and above 0 otherwise, as PS3.3 requires.

Numbers are matched by bounded patterns before conversion, so no huge digit string reaches int() or
float().
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .accept import MediaRange, negotiate
from .query import CONTENT_NEGOTIATION_PARAMETERS

__all__ = [
    "DEFAULT_QUALITY",
    "DEFAULT_RENDERED_MEDIA_TYPE",
    "MAX_VIEWPORT_SIDE",
    "RENDERED_MEDIA_TYPES",
    "RENDERING_PARAMETERS",
    "THUMBNAIL_VIEWPORT",
    "Annotation",
    "IccProfile",
    "RenderParameters",
    "RenderingError",
    "SourceRegion",
    "Viewport",
    "Window",
    "WindowFunction",
    "negotiate_rendered",
    "parse_rendered_parameters",
    "thumbnail_parameters",
]

# PS3.18 8.7.4 (Table 8.7.4-1): the rendered media types of single and multi-frame images that are
# produced here; the first is the default (what `*/*` and `image/*` get). image/gif is the one that
# holds every frame of a multi-frame image (an animation).
RENDERED_MEDIA_TYPES: tuple[str, ...] = ("image/jpeg", "image/png", "image/gif")
DEFAULT_RENDERED_MEDIA_TYPE = RENDERED_MEDIA_TYPES[0]

RENDERING_PARAMETERS = frozenset({"annotation", "quality", "viewport", "window", "iccprofile"})

MAX_VIEWPORT_SIDE = 8192
# Rows and Columns are US: no source region can be wider or taller than that.
_MAX_SOURCE = 65535
DEFAULT_QUALITY = 90
_MAX_TEXT = 200  # longer values are refused before any parsing

_UINT = re.compile(r"[0-9]{1,5}")
_QUALITY = re.compile(r"[0-9]{1,3}")
# A decimal with an optional fraction, as the viewport's source region takes it.
_DECIMAL = re.compile(r"[+-]?([0-9]{1,5}(\.[0-9]{0,6})?|\.[0-9]{1,6})")
# A DS-like number (PS3.5 6.2), as window centres and widths are: at most 16 characters there; a
# little more is allowed for what a client writes, the exponent bounded.
_NUMBER = re.compile(r"[+-]?([0-9]{1,20}(\.[0-9]{0,20})?|\.[0-9]{1,20})([eE][+-]?[0-9]{1,3})?")


class RenderingError(ValueError):
    """A rendering request the gateway refuses; the message is the 400 body and names the parameter."""

    def __init__(self, message: str, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class WindowFunction(enum.Enum):
    """VOI LUT Function (0028,1056), PS3.3 C.11.2.1.3."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


@dataclass(frozen=True)
class Window:
    """A window centre and width with the function that maps them (PS3.3 C.11.2.1.2)."""

    center: float
    width: float
    function: WindowFunction = WindowFunction.LINEAR


@dataclass(frozen=True)
class SourceRegion:
    """The part of the image to render, in source pixels (PS3.18 8.3.5.1.3); None where the client
    left a value out (x and y then 0, width and height up to the image's edge). A negative width or
    height extends to the left of x or above y and flips the region."""

    x: float | None = None
    y: float | None = None
    width: float | None = None
    height: float | None = None


@dataclass(frozen=True)
class Viewport:
    """The box the rendered region is fitted into, keeping its aspect ratio (PS3.18 8.3.5.1.3)."""

    width: int
    height: int
    region: SourceRegion | None = None


class IccProfile(enum.Enum):
    """The iccprofile parameter (PS3.18 8.3.5.1.5)."""

    NO = "no"
    YES = "yes"
    SRGB = "srgb"
    ADOBERGB = "adobergb"
    ROMMRGB = "rommrgb"


class Annotation(enum.Enum):
    """The annotation keywords of PS3.18 8.3.5.1.1."""

    PATIENT = "patient"
    TECHNIQUE = "technique"


@dataclass(frozen=True)
class RenderParameters:
    """The rendering query parameters of one request; the defaults are what their absence means."""

    window: Window | None = None
    viewport: Viewport | None = None
    quality: int = DEFAULT_QUALITY
    annotation: frozenset[Annotation] = field(default_factory=frozenset)
    icc_profile: IccProfile = IccProfile.NO


# A thumbnail is a small rendered image whose size the origin server chooses unless the client names a
# viewport (PS3.18 8.3.5.1.3): here, fitted into 128 x 128.
THUMBNAIL_VIEWPORT = Viewport(128, 128)


def _shown(text: str) -> str:
    # Client input echoed in a message, never unboundedly.
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _bad(parameter: str, reason: str) -> RenderingError:
    return RenderingError(f"query parameter {_shown(parameter)}: {reason}", parameter)


def _pieces(value: str) -> list[str]:
    return [piece.strip() for piece in value.split(",")]


def _quality(value: str) -> int:
    text = value.strip()
    if _QUALITY.fullmatch(text) is None or not 1 <= int(text) <= 100:
        raise _bad("quality", f"{_shown(value)} is not an integer from 1 to 100")
    return int(text)


def _side(name: str, text: str) -> int:
    if _UINT.fullmatch(text) is None or not 1 <= int(text) <= MAX_VIEWPORT_SIDE:
        raise _bad("viewport", f"{name} {_shown(text)} is not an integer from 1 to {MAX_VIEWPORT_SIDE}")
    return int(text)


def _offset(name: str, text: str) -> float | None:
    if not text:
        return None
    if _DECIMAL.fullmatch(text) is None or not 0 <= float(text) <= _MAX_SOURCE:
        raise _bad("viewport", f"{name} {_shown(text)} is not a number from 0 to {_MAX_SOURCE}")
    return float(text)


def _extent(name: str, text: str) -> float | None:
    if not text:
        return None
    if _DECIMAL.fullmatch(text) is None or float(text) == 0 or abs(float(text)) > _MAX_SOURCE:
        raise _bad("viewport", f"{name} {_shown(text)} is not a non-zero number from -{_MAX_SOURCE} to {_MAX_SOURCE}")
    return float(text)


def _viewport(value: str) -> Viewport:
    pieces = _pieces(value)
    if len(pieces) not in (2, 6):
        raise _bad("viewport", f"{_shown(value)} is neither 'vw,vh' nor 'vw,vh,sx,sy,sw,sh'")
    width, height = _side("vw", pieces[0]), _side("vh", pieces[1])
    if len(pieces) == 2:
        return Viewport(width, height)
    region = SourceRegion(_offset("sx", pieces[2]), _offset("sy", pieces[3]),
                          _extent("sw", pieces[4]), _extent("sh", pieces[5]))
    return Viewport(width, height, None if region == SourceRegion() else region)


def _number(name: str, text: str) -> float:
    number = float(text) if _NUMBER.fullmatch(text) else math.nan
    if not math.isfinite(number):
        raise _bad("window", f"{name} {_shown(text)} is not a number")
    return number


def _window(value: str) -> Window:
    pieces = _pieces(value)
    if len(pieces) not in (2, 3):
        raise _bad("window", f"{_shown(value)} is not 'center,width,function'")
    center, width = _number("center", pieces[0]), _number("width", pieces[1])
    function = WindowFunction.LINEAR
    if len(pieces) == 3 and pieces[2]:
        try:
            function = WindowFunction(pieces[2].upper())
        except ValueError:
            known = ", ".join(f.value for f in WindowFunction)
            raise _bad("window", f"function {_shown(pieces[2])} is not one of {known}") from None
    # PS3.3 C.11.2.1.2.1 and C.11.2.1.3.1-2: LINEAR needs a width of at least 1, the others above 0.
    if function is WindowFunction.LINEAR and width < 1:
        raise _bad("window", f"width {_shown(pieces[1])} is below 1, the least a LINEAR window can have")
    if width <= 0:
        raise _bad("window", f"width {_shown(pieces[1])} is not above 0")
    return Window(center, width, function)


def _annotation(value: str) -> frozenset[Annotation]:
    keywords = set()
    for piece in _pieces(value):
        try:
            keywords.add(Annotation(piece.lower()))
        except ValueError:
            raise _bad("annotation", f"{_shown(piece)} is not 'patient' or 'technique'") from None
    return frozenset(keywords)


def _icc_profile(value: str) -> IccProfile:
    try:
        return IccProfile(value.strip().lower())
    except ValueError:
        known = ", ".join(p.value for p in IccProfile)
        raise _bad("iccprofile", f"{_shown(value)} is not one of {known}") from None


def parse_rendered_parameters(params: Iterable[tuple[str, str]]) -> RenderParameters:
    """The rendering query parameters of a request (PS3.18 8.3.5.1), as (name, value) pairs in the
    order given (a repeated name appears twice). Raises RenderingError, whose message names the
    parameter and what is wrong with it."""
    seen: dict[str, str] = {}
    for name, value in params:
        if name in CONTENT_NEGOTIATION_PARAMETERS:
            continue
        if name not in RENDERING_PARAMETERS:
            known = ", ".join(sorted(RENDERING_PARAMETERS))
            raise RenderingError(f"unknown query parameter {_shown(name)} for a rendered resource; known: {known}", name)
        if name in seen:
            raise _bad(name, "given more than once")
        if not value.strip():
            raise _bad(name, "has no value")
        if len(value) > _MAX_TEXT:
            raise _bad(name, f"a value of {len(value)} characters is too long")
        seen[name] = value
    parsed = RenderParameters()
    if "window" in seen:
        parsed = replace(parsed, window=_window(seen["window"]))
    if "viewport" in seen:
        parsed = replace(parsed, viewport=_viewport(seen["viewport"]))
    if "quality" in seen:
        parsed = replace(parsed, quality=_quality(seen["quality"]))
    if "annotation" in seen:
        parsed = replace(parsed, annotation=_annotation(seen["annotation"]))
    if "iccprofile" in seen:
        parsed = replace(parsed, icc_profile=_icc_profile(seen["iccprofile"]))
    return parsed


def thumbnail_parameters(params: RenderParameters) -> RenderParameters:
    """The parameters of a thumbnail: those of a rendered resource, fitted into THUMBNAIL_VIEWPORT
    unless the client named a viewport of its own. PS3.18 gives a thumbnail's viewport only vw and vh;
    the rendered resources' other parameters, and a source region, are honoured too rather than
    refused."""
    return params if params.viewport is not None else replace(params, viewport=THUMBNAIL_VIEWPORT)


def _choose_rendered(media_range: MediaRange) -> str | None:
    if media_range.essence in ("*/*", "image/*"):
        return DEFAULT_RENDERED_MEDIA_TYPE
    if media_range.essence in RENDERED_MEDIA_TYPES:
        return media_range.essence
    return None


def negotiate_rendered(accept: str | None) -> str:
    """The rendered media type for an Accept header (or the value of the `accept` query parameter, PS3.18
    8.3.3.1, which has the same form): the client's most preferred of RENDERED_MEDIA_TYPES, image/jpeg
    for `*/*` and `image/*` and when no header is given. Invalid elements are ignored (PS3.18 8.7.7).
    A rendered image is one single-part body: multipart ranges name nothing produced here.
    Raises NotAcceptable (406)."""
    return negotiate(accept, _choose_rendered, RENDERED_MEDIA_TYPES)
