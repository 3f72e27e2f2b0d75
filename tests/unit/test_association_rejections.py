"""How a rejected association is answered: a busy PACS (rejected-transient) is asked again within the pool
timeout and then is 503 with its reason; a permanent rejection is 502 with its reason; a PACS that accepts
none of the proposed contexts is told from one that closed the connection; the slots learn the PACS's
limit and hand out fewer meanwhile. A pynetdicom SCP stands in for the PACS."""
from __future__ import annotations

import fcntl
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pynetdicom import AE, evt

from dicomrst import runtime
from dicomrst.backends.base import BackendBusy, BackendProtocolError
from dicomrst.backends.dimse import slot_files
from dicomrst.backends.dimse import slots as slots_module
from dicomrst.backends.dimse.association import (
    AssociationRejected,
    NoContextsAccepted,
    PacsBusy,
    Peer,
    Rejection,
    open_association,
)
from dicomrst.backends.dimse.slots import (
    GROW_BACK_SECONDS,
    LEARNED_LIMIT_NAME,
    LEARNED_LIMIT_SECONDS,
    AssociationSlots,
    held_slot,
)
from dicomrst.backends.dimse.store import DimseStoreSession
from dicomrst.dicomweb.stow import FAILURE_SOP_CLASS_NOT_SUPPORTED, UploadedInstance
from dicomrst.web.errors import status_for
from tests.peers import free_port

VERIFICATION = "1.2.840.10008.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "runtime"
    monkeypatch.setattr(runtime, "runtime_directory", lambda: directory)
    monkeypatch.setattr(slot_files, "runtime_directory", lambda: directory)
    return directory


class Pacs:
    """A pynetdicom SCP called PACS that knows only its own AE title."""

    def __init__(self, maximum_associations: int = 10, contexts: tuple[str, ...] = (VERIFICATION,)) -> None:
        self.port = free_port()
        self.requests = 0
        ae = AE(ae_title="PACS")
        ae.require_called_aet = True
        ae.maximum_associations = maximum_associations
        for uid in contexts:
            ae.add_supported_context(uid)
        self._server = ae.start_server(("127.0.0.1", self.port), block=False,
                                       evt_handlers=[(evt.EVT_CONN_OPEN, self._counted)])

    def _counted(self, event: object) -> None:
        self.requests += 1

    def peer(self, called_aet: str = "PACS") -> Peer:
        return Peer(called_aet=called_aet, host="127.0.0.1", port=self.port, calling_aet="GATEWAY")

    def slots(self, size: int) -> AssociationSlots:
        """The pool open_association finds for this PACS: in the folder the backend would use."""
        return AssociationSlots(slot_files.default_slot_directory("PACS", "127.0.0.1", self.port), size)

    def shutdown(self) -> None:
        self._server.shutdown()


@pytest.fixture
def pacs() -> Iterator[Pacs]:
    server = Pacs()
    yield server
    server.shutdown()


@pytest.fixture
def busy_pacs() -> Iterator[Pacs]:
    server = Pacs(maximum_associations=1)
    yield server
    server.shutdown()


@contextmanager
def occupied(pacs: Pacs) -> Iterator[None]:
    """One association to the PACS from some other client, for the block."""
    ae = AE(ae_title="OTHER")
    ae.add_requested_context(VERIFICATION)
    association = ae.associate("127.0.0.1", pacs.port, ae_title="PACS")
    assert association.is_established
    try:
        yield
    finally:
        association.release()


def test_the_reason_of_a_rejection_is_put_in_the_standards_words():
    assert str(Rejection(2, 3, 2)) == (
        "rejected-transient, source: DICOM UL service-provider (Presentation related function), "
        "reason: local-limit-exceeded")
    assert str(Rejection(1, 1, 7)) == "rejected-permanent, source: DICOM UL service-user, reason: called-AE-title-not-recognized"
    assert str(Rejection(1, 1, 5)).endswith("reason: reserved reason 5")
    assert Rejection(2, 1, 1).transient and not Rejection(1, 3, 2).transient


def test_a_permanent_rejection_is_502_with_the_pacs_reason(pacs: Pacs):
    with pytest.raises(AssociationRejected) as raised:
        with open_association(pacs.peer("NOTPACS"), [VERIFICATION], 5):
            pass
    assert isinstance(raised.value, BackendProtocolError) and status_for(raised.value) == 502
    assert "rejected-permanent" in str(raised.value)
    assert "called-AE-title-not-recognized" in str(raised.value)
    assert raised.value.rejection == Rejection(1, 1, 7)
    assert pacs.requests == 1  # not asked again


