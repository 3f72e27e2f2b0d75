"""A backend in front of a DIMSE backend, keeping what it retrieves (``aets[].cache``).

What is served from disk, without DIMSE (the freshness rule):
- a series, while a record says a retrieval of it ended complete, every instance it listed is still
  on disk, and the PACS confirmed that list within ``ttl``: at the end of that retrieval, or later by
  an IMAGE-level C-FIND of the series whose SOP Instance UIDs are exactly the listed ones (asked at
  most once per ``ttl``; any difference forgets the record and the series is retrieved again);
- one instance, when its series is served as above, or when it landed less than ``ttl`` ago.
A store through the gateway forgets the record of each series it adds to. Searches always ask the PACS.

Anything else is retrieved, at the granularity ``prefetch`` says for a request of one instance (its
series by default: a viewer asks for the rest next), once across all the workers of the host: the
first request starts the retrieval in a task of its own, which holds the selection's lock file and
notes each instance as it lands; every request for it (the first included) serves its instances as
they land, and ends as soon as it has what it asked for. The retrieval itself runs at the PACS's
pace to its end, whoever is still reading, so a slow or departed client never holds the PACS.
A study is retrieved every time (which series it has is the PACS's to say), the same way: its series
are recorded complete when it ends. What is too large for the cache (an instance evicted before it
was sent) is retrieved again straight from the PACS, at the client's pace: nothing is left out.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from pydicom import Dataset

from dicomrst.backends.base import (
    INSTANCE_URL_PLACEHOLDER,
    Backend,
    BackendBusy,
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    Health,
    InstanceSelection,
    InstanceUids,
    NotFound,
    SearchNotes,
    StoredFrames,
    StoreOutcome,
    StoreSession,
    Validators,
)
from dicomrst.cache.config import CacheConfig
from dicomrst.cache.instances import InstanceCache, Retrieval, RetrievalKey, RetrievalLock, SeriesRecord
from dicomrst.dicomweb.metadata import instance_metadata, kept_metadata_document
from dicomrst.dicomweb.part10 import uids_of
from dicomrst.dicomweb.query import MatchingKey, QidoQuery, QueryLevel
from dicomrst.dicomweb.stow import UploadedInstance
from dicomrst.metrics import CACHE_BYTES, CACHE_EVICTIONS, CACHE_REQUESTS, CACHE_SERVED_BYTES, RETRIEVED_BYTES

log = logging.getLogger(__name__)

_STUDY_UID, _SERIES_UID, _SOP_UID = 0x0020000D, 0x0020000E, 0x00080018
# A retrieval that notes no progress this long is checked for having died with its worker.
_STALL_CHECK_SECONDS = 1.0
# Retrievals a request starts or joins before it gives up (each superseded, or ended with its worker).
_ATTEMPTS = 3
_ERRORS: dict[str, type[BackendError]] = {
    cls.__name__: cls
    for cls in (NotFound, BackendBusy, BackendUnavailable, BackendTimeout, BackendProtocolError)
}


class CachedBackend(Backend):
    def __init__(self, inner: Backend, cache: InstanceCache, config: CacheConfig, wait_seconds: float) -> None:
        self.inner = inner
        self.cache = cache
        self.config = config
        self.ttl_seconds = config.ttl / 1000
        # How long a request waits on a retrieval that notes no progress before it gives up.
        self.wait_seconds = wait_seconds
        self.aet = inner.aet
        self.kind = inner.kind

    def health(self) -> Health:
        return self.inner.health()

    def describe(self) -> dict[str, object]:
        return {**self.inner.describe(),
                "cache": {"max-size": self.config.max_size, "prefetch": self.config.prefetch, "ttl": self.config.ttl}}

    def search(self, query: QidoQuery, notes: SearchNotes) -> Iterator[Dataset]:
        return self.inner.search(query, notes)

    def store_session(self, like: Sequence[UploadedInstance] = ()) -> AbstractContextManager[StoreSession]:
        return self._forgetting(self.inner.store_session(like))

    def spare_store_session(self, like: Sequence[UploadedInstance]) -> AbstractContextManager[StoreSession] | None:
        spare = self.inner.spare_store_session(like)
        return None if spare is None else self._forgetting(spare)

    @contextmanager
    def _forgetting(self, opened: AbstractContextManager[StoreSession]) -> Iterator[StoreSession]:
        with opened as session:
            forgetting = _Forgetting(session, self.cache)
            try:
                yield forgetting
            finally:
                forgetting.forget_again()

    # ------------------------------------------------------------------------------ what is served

    def retrieve(self, selection: InstanceSelection) -> Iterator[bytes]:
        return self._read(selection, alone=False)

    def retrieve_alone(self, selection: InstanceSelection) -> Iterator[bytes]:
        return self._read(selection, alone=selection.sop_uid is not None)

    def kept_rendering(self, uids: InstanceUids, variant: str, render: Callable[[], bytes]) -> bytes:
        kept = self.cache.rendering(uids, variant)
        if kept is not None:
            CACHE_SERVED_BYTES.labels(self.aet).inc(len(kept))
            return kept
        image = render()
        self.cache.keep_rendering(uids, variant, image)
        return image

    def remembered(self, name: str, compute: Callable[[], str]) -> str:
        # The same freshness as a series: what the PACS said is taken again once ttl has passed.
        value = self.cache.remembered(name)
        if value is None:
            value = compute()
            self.cache.remember(name, value, self.ttl_seconds)
        return value

    def _read(self, selection: InstanceSelection, alone: bool) -> Iterator[bytes]:
        served: set[InstanceUids] = set()
        for uids in self._landed(selection, alone):
            part10 = self.cache.get(*uids)
            if part10 is None:
                self.cache.forget_instance(*uids)
                yield from self._directly(selection, served)
                return
            served.add(uids)
            CACHE_SERVED_BYTES.labels(self.aet).inc(len(part10))
            yield part10

    def metadata(self, selection: InstanceSelection) -> Iterator[bytes]:
        return self.retrieve(selection)

    def frames(self, selection: InstanceSelection) -> Iterator[bytes]:
        return self.retrieve(selection)

    def metadata_documents(self, selection: InstanceSelection) -> Iterator[tuple[InstanceUids, str]]:
        served: set[InstanceUids] = set()
        for uids in self._landed(selection):
            document = self.cache.metadata(*uids)
            if document is None:
                part10 = self.cache.get(*uids)
                if part10 is None:
                    self.cache.forget_instance(*uids)
                    for part10 in self._directly(selection, served):
                        yield uids_of(part10), kept_metadata_document(part10) or _failing_document(part10)
                    return
                # Computed here when it could not be as the instance landed: the error reaches the client.
                document = _failing_document(part10)
                self.cache.put_metadata(*uids, document)
            served.add(uids)
            yield uids, document

    def _directly(self, selection: InstanceSelection, served: set[InstanceUids]) -> Iterator[bytes]:
        """The rest of ``selection`` straight from the PACS: an instance was evicted between landing and
        being read (a selection larger than the whole cache), and nothing is ever left out."""
        log.warning("the retrieve cache of %s is smaller than what was asked of it; the rest is retrieved "
                    "again and sent as it comes", self.aet)
        for part10 in self.inner.retrieve(selection):
            if uids_of(part10) not in served:
                yield part10

    def _count_evictions(self) -> None:
        evicted = self.cache.cull()
        if evicted:
            CACHE_EVICTIONS.labels(self.aet).inc(evicted)

    def stored_frames(self, selection: InstanceSelection) -> StoredFrames | None:
        [uids] = list(self._landed(selection))
        info = self.cache.info(*uids)
        if info is None or info.frames is None:
            return None
        offsets = info.frames

        def read(numbers: list[int]) -> list[bytes] | None:
            found = self.cache.read_ranges(*uids, [offsets.frames[number - 1] for number in numbers])
            if found is None:
                self.cache.forget_instance(*uids)
            else:
                CACHE_SERVED_BYTES.labels(self.aet).inc(sum(len(frame) for frame in found))
            return found

        return StoredFrames(offsets.transfer_syntax, offsets.count, read)

    def validators(self, selection: InstanceSelection) -> Validators | None:
        fresh = self._fresh(selection)
        if fresh is None:
            return None
        uids, retrieved_at, verified_at = fresh
        identity = hashlib.sha256(repr((sorted(uids), retrieved_at)).encode()).hexdigest()[:32]
        return Validators(identity, retrieved_at, max(0.0, time.time() - verified_at), self.ttl_seconds)

    # ---------------------------------------------------------------------------------- freshness

    def _fresh(self, selection: InstanceSelection) -> tuple[list[InstanceUids], float, float] | None:
        """The instances of ``selection`` that may be served from disk by the freshness rule, when
        was the newest retrieved and when the PACS last confirmed them; None when they may not."""
        study_uid, series_uid, sop_uid = selection.study_uid, selection.series_uid, selection.sop_uid
        if series_uid is None:
            return None  # which series a study has is the PACS's to say
        if sop_uid is not None:
            info = self.cache.info(study_uid, series_uid, sop_uid)
            if info is None:
                return None
            # Whether its file is still there is found when it is read (``forget_instance``).
            if time.time() - info.landed_at <= self.ttl_seconds:
                return [(study_uid, series_uid, sop_uid)], info.landed_at, info.landed_at
        record = self._fresh_series(study_uid, series_uid, sop_uid)
        if record is None:
            return None
        if sop_uid is not None:  # in the record, or _fresh_series would have said None
            return [(study_uid, series_uid, sop_uid)], record.completed_at, record.verified_at
        return [(study_uid, series_uid, uid) for uid in record.sop_uids], record.completed_at, record.verified_at

    def _fresh_series(self, study_uid: str, series_uid: str, sop_uid: str | None) -> SeriesRecord | None:
        record = self.cache.series_record(study_uid, series_uid)
        if record is None or (sop_uid is not None and sop_uid not in record.sop_uids):
            return None
        wanted = record.sop_uids if sop_uid is None else (sop_uid,)
        if not all(self.cache.has(study_uid, series_uid, uid) for uid in wanted):
            return None  # evicted: retrieved again
        if time.time() - record.verified_at <= self.ttl_seconds:
            return record
        held = set(self._sop_uids_at_pacs(study_uid, series_uid))
        if held != set(record.sop_uids):
            log.info("series %s changed at %s (%d instances, %d cached): retrieved again",
                     series_uid, self.aet, len(held), len(record.sop_uids))
            self.cache.forget_series(study_uid, series_uid)
            return None
        return self.cache.mark_verified(study_uid, series_uid, record)

    def _sop_uids_at_pacs(self, study_uid: str, series_uid: str) -> Iterator[str]:
        query = QidoQuery(
            level=QueryLevel.IMAGE,
            matching=(MatchingKey((_STUDY_UID,), study_uid), MatchingKey((_SERIES_UID,), series_uid)),
            return_keys=((_SOP_UID,),), include_all=False, limit=None, offset=0, fuzzy_matching=False,
        )
        for match in self.inner.search(query, SearchNotes()):
            yield str(match.get("SOPInstanceUID", ""))

    # ---------------------------------------------------------------------- retrieval and joining

    def _landed(self, selection: InstanceSelection, alone: bool = False) -> Iterator[InstanceUids]:
        """The UIDs of each selected instance once it is on disk: at once when fresh, otherwise as the
        one retrieval of it (started here or joined) lands them."""
        fresh = self._fresh(selection)
        if fresh is not None:
            CACHE_REQUESTS.labels(self.aet, "hit").inc()
            yield from fresh[0]
            return
        key = self._retrieval_key(selection, alone)
        served: set[InstanceUids] = set()
        try:
            yield from self._retrieved(key, selection, served)
        except (BackendProtocolError, NotFound) as error:
            if selection.sop_uid is None or selection.series_uid is None or served or len(key) == 3:
                raise
            instance_key = (selection.study_uid, selection.series_uid, selection.sop_uid)
            # A PACS fails a whole series for one instance it cannot send (say, one it cannot transcode
            # for the receiver): the instance asked for is not to fail with it.
            log.info("retrieving %s of %s for one of its instances failed (%s): that instance alone is retrieved",
                     "/".join(key), self.aet, error)
            yield from self._retrieved(instance_key, selection, served)

    def _retrieved(self, key: RetrievalKey, selection: InstanceSelection,
                   served: set[InstanceUids]) -> Iterator[InstanceUids]:
        for _ in range(_ATTEMPTS):
            token = self._start_or_join(key, selection)
            if token is None:  # became fresh meanwhile
                fresh = self._fresh(selection)
                if fresh is not None:
                    yield from (uids for uids in fresh[0] if uids not in served)
                    return
                continue
            finished = yield from self._follow(key, token, selection, served)
            if finished:
                return
        raise BackendProtocolError(f"the selection was retrieved {_ATTEMPTS} times and still not served")

    def _retrieval_key(self, selection: InstanceSelection, alone: bool = False) -> RetrievalKey:
        if alone and selection.series_uid is not None and selection.sop_uid is not None:
            return (selection.study_uid, selection.series_uid, selection.sop_uid)
        if selection.series_uid is None or (selection.sop_uid is not None and self.config.prefetch == "study"):
            return (selection.study_uid,)
        if selection.sop_uid is not None and self.config.prefetch == "instance":
            return (selection.study_uid, selection.series_uid, selection.sop_uid)
        return (selection.study_uid, selection.series_uid)

    def _start_or_join(self, key: RetrievalKey, selection: InstanceSelection) -> str | None:
        """The token of the retrieval of ``key`` to follow: a new one, started here when no worker is
        retrieving it, or the one in flight; None when the selection became fresh meanwhile."""
        deadline = time.monotonic() + self.wait_seconds
        while True:
            lock = self.cache.try_retrieval_lock(key)
            if lock is not None:
                if self._fresh(selection) is not None:  # whoever held the lock just finished
                    lock.release()
                    CACHE_REQUESTS.labels(self.aet, "hit").inc()
                    return None
                token = uuid.uuid4().hex
                self.cache.note_retrieval(key, Retrieval(token))
                CACHE_REQUESTS.labels(self.aet, "miss").inc()
                threading.Thread(target=self._retrieve_into_cache, args=(key, token, lock),
                                 name=f"retrieve {'/'.join(key)}", daemon=True).start()
                return token
            retrieval = self.cache.retrieval(key)
            if retrieval is not None and not retrieval.ended:
                CACHE_REQUESTS.labels(self.aet, "join").inc()
                return retrieval.token
            # The lock is held but its holder has not noted its retrieval yet (or just ended it).
            if time.monotonic() > deadline:
                raise BackendBusy("another retrieval of this selection is still under way")
            self.cache.wait_for_landing()

    def _follow(self, key: RetrievalKey, token: str, selection: InstanceSelection,
                served: set[InstanceUids]) -> Generator[InstanceUids, None, bool]:
        """Yield the selected instances of retrieval ``token`` as they land; returns (as the generator's
        value) True when the selection was served whole, False to start or join another retrieval."""
        wanted = _matcher(selection)
        seen = 0
        last_progress = time.monotonic()
        while True:
            retrieval = self.cache.retrieval(key)
            if retrieval is None or retrieval.token != token:
                return False  # superseded: a newer retrieval of the same selection
            before = seen
            for uids in self.cache.landed(key, token, seen):
                seen += 1
                if wanted(uids) and uids not in served:
                    served.add(uids)
                    yield uids
                    if selection.sop_uid is not None:
                        return True  # the one instance asked for: the retrieval goes on without us
            if retrieval.ended:
                if retrieval.error is not None:
                    kind, message = retrieval.error
                    raise _ERRORS.get(kind, BackendProtocolError)(message)
                if not served:
                    raise NotFound("no instance matches")
                return True
            now = time.monotonic()
            if seen != before:
                last_progress = now
            elif now - last_progress > _STALL_CHECK_SECONDS and self._holder_died(key):
                log.warning("the retrieval of %s at %s ended with its worker: retrieving again", "/".join(key), self.aet)
                return False
            elif now - last_progress > self.wait_seconds:
                raise BackendTimeout("the retrieval in flight sent nothing in time")
            self.cache.wait_for_landing()

    def _holder_died(self, key: RetrievalKey) -> bool:
        lock = self.cache.try_retrieval_lock(key)
        if lock is None:
            return False
        retrieval = self.cache.retrieval(key)
        died = retrieval is not None and not retrieval.ended
        if died:
            assert retrieval is not None
            self.cache.note_retrieval(key, Retrieval(retrieval.token, retrieval.count, True,
                                                     ("BackendProtocolError", "the retrieval was interrupted")))
        lock.release()
        return died

    def _retrieve_into_cache(self, key: RetrievalKey, token: str, lock: RetrievalLock) -> None:
        """The one retrieval of ``key``: every instance the PACS sends goes to disk and is noted as landed,
        at the PACS's pace, whether or not anyone still reads."""
        landed: list[InstanceUids] = []
        started_at = time.time()
        try:
            for part10 in self.inner.retrieve(_selection_of(key)):
                uids, _ = self.cache.put(part10, kept_metadata_document)
                RETRIEVED_BYTES.labels(self.aet).inc(len(part10))
                self._count_evictions()
                landed.append(uids)
                self.cache.note_landed(key, token, len(landed) - 1, uids)
                # Let the requests following this retrieval send what landed: under gevent nothing else
                # runs until this task waits, and with the PACS ahead of it, it need not wait at all.
                time.sleep(0)
            self._record_complete(key, landed, started_at)
            self.cache.note_retrieval(key, Retrieval(token, len(landed), ended=True))
        except BackendError as error:
            self.cache.note_retrieval(key, Retrieval(token, len(landed), True, (type(error).__name__, str(error))))
        except Exception:
            log.exception("the retrieval of %s at %s failed", "/".join(key), self.aet)
            self.cache.note_retrieval(key, Retrieval(token, len(landed), True,
                                                     ("BackendProtocolError", "the retrieval failed")))
        finally:
            lock.release()
            CACHE_BYTES.labels(self.aet).set(self.cache.volume())

    def _record_complete(self, key: RetrievalKey, landed: list[InstanceUids], started_at: float) -> None:
        """A retrieval of a study or a series that ended without failure moved every instance of each
        series in it: each is recorded complete."""
        if len(key) == 3:
            return
        by_series: dict[tuple[str, str], list[str]] = {}
        for study_uid, series_uid, sop_uid in landed:
            by_series.setdefault((study_uid, series_uid), []).append(sop_uid)
        for (study_uid, series_uid), sop_uids in by_series.items():
            if study_uid == key[0] and (len(key) == 1 or series_uid == key[1]):
                self.cache.mark_complete(study_uid, series_uid, sop_uids, started_at)


