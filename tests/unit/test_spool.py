"""The move spool on its own, in a temporary folder: how a worker registers a move and finishes it, how
the receiver routes an instance to it (by message id, or by UIDs for a PACS that leaves the id out),
delivery and a move that ended meanwhile, and the reaping of what dead workers left. No network."""
from __future__ import annotations

import errno
import json
import logging
import os
import random
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from dicomrst.backends.base import InstanceSelection
from dicomrst.backends.dimse import spool
from dicomrst.backends.dimse.spool import (
    MoveGone,
    PendingMove,
    deliver,
    finish_move,
    move_by_message_id,
    move_by_uids,
    pacs_directory,
    reap_spool,
    register_move,
    remove_spool,
    spool_base,
    spool_root,
)
from dicomrst.runtime import runtime_directory

PACS = "PACS-A"
STUDY, OTHER_STUDY = "1.2.3", "1.2.4"
SERIES, OTHER_SERIES = "1.2.3.1", "1.2.3.2"
SOP, OTHER_SOP = "1.2.3.1.1", "1.2.3.1.2"
# Beyond any pid_max Linux allows (at most 2**22): no process has it, nor ever will.
DEAD_PID = 2**31 - 2


def make_move(root: Path, message_id: int, pid: int | None = None, created: object = 1.0, pacs: str = PACS,
              **uids: str | None) -> Path:
    """A pending move as a worker's register_move leaves it, with the owner and age chosen."""
    directory = pacs_directory(root, pacs) / str(message_id)
    directory.mkdir(parents=True)
    selection = {"pid": os.getpid() if pid is None else pid, "created": created,
                 "study_uid": uids.get("study_uid", STUDY), "series_uid": uids.get("series_uid"),
                 "sop_uid": uids.get("sop_uid")}
    (directory / "selection.json").write_text(json.dumps(selection))
    return directory


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "RECEIVER"


# --- where the spool is ------------------------------------------------------------------------------


def test_the_spool_base_comes_from_the_environment_or_the_runtime_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DICOMRST_SPOOL", str(tmp_path / "elsewhere"))
    assert spool_base() == tmp_path / "elsewhere"
    monkeypatch.setenv("DICOMRST_SPOOL", "")
    assert spool_base() == runtime_directory() / "spool"
    monkeypatch.delenv("DICOMRST_SPOOL")
    assert spool_base() == runtime_directory() / "spool"


def test_each_receiver_has_a_root_of_its_own_that_reads_like_it(tmp_path, monkeypatch):
    monkeypatch.setenv("DICOMRST_SPOOL", str(tmp_path))
    first = spool_root(SimpleNamespace(aet="RECV", port=104))
    assert first.parent == tmp_path and first.name.startswith("RECV_104-")
    assert spool_root(SimpleNamespace(aet="RECV", port=104)) == first
    assert spool_root(SimpleNamespace(aet="RECV", port=105)) != first
    assert spool_root(SimpleNamespace(aet="RECV2", port=104)) != first


def test_each_pacs_has_a_folder_of_its_own(root):
    assert pacs_directory(root, "PACS-A").parent == root
    assert pacs_directory(root, "PACS-A").name.startswith("PACS-A-")
    assert pacs_directory(root, "PACS-A") != pacs_directory(root, "PACS/A")


# --- registering and finishing a move ------------------------------------------------------------------


def test_register_move_creates_the_folder_and_the_selection(root):
    before = time.time()
    move = register_move(root, PACS, InstanceSelection(STUDY, SERIES))
    assert move.directory == pacs_directory(root, PACS) / str(move.message_id)
    assert 1 <= move.message_id <= 0xFFFF
    assert sorted(os.listdir(move.directory)) == ["selection.json"]  # no temporary file left
    selection = json.loads((move.directory / "selection.json").read_text())
    created = selection.pop("created")
    assert isinstance(created, float) and before <= created <= time.time()
    assert selection == {"pid": os.getpid(), "study_uid": STUDY, "series_uid": SERIES, "sop_uid": None}
    assert move.arrived() == []


