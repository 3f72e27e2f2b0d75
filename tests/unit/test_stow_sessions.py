"""PartStores: every part stored once, on the request's session or the spare one, reported in the order
of the body; no part lost when the spare cannot open; reading errors kept until the parts before are in."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from dicomrst.backends.base import BackendBusy, BackendUnavailable, StoreOutcome, StoreSession
from dicomrst.dicomweb.stow import SpooledPart, UploadedInstance
from dicomrst.web.stow_sessions import PartStores


class Session(StoreSession):
    def __init__(self, name: str, seconds: float = 0.0) -> None:
        self.name, self.seconds = name, seconds
        self.stored: list[str] = []
        self.paused = 0
        self.thread: str | None = None

    def store(self, instance: UploadedInstance) -> StoreOutcome:
        self.thread = threading.current_thread().name
        time.sleep(self.seconds)
        self.stored.append(instance.sop_instance_uid)
        return StoreOutcome(True)

    def pause(self) -> None:
        self.paused += 1


def parts(folder: Path, count: int, fail_after: Exception | None = None) -> Iterator[SpooledPart]:
    for number in range(count):
        path = folder / f"{number}.dcm"
        path.write_bytes(b"part")
        yield SpooledPart(path, UploadedInstance(path, "1.2.840.10008.5.1.4.1.1.7", f"1.2.{number}", "1", "2",
                                                 "1.2.840.10008.1.2.1"))
    if fail_after is not None:
        raise fail_after


def opening(session: Session, asked: list[list[str]] | None = None, closed: list[str] | None = None
            ) -> Callable[[Sequence[UploadedInstance]], AbstractContextManager[StoreSession]]:
    """The request's session, as a backend's store_session opens it (asked: like what; closed: when)."""
    @contextmanager
    def open_session(like: Sequence[UploadedInstance]) -> Iterator[StoreSession]:
        if asked is not None:
            asked.append([instance.sop_instance_uid for instance in like])
        try:
            yield session
        finally:
            if closed is not None:
                closed.append(session.name)

    return open_session


def store(part: SpooledPart, session: StoreSession) -> tuple[str, str]:
    assert part.instance is not None and part.path.exists() and isinstance(session, Session)
    session.store(part.instance)
    return part.instance.sop_instance_uid, session.name


def test_both_sessions_store_and_the_outcomes_keep_the_order_of_the_body(tmp_path: Path):
    main, spare = Session("main", 0.01), Session("spare", 0.01)
    opened: list[list[str]] = []

    @contextmanager
    def open_spare_session(like):
        opened.append([instance.sop_instance_uid for instance in like])
        yield spare

    outcomes = PartStores(store, opening(main), lambda like: open_spare_session(like)).run(parts(tmp_path, 20))
    assert [uid for uid, _ in outcomes] == [f"1.2.{n}" for n in range(20)]
    assert sorted(main.stored + spare.stored) == sorted(f"1.2.{n}" for n in range(20))
    assert main.stored and spare.stored and spare.thread == "stow-spare"
    assert opened == [["1.2.0", "1.2.1"]]  # at the second part, like the instances so far
    assert not list(tmp_path.iterdir())  # every spooled part discarded


def test_without_a_spare_the_request_session_stores_all_in_order(tmp_path: Path):
    main = Session("main")
    outcomes = PartStores(store, opening(main), lambda like: None).run(parts(tmp_path, 5))
    assert main.stored == [f"1.2.{n}" for n in range(5)] and len(outcomes) == 5


def test_a_spare_the_origin_has_no_room_for_loses_nothing(tmp_path: Path):
    main = Session("main")

    @contextmanager
    def busy(like):
        raise BackendBusy("all 2 associations to this PACS are in use")
        yield  # pragma: no cover

    outcomes = PartStores(store, opening(main), busy).run(parts(tmp_path, 6))
    assert main.stored == [f"1.2.{n}" for n in range(6)] and len(outcomes) == 6


def test_one_part_opens_no_spare(tmp_path: Path):
    asked: list[object] = []
    PartStores(store, opening(Session("main")), lambda like: asked.append(like)).run(parts(tmp_path, 1))
    assert asked == []


def test_a_broken_body_keeps_its_error_until_the_parts_before_are_stored(tmp_path: Path):
    main, spare = Session("main", 0.005), Session("spare", 0.005)

    @contextmanager
    def open_spare_session(like):
        yield spare

    stores = PartStores(store, opening(main), open_spare_session)
    outcomes = stores.run(parts(tmp_path, 7, fail_after=ValueError("body cut off")))
    assert len(outcomes) == 7 and isinstance(stores.read_error, ValueError)


def test_pausing_pauses_the_request_session_and_ends_the_spare(tmp_path: Path):
    main, spare = Session("main"), Session("spare")
    closed = threading.Event()

    @contextmanager
    def open_spare_session(like):
        try:
            yield spare
        finally:
            closed.set()

    stores = PartStores(store, opening(main), open_spare_session)

    def slow_client() -> Iterator[SpooledPart]:
        body = parts(tmp_path, 4)
        yield next(body)
        yield next(body)
        time.sleep(0.05)
        stores.pause()  # what the read-ahead does when no part comes for a while
        assert closed.wait(5)  # the spare gave its association back
        yield from body

    outcomes = stores.run(slow_client())
    assert main.paused == 1 and len(outcomes) == 4
    assert sorted(main.stored + spare.stored) == [f"1.2.{n}" for n in range(4)]


def test_what_storing_on_the_spare_raised_is_raised(tmp_path: Path):
    class Broken(Session):
        def store(self, instance: UploadedInstance) -> StoreOutcome:
            raise RuntimeError("unexpected")

    main, spare = Session("main", 0.01), Broken("spare")

    @contextmanager
    def open_spare_session(like):
        yield spare

    with pytest.raises(RuntimeError, match="unexpected"):
        PartStores(store, opening(main), open_spare_session).run(parts(tmp_path, 10))


def test_the_request_session_opens_at_the_first_part_like_its_instance_and_closes_at_the_end(tmp_path: Path):
    main = Session("main")
    asked: list[list[str]] = []
    closed: list[str] = []
    stores = PartStores(store, opening(main, asked, closed), lambda like: None)

    def body() -> Iterator[SpooledPart]:
        assert asked == []  # not before the first part is in
        yield from parts(tmp_path, 3)
        assert closed == []

    outcomes = stores.run(body())
    assert asked == [["1.2.0"]] and closed == ["main"] and len(outcomes) == 3


def test_a_body_without_parts_opens_no_session(tmp_path: Path):
    asked: list[list[str]] = []
    stores = PartStores(store, opening(Session("main"), asked), lambda like: None)
    assert stores.run(parts(tmp_path, 0, fail_after=ValueError("no boundary"))) == []
    assert asked == [] and isinstance(stores.read_error, ValueError)


def test_an_origin_that_is_down_raises_and_leaves_no_part_behind(tmp_path: Path):
    read: list[int] = []

    @contextmanager
    def down(like: Sequence[UploadedInstance]) -> Iterator[StoreSession]:
        raise BackendUnavailable("cannot connect to PACS")
        yield  # pragma: no cover

    def body() -> Iterator[SpooledPart]:
        for part in parts(tmp_path, 5):
            read.append(1)
            try:
                yield part
            except GeneratorExit:
                part.discard()  # as read_ahead discards what it read ahead
                raise

    with pytest.raises(BackendUnavailable):
        PartStores(store, down, lambda like: None).run(body())
    assert len(read) == 1  # no more of the body read
    assert not list(tmp_path.iterdir())


def test_a_part_goes_to_whichever_session_is_free_first(tmp_path: Path):
    """Neither session waits while the other has parts to spare: here the spare stores a part in a
    hundredth of the request's session's time, and takes most of them (handed out as they came, without
    waiting for a free session, they split about evenly)."""
    main, spare = Session("main", 0.2), Session("spare", 0.002)

    @contextmanager
    def open_spare_session(like):
        yield spare

    outcomes = PartStores(store, opening(main), open_spare_session).run(parts(tmp_path, 24))
    assert [uid for uid, _ in outcomes] == [f"1.2.{n}" for n in range(24)]
    assert len(spare.stored) >= 3 * len(main.stored), (main.stored, spare.stored)


def test_what_storing_on_the_request_session_raised_is_raised_and_no_part_is_left(tmp_path: Path):
    class Broken(Session):
        def store(self, instance: UploadedInstance) -> StoreOutcome:
            if instance.sop_instance_uid == "1.2.3":
                raise RuntimeError("unexpected")
            return super().store(instance)

    with pytest.raises(RuntimeError, match="unexpected"):
        PartStores(store, opening(Broken("main")), lambda like: None).run(parts(tmp_path, 10))
    assert not list(tmp_path.iterdir())
