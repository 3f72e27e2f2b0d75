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
from typing import TypeVar

__all__ = [
    "BadAcceptHeader",
    "MediaRange",
    "NotAcceptable",
    "QidoMediaType",
    "negotiate",
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