def test_message_ids_are_drawn_from_1_to_65535(root, monkeypatch):
    asked = []

    def lowest(low: int, high: int) -> int:
        asked.append((low, high))
        return low

    monkeypatch.setattr(random, "randint", lowest)
    assert register_move(root, PACS, InstanceSelection(STUDY)).message_id == 1
    monkeypatch.setattr(random, "randint", lambda low, high: high)
    assert register_move(root, PACS, InstanceSelection(STUDY)).message_id == 65535
    assert asked == [(1, 65535)]


def test_a_message_id_in_flight_is_not_given_twice(root, monkeypatch):
    drawn = iter([7, 7, 7, 9])
    monkeypatch.setattr(random, "randint", lambda low, high: next(drawn))
    first = register_move(root, PACS, InstanceSelection(STUDY))
    second = register_move(root, PACS, InstanceSelection(STUDY))
    assert (first.message_id, second.message_id) == (7, 9)
    # The same id for another PACS is another move.
    monkeypatch.setattr(random, "randint", lambda low, high: 7)
    assert register_move(root, "PACS-B", InstanceSelection(STUDY)).message_id == 7


def test_no_free_message_id_after_1000_draws(root, monkeypatch):
    make_move(root, 5)
    draws = []
    monkeypatch.setattr(random, "randint", lambda low, high: draws.append(1) or 5)
    with pytest.raises(RuntimeError) as info:
        register_move(root, PACS, InstanceSelection(STUDY))
    assert str(info.value) == f"no free message id for moves from {PACS}"
    assert len(draws) == 1000


def test_registering_removes_the_moves_of_dead_workers_first(root, caplog):
    dead = make_move(root, 11, pid=DEAD_PID)
    live = make_move(root, 12)
    with caplog.at_level(logging.WARNING, logger=spool.__name__):
        register_move(root, PACS, InstanceSelection(STUDY))
    assert not dead.exists() and live.exists()
    assert [record.getMessage() for record in caplog.records] == [
        f"removing the spool of an abandoned move: {dead}"
    ]


def test_finish_move_removes_the_move_with_what_arrived(root):
    move = register_move(root, PACS, InstanceSelection(STUDY))
    deliver(move.directory, SOP, b"part10")
    finish_move(move)
    assert not move.directory.exists()
    finish_move(move)  # finishing twice is no error


def test_arrived_lists_the_instances_in_order_of_arrival(root):
    move = register_move(root, PACS, InstanceSelection(STUDY))
    for name in ("00000000000000000002-b.dcm", "00000000000000000001-a.dcm", ".incoming-x", "notes.txt"):
        (move.directory / name).write_bytes(b"")
    assert move.arrived() == [move.directory / "00000000000000000001-a.dcm",
                              move.directory / "00000000000000000002-b.dcm"]
    assert PendingMove(root / "gone", 1).arrived() == []


# --- routing by message id -------------------------------------------------------------------------


def test_a_live_move_is_found_by_its_message_id(root):
    move = register_move(root, PACS, InstanceSelection(STUDY))
    assert move_by_message_id(root, PACS, move.message_id) == move.directory
    assert move_by_message_id(root, "PACS-B", move.message_id) is None
    assert move_by_message_id(root, PACS, move.message_id % 0xFFFF + 1) is None


def test_no_move_by_message_id_when_its_worker_died_or_its_selection_is_unreadable(root):
    make_move(root, 21, pid=DEAD_PID)
    assert move_by_message_id(root, PACS, 21) is None
    broken = pacs_directory(root, PACS) / "22"
    broken.mkdir(parents=True)
    (broken / "selection.json").write_text("{not json")
    assert move_by_message_id(root, PACS, 22) is None
    (pacs_directory(root, PACS) / "23").mkdir()  # created, selection not written yet
    assert move_by_message_id(root, PACS, 23) is None
    without_pid = make_move(root, 24)
    (without_pid / "selection.json").write_text(json.dumps({"created": 1.0, "study_uid": STUDY}))
    assert move_by_message_id(root, PACS, 24) is None


# --- routing by UIDs (a PACS that leaves the message id out) ------------------------------------------