def _failing_document(part10: bytes) -> str:
    """An instance's metadata, its error raised (a TranscodeError the web layer answers)."""
    return json.dumps(instance_metadata(part10, INSTANCE_URL_PLACEHOLDER), ensure_ascii=False)


def _selection_of(key: RetrievalKey) -> InstanceSelection:
    return InstanceSelection(*key)


def _matcher(selection: InstanceSelection) -> Callable[[InstanceUids], bool]:
    wanted = (selection.study_uid, selection.series_uid, selection.sop_uid)
    return lambda uids: all(want is None or want == have for want, have in zip(wanted, uids))


class _Forgetting(StoreSession):
    """A store session that forgets the cached completeness of each series it adds to: before its first
    instance goes to the PACS, and again once the session ends (``forget_again``), so that a retrieval
    that ran meanwhile and found the series short is not kept. Once per series and not per instance:
    each forgetting is two writes to the cache's database."""

    def __init__(self, inner: StoreSession, cache: InstanceCache) -> None:
        self.inner = inner
        self.cache = cache
        self.series: set[tuple[str, str]] = set()

    def store(self, instance: UploadedInstance) -> StoreOutcome:
        series = (instance.study_uid, instance.series_uid)
        if series not in self.series:
            self.cache.forget_series(*series)
            self.series.add(series)
        return self.inner.store(instance)

    def forget_again(self) -> None:
        for study_uid, series_uid in self.series:
            self.cache.forget_series(study_uid, series_uid)

    def pause(self) -> None:
        self.inner.pause()
