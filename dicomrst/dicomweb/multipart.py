"""Streaming writer for multipart/related response bodies (RFC 2046 5.1, RFC 2387)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

__all__ = ["Part", "multipart_content_type", "new_boundary", "write_multipart"]

CRLF = b"\r\n"

# RFC 2046 bchars without space: a boundary that needs no care at all in a header.
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=?]{1,70}")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_MEDIA_TYPE_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+/[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class Part(NamedTuple):
    """A body part whose headers differ from the stream's defaults (e.g. its own transfer syntax)."""

    body: bytes
    headers: Mapping[str, str]


def new_boundary() -> str:
    # Hex is valid in every parser and cannot collide with DICOM content by accident.
    return secrets.token_hex(16)


def _check_boundary(boundary: str) -> None:
    if _BOUNDARY_RE.fullmatch(boundary) is None:
        raise ValueError(f"invalid multipart boundary {boundary!r}")


def multipart_content_type(part_type: str, boundary: str) -> str:
    """`multipart/related; type="<part_type>"; boundary=<boundary>`.

    `part_type` is the bare media type of the root part (RFC 2387 forbids parameters there).
    """
    if _MEDIA_TYPE_RE.fullmatch(part_type) is None:
        raise ValueError(f"invalid part media type {part_type!r}")
    _check_boundary(boundary)
    quoted = boundary if _TOKEN_RE.fullmatch(boundary) else f'"{boundary}"'
    return f'multipart/related; type="{part_type}"; boundary={quoted}'


def _header_block(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        # CR/LF in a value would let data inject headers or end the header block early.
        if _TOKEN_RE.fullmatch(name) is None or "\r" in value or "\n" in value or not value.isascii():
            raise ValueError(f"invalid part header {name!r}: {value!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("ascii") + CRLF


def _merge_headers(defaults: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    # Header names are case-insensitive: "content-type" must replace "Content-Type", not add to it.
    overridden = {name.lower() for name in overrides}
    merged = {name: value for name, value in defaults.items() if name.lower() not in overridden}
    merged.update(overrides)
    return merged


def write_multipart(
    parts: Iterable[bytes | Part],
    part_content_type: str,
    boundary: str,
) -> Iterator[bytes]:
    """Yield a multipart body one part at a time; never holds more than one part.

    Each item is either the body bytes (sent with `Content-Type: part_content_type`) or a
    `Part` whose headers are added to, and may override, that Content-Type.
    The close delimiter is written only after `parts` is exhausted normally: if it raises,
    the exception propagates and the client sees a truncated body rather than a complete
    but silently short one. The first bytes are yielded only once the first part exists,
    so a caller can pull once to surface an early backend failure before sending headers.
    """
    _check_boundary(boundary)
    delimiter = b"--" + boundary.encode("ascii")
    default_headers = {"Content-Type": part_content_type}
    leading = b""
    for part in parts:
        if isinstance(part, Part):
            body, headers = part.body, _merge_headers(default_headers, part.headers)
        else:
            body, headers = part, default_headers
        # The CRLF before a delimiter belongs to the delimiter, so the previous body ends here.
        yield leading + delimiter + CRLF + _header_block(headers)
        yield bytes(body)
        leading = CRLF
    yield leading + delimiter + b"--" + CRLF