def test_the_oldest_live_move_that_covers_the_instance_takes_it(root):
    newer = make_move(root, 31, created=200.5)
    older = make_move(root, 32, created=100.5)
    assert move_by_uids(root, PACS, STUDY, SERIES, SOP) == older
    assert move_by_uids(root, PACS, STUDY, SERIES, SOP, taken={older}) == newer
    assert move_by_uids(root, PACS, STUDY, SERIES, SOP, taken=[older, newer]) is None
    assert move_by_uids(root, "PACS-B", STUDY, SERIES, SOP) is None


def test_a_move_without_a_valid_creation_time_counts_as_oldest(root):
    make_move(root, 41, created=0.5)
    for created in (None, 7, "yesterday"):
        undated = make_move(root, 42, created=created)
        assert move_by_uids(root, PACS, STUDY, SERIES, SOP) == undated
        finish_move(PendingMove(undated, 42))


@pytest.mark.parametrize(("selection", "covered"), [
    ({}, True),  # the whole study
    ({"series_uid": SERIES}, True),
    ({"series_uid": SERIES, "sop_uid": SOP}, True),
    ({"study_uid": OTHER_STUDY}, False),
    ({"series_uid": OTHER_SERIES}, False),
    ({"series_uid": SERIES, "sop_uid": OTHER_SOP}, False),
])
def test_a_move_takes_only_the_instances_its_selection_covers(root, selection, covered):
    move = make_move(root, 51, **selection)
    assert move_by_uids(root, PACS, STUDY, SERIES, SOP) == (move if covered else None)


def test_moves_of_dead_workers_or_without_selection_take_nothing(root):
    make_move(root, 61, pid=DEAD_PID, created=0.5)
    (pacs_directory(root, PACS) / "62").mkdir()
    broken = pacs_directory(root, PACS) / "63"
    broken.mkdir()
    (broken / "selection.json").write_text("[")
    assert move_by_uids(root, PACS, STUDY, SERIES, SOP) is None
    live = make_move(root, 64, created=99.5)
    assert move_by_uids(root, PACS, STUDY, SERIES, SOP) == live


def test_only_folders_named_by_a_message_id_are_moves(root):
    stray = pacs_directory(root, PACS) / "incoming"
    stray.mkdir(parents=True)
    (stray / "selection.json").write_text(json.dumps({"pid": os.getpid(), "created": 0.5, "study_uid": STUDY}))
    (pacs_directory(root, PACS) / "65").write_text("a file, not a move")
    assert move_by_uids(root, PACS, STUDY, SERIES, SOP) is None
    reap_spool(root.parent)
    assert stray.exists() and (pacs_directory(root, PACS) / "65").exists()


# --- delivery --------------------------------------------------------------------------------------


def test_deliver_writes_the_instance_under_its_arrival_time_and_sop_uid(root, monkeypatch):
    move = register_move(root, PACS, InstanceSelection(STUDY))
    monkeypatch.setattr(time, "time_ns", lambda: 42)
    path = deliver(move.directory, SOP, b"part10 bytes")
    assert path == move.directory / f"00000000000000000042-{SOP}.dcm"
    assert path.read_bytes() == b"part10 bytes"
    assert sorted(os.listdir(move.directory)) == [path.name, "selection.json"]
    assert move.arrived() == [path]


def test_deliver_to_a_move_that_ended_raises_move_gone(root):
    move = register_move(root, PACS, InstanceSelection(STUDY))
    finish_move(move)
    with pytest.raises(MoveGone) as info:
        deliver(move.directory, SOP, b"x")
    assert str(info.value) == str(move.directory)
    assert not move.directory.exists()
    not_a_folder = root / "file"
    not_a_folder.write_text("")
    with pytest.raises(MoveGone) as info:
        deliver(not_a_folder, SOP, b"x")
    assert str(info.value) == str(not_a_folder)


