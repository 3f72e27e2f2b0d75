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

**The PACS's own limit.** A PACS may accept fewer associations than ``pool.size`` (its own maximum, or
other clients using it up): it then rejects an association request as transient (PS3.8 9.3.4). The
request that was rejected (``association.py``) counts the associations this gateway has open to the
PACS (``associations_open``) and, when there are fewer than ``pool.size``, writes that number as the
*learned limit* to ``limit.lock`` beside the slot files, with its expiry: for ``LEARNED_LIMIT_SECONDS``
after the last such rejection only that many slots (numbers ``0..limit-1``) are handed out, by every
worker; afterwards the pool grows back by one slot each ``GROW_BACK_SECONDS`` until it is ``pool.size``
again (or the PACS rejects again, which learns anew). A holder whose slot number is past a newly learned
limit gives its slot back and waits for one within it (``HeldSlot.step_down``).

The count is an estimate: a PACS frees an association a little after the release (dcmqrscp reaps its
child process only when the next request comes), and an association it has just accepted may not be
marked yet. So a slot file says what its holder is doing (``A`` while it has an association open,
``R{unix time}`` once it released it, counted for ``RECENTLY_RELEASED_SECONDS`` more), and every accepted
association records in ``peak.lock`` the most associations of ours the PACS was seen to hold at once
(kept ``LEARNED_LIMIT_SECONDS``): the learned limit is never below that. The records' names end in
``.lock`` so that ``remove_unused_slots`` removes them with the slots when the gateway stops or starts.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dicomrst.backends.base import BackendBusy
from dicomrst.backends.dimse.slot_files import same_file_at, slot_path

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.005
LEARNED_LIMIT_NAME = "limit.lock"
PEAK_NAME = "peak.lock"
LEARNED_LIMIT_SECONDS = 60.0
GROW_BACK_SECONDS = 10.0
RECENTLY_RELEASED_SECONDS = 0.25
_ASSOCIATED = b"A"
_RELEASED = b"R"


