import multiprocessing
import time

import pytest

from dicomrst.backends.base import BackendBusy
from dicomrst.backends.dimse.slot_files import default_slot_directory
from dicomrst.backends.dimse.slots import AssociationSlots


def test_slots_limit_holders_and_free_on_exit(tmp_path):
    slots = AssociationSlots(tmp_path, 2)
    with slots.hold(1) as first, slots.hold(1) as second:
        assert {first, second} == {0, 1}
        started = time.monotonic()
        with pytest.raises(BackendBusy, match="all 2 associations"):
            with slots.hold(0.2):
                pass
        assert 0.2 <= time.monotonic() - started < 1
    with slots.hold(0.1):
        pass


def _hold_for(directory, seconds, ready):
    with AssociationSlots(directory, 1).hold(1):
        ready.set()
        time.sleep(seconds)


def test_slots_are_shared_across_processes(tmp_path):
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_for, args=(tmp_path, 0.8, ready))
    holder.start()
    assert ready.wait(5)
    slots = AssociationSlots(tmp_path, 1)
    with pytest.raises(BackendBusy):
        with slots.hold(0.1):
            pass
    started = time.monotonic()
    with slots.hold(5):
        assert time.monotonic() - started < 3
    holder.join()


def test_slot_of_a_killed_process_comes_free(tmp_path):
    ready = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_for, args=(tmp_path, 60, ready))
    holder.start()
    assert ready.wait(5)
    holder.kill()
    holder.join()
    with AssociationSlots(tmp_path, 1).hold(1):
        pass


def test_slot_directory_is_per_pacs_and_safe():
    first = default_slot_directory("PACS 1/..", "host", 104)
    assert "/" not in first.name and "." not in first.name
    assert first != default_slot_directory("PACS 1/..", "host", 105)
