"""Accept header parsing (RFC 7231 section 5.3.2) and media type negotiation.

`parse_accept` is generic; each service supplies a `choose` function that maps
one media range to what it can produce (see `negotiate_qido`), so WADO-RS can
reuse the parser and `negotiate` with its own transfer-syntax rules.

Liberal in what is accepted (PS3.18 8.7.7: values that are not valid or not supported are ignored): a
malformed element of the header, or one whose parameters are not valid (a transfer-syntax that is no UID, a
`type` that is no media type), is skipped, never a 400. When nothing the client asked for can be produced
and something was skipped, the header counts as `*/*`; when every element was valid and none can be
produced, the answer is 406. `type` in a multipart range may be a wildcard (`type="*/*"`).
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
    "parse_content_type",
]

T = TypeVar("T")


class BadAcceptHeader(ValueError):
    """The Accept header is syntactically invalid (answer 400).

    Negotiation no longer raises it (malformed elements are ignored, PS3.18 8.7.7); it stays for the
    error handler that maps it and for callers that catch it.
    """


class NotAcceptable(Exception):
    """None of the acceptable media ranges can be produced (answer 406)."""

    def __init__(self, available: Sequence[str]) -> None:
        self.available = tuple(available)
        super().__init__("none of the requested media types can be produced; available: " + ", ".join(self.available))


class _Ignored(Exception):
    """A media range whose parameters are not valid: ignored like a malformed element (PS3.18 8.7.7)."""


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
# A Content-Type is one value, not a list: an unquoted `,` cannot be a separator there (`boundary=a,b`).
_CONTENT_TYPE_PARAM_RE = re.compile(rf'\s*({_TOKEN})\s*=\s*([^\s";]+|"(?:[^"\\]|\\.)*")\s*', re.DOTALL)
# RFC 7231 allows at most three decimals; clients that send more are tolerated, and so is a missing
# leading zero (Java's default Accept says `q=.2`).
_QVALUE_RE = re.compile(r"(0(\.[0-9]*)?|\.[0-9]+|1(\.0*)?)")


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on `sep`, ignoring separators inside quoted-strings (which may contain `,` and `;`).

    An unterminated quote is taken as a literal character, so that it spoils only its own piece (which
    then does not parse), not everything after it.
    """
    pieces: list[str] = []
    current: list[str] = []
    in_quotes = escaped = False
    opened_at = 0
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif in_quotes and char == "\\":
            escaped = True
        elif char == '"':
            in_quotes = not in_quotes
            opened_at = index
        elif char == sep and not in_quotes:
            pieces.append("".join(current))
            current = []
            continue
        current.append(char)
    if in_quotes:
        # Nothing was split since the quote opened: split what follows it plainly (linear, however
        # many quotes a hostile header holds).
        head = "".join(current)[: opened_at - len(text)]
        rest = text[opened_at:].split(sep)
        return [*pieces, head + rest[0], *rest[1:]]
    pieces.append("".join(current))
    return pieces


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", r"\1", value[1:-1], flags=re.DOTALL)
    return value


def _parse_media_type(text: str, weighted: bool) -> MediaRange | None:
    """`type/subtype *(; name=value)`, names lower-cased, values unquoted; None when malformed.

    Empty parameters (`a/b;` or `a/b;; c=d`) are tolerated. With `weighted` (an Accept element), `q`
    is the weight and what follows it is accept-ext, not media type parameters, and a malformed
    parameter makes the whole element malformed; without it (a Content-Type), a malformed parameter is
    skipped on its own.
    """
    head, *raw_params = _split_outside_quotes(text, ";")
    match = _RANGE_RE.fullmatch(head)
    if match is None:
        return None
    mtype, subtype = match.group(1).lower(), match.group(2).lower()
    if mtype == "*" and subtype != "*":
        return None
    params: dict[str, str] = {}
    q = 1.0
    seen_q = False
    for raw in raw_params:
        if not raw.strip():
            continue
        param = (_PARAM_RE if weighted else _CONTENT_TYPE_PARAM_RE).fullmatch(raw)
        if param is None:
            if weighted:
                return None
            continue
        name, value = param.group(1).lower(), _unquote(param.group(2))
        if seen_q:
            continue  # accept-ext after the weight: not a media type parameter
        if weighted and name == "q":
            if _QVALUE_RE.fullmatch(value.strip()) is None:
                return None
            q, seen_q = float(value), True
        else:
            params[name] = value
    return MediaRange(mtype, subtype, params, q)


