"""The sample PACS storage: a folder of Part-10 files and an in-memory index of their headers.

One file per SOP instance, named ``<SOP Instance UID>.dcm``. The index holds each
file's header (everything before Pixel Data) so queries never touch the disk;
retrieval reads the file when the instance is sent.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

__all__ = ["InstanceStore", "InvalidInstance", "StoredInstance"]

LOGGER = logging.getLogger(__name__)

_REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


class InvalidInstance(ValueError):
    """A file or received dataset the sample PACS cannot index."""


@dataclass(frozen=True)
class StoredInstance:
    path: Path
    header: Dataset  # read with stop_before_pixels; file_meta included

    @property
    def sop_uid(self) -> str:
        return str(self.header.SOPInstanceUID)

    @property
    def sop_class_uid(self) -> str:
        return str(self.header.SOPClassUID)

    @property
    def transfer_syntax_uid(self) -> str:
        return str(self.header.file_meta.TransferSyntaxUID)

    def value(self, keyword: str) -> str:
        """A single-valued attribute as text, '' when absent (PatientID may be)."""
        return str(self.header.get(keyword, "") or "")

    def read(self) -> Dataset:
        return dcmread(self.path)


def _read_header(source: Path | io.BytesIO) -> Dataset:
    try:
        header = dcmread(source, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types for a broken file
        raise InvalidInstance(f"not a readable DICOM file: {exc}") from exc
    for keyword in _REQUIRED_UIDS:
        uid = UID(str(header.get(keyword, "") or ""))
        if not uid.is_valid:
            raise InvalidInstance(f"missing or invalid {keyword}")
    if "TransferSyntaxUID" not in getattr(header, "file_meta", Dataset()):
        raise InvalidInstance("no File Meta Information")
    # Decode every element now: converting raw elements lazily mutates the dataset,
    # which is not safe while several associations query it at once.
    header.walk(lambda _ds, _elem: None)
    return header


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see either no file or the whole file, never a partial one."""
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _part10_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


class InstanceStore:
    """Thread-safe: every association runs in its own thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._instances: dict[str, StoredInstance] = {}

    def has_files(self) -> bool:
        return any(self.folder.rglob("*.dcm"))

    def load(self) -> int:
        """Index every ``*.dcm`` under the folder; unreadable files are skipped with a warning."""
        count = 0
        for path in sorted(self.folder.rglob("*.dcm")):
            try:
                self._index(StoredInstance(path, _read_header(path)))
                count += 1
            except InvalidInstance as exc:
                LOGGER.warning("skipping %s: %s", path, exc)
        return count

    def seed(self, studies: Iterable[Iterable[Dataset]]) -> int:
        count = 0
        for study in studies:
            for ds in study:
                self.add_bytes(_part10_bytes(ds))
                count += 1
        return count

    def add_bytes(self, data: bytes) -> StoredInstance:
        """Store one Part-10 encoded instance (replacing an earlier copy) and index it."""
        header = _read_header(io.BytesIO(data))
        # The UID was validated above, so it is safe as a file name.
        path = self.folder / f"{header.SOPInstanceUID}.dcm"
        _write_atomically(path, data)
        instance = StoredInstance(path, header)
        self._index(instance)
        return instance

    def _index(self, instance: StoredInstance) -> None:
        with self._lock:
            self._instances[instance.sop_uid] = instance

    def snapshot(self) -> list[StoredInstance]:
        """All instances in a stable, human-friendly order (study date, series, instance number)."""
        with self._lock:
            instances = list(self._instances.values())
        return sorted(instances, key=_display_order)


def _display_order(instance: StoredInstance) -> tuple[str, str, str, int, str, int, str]:
    def number(keyword: str) -> int:
        try:
            return int(instance.header.get(keyword, 0) or 0)
        except (TypeError, ValueError):
            return 0

    return (
        instance.value("StudyDate"),
        instance.value("StudyTime"),
        instance.value("StudyInstanceUID"),
        number("SeriesNumber"),
        instance.value("SeriesInstanceUID"),
        number("InstanceNumber"),
        instance.sop_uid,
    )
