"""The retrieve cache's rules with a scripted PACS behind it (the same rules against Orthanc, across
gunicorn workers, are in tests/integration/test_retrieve_cache.py): one retrieval per series however
many requests join it, errors reach every follower, a retrieval whose worker died is started again,
the freshness rule's C-FIND, and a store that forgets its series."""
from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread

from dicomrst.backends.base import (
    Backend,
    BackendProtocolError,
    BackendUnavailable,
    Health,
    InstanceSelection,
    NotFound,
    SearchNotes,
    StoreOutcome,
    StoreSession,
)
from dicomrst.cache.cached_backend import CachedBackend
from dicomrst.cache.config import CacheConfig
from dicomrst.cache.instances import InstanceCache, Retrieval
from dicomrst.dicomweb.query import QidoQuery
from dicomrst.sample_pacs.studies import generate_study
from tests.peers import part10


class SlowPacs(Backend):
    """Sends a series' instances one every ``pause`` seconds, counting retrievals and C-FINDs."""

    kind = "SCRIPTED"

    def __init__(self, instances: list[Dataset], pause: float = 0.05) -> None:
        self.aet = "PACS"
        self.instances = instances
        self.pause = pause
        self.retrievals = 0
        self.finds = 0
        self.fail_with: Exception | None = None
        self.fail_series_with: Exception | None = None

    def health(self) -> Health:
        return Health(True, "fine")

    def retrieve(self, selection: InstanceSelection) -> Iterator[bytes]:
        self.retrievals += 1
        if self.fail_with is not None:
            raise self.fail_with
        if self.fail_series_with is not None and selection.sop_uid is None:
            raise self.fail_series_with
        selected = [d for d in self.instances if selection.sop_uid in (None, d.SOPInstanceUID)]
        if not selected:
            raise NotFound("no instance matches")
        for dataset in selected:
            time.sleep(self.pause)
            yield part10(dataset)

    def search(self, query: QidoQuery, notes: SearchNotes) -> Iterator[Dataset]:
        self.finds += 1
        for dataset in self.instances:
            match = Dataset()
            match.SOPInstanceUID = dataset.SOPInstanceUID
            yield match

    def store_session(self, like=()):  # type: ignore[override]
        from contextlib import nullcontext

        class Accepting(StoreSession):
            def store(self, instance):  # type: ignore[no-untyped-def]
                return StoreOutcome(True)

        return nullcontext(Accepting())


@pytest.fixture
def series() -> list[Dataset]:
    return generate_study(random.Random(7), n_series=1, instances_per_series=5, rows=16, columns=16)


def cached(pacs: SlowPacs, folder: Path, ttl_ms: int = 60_000) -> CachedBackend:
    return CachedBackend(pacs, InstanceCache(folder, 50_000_000, 3600), CacheConfig(ttl=ttl_ms), wait_seconds=10)


def selection(dataset: Dataset, sop: bool = True) -> InstanceSelection:
    return InstanceSelection(dataset.StudyInstanceUID, dataset.SeriesInstanceUID,
                             dataset.SOPInstanceUID if sop else None)


def test_requests_for_one_series_share_one_retrieval_and_each_ends_with_its_instance(tmp_path, series):
    pacs = SlowPacs(series, pause=0.1)
    backend = cached(pacs, tmp_path)
    finished: dict[str, float] = {}
    started = time.monotonic()

    def frames_of(dataset: Dataset) -> None:
        [uids] = [found for found in backend._landed(selection(dataset))]
        finished[uids[2]] = time.monotonic() - started

    threads = [threading.Thread(target=frames_of, args=(dataset,)) for dataset in series]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pacs.retrievals == 1
    # The first instance's request ended when it landed, not when the series did.
    assert finished[series[0].SOPInstanceUID] < finished[series[-1].SOPInstanceUID] - 0.2
    assert len(list(backend.retrieve(selection(series[0], sop=False)))) == len(series)
    assert pacs.retrievals == 1


def test_an_error_of_the_retrieval_reaches_every_request_following_it(tmp_path, series):
    pacs = SlowPacs(series)
    pacs.fail_with = BackendUnavailable("the PACS is down")
    backend = cached(pacs, tmp_path)
    for dataset in series[:2]:
        with pytest.raises(BackendUnavailable, match="the PACS is down"):
            list(backend.retrieve(selection(dataset)))
    with pytest.raises(NotFound):
        pacs.fail_with = None
        list(backend.retrieve(InstanceSelection(series[0].StudyInstanceUID, series[0].SeriesInstanceUID, "1.2.3")))


def test_an_instance_is_not_failed_with_a_series_the_pacs_cannot_send_whole(tmp_path, series):
    pacs = SlowPacs(series, pause=0)
    pacs.fail_series_with = BackendProtocolError("C-MOVE failed (0xC000)")
    backend = cached(pacs, tmp_path)
    [served] = list(backend.retrieve(selection(series[2])))
    assert dcmread(BytesIO(served)).SOPInstanceUID == series[2].SOPInstanceUID
    assert pacs.retrievals == 2  # the series, then the instance alone
    with pytest.raises(BackendProtocolError):
        list(backend.retrieve(selection(series[0], sop=False)))


