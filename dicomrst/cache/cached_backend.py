"""A backend in front of another, keeping what it retrieves (``aets[].cache``).

Retrievals of a series or of instances of one go through the cache: a series retrieved whole within the
time to live is served from disk without DIMSE; otherwise the series is moved once (whoever asks
first, across workers; the others wait and read what it stored) and every instance of it is kept. A
frames, metadata or instance request for one instance retrieves what ``prefetch`` says: its series by
default, since a viewer asks for the rest next. Study retrievals pass through and keep what they see.
Searches always ask the PACS; a store through the gateway forgets the series it adds to.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from pydicom import Dataset

from dicomrst.backends.base import (
    Backend,
    BackendBusy,
    BackendProtocolError,
    Health,
    InstanceSelection,
    NotFound,
    SearchNotes,
    StoreOutcome,
    StoreSession,
)
from dicomrst.cache.instances import InstanceCache
from dicomrst.dicomweb.part10 import uids_of
from dicomrst.dicomweb.query import QidoQuery
from dicomrst.dicomweb.stow import UploadedInstance


class CachedBackend(Backend):
    def __init__(self, inner: Backend, cache: InstanceCache, prefetch: str, wait_seconds: float) -> None:
        self.inner = inner
        self.cache = cache
        self.prefetch = prefetch
        self.wait_seconds = wait_seconds  # how long to wait for another worker's retrieval of a series
        self.aet = inner.aet
        self.kind = inner.kind

    def health(self) -> Health:
        return self.inner.health()

    def describe(self) -> dict[str, object]:
        return {**self.inner.describe(), "cache": {"bytes": self.cache.volume(), "prefetch": self.prefetch}}

    def search(self, query: QidoQuery, notes: SearchNotes) -> Iterator[Dataset]:
        return self.inner.search(query, notes)

    def store_session(self) -> AbstractContextManager[StoreSession]:
        return self._store_session()

    @contextmanager
    def _store_session(self) -> Iterator[StoreSession]:
        with self.inner.store_session() as session:
            yield _Forgetting(session, self.cache)

    def retrieve(self, selection: InstanceSelection) -> Iterator[bytes]:
        if selection.series_uid is None:
            return self._kept(self.inner.retrieve(selection))
        return self._series(selection.study_uid, selection.series_uid, selection.sop_uid)

    def metadata(self, selection: InstanceSelection) -> Iterator[bytes]:
        return self._one_or_more(selection)

    def frames(self, selection: InstanceSelection) -> Iterator[bytes]:
        return self._one_or_more(selection)

    def _one_or_more(self, selection: InstanceSelection) -> Iterator[bytes]:
        if selection.sop_uid is not None and self.prefetch == "instance":
            return self._instance(selection)
        if selection.sop_uid is not None and self.prefetch == "study":
            return self._from_study(selection)
        return self.retrieve(selection)

    # ------------------------------------------------------------------------------------------

    def _kept(self, instances: Iterator[bytes]) -> Iterator[bytes]:
        for part10 in instances:
            study_uid, series_uid, sop_uid = uids_of(part10)
            self.cache.put(study_uid, series_uid, sop_uid, part10)
            yield part10

    def _cached_series(self, study_uid: str, series_uid: str, sop_uid: str | None) -> list[str] | None:
        """The SOP Instance UIDs to serve from disk, when the series is complete there; checked without
        reading the instances, which are then read one at a time (``_read``)."""
        sop_uids = self.cache.complete_series(study_uid, series_uid)
        if sop_uids is None or (sop_uid is not None and sop_uid not in sop_uids):
            return None
        wanted = sop_uids if sop_uid is None else [sop_uid]
        if not all(self.cache.has(study_uid, series_uid, uid) for uid in wanted):  # evicted meanwhile
            return None
        return wanted

    def _read(self, study_uid: str, series_uid: str, sop_uids: list[str]) -> Iterator[bytes]:
        for sop_uid in sop_uids:
            part10 = self.cache.get(study_uid, series_uid, sop_uid)
            if part10 is None:
                # Evicted between the check and the read: the response ends visibly unfinished rather
                # than short of an instance.
                raise BackendProtocolError("an instance of the cached series was evicted while it was sent")
            yield part10

    def _series(self, study_uid: str, series_uid: str, sop_uid: str | None) -> Iterator[bytes]:
        cached = self._cached_series(study_uid, series_uid, sop_uid)
        if cached is not None:
            yield from self._read(study_uid, series_uid, cached)
            return
        with self.cache.series_lock(study_uid, series_uid, self.wait_seconds) as held:
            if not held:
                raise BackendBusy("another retrieval of this series is still under way")
            # Whoever held the lock before may have stored the series meanwhile.
            cached = self._cached_series(study_uid, series_uid, sop_uid)
            if cached is not None:
                yield from self._read(study_uid, series_uid, cached)
                return
            seen: list[str] = []
            for part10 in self.inner.retrieve(InstanceSelection(study_uid, series_uid)):
                found_study, found_series, found_sop = uids_of(part10)
                self.cache.put(found_study, found_series, found_sop, part10)
                seen.append(found_sop)
                if sop_uid is None or found_sop == sop_uid:
                    yield part10
            self.cache.mark_complete(study_uid, series_uid, seen)
        if sop_uid is not None and sop_uid not in seen:
            raise NotFound("no instance matches")

    def _instance(self, selection: InstanceSelection) -> Iterator[bytes]:
        assert selection.series_uid is not None and selection.sop_uid is not None
        part10 = self.cache.get(selection.study_uid, selection.series_uid, selection.sop_uid)
        if part10 is not None:
            yield part10
            return
        yield from self._kept(self.inner.retrieve(selection))

    def _from_study(self, selection: InstanceSelection) -> Iterator[bytes]:
        assert selection.series_uid is not None and selection.sop_uid is not None
        part10 = self.cache.get(selection.study_uid, selection.series_uid, selection.sop_uid)
        if part10 is not None:
            yield part10
            return
        for found in self._kept(self.inner.retrieve(InstanceSelection(selection.study_uid))):
            if uids_of(found)[2] == selection.sop_uid:
                yield found


class _Forgetting(StoreSession):
    """A store session that forgets the cached completeness of each series it adds to."""

    def __init__(self, inner: StoreSession, cache: InstanceCache) -> None:
        self.inner = inner
        self.cache = cache

    def store(self, instance: UploadedInstance) -> StoreOutcome:
        self.cache.forget_series(instance.study_uid, instance.series_uid)
        return self.inner.store(instance)
