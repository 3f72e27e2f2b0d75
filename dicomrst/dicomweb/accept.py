"""Accept and Content-Type header parsing (RFC 7231 5.3.2, 3.1.1.1), and negotiation in general: each
service's policy (``negotiation.py``) supplies a function that maps one media range to what it can
produce.

Liberal in what is accepted (PS3.18 8.7.7: values that are not valid or not supported are ignored): a
malformed element of the header, or one whose parameters are not valid (a transfer-syntax that is no UID, a
`type` that is no media type), is skipped, never a 400. When nothing the client asked for can be produced
and something was skipped, the header counts as `*/*`; when every element was valid and none can be
produced, the answer is 406. `type` in a multipart range may be a wildcard (`type="*/*"`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "Ignored",
    "MediaRange",
    "NotAcceptable",
    "negotiate",
    "negotiate_ranges",
    "parse_accept",
    "parse_content_type",
    "parse_media_range",
]

T = TypeVar("T")



class NotAcceptable(Exception):
    """None of the acceptable media ranges can be produced (answer 406)."""

    def __init__(self, available: Sequence[str]) -> None:
        self.available = tuple(available)
        super().__init__("none of the requested media types can be produced; available: " + ", ".join(self.available))


class Ignored(Exception):
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


def negotiate_ranges(accept: str | None, pick: Callable[[list[MediaRange]], tuple[T | None, bool]],
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

    `choose` may raise `Ignored` for a range whose parameters are not valid. `available` only feeds the
    NotAcceptable message.
    """

    def first(ranges: list[MediaRange]) -> tuple[T | None, bool]:
        ignored = False
        for media_range in ranges:
            try:
                chosen = choose(media_range)
            except Ignored:
                ignored = True
                continue
            if chosen is not None:
                return chosen, ignored
        return None, ignored

    return negotiate_ranges(accept, first, available)


def parse_media_range(value: str) -> MediaRange | None:
    """A bare ``type/subtype`` (a wildcard allowed, as in a multipart ``type`` parameter), or None."""
    match = _RANGE_RE.fullmatch(value)
    if match is None or (match.group(1) == "*" and match.group(2) != "*"):
        return None
    return MediaRange(match.group(1).lower(), match.group(2).lower())