def test_a_retrieval_whose_worker_died_is_started_again(tmp_path, series):
    pacs = SlowPacs(series, pause=0)
    backend = cached(pacs, tmp_path)
    key = (series[0].StudyInstanceUID, series[0].SeriesInstanceUID)
    # What a worker killed mid-retrieval leaves: a record not ended, and its lock free.
    backend.cache.note_retrieval(key, Retrieval("dead-worker"))
    lock = backend.cache.try_retrieval_lock(key)
    assert lock is not None
    holder = threading.Thread(target=lambda: (time.sleep(0.3), lock.release()))
    holder.start()
    served = list(backend.retrieve(selection(series[0], sop=False)))
    holder.join()
    assert len(served) == len(series) and pacs.retrievals == 1


def test_past_ttl_one_cfind_confirms_the_series_or_sends_it_to_be_retrieved_again(tmp_path, series):
    pacs = SlowPacs(series[:4], pause=0)
    backend = cached(pacs, tmp_path, ttl_ms=200)
    whole = selection(series[0], sop=False)
    assert len(list(backend.retrieve(whole))) == 4
    time.sleep(0.3)
    assert len(list(backend.retrieve(whole))) == 4 and len(list(backend.retrieve(whole))) == 4
    assert (pacs.retrievals, pacs.finds) == (1, 1)
    pacs.instances = series  # one more instance at the PACS
    time.sleep(0.3)
    assert len(list(backend.retrieve(whole))) == 5
    assert (pacs.retrievals, pacs.finds) == (2, 2)


def test_a_store_forgets_its_series(tmp_path, series):
    pacs = SlowPacs(series, pause=0)
    backend = cached(pacs, tmp_path)
    list(backend.retrieve(selection(series[0], sop=False)))
    with backend.store_session() as session:
        instance = type("Uploaded", (), {"study_uid": series[0].StudyInstanceUID,
                                         "series_uid": series[0].SeriesInstanceUID})()
        session.store(instance)  # type: ignore[arg-type]
    list(backend.retrieve(selection(series[0], sop=False)))
    assert pacs.retrievals == 2


def test_a_retrieval_that_ran_during_a_store_session_is_not_kept_after_it(tmp_path, series):
    pacs = SlowPacs(series, pause=0)
    backend = cached(pacs, tmp_path)
    whole = selection(series[0], sop=False)
    forgotten: list[tuple[str, str]] = []
    forget = backend.cache.forget_series
    backend.cache.forget_series = lambda *series_key: (forgotten.append(series_key), forget(*series_key))[1]
    uploaded = type("Uploaded", (), {"study_uid": series[0].StudyInstanceUID, "series_uid": series[0].SeriesInstanceUID})
    with backend.store_session() as session:
        session.store(uploaded())  # type: ignore[arg-type]
        assert len(list(backend.retrieve(whole))) == len(series)  # the series as it was, between two stores
        session.store(uploaded())  # type: ignore[arg-type]
    assert len(forgotten) == 2  # before the first instance of the series, and at the end; not per instance
    list(backend.retrieve(whole))
    assert pacs.retrievals == 2


def test_validators_exist_only_for_what_is_fresh_on_disk(tmp_path, series):
    pacs = SlowPacs(series, pause=0)
    backend = cached(pacs, tmp_path)
    whole = selection(series[0], sop=False)
    assert backend.validators(whole) is None
    list(backend.retrieve(whole))
    series_validators = backend.validators(whole)
    instance_validators = backend.validators(selection(series[1]))
    assert series_validators is not None and instance_validators is not None
    assert series_validators.identity != instance_validators.identity
    assert backend.validators(InstanceSelection(series[0].StudyInstanceUID)) is None


def test_a_store_during_a_retrieval_of_its_series_keeps_that_retrieval_from_counting_as_complete(tmp_path, series):
    pacs = SlowPacs(series, pause=0.1)
    backend = cached(pacs, tmp_path)
    list(backend.retrieve(selection(series[0])))  # ends with the first instance; the series goes on landing
    with backend.store_session() as session:
        session.store(type("Uploaded", (), {"study_uid": series[0].StudyInstanceUID,  # type: ignore[arg-type]
                                            "series_uid": series[0].SeriesInstanceUID})())
    key = (series[0].StudyInstanceUID, series[0].SeriesInstanceUID)
    deadline = time.monotonic() + 5
    while not (backend.cache.retrieval(key) or Retrieval("")).ended and time.monotonic() < deadline:
        time.sleep(0.05)
    list(backend.retrieve(selection(series[0], sop=False)))
    assert pacs.retrievals == 2