def parse_content_type(header: str | None) -> MediaRange | None:
    """A Content-Type value as a MediaRange (q is meaningless there), None when it names no media type.

    As liberal as Accept parsing: parameter names in any case, values quoted or not (an unquoted value may
    contain `/`: `type=application/dicom`), white space around `;` and `=`; a malformed parameter is skipped.
    Values keep their case (a boundary is case-sensitive).
    """
    if header is None:
        return None
    return _parse_media_type(header, weighted=False)


@dataclass(frozen=True)
class _Accept:
    ranges: list[MediaRange]  # the well-formed elements with q > 0, highest q first (stable)
    wellformed: bool  # at least one element parsed
    ignored: bool  # some element was malformed and skipped
    refused: bool  # some well-formed element had q=0: the client excludes something explicitly


def _parse(header: str | None) -> _Accept:
    if header is None or not header.strip():
        return _Accept([], wellformed=False, ignored=False, refused=False)
    ranges: list[MediaRange] = []
    wellformed = ignored = refused = False
    for element in _split_outside_quotes(header, ","):
        if not element.strip():
            continue  # RFC 7230 7: empty list elements are legal and ignored
        media_range = _parse_media_type(element, weighted=True)
        if media_range is None:
            ignored = True
            continue
        wellformed = True
        if media_range.q > 0:
            ranges.append(media_range)
        else:
            refused = True
    ranges.sort(key=lambda r: -r.q)
    return _Accept(ranges, wellformed, ignored, refused)


def parse_accept(header: str | None) -> list[MediaRange]:
    """Parse an Accept header into media ranges, highest q first (stable); q=0 ranges dropped.

    Malformed elements are skipped (PS3.18 8.7.7). A missing or empty header, or one of which no element
    parses, means `*/*`. Never raises.
    """
    parsed = _parse(header)
    return parsed.ranges if parsed.wellformed else [_ANY]


def _negotiate(accept: str | None, pick: Callable[[list[MediaRange]], tuple[T | None, bool]],
               available: Sequence[str]) -> T:
    """`pick(ranges)` gives what to send (or None) and whether it ignored an invalid range.

    When nothing can be produced and something was ignored, the header counts as `*/*`, unless the
    client excluded something with q=0 (then guessing might send just that): 406.
    """
    parsed = _parse(accept)
    chosen, ignored = pick(parsed.ranges if parsed.wellformed else [_ANY])
    if chosen is None and (ignored or parsed.ignored) and not parsed.refused:
        chosen, _ = pick([_ANY])
    if chosen is None:
        raise NotAcceptable(available)
    return chosen


def negotiate(accept: str | None, choose: Callable[[MediaRange], T | None], available: Sequence[str]) -> T:
    """Return `choose(r)` for the first range `r` (in q order) that `choose` accepts.

    `choose` may raise `_Ignored` for a range whose parameters are not valid. `available` only feeds the
    NotAcceptable message.
    """

    def first(ranges: list[MediaRange]) -> tuple[T | None, bool]:
        ignored = False
        for media_range in ranges:
            try:
                chosen = choose(media_range)
            except _Ignored:
                ignored = True
                continue
            if chosen is not None:
                return chosen, ignored
        return None, ignored

    return _negotiate(accept, first, available)


def _part_pattern(media_range: MediaRange) -> MediaRange | None:
    """The multipart `type` parameter as a media range (it may be a wildcard: `type="*/*"`), None when absent.

    Raises _Ignored when it is no media type at all.
    """
    value = media_range.params.get("type")
    if value is None:
        return None
    match = _RANGE_RE.fullmatch(value)
    if match is None or (match.group(1) == "*" and match.group(2) != "*"):
        raise _Ignored(value)
    return MediaRange(match.group(1).lower(), match.group(2).lower())


def _part_type_matches(media_range: MediaRange, media_type: str) -> bool:
    """Whether a multipart range's parts may be `media_type`: no `type` parameter, or one that matches."""
    pattern = _part_pattern(media_range)
    return pattern is None or pattern.matches(media_type)


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
        if _part_type_matches(media_range, "application/dicom+xml"):
            return QidoMediaType.XML
    return None


def negotiate_qido(accept: str | None) -> QidoMediaType:
    """Pick the QIDO-RS response representation for an Accept header.

    Raises NotAcceptable (406).
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


def is_known_transfer_syntax(uid: str) -> bool:
    """Whether pydicom's UID dictionary lists `uid` as a transfer syntax (retired ones included)."""
    entry = UID_dictionary.get(uid)
    return entry is not None and entry[1] == "Transfer Syntax"


