"""Part-10 instances on local disk, by study, series and SOP Instance UID, for one AET, shared by every
worker process of the host.

diskcache keeps the index in SQLite (safe across processes, and it survives a restart) and each
instance as a file of its own, so that a frame is read from its byte range (``read_ranges``) without
loading the instance. It evicts the least recently used entries past the size limit and expires
entries past their age; eviction runs here after each store (``cull``) so that what it removed can be
counted. Beside the instances it keeps small records:

- ``SeriesRecord``: a retrieval of the series ended complete, with its SOP Instance UIDs, when, and when
  the PACS last confirmed that list (``cached_backend`` decides when a record may be served);
- ``Retrieval``: the retrieval of a series (or study) in flight or just ended, and the instances that
  have landed so far, which other requests, in any worker, serve as they land;
- ``InstanceInfo``: when an instance landed and where its frames lie;
- the DICOM JSON metadata of an instance, once computed.
"""
from __future__ import annotations

import fcntl
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import diskcache

try:
    from gevent.monkey import get_original

    _os_thread_local = get_original("_thread", "_local")
except ImportError:  # gevent comes with gunicorn[gevent]; without it there is nothing to undo
    from _thread import _local as _os_thread_local

from dicomrst.dicomweb.frame_offsets import FrameOffsets, Ranges, frame_offsets, read_header

# How often a request waiting on a retrieval run by another worker looks for what landed; a retrieval in
# this worker wakes its waiters at once.
POLL_SECONDS = 0.02

# What one retrieval moves: (study,), (study, series) or (study, series, instance) UIDs.
RetrievalKey = tuple[str, ...]


@dataclass(frozen=True)
class SeriesRecord:
    sop_uids: tuple[str, ...]
    completed_at: float  # time.time() when the retrieval that filled it ended
    verified_at: float  # when the PACS last confirmed the list (the end of that retrieval, at first)


@dataclass(frozen=True)
class Retrieval:
    token: str  # tells one retrieval of a selection from the next
    count: int = 0  # instances it landed, once it ended (``landed`` says which, as they land)
    ended: bool = False
    error: tuple[str, str] | None = None  # the error class name and message of a failed retrieval


@dataclass(frozen=True)
class InstanceInfo:
    landed_at: float
    size: int
    frames: FrameOffsets | None


_landing = threading.Condition()


def _key(kind: str, *parts: object) -> tuple[str | int, ...]:
    """A store key: diskcache pickles tuple keys, so a UID given as a str subclass (pydicom's UID) must be
    a plain str to find what was stored under it."""
    return (kind, *(part if isinstance(part, int) else str(part) for part in parts))