def test_another_failure_is_raised_and_leaves_no_temporary_file(root, monkeypatch):
    move = register_move(root, PACS, InstanceSelection(STUDY))
    monkeypatch.setattr(time, "time_ns", lambda: 7)
    (move.directory / f"00000000000000000007-{SOP}.dcm").mkdir()  # the name is taken by a folder
    (move.directory / f"00000000000000000007-{SOP}.dcm" / "x").write_text("")
    with pytest.raises(OSError) as info:
        deliver(move.directory, SOP, b"x")
    assert not isinstance(info.value, MoveGone) and info.value.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)
    assert sorted(os.listdir(move.directory)) == [f"00000000000000000007-{SOP}.dcm", "selection.json"]


def test_a_failure_before_the_temporary_file_exists_is_raised_as_it_is(root, monkeypatch):
    move = register_move(root, PACS, InstanceSelection(STUDY))
    fixed = uuid.UUID(int=0xABC)
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)
    temporary = move.directory / f".incoming-{fixed.hex}"
    temporary.mkdir()  # its temporary name is taken by a folder: open() fails
    (temporary / "x").write_text("")
    with pytest.raises(IsADirectoryError):
        deliver(move.directory, SOP, b"x")
    assert temporary.is_dir() and move.arrived() == []


# --- reaping and removing --------------------------------------------------------------------------


def test_reaping_removes_dead_workers_moves_and_the_folders_left_empty(tmp_path):
    base = tmp_path / "spool"
    first, second = base / "RECEIVER-1", base / "RECEIVER-2"
    dead = make_move(first, 71, pid=DEAD_PID)
    dead_too = make_move(second, 72, pid=DEAD_PID, pacs="PACS-B")
    live = make_move(second, 73)
    (base / "a-file").write_text("")
    reap_spool(base)
    assert not dead.exists() and not dead_too.exists() and live.exists()
    assert not first.exists()  # nothing left in it
    assert not dead_too.parent.exists() and second.exists()
    assert base.exists()


def test_a_move_without_selection_is_reaped_only_after_a_minute(root, monkeypatch):
    now = 1_000_000.0
    young, old = pacs_directory(root, PACS) / "81", pacs_directory(root, PACS) / "82"
    for directory, age in ((young, 60.0), (old, 60.5)):
        directory.mkdir(parents=True)
        os.utime(directory, (now - age, now - age))
    (young / ".incoming-selection.json").write_text("{}")  # the worker died before renaming it
    os.utime(young, (now - 60.0, now - 60.0))
    monkeypatch.setattr(time, "time", lambda: now)
    reap_spool(root.parent)
    assert young.exists() and not old.exists()


def test_reaping_a_spool_that_does_not_exist_is_no_error(tmp_path):
    reap_spool(tmp_path / "never-made")
    assert not (tmp_path / "never-made").exists()


def test_remove_spool_removes_a_receivers_spool_and_the_base_once_empty(tmp_path):
    base = tmp_path / "spool"
    first, second = base / "RECEIVER-1", base / "RECEIVER-2"
    make_move(first, 91)
    make_move(second, 92)
    remove_spool(first)
    assert not first.exists() and second.exists()
    remove_spool(second)
    assert not base.exists() and tmp_path.exists()
    remove_spool(second)  # again: no error


def test_reaping_goes_on_past_a_move_it_cannot_remove(tmp_path, root):
    # Removal is best effort: a folder another process removes meanwhile, or one rmtree refuses (here a
    # symbolic link), is left, and reaping or registering goes on.
    target = make_move(tmp_path / "elsewhere", 1, pid=DEAD_PID)
    pacs_directory(root, PACS).mkdir(parents=True)
    link = pacs_directory(root, PACS) / "101"
    link.symlink_to(target, target_is_directory=True)
    dead = make_move(root, 102, pid=DEAD_PID)
    reap_spool(root.parent)
    assert not dead.exists() and link.is_symlink()
    unowned = pacs_directory(root, PACS) / "103"
    unowned.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    os.utime(tmp_path / "elsewhere", (0, 0))  # an old move without selection, behind a link
    reap_spool(root.parent)
    move = register_move(root, PACS, InstanceSelection(STUDY))
    assert move.directory.exists() and link.is_symlink()