def _transfer_syntax(media_range: MediaRange) -> str | None:
    """The range's transfer-syntax parameter, Explicit VR Little Endian when absent (PS3.18 8.7.3.5.2).

    None for a UID pydicom does not know as a transfer syntax: such a range names nothing this
    server could ever produce, so it is skipped like an unknown media type. A value that is no UID
    at all is not valid: the range is ignored (_Ignored, PS3.18 8.7.7).
    """
    value = media_range.params.get("transfer-syntax")
    if value is None:
        return EXPLICIT_VR_LITTLE_ENDIAN
    value = value.strip()
    if value == _ANY_TRANSFER_SYNTAX:
        return value
    if not is_valid_uid(value):
        raise _Ignored(value)
    return value if is_known_transfer_syntax(value) else None


def _instance_container(media_range: MediaRange, single_instance: bool) -> InstanceContainer | None:
    essence = media_range.essence
    if essence in _MULTIPART:
        # PS3.18 requires the type parameter; without it, application/dicom is the only reading
        # that makes sense for an instance resource. A wildcard type (`type="*/*"`) includes it.
        return "multipart" if _part_type_matches(media_range, _DICOM) else None
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


def _instance_rendition(ranges: list[MediaRange], single_instance: bool) -> tuple[InstanceRendition | None, bool]:
    container: InstanceContainer | None = None
    syntaxes: list[str] = []
    ignored = False
    for media_range in ranges:
        try:
            candidate = _instance_container(media_range, single_instance)
            if candidate is None:
                continue
            syntax = _transfer_syntax(media_range)
        except _Ignored:
            ignored = True
            continue
        if syntax is None or container not in (None, candidate):
            continue
        container = candidate
        if syntax not in syntaxes:
            syntaxes.append(syntax)
    return (None if container is None else InstanceRendition(container, tuple(syntaxes))), ignored


def negotiate_instances(accept: str | None, single_instance: bool) -> InstanceRendition:
    """Pick the container and acceptable transfer syntaxes for a WADO-RS instance retrieval.

    The highest-q range the server understands picks the container; every range for that same
    container adds its transfer syntax, in q order. `single_instance` says whether the resource is
    one instance (only then can a bare application/dicom body be sent).
    Raises NotAcceptable (406).
    """
    return _negotiate(accept, lambda ranges: _instance_rendition(ranges, single_instance),
                      _instance_types(single_instance))


def _as_octet_stream(native_media_type: str) -> FrameRendition:
    return FrameRendition(_OCTET_STREAM, decompress=native_media_type.lower() != _OCTET_STREAM)


def _choose_frames(media_range: MediaRange, native_media_type: str) -> FrameRendition | None:
    native = FrameRendition(native_media_type, decompress=False)
    if media_range.essence == "*/*":
        return native
    if media_range.essence not in _MULTIPART:
        return None
    pattern = _part_pattern(media_range)
    syntax = _transfer_syntax(media_range)
    if pattern is None:
        return native
    if syntax is None:
        return None
    raw_possible = pattern.matches(_OCTET_STREAM) and syntax in (_ANY_TRANSFER_SYNTAX, EXPLICIT_VR_LITTLE_ENDIAN)
    if pattern.subtype == "*":
        # `type="*/*"` (or "image/*", "application/*"): as stored when the wildcard covers the native
        # type, unless Explicit VR Little Endian is named, which only raw frames are.
        explicit_raw = media_range.params.get("transfer-syntax", "").strip() == EXPLICIT_VR_LITTLE_ENDIAN
        if pattern.matches(native_media_type) and not (explicit_raw and raw_possible):
            return native
        return _as_octet_stream(native_media_type) if raw_possible else None
    if pattern.essence == _OCTET_STREAM:
        # Raw frames exist in one transfer syntax only.
        return _as_octet_stream(native_media_type) if raw_possible else None
    if pattern.essence == native_media_type.lower():
        return native
    return None


def negotiate_frames(accept: str | None, native_media_type: str) -> FrameRendition:
    """Pick the frame media type for a WADO-RS frames retrieval (PS3.18 8.7.3.5.3).

    `native_media_type` is the media type of the stored frames (`frames.frame_media_type`).
    Frames are sent as stored, or decoded to application/octet-stream; never re-encoded.
    Raises NotAcceptable (406).
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
    if essence in _MULTIPART and _part_type_matches(media_range, _OCTET_STREAM):
        return True
    return None


def negotiate_bulkdata(accept: str | None) -> None:
    """Check that the client takes bulk data as multipart/related application/octet-stream parts.

    Raises NotAcceptable (406).
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