class InstanceCache:
    def __init__(self, directory: Path, max_size: int, max_age_seconds: float) -> None:
        self.directory = directory
        self.max_size = max_size
        self.max_age_seconds = max_age_seconds
        self._locks = directory / "locks"
        self._opened: tuple[diskcache.Cache, diskcache.Cache] | None = None

    def _open_stores(self) -> tuple[diskcache.Cache, diskcache.Cache]:
        # Opened on first use, in the worker that uses it: an app that is built but never retrieves
        # (a config check, a unit test) leaves nothing on disk.
        if self._opened is None:
            self._locks.mkdir(parents=True, exist_ok=True)
            # The instances and their metadata, bounded by size. cull_limit 0: nothing is evicted inside
            # set(), so that ``cull`` sees (and counts) every eviction.
            files = diskcache.Cache(str(self.directory), size_limit=self.max_size, cull_limit=0,
                                    eviction_policy="least-recently-used")
            # The records of what is where and what is under way: small, and never evicted for size, or a
            # retrieval in flight would lose track of itself in a cache too small for its series.
            records = diskcache.Cache(str(self.directory / "records"), eviction_policy="none", cull_limit=0)
            for store in (files, records):
                # diskcache keeps one SQLite connection per thread.local, which gevent makes one per
                # greenlet: every request would connect anew. Per OS thread instead, as SQLite requires;
                # greenlets of one thread take turns on it, and no diskcache call yields to another
                # greenlet mid-transaction (SQLite and file writes are not cooperative).
                store._local = _os_thread_local()
            self._opened = (files, records)
        return self._opened

    @property
    def _files(self) -> diskcache.Cache:
        return self._open_stores()[0]

    @property
    def _records(self) -> diskcache.Cache:
        return self._open_stores()[1]

    # ------------------------------------------------------------------------------------ instances

    def put(self, part10: bytes, metadata: Callable[[bytes], str | None]) -> tuple[tuple[str, str, str], InstanceInfo]:
        """Keep an instance under its own UIDs (read once from its header), with where its frames lie and
        its ``metadata``, computed while the instance is in memory anyway."""
        header = read_header(part10)
        uids = (str(header.dataset.get("StudyInstanceUID", "")), str(header.dataset.get("SeriesInstanceUID", "")),
                str(header.dataset.get("SOPInstanceUID", "")))
        # Kept as a file of its own (read=True) whatever its size, so frames are read from it by range.
        self._files.set(_key("instance", *uids), io.BytesIO(part10), read=True, expire=self.max_age_seconds)
        document = metadata(part10)
        if document is not None:
            self._files.set(_key("metadata", *uids), document, expire=self.max_age_seconds)
        info = InstanceInfo(time.time(), len(part10), frame_offsets(part10, header))
        self._records.set(_key("info", *uids), info, expire=self.max_age_seconds)
        return uids, info

    def info(self, study_uid: str, series_uid: str, sop_uid: str) -> InstanceInfo | None:
        value = self._records.get(_key("info", study_uid, series_uid, sop_uid))
        return value if isinstance(value, InstanceInfo) else None

    def has(self, study_uid: str, series_uid: str, sop_uid: str) -> bool:
        return _key("instance", study_uid, series_uid, sop_uid) in self._files

    def get(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes | None:
        with self._open(study_uid, series_uid, sop_uid) as file:
            return None if file is None else file.read()

    def read_ranges(self, study_uid: str, series_uid: str, sop_uid: str, frames: list[Ranges]) -> list[bytes] | None:
        """The bytes of each frame given by its ranges, read from the instance's file; None if evicted."""
        with self._open(study_uid, series_uid, sop_uid) as file:
            if file is None:
                return None
            found = []
            for ranges in frames:
                pieces = []
                for offset, length in ranges:
                    file.seek(offset)
                    pieces.append(file.read(length))
                found.append(b"".join(pieces))
            return found

    def forget_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> None:
        """Its file was evicted: without its record, the next request retrieves it again."""
        self._records.delete(_key("info", study_uid, series_uid, sop_uid))

    @contextmanager
    def _open(self, study_uid: str, series_uid: str, sop_uid: str) -> Iterator[BinaryIO | None]:
        value = self._files.get(_key("instance", study_uid, series_uid, sop_uid), read=True)
        if value is None or isinstance(value, bytes):
            # An open file stays readable after eviction unlinks it, so nothing is read half-gone.
            yield io.BytesIO(value) if isinstance(value, bytes) else None
            return
        try:
            yield value
        finally:
            value.close()

    def metadata(self, study_uid: str, series_uid: str, sop_uid: str) -> str | None:
        """The DICOM JSON metadata of an instance (its URL as a placeholder), as computed when it landed."""
        value = self._files.get(_key("metadata", study_uid, series_uid, sop_uid))
        return value if isinstance(value, str) else None

    def put_metadata(self, study_uid: str, series_uid: str, sop_uid: str, document: str) -> None:
        self._files.set(_key("metadata", study_uid, series_uid, sop_uid), document, expire=self.max_age_seconds)

    def rendering(self, uids: tuple[str, str, str], variant: str) -> bytes | None:
        value = self._files.get(_key("rendered", *uids, variant))
        return value if isinstance(value, bytes) else None

    def keep_rendering(self, uids: tuple[str, str, str], variant: str, image: bytes) -> None:
        self._files.set(_key("rendered", *uids, variant), image, expire=self.max_age_seconds)

    def remembered(self, name: str) -> str | None:
        value = self._records.get(_key("remembered", name))
        return value if isinstance(value, str) else None

    def remember(self, name: str, value: str, seconds: float) -> None:
        self._records.set(_key("remembered", name), value, expire=seconds)

    def cull(self) -> int:
        """Evict past the size limit (least recently used first) and drop what expired; how many went."""
        self._records.cull()  # expired records only: they are never evicted for size
        return int(self._files.cull())

    def volume(self) -> int:
        return int(self._files.volume())

    # --------------------------------------------------------------------------------------- series

    def series_record(self, study_uid: str, series_uid: str) -> SeriesRecord | None:
        value = self._records.get(_key("series", study_uid, series_uid))
        return value if isinstance(value, SeriesRecord) else None

    def mark_complete(self, study_uid: str, series_uid: str, sop_uids: list[str], started_at: float) -> None:
        """Record a retrieval that began at ``started_at`` and ended complete, unless the series was
        forgotten meanwhile (a store into it while it was retrieved: the list may lack that instance)."""
        forgotten_at = self._records.get(_key("forgotten", study_uid, series_uid))
        if isinstance(forgotten_at, float) and forgotten_at >= started_at:
            return
        now = time.time()
        record = SeriesRecord(tuple(sop_uids), now, now)
        self._records.set(_key("series", study_uid, series_uid), record, expire=self.max_age_seconds)

    def mark_verified(self, study_uid: str, series_uid: str, record: SeriesRecord) -> SeriesRecord:
        verified = replace(record, verified_at=time.time())
        self._records.set(_key("series", study_uid, series_uid), verified, expire=self.max_age_seconds)
        return verified

    def forget_series(self, study_uid: str, series_uid: str) -> None:
        self._records.set(_key("forgotten", study_uid, series_uid), time.time(), expire=self.max_age_seconds)
        self._records.delete(_key("series", study_uid, series_uid))

    # ---------------------------------------------------------------------------------- retrievals

    def retrieval(self, key: RetrievalKey) -> Retrieval | None:
        value = self._records.get(_key("retrieval", *key))
        return value if isinstance(value, Retrieval) else None

    def note_retrieval(self, key: RetrievalKey, retrieval: Retrieval) -> None:
        # Kept a while after it ended, so that a request that joined it learns how it ended.
        self._records.set(_key("retrieval", *key), retrieval, expire=3600)
        with _landing:
            _landing.notify_all()

    @staticmethod
    def wait_for_landing(timeout: float = POLL_SECONDS) -> None:
        """Until a retrieval of this process notes progress, or ``timeout``, for those of others."""
        with _landing:
            _landing.wait(timeout)

    def note_landed(self, key: RetrievalKey, token: str, index: int, uids: tuple[str, str, str]) -> None:
        self._records.set(_key("landed", *key, token, index), uids, expire=3600)
        with _landing:
            _landing.notify_all()

    def landed(self, key: RetrievalKey, token: str, start: int) -> list[tuple[str, str, str]]:
        """The UIDs of the instances retrieval ``token`` landed, from the ``start``-th on."""
        found: list[tuple[str, str, str]] = []
        while True:
            uids = self._records.get(_key("landed", *key, token, start + len(found)))
            if not isinstance(uids, tuple):
                return found
            found.append(uids)

    def try_retrieval_lock(self, key: RetrievalKey) -> RetrievalLock | None:
        """The lock that makes its holder the one retrieval of ``key`` across the host's workers, if
        no one holds it. Released by its holder, or by the end of the holder's process."""
        self._locks.mkdir(parents=True, exist_ok=True)  # the cache itself may not be opened yet
        descriptor = os.open(self._locks / f"{'_'.join(key)}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            # Never a blocking flock: it would stall every greenlet of a gevent worker.
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        return RetrievalLock(descriptor)


class RetrievalLock:
    def __init__(self, descriptor: int) -> None:
        self._descriptor: int | None = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