class AssociationSlots:
    def __init__(self, directory: Path, size: int) -> None:
        self.directory = directory
        self.size = size
        self._turn = threading.Lock()  # a gevent lock under gevent, which wakes its waiters in order
        directory.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def hold(self, timeout_seconds: float) -> Iterator[int]:
        """Hold one slot for the duration of the block; BackendBusy when none frees up in time.

        The slot is known to ``held_slot`` in this thread (greenlet) for the block, which is how an
        association opened in it retries a transient rejection within ``timeout_seconds`` and may move
        to a lower slot; the number yielded is the slot first taken."""
        descriptor, slot = self._acquire(timeout_seconds)
        held = HeldSlot(self, descriptor, slot, timeout_seconds)
        here = _held_here()
        # Closed ones left by a generator finalised in another greenlet are of no use to anyone.
        here[:] = [other for other in here if other.descriptor >= 0]
        here.append(held)
        try:
            yield slot
        finally:
            _forget(held)
            held.close()

    # The learned limit ---------------------------------------------------------------------------

    def effective_size(self, now: float | None = None) -> int:
        """How many slots are handed out now: ``size``, or less while a learned limit holds."""
        now = time.time() if now is None else now
        learned = self._read(LEARNED_LIMIT_NAME, "limit", now)
        if learned is None:
            return self.size
        limit, until = learned
        if now < until:
            return max(1, min(self.size, limit))
        grown = limit + 1 + int((now - until) // GROW_BACK_SECONDS)
        return max(1, min(self.size, grown))

    def learn_limit(self, open_elsewhere: int, now: float | None = None) -> int:
        """The PACS rejected an association transiently while ``open_elsewhere`` others of ours were open:
        hand out no more than that, or than the most it accepted at once lately (``recent_peak``), and
        no more than now, for ``LEARNED_LIMIT_SECONDS``. Returns the effective size."""
        now = time.time() if now is None else now
        before = self.effective_size(now)
        limit = max(1, min(max(open_elsewhere, self.recent_peak(now)), before))
        if limit >= self.size:
            return self.size
        self._write(LEARNED_LIMIT_NAME, {"limit": limit, "until": now + LEARNED_LIMIT_SECONDS})
        if limit < before:
            log.warning("the PACS of %s rejects associations beyond %d of ours: handing out %d of %d slots for %g s",
                        self.directory.name, limit, limit, self.size, LEARNED_LIMIT_SECONDS)
        return limit

    def recent_peak(self, now: float | None = None) -> int:
        """The most associations of ours the PACS was seen to hold at once within ``LEARNED_LIMIT_SECONDS``
        (0 if none recorded): a lower bound of its limit, which a rejection never learns below."""
        now = time.time() if now is None else now
        peak = self._read(PEAK_NAME, "peak", now)
        return peak[0] if peak is not None and now < peak[1] else 0

    def note_accepted(self, slot: int, now: float | None = None) -> None:
        """The PACS accepted an association in ``slot``: record how many of ours it holds now, when that
        is a new peak (or the recorded one expired). Counted strictly: held and marked associated."""
        now = time.time() if now is None else now
        holding = self.associations_open(excluding=slot, now=now, recently_released=False) + 1
        if holding < 2:
            return
        peak = self._read(PEAK_NAME, "peak", now)
        if peak is None or holding > peak[0] or now >= peak[1]:
            self._write(PEAK_NAME, {"peak": holding, "until": now + LEARNED_LIMIT_SECONDS})

    def _read(self, name: str, key: str, now: float) -> tuple[int, float] | None:
        try:
            with open(self.directory / name, "rb") as handle:
                data = json.loads(handle.read(256))
            value, until = int(data[key]), float(data["until"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        # A clock set back must not make it last for ever.
        return value, min(until, now + LEARNED_LIMIT_SECONDS)

    def _write(self, name: str, data: dict[str, float]) -> None:
        # A temporary name that remove_unused_slots would also clear, then an atomic rename: readers
        # see the old record or the new one, never half of one. A lost race loses one lesson, no more.
        temporary = self.directory / f"{name.removesuffix('.lock')}-{os.getpid()}-{random.getrandbits(32):08x}.lock"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data))
            os.replace(temporary, self.directory / name)
        except OSError:
            temporary.unlink(missing_ok=True)

    # What the holders are doing ------------------------------------------------------------------

    def associations_open(self, excluding: int | None = None, now: float | None = None,
                          recently_released: bool = True) -> int:
        """The associations this gateway (every worker) has open to the PACS, by the slot files: held
        and marked associated, or (``recently_released``) released within ``RECENTLY_RELEASED_SECONDS``."""
        now = time.time() if now is None else now
        count = 0
        for slot in range(self.size):
            if slot == excluding:
                continue
            try:
                descriptor = os.open(slot_path(self.directory, slot), os.O_RDONLY)
            except OSError:
                continue
            try:
                state = os.pread(descriptor, 32, 0)
                if state.startswith(_RELEASED):
                    if recently_released:
                        count += _recent(state[1:], now)
                elif state.startswith(_ASSOCIATED) and _held_by_someone(descriptor):
                    count += 1
            except OSError:
                pass
            finally:
                os.close(descriptor)
        return count

    # Acquiring -----------------------------------------------------------------------------------

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
        size = self.effective_size()
        learned = f" (the PACS lately accepted no more than {size}; pool.size is {self.size})" if size < self.size else ""
        return BackendBusy(
            f"all {size} associations to this PACS are in use{learned}; none came free within {timeout_seconds:g} s"
        )

    def _try_any(self) -> tuple[int, int] | None:
        size = self.effective_size()
        # Starting at a random slot keeps contenders from all probing slot 0 first.
        start = random.randrange(size)
        for offset in range(size):
            slot = (start + offset) % size
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


class HeldSlot:
    """One slot held by ``AssociationSlots.hold``: what an association opened in it reports back."""

    def __init__(self, slots: AssociationSlots, descriptor: int, slot: int, timeout_seconds: float) -> None:
        self.slots = slots
        self.descriptor = descriptor
        self.slot = slot
        self.timeout_seconds = timeout_seconds

    def mark_associated(self) -> None:
        self._mark(_ASSOCIATED)
        if self.descriptor >= 0:
            self.slots.note_accepted(self.slot)

    def mark_released(self) -> None:
        self._mark(_RELEASED + f"{time.time():.3f}".encode())

    def _mark(self, state: bytes) -> None:
        if self.descriptor < 0:
            return
        try:
            os.pwrite(self.descriptor, state, 0)
            os.ftruncate(self.descriptor, len(state))
        except OSError:
            pass

    def associations_elsewhere(self) -> int:
        """The associations of ours the PACS holds besides this slot's (``associations_open``)."""
        return self.slots.associations_open(excluding=self.slot)

    def step_down(self, deadline: float, open_elsewhere: int | None = None) -> bool:
        """The PACS rejected an association in this slot as transient with ``open_elsewhere`` others of
        ours open (counted now if not given): learn its limit (``learn_limit``), and if this slot is past
        it, give it back and wait (until ``deadline``, monotonic) for one within it. True when it moved;
        BackendBusy when no slot within the limit came free in time."""
        if open_elsewhere is None:
            open_elsewhere = self.associations_elsewhere()
        limit = self.slots.learn_limit(open_elsewhere)
        if self.slot < limit:
            return False
        self.close()
        self.descriptor, self.slot = self.slots._acquire(max(0.0, deadline - time.monotonic()))
        return True

    def close(self) -> None:
        if self.descriptor >= 0:
            descriptor, self.descriptor = self.descriptor, -1
            os.close(descriptor)


def _recent(stamp: bytes, now: float) -> int:
    try:
        # Another process's clock reading, rounded: a stamp a little ahead of ``now`` is recent too.
        return int(-1.0 < now - float(stamp) < RECENTLY_RELEASED_SECONDS)
    except ValueError:
        return 0


def _held_by_someone(descriptor: int) -> bool:
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(descriptor, fcntl.LOCK_UN)
    return False


# The slots held by this thread (a greenlet under gevent, whose monkey-patching makes threading.local
# greenlet-local), innermost last.
_local = threading.local()


def _held_here() -> list[HeldSlot]:
    held: list[HeldSlot] | None = getattr(_local, "held", None)
    if held is None:
        held = _local.held = []
    return held


def _forget(held: HeldSlot) -> None:
    # By identity: a generator closed out of order, or from another greenlet, must not drop another's.
    here = _held_here()
    for index in range(len(here) - 1, -1, -1):
        if here[index] is held:
            del here[index]
            return


def held_slot(directory: Path) -> HeldSlot | None:
    """The innermost slot this thread (greenlet) holds in the pool whose files are in ``directory``."""
    for held in reversed(_held_here()):
        if held.descriptor >= 0 and held.slots.directory == directory:
            return held
    return None