def test_a_busy_pacs_without_a_slot_is_503_at_once(busy_pacs: Pacs):
    started = time.monotonic()
    with occupied(busy_pacs), pytest.raises(PacsBusy) as raised:
        with open_association(busy_pacs.peer(), [VERIFICATION], 5):
            pass
    assert isinstance(raised.value, BackendBusy) and status_for(raised.value) == 503
    assert "rejected-transient" in str(raised.value) and "local-limit-exceeded" in str(raised.value)
    assert time.monotonic() - started < 2


def test_a_busy_pacs_is_asked_again_until_it_has_room(busy_pacs: Pacs):
    released = threading.Event()

    def occupy_for_a_while() -> None:
        with occupied(busy_pacs):
            ready.set()
            time.sleep(0.5)
        released.set()

    ready = threading.Event()
    other = threading.Thread(target=occupy_for_a_while)
    other.start()
    assert ready.wait(5)
    with busy_pacs.slots(4).hold(5):
        with open_association(busy_pacs.peer(), [VERIFICATION], 5) as association:
            assert association.is_established and released.is_set()
    other.join()
    assert busy_pacs.requests >= 3


def test_a_pacs_that_stays_busy_is_503_after_the_pool_timeout(busy_pacs: Pacs):
    started = time.monotonic()
    with occupied(busy_pacs), busy_pacs.slots(4).hold(0.6), pytest.raises(PacsBusy) as raised:
        with open_association(busy_pacs.peer(), [VERIFICATION], 5):
            pass
    elapsed = time.monotonic() - started
    assert 0.6 <= elapsed < 2.5
    assert "local-limit-exceeded" in str(raised.value) and "times in" in str(raised.value)
    assert busy_pacs.requests >= 3  # asked again, with pauses in between


def test_a_transient_rejection_with_fewer_associations_than_the_pool_learns_the_limit(busy_pacs: Pacs):
    """The PACS takes one association: the gateway, holding one open in another request, is rejected
    on the second; from then on every worker hands out one slot."""
    slots = busy_pacs.slots(4)
    first_open = threading.Event()
    done = threading.Event()

    def first_request() -> None:
        with slots.hold(5), open_association(busy_pacs.peer(), [VERIFICATION], 5):
            first_open.set()
            done.wait(10)

    first = threading.Thread(target=first_request)
    first.start()
    assert first_open.wait(5)
    try:
        with slots.hold(0.5), pytest.raises(PacsBusy):
            with open_association(busy_pacs.peer(), [VERIFICATION], 5):
                pass
        another_worker = busy_pacs.slots(4)
        assert another_worker.effective_size() == 1
        assert (another_worker.directory / LEARNED_LIMIT_NAME).exists()
    finally:
        done.set()
        first.join()
    # The first one released, the one slot still handed out is slot 0, and the PACS takes it.
    with another_worker.hold(5) as slot, open_association(busy_pacs.peer(), [VERIFICATION], 5):
        assert slot == 0


def test_fewer_slots_are_handed_out_while_a_limit_is_learned(tmp_path: Path):
    slots = AssociationSlots(tmp_path, 4)
    assert slots.learn_limit(2) == 2
    other_worker = AssociationSlots(tmp_path, 4)
    with other_worker.hold(1) as first, other_worker.hold(1) as second:
        assert {first, second} == {0, 1}
        with pytest.raises(BackendBusy, match=r"all 2 associations .*no more than 2; pool.size is 4"):
            with slots.hold(0.1):
                pass


def test_a_learned_limit_holds_for_a_while_then_grows_back(tmp_path: Path):
    slots = AssociationSlots(tmp_path, 5)
    now = time.time()
    assert slots.learn_limit(2, now) == 2
    assert slots.effective_size(now + LEARNED_LIMIT_SECONDS - 1) == 2
    assert slots.effective_size(now + LEARNED_LIMIT_SECONDS) == 3
    assert slots.effective_size(now + LEARNED_LIMIT_SECONDS + GROW_BACK_SECONDS) == 4
    assert slots.effective_size(now + LEARNED_LIMIT_SECONDS + 10 * GROW_BACK_SECONDS) == 5
    # Only ever lowered by a rejection, never below one, never above the pool.
    assert slots.learn_limit(4, now) == 2
    assert slots.learn_limit(0, now) == 1
    assert AssociationSlots(tmp_path / "fresh", 3).learn_limit(7) == 3
    assert not (tmp_path / "fresh" / LEARNED_LIMIT_NAME).exists()


