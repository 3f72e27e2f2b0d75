"""Accept header parsing (RFC 7231 section 5.3.2) and media type negotiation.

`parse_accept` is generic; each service supplies a `choose` function that maps
one media range to what it can produce (see `negotiate_qido`), so WADO-RS can
reuse the parser and `negotiate` with its own transfer-syntax rules.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from pydicom.uid import UID_dictionary

from .uids import is_valid_uid

__all__ = [
    "EXPLICIT_VR_LITTLE_ENDIAN",
    "BadAcceptHeader",
    "FrameRendition",
    "InstanceContainer",
    "InstanceRendition",
    "MediaRange",
    "NotAcceptable",
    "QidoMediaType",
    "is_known_transfer_syntax",
    "negotiate",
    "negotiate_bulkdata",
    "negotiate_frames",
    "negotiate_instances",
    "negotiate_qido",
    "parse_accept",
]

T = TypeVar("T")


class BadAcceptHeader(ValueError):
    """The Accept header is syntactically invalid (answer 400)."""


class NotAcceptable(Exception):
    """None of the acceptable media ranges can be produced (answer 406)."""

    def __init__(self, available: Sequence[str]) -> None:
        self.available = tuple(available)
        super().__init__("none of the requested media types can be produced; available: " + ", ".join(self.available))


@dataclass(frozen=True)
class MediaRange:
    type: str
    subtype: str
    # Excluded from the hash so that the frozen dataclass stays hashable.
    params: dict[str, str] = field(default_factory=dict, hash=False)
    q: float = 1.0

    @property
    def essence(self) -> str:
        return f"{self.type}/{self.subtype}"

    def matches(self, media_type: str) -> bool:
        """True if the concrete `type/subtype` falls within this range (wildcards honoured)."""
        mtype, _, msubtype = media_type.lower().partition("/")
        if self.type == "*":
            return True
        return self.type == mtype and self.subtype in ("*", msubtype)


_ANY = MediaRange("*", "*", {}, 1.0)

# RFC 7230 token characters.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_RANGE_RE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*")
# Unquoted values may contain "/" although RFC 7231 says token: clients commonly send
# `type=application/dicom+xml` unquoted.
_PARAM_RE = re.compile(rf'\s*({_TOKEN})\s*=\s*([^\s";,]+|"(?:[^"\\]|\\.)*")\s*', re.DOTALL)
# RFC 7231 allows at most three decimals; clients that send more are tolerated.
_QVALUE_RE = re.compile(r"(0(\.[0-9]*)?|1(\.0*)?)")


def _bad(reason: str, text: str) -> BadAcceptHeader:
    shown = text if len(text) <= 64 else text[:61] + "..."  # echo client input, never unboundedly
    return BadAcceptHeader(f"malformed Accept header: {reason} {shown!r}")


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on `sep`, ignoring separators inside quoted-strings (which may contain `,` and `;`)."""
    pieces: list[str] = []
    current: list[str] = []
    in_quotes = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif in_quotes and char == "\\":
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
        elif char == sep and not in_quotes:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    if in_quotes:
        raise _bad("unterminated quoted string in", text.strip())
    pieces.append("".join(current))
    return pieces


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)
    return value


def _parse_range(element: str) -> MediaRange:
    head, *raw_params = _split_outside_quotes(element, ";")
    match = _RANGE_RE.fullmatch(head)
    if match is None:
        raise _bad("not a media range:", element.strip())
    mtype, subtype = match.group(1).lower(), match.group(2).lower()
    if mtype == "*" and subtype != "*":
        raise _bad("not a media range:", element.strip())
    params: dict[str, str] = {}
    q = 1.0
    seen_q = False
    for raw in raw_params:
        param = _PARAM_RE.fullmatch(raw)
        if param is None:
            raise _bad("bad parameter", raw.strip())
        name, value = param.group(1).lower(), _unquote(param.group(2))
        if seen_q:
            continue  # accept-ext after the weight: not a media type parameter
        if name == "q":
            if _QVALUE_RE.fullmatch(value) is None:
                raise _bad("bad q-value", value)
            q, seen_q = float(value), True
        else:
            params[name] = value
    return MediaRange(mtype, subtype, params, q)


