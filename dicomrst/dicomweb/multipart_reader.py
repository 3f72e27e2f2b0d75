"""Streaming reader for multipart/related request bodies (RFC 2046 5.1), part by part and chunk by chunk.

werkzeug's multipart decoder insists on form-data's Content-Disposition, which STOW-RS parts do not
carry; this reader takes any part and never holds more than a chunk plus a delimiter of it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

CRLF = b"\r\n"
MAX_HEADER_BYTES = 16 * 1024
# RFC 2046 says at most 70 characters, but clients send longer ones (Orthanc's DICOMweb client: 73); any
# length a client may send is read, up to a bound against abuse.
MAX_BOUNDARY_LENGTH = 1024
DEFAULT_CHUNK = 1 << 20
# After a delimiter, the line break (after optional white space) must come within this many bytes: a line
# that is not a delimiter's is refused there, rather than read on to the end of the body.
DELIMITER_LINE_LIMIT = 80


class MultipartError(ValueError):
    """The body is not the multipart/related it claims to be; the message says where it breaks."""


class _Buffer:
    def __init__(self, read: Callable[[int], bytes], chunk_size: int) -> None:
        self.read = read
        self.chunk_size = chunk_size
        self.data = bytearray()
        self.eof = False

    def fill(self) -> bool:
        """Read one more chunk; False at the end of the body."""
        if self.eof:
            return False
        chunk = self.read(self.chunk_size)
        if not chunk:
            self.eof = True
            return False
        self.data += chunk
        return True

    def take(self, count: int) -> bytes:
        taken = bytes(self.data[:count])
        del self.data[:count]
        return taken


def _parse_headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(CRLF):
        if not line:
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name.strip():
            raise MultipartError(f"malformed part header line {line[:60]!r}")
        headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
    return headers


class MultipartReader:
    """Iterate the parts of a body as (headers, chunks). Each part's chunks must be consumed (or the
    part skipped with ``drain``) before the next part is asked for."""

    def __init__(self, read: Callable[[int], bytes], boundary: str, chunk_size: int = DEFAULT_CHUNK) -> None:
        if not boundary or len(boundary) > MAX_BOUNDARY_LENGTH:
            raise MultipartError(f"the multipart boundary must be 1 to {MAX_BOUNDARY_LENGTH} characters")
        try:
            encoded = boundary.encode("latin-1")
        except UnicodeEncodeError:
            raise MultipartError("the multipart boundary is not Latin-1 text") from None
        self.buffer = _Buffer(read, chunk_size)
        self.delimiter = b"--" + encoded
        # Within a body, a delimiter is always preceded by CRLF (RFC 2046 5.1.1).
        self.inner_delimiter = CRLF + self.delimiter

    def parts(self) -> Iterator[tuple[dict[str, str], Iterator[bytes]]]:
        if not self._skip_preamble():
            return
        while True:
            headers = self._headers()
            body = self._body()
            yield headers, body
            for _ in body:  # whatever the consumer left unread
                pass
            if self._closing():
                return

    def _skip_preamble(self) -> bool:
        """Up to and past the first delimiter; False when the body closes without any part."""
        data = self.buffer
        start = 0
        while True:
            at = data.data.find(self.delimiter, start)
            if at == 0 or (at > 0 and data.data[at - 2:at] == CRLF):
                data.take(at + len(self.delimiter))
                return not self._closing()
            if at > 0:
                start = at + 1
                continue
            if not data.fill():
                raise MultipartError("the body has no multipart delimiter for the declared boundary")

    def _closing(self) -> bool:
        """After a delimiter: '--' closes the body, CRLF (after optional white space) opens a part."""
        data = self.buffer
        while len(data.data) < 2 or (data.data[:2] != b"--" and CRLF not in data.data[:DELIMITER_LINE_LIMIT]):
            if len(data.data) >= DELIMITER_LINE_LIMIT or not data.fill():
                break
        if data.data[:2] == b"--":
            data.data.clear()
            return True
        line_end = data.data.find(CRLF, 0, DELIMITER_LINE_LIMIT)
        if line_end < 0 or data.data[:line_end].strip(b" \t"):
            raise MultipartError("a multipart delimiter is not followed by a line break")
        data.take(line_end + 2)
        return False

    def _headers(self) -> dict[str, str]:
        data = self.buffer
        while True:
            if data.data.startswith(CRLF):  # a part without headers
                data.take(2)
                return {}
            end = data.data.find(CRLF + CRLF)
            if end >= 0:
                return _parse_headers(data.take(end + 4)[:-4])
            if len(data.data) > MAX_HEADER_BYTES:
                raise MultipartError("a part's headers are longer than 16 KiB")
            if not data.fill():
                raise MultipartError("the body ends inside a part's headers")

    def _body(self) -> Iterator[bytes]:
        data = self.buffer
        keep = len(self.inner_delimiter) - 1
        while True:
            at = data.data.find(self.inner_delimiter)
            if at >= 0:
                if at:
                    yield data.take(at)
                data.take(len(self.inner_delimiter))
                return
            if len(data.data) > keep:
                yield data.take(len(data.data) - keep)
            if not data.fill():
                raise MultipartError("the body ends inside a part (no closing delimiter)")