def test_a_holder_past_a_learned_limit_moves_to_a_slot_within_it(tmp_path: Path, first_free_slot: None):
    slots = AssociationSlots(tmp_path, 4)
    lower = [slots.hold(1) for _ in range(3)]
    assert [hold.__enter__() for hold in lower] == [0, 1, 2]
    with slots.hold(1) as last:
        held = held_slot(tmp_path)
        assert last == 3 and held is not None and held.slot == 3
        for hold in lower:
            hold.__exit__(None, None, None)
        # Rejected with no other association open: the PACS takes one, and slot 3 is past that.
        assert held.step_down(time.monotonic() + 1) is True
        assert held.slot == 0 and slots.effective_size() == 1
        assert not _locked(tmp_path / "3.lock")
        # Within the limit, a holder keeps its slot.
        assert held.step_down(time.monotonic() + 1) is False and held.slot == 0
    assert held_slot(tmp_path) is None and not _locked(tmp_path / "0.lock")


def test_a_holder_past_a_learned_limit_with_no_room_below_gives_up_in_time(tmp_path: Path, first_free_slot: None):
    slots = AssociationSlots(tmp_path, 2)
    with slots.hold(1) as first, slots.hold(1) as second:
        assert (first, second) == (0, 1)
        held = held_slot(tmp_path)
        assert held is not None and held.slot == 1
        started = time.monotonic()
        with pytest.raises(BackendBusy):
            held.step_down(time.monotonic() + 0.2)
        assert 0.15 < time.monotonic() - started < 1
        assert held.descriptor == -1 and not _locked(tmp_path / "1.lock")
        # What is left to find is the outer hold, not the slot given up.
        outer = held_slot(tmp_path)
        assert outer is not None and outer is not held and outer.slot == 0


@pytest.fixture
def first_free_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slots probed from number 0 up, not from a random one, so a test knows which it gets."""

    class FromZero(random.Random):
        def randrange(self, *args: object, **kwargs: object) -> int:
            return 0

    monkeypatch.setattr(slots_module, "random", FromZero())


def _locked(path: Path) -> bool:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def test_released_and_open_associations_are_counted_across_holders(tmp_path: Path):
    slots = AssociationSlots(tmp_path, 4)
    with slots.hold(1) as one, slots.hold(1):
        held = held_slot(tmp_path)
        assert held is not None
        assert slots.associations_open() == 0
        held.mark_associated()
        assert slots.associations_open() == 1
        assert slots.associations_open(excluding=held.slot) == 0
        held.mark_released()
        # A PACS frees an association a moment after the release.
        assert slots.associations_open() == 1
        assert slots.associations_open(now=time.time() + 1) == 0
        assert one != held.slot
    # An associated mark left by a holder that is gone counts for nothing.
    for path in tmp_path.glob("*.lock"):
        path.write_bytes(b"A")
    assert slots.associations_open() == 0


def test_a_rejection_never_learns_below_what_the_pacs_accepted_at_once_lately(tmp_path: Path):
    """dcmqrscp frees a released association only when the next request comes: a rejection may find
    fewer of ours open than it holds. The most it was seen to accept at once is the floor."""
    slots = AssociationSlots(tmp_path, 8)
    with slots.hold(1), slots.hold(1):
        first, second = (held for held in slots_module._held_here() if held.slots is slots)
        first.mark_associated()
        assert slots.recent_peak() == 0  # one alone is no lesson
        second.mark_associated()
        assert slots.recent_peak() == 2
        first.mark_released()
        second.mark_released()
    assert slots.learn_limit(0) == 2
    later = time.time() + LEARNED_LIMIT_SECONDS + 1
    assert slots.recent_peak(later) == 0


def test_a_pacs_accepting_none_of_the_contexts_is_told_from_a_closed_connection(pacs: Pacs):
    with pytest.raises(NoContextsAccepted) as raised:
        with open_association(pacs.peer(), [(CT_STORAGE, [EXPLICIT_VR_LITTLE_ENDIAN])], 5):
            pass
    assert status_for(raised.value) == 502
    assert raised.value.refused == (CT_STORAGE,)
    assert "none of the 1 presentation contexts" in str(raised.value)


def test_stow_to_a_pacs_accepting_no_storage_class_refuses_each_instance(pacs: Pacs, tmp_path: Path):
    session = DimseStoreSession(pacs.peer(), 5, "PACS")
    session.open()  # not an error: the body is read and every instance reported
    try:
        for number in range(3):
            instance = UploadedInstance(tmp_path / f"{number}.dcm", CT_STORAGE, f"1.2.3.{number}", "1.2.3", "1.2.3.9",
                                        EXPLICIT_VR_LITTLE_ENDIAN)
            outcome = session.store(instance)
            assert not outcome.stored and outcome.reason == FAILURE_SOP_CLASS_NOT_SUPPORTED
    finally:
        session.close()
    assert pacs.requests == 1  # the refused proposal is not made again for each instance