def parse_accept(header: str | None) -> list[MediaRange]:
    """Parse an Accept header into media ranges, highest q first (stable); q=0 ranges dropped.

    A missing or empty header means `*/*`. Raises BadAcceptHeader on malformed input.
    """
    if header is None or not header.strip():
        return [_ANY]
    ranges: list[MediaRange] = []
    empty = True
    for element in _split_outside_quotes(header, ","):
        if not element.strip():
            continue  # RFC 7230 7: empty list elements are legal and ignored
        empty = False
        media_range = _parse_range(element)
        if media_range.q > 0:
            ranges.append(media_range)
    if empty:
        return [_ANY]
    ranges.sort(key=lambda r: -r.q)
    return ranges


def negotiate(accept: str | None, choose: Callable[[MediaRange], T | None], available: Sequence[str]) -> T:
    """Return `choose(r)` for the first range `r` (in q order) that `choose` accepts.

    `available` only feeds the NotAcceptable message.
    """
    for media_range in parse_accept(accept):
        chosen = choose(media_range)
        if chosen is not None:
            return chosen
    raise NotAcceptable(available)


class QidoMediaType(enum.Enum):
    JSON = "application/dicom+json"
    XML = 'multipart/related; type="application/dicom+xml"'


def _choose_qido(media_range: MediaRange) -> QidoMediaType | None:
    essence = media_range.essence
    if essence in ("*/*", "application/*", "application/dicom+json", "application/json"):
        return QidoMediaType.JSON
    if essence in ("multipart/related", "multipart/*"):
        # PS3.18 requires the type parameter; its absence is tolerated because
        # XML is the only multipart representation QIDO-RS has.
        part_type = media_range.params.get("type")
        if part_type is None or part_type.strip().lower() == "application/dicom+xml":
            return QidoMediaType.XML
    return None


def negotiate_qido(accept: str | None) -> QidoMediaType:
    """Pick the QIDO-RS response representation for an Accept header.

    Raises BadAcceptHeader (400) or NotAcceptable (406).
    """
    return negotiate(accept, _choose_qido, [m.value for m in QidoMediaType])


# --- WADO-RS (PS3.18 8.7.3) ----------------------------------------------------------------------

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

_ANY_TRANSFER_SYNTAX = "*"
_DICOM = "application/dicom"
_OCTET_STREAM = "application/octet-stream"
_MULTIPART = ("multipart/related", "multipart/*")

InstanceContainer = Literal["multipart", "single", "zip"]


@dataclass(frozen=True)
class InstanceRendition:
    """How to send DICOM instances: the container and, in the client's preference order, the
    transfer syntax UIDs it accepts ("*" means as stored)."""

    container: InstanceContainer
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True)
class FrameRendition:
    """The media type of each frame part, and whether frames must be decoded to produce it."""

    media_type: str
    decompress: bool


def _part_type(media_range: MediaRange) -> str | None:
    value = media_range.params.get("type")
    return None if value is None else value.strip().lower()


def is_known_transfer_syntax(uid: str) -> bool:
    """Whether pydicom's UID dictionary lists `uid` as a transfer syntax (retired ones included)."""
    entry = UID_dictionary.get(uid)
    return entry is not None and entry[1] == "Transfer Syntax"


def _transfer_syntax(media_range: MediaRange) -> str | None:
    """The range's transfer-syntax parameter, Explicit VR Little Endian when absent (PS3.18 8.7.3.5.2).

    None for a UID pydicom does not know as a transfer syntax: such a range names nothing this
    server could ever produce, so it is skipped like an unknown media type.
    """
    value = media_range.params.get("transfer-syntax")
    if value is None:
        return EXPLICIT_VR_LITTLE_ENDIAN
    value = value.strip()
    if value == _ANY_TRANSFER_SYNTAX:
        return value
    if not is_valid_uid(value):
        raise _bad("transfer-syntax is not a UID:", value)
    return value if is_known_transfer_syntax(value) else None


def _instance_container(media_range: MediaRange, single_instance: bool) -> InstanceContainer | None:
    essence = media_range.essence
    if essence in _MULTIPART:
        # PS3.18 requires the type parameter; without it, application/dicom is the only reading
        # that makes sense for an instance resource.
        return "multipart" if _part_type(media_range) in (None, _DICOM) else None
    if essence in ("*/*", "application/*"):
        return "multipart"
    if essence == _DICOM:
        # A bare application/dicom can carry only one instance; for a study or series it is
        # taken as the multipart form the client most likely meant.
        return "single" if single_instance else "multipart"
    if essence == "application/zip":
        return "zip"
    return None


