"""application/zip of instances, written as a stream: each member leaves as soon as it is added."""
from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator


class _Drain(io.RawIOBase):
    """An unseekable sink; zipfile then writes data descriptors instead of seeking back."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def zip_stream(files: Iterable[tuple[str, bytes]]) -> Iterator[bytes]:
    """Yield a ZIP archive (stored, not compressed: DICOM pixel data rarely shrinks) member by member.
    If ``files`` raises, the central directory is never written, so the archive is visibly broken."""
    sink = _Drain()
    archive = zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True)
    for name, data in files:
        archive.writestr(name, data)
        yield sink.take()
    archive.close()
    yield sink.take()