@pytest.mark.parametrize("reason", ["taken", "dead"])
def test_every_move_is_considered_whatever_order_the_folder_lists_them_in(root, reason):
    # Each of five moves in turn is the only one available: whatever order the folder lists them in, a
    # skipped one before it must not end the search.
    ids = range(111, 116)
    for available in ids:
        for message_id in ids:
            pid = DEAD_PID if reason == "dead" and message_id != available else None
            make_move(root, message_id, pid=pid, created=1.5)
        taken = {pacs_directory(root, PACS) / str(i) for i in ids if i != available} if reason == "taken" else ()
        assert move_by_uids(root, PACS, STUDY, SERIES, SOP, taken=taken) == pacs_directory(root, PACS) / str(available)
        for message_id in ids:
            finish_move(PendingMove(pacs_directory(root, PACS) / str(message_id), message_id))


def test_a_pending_move_is_a_value(root):
    move = PendingMove(root / "7", 7)
    assert move == PendingMove(root / "7", 7) and len({move, PendingMove(root / "7", 7)}) == 1
    with pytest.raises(AttributeError):
        move.message_id = 8  # type: ignore[misc]


# --- sealing: a move that takes no more instances ------------------------------------------------------


def test_a_sealed_move_keeps_what_arrived_and_is_routed_nothing_more(root):
    move = register_move(root, PACS, InstanceSelection(STUDY))
    arrived = deliver(move.directory, SOP, b"x")
    assert spool.is_receiving(move.directory) and not spool.is_sealed(move.directory)
    spool.seal_move(move)
    assert (move.directory / "sealed").exists()
    assert spool.is_sealed(move.directory) and not spool.is_receiving(move.directory)
    assert move.arrived() == [arrived]
    assert move_by_message_id(root, PACS, move.message_id) is None
    assert move_by_uids(root, PACS, STUDY, SERIES, SOP) is None
    other = make_move(root, 131 if move.message_id != 131 else 132)
    assert move_by_uids(root, PACS, STUDY, SERIES, SOP) == other


def test_sealing_or_asking_about_a_move_that_ended_is_no_error(root):
    move = register_move(root, PACS, InstanceSelection(STUDY))
    finish_move(move)
    spool.seal_move(move)
    assert not move.directory.exists()
    assert not spool.is_receiving(move.directory) and not spool.is_sealed(move.directory)


def test_pending_moves_lists_the_moves_to_one_pacs_live_or_not(root):
    assert spool.pending_moves(root, PACS) == []
    live, dead = make_move(root, 141), make_move(root, 142, pid=DEAD_PID)
    (pacs_directory(root, PACS) / "not-a-move").mkdir()
    make_move(root, 143, pacs="PACS-B")
    assert sorted(spool.pending_moves(root, PACS)) == [live, dead]


def test_oldest_covering_chooses_among_the_moves_it_is_given(root):
    first = make_move(root, 151, created=30.5)
    second = make_move(root, 152, created=20.5, pacs="PACS-B")
    third = make_move(root, 153, created=10.5, series_uid=OTHER_SERIES)
    candidates = [first, second, third]
    assert spool.oldest_covering(candidates, STUDY, SERIES, SOP) == second
    assert spool.oldest_covering(candidates, STUDY, SERIES, SOP, taken={second}) == first
    assert spool.oldest_covering([first], STUDY, SERIES, SOP, taken=[first]) is None
    assert spool.oldest_covering([], STUDY, SERIES, SOP) is None


def test_the_receiver_pid_is_written_into_a_root_another_gateway_reaped_meanwhile(tmp_path, monkeypatch):
    """An empty receiver root (no pid file yet) is what reap_spool removes: another gateway's receiver
    sharing the spool base may do so between the root's creation and this write."""
    root = tmp_path / "base" / "RECEIVER_104"
    root.mkdir(parents=True)
    spool.reap_spool(tmp_path / "base")  # what the other gateway does every REAP_SECONDS
    assert not root.exists()
    original = Path.write_text
    reaped = []

    def reaped_first(self, *args, **kwargs):
        if not reaped:  # once more, right between the root's creation and the write
            reaped.append(True)
            spool.reap_spool(tmp_path / "base")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", reaped_first)
    spool.write_receiver_pid(root)
    assert reaped and spool.receiver_running(root)
