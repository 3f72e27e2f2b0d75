"""Part-10 instances on local disk, by study, series and SOP Instance UID, for one AET.

diskcache keeps the index in SQLite (safe for every worker process of the host) and values over a few
kilobytes as files of their own; it evicts the least recently used entries past the size limit, and
expires entries by age. A series is served from here only while a complete retrieval of it is
recorded and younger than the time to live (``complete_series``); a store through the gateway into
the series forgets that record (``forget_series``). One retrieval per series is in flight across the
workers of a host: whoever moves a series holds its lock file (``series_lock``) until the series is
recorded, and the others wait for it and then read what it stored.
"""
from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import diskcache

_POLL_SECONDS = 0.05


class InstanceCache:
    def __init__(self, directory: Path, max_size: int, ttl_seconds: float) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.ttl_seconds = ttl_seconds
        self._cache = diskcache.Cache(str(directory), size_limit=max_size,
                                      eviction_policy="least-recently-used")
        self._locks = directory / "locks"
        self._locks.mkdir(exist_ok=True)

    def put(self, study_uid: str, series_uid: str, sop_uid: str, part10: bytes) -> None:
        self._cache.set(("instance", study_uid, series_uid, sop_uid), part10, expire=self.ttl_seconds)

    def get(self, study_uid: str, series_uid: str, sop_uid: str) -> bytes | None:
        value = self._cache.get(("instance", study_uid, series_uid, sop_uid))
        return value if isinstance(value, bytes) else None

    def has(self, study_uid: str, series_uid: str, sop_uid: str) -> bool:
        return ("instance", study_uid, series_uid, sop_uid) in self._cache

    def complete_series(self, study_uid: str, series_uid: str) -> list[str] | None:
        """The SOP Instance UIDs of a series retrieved whole within the time to live, else None."""
        value = self._cache.get(("series", study_uid, series_uid))
        return list(value) if isinstance(value, (list, tuple)) else None

    def mark_complete(self, study_uid: str, series_uid: str, sop_uids: list[str]) -> None:
        self._cache.set(("series", study_uid, series_uid), list(sop_uids), expire=self.ttl_seconds)

    def forget_series(self, study_uid: str, series_uid: str) -> None:
        self._cache.delete(("series", study_uid, series_uid))

    def volume(self) -> int:
        return int(self._cache.volume())

    @contextmanager
    def series_lock(self, study_uid: str, series_uid: str, timeout_seconds: float) -> Iterator[bool]:
        """Hold the series' lock file for the block; yields False when it did not come free in time.

        Polled rather than waited on: a blocking flock would stall every greenlet of a gevent worker.
        """
        path = self._locks / f"{study_uid}_{series_uid}.lock"
        descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        deadline = time.monotonic() + timeout_seconds
        try:
            while True:
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(_POLL_SECONDS)
            yield True
        finally:
            os.close(descriptor)
