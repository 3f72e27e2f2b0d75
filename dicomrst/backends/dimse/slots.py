"""A limit on concurrent associations to one PACS, shared by every gunicorn worker on this host.

``pool.size`` promises the PACS at most that many associations from the gateway, whatever the number of
worker processes. Each slot is a lock file; holding an exclusive ``flock`` on it is holding the slot.
The kernel drops the lock when the holder's file is closed, so a worker that dies never leaks a slot.
Locks on separately opened files conflict even within one process. Slot files nobody holds are
removed when a gateway stops or starts (``remove_unused_slots``): the remover unlinks a file only
while it holds its lock, and a holder checks after locking that its file is still the one at the
path, so no two processes can ever hold the same slot. Within a worker, waiters line up
first (first come, first served), so that only the longest-waiting request of each worker probes the
slots: without that, a burst of requests polling at random lets some wait out the pool timeout while
others overtake them.
"""
from __future__ import annotations

import fcntl
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dicomrst.backends.base import BackendBusy
from dicomrst.backends.dimse.slot_files import same_file_at, slot_path

_POLL_SECONDS = 0.005


class AssociationSlots:
    def __init__(self, directory: Path, size: int) -> None:
        self.directory = directory
        self.size = size
        self._turn = threading.Lock()  # a gevent lock under gevent, which wakes its waiters in order
        directory.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def hold(self, timeout_seconds: float) -> Iterator[int]:
        """Hold one slot for the duration of the block; BackendBusy when none frees up in time."""
        descriptor, slot = self._acquire(timeout_seconds)
        try:
            yield slot
        finally:
            os.close(descriptor)

    def _acquire(self, timeout_seconds: float) -> tuple[int, int]:
        deadline = time.monotonic() + timeout_seconds
        if not self._turn.acquire(timeout=max(0.0, timeout_seconds)):
            raise self._busy(timeout_seconds)
        try:
            while True:
                held = self._try_any()
                if held is not None:
                    return held
                if time.monotonic() >= deadline:
                    raise self._busy(timeout_seconds)
                time.sleep(_POLL_SECONDS)
        finally:
            self._turn.release()

    def _busy(self, timeout_seconds: float) -> BackendBusy:
        return BackendBusy(
            f"all {self.size} associations to this PACS are in use; none came free within {timeout_seconds:g} s"
        )

    def _try_any(self) -> tuple[int, int] | None:
        # Starting at a random slot keeps contenders from all probing slot 0 first.
        start = random.randrange(self.size)
        for offset in range(self.size):
            slot = (start + offset) % self.size
            path = slot_path(self.directory, slot)
            descriptor = self._open(path)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                continue
            if not same_file_at(descriptor, path):  # removed by remove_unused_slots meanwhile
                os.close(descriptor)
                continue
            return descriptor, slot
        return None

    def _open(self, path: Path) -> int:
        try:
            return os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        except FileNotFoundError:  # the folder was removed as unused; this worker uses it again
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_CREAT | os.O_RDWR, 0o600)

