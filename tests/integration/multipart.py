"""Reading multipart/related answers in tests, strictly: a missing close delimiter is an error."""
from __future__ import annotations

import re


class IncompleteMultipart(AssertionError):
    pass


def boundary_of(content_type: str) -> str:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    assert match, content_type
    return match.group(1)


def parse_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    delimiter = b"--" + boundary_of(content_type).encode()
    if not body.rstrip(b"\r\n").endswith(delimiter + b"--"):
        raise IncompleteMultipart("the body does not end with the close delimiter")
    parts = []
    for chunk in body.split(delimiter)[1:-1]:
        assert chunk.startswith(b"\r\n") and chunk.endswith(b"\r\n"), chunk[:40]
        head, _, content = chunk[2:-2].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("ascii").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
    return parts