def _instance_types(single_instance: bool) -> list[str]:
    single = [_DICOM] if single_instance else []
    return [f'multipart/related; type="{_DICOM}"', *single, "application/zip"]


def negotiate_instances(accept: str | None, single_instance: bool) -> InstanceRendition:
    """Pick the container and acceptable transfer syntaxes for a WADO-RS instance retrieval.

    The highest-q range the server understands picks the container; every range for that same
    container adds its transfer syntax, in q order. `single_instance` says whether the resource is
    one instance (only then can a bare application/dicom body be sent).
    Raises BadAcceptHeader (400) or NotAcceptable (406).
    """
    container: InstanceContainer | None = None
    syntaxes: list[str] = []
    for media_range in parse_accept(accept):
        candidate = _instance_container(media_range, single_instance)
        if candidate is None:
            continue
        syntax = _transfer_syntax(media_range)  # validated even if the range ends up unused
        if syntax is None or container not in (None, candidate):
            continue
        container = candidate
        if syntax not in syntaxes:
            syntaxes.append(syntax)
    if container is None:
        raise NotAcceptable(_instance_types(single_instance))
    return InstanceRendition(container, tuple(syntaxes))


def _choose_frames(media_range: MediaRange, native_media_type: str) -> FrameRendition | None:
    native = FrameRendition(native_media_type, decompress=False)
    if media_range.essence == "*/*":
        return native
    if media_range.essence not in _MULTIPART:
        return None
    part_type = _part_type(media_range)
    syntax = _transfer_syntax(media_range)
    if part_type is None:
        return native
    if part_type == _OCTET_STREAM:
        # Raw frames exist in one transfer syntax only.
        if syntax not in (_ANY_TRANSFER_SYNTAX, EXPLICIT_VR_LITTLE_ENDIAN):
            return None
        return FrameRendition(_OCTET_STREAM, decompress=native_media_type.lower() != _OCTET_STREAM)
    if part_type == native_media_type.lower() and syntax is not None:
        return native
    return None


def negotiate_frames(accept: str | None, native_media_type: str) -> FrameRendition:
    """Pick the frame media type for a WADO-RS frames retrieval (PS3.18 8.7.3.5.3).

    `native_media_type` is the media type of the stored frames (`frames.frame_media_type`).
    Frames are sent as stored, or decoded to application/octet-stream; never re-encoded.
    Raises BadAcceptHeader (400) or NotAcceptable (406).
    """
    native = native_media_type.lower()
    available = [f'multipart/related; type="{native_media_type}"']
    if native != _OCTET_STREAM:
        available.append(f'multipart/related; type="{_OCTET_STREAM}"')
    return negotiate(accept, lambda media_range: _choose_frames(media_range, native_media_type), available)


def _choose_bulkdata(media_range: MediaRange) -> bool | None:
    essence = media_range.essence
    if essence in ("*/*", _OCTET_STREAM):
        return True
    if essence in _MULTIPART and _part_type(media_range) in (None, _OCTET_STREAM):
        return True
    return None


def negotiate_bulkdata(accept: str | None) -> None:
    """Check that the client takes bulk data as multipart/related application/octet-stream parts.

    Raises BadAcceptHeader (400) or NotAcceptable (406).
    """
    negotiate(accept, _choose_bulkdata, [f'multipart/related; type="{_OCTET_STREAM}"'])


class StowResponseType(enum.Enum):
    JSON = "application/dicom+json"
    XML = "application/dicom+xml"


def _choose_stow_response(media_range: MediaRange) -> StowResponseType | None:
    if media_range.essence in ("*/*", "application/*", "application/dicom+json", "application/json"):
        return StowResponseType.JSON
    if media_range.essence == "application/dicom+xml":
        return StowResponseType.XML
    return None


def negotiate_stow_response(accept: str | None) -> StowResponseType:
    """The Store Instances Response Module as DICOM JSON (default) or as one Native DICOM Model
    document (PS3.18 10.5.3)."""
    return negotiate(accept, _choose_stow_response, [m.value for m in StowResponseType])
