"""The runtime folder's housekeeping: slot files nobody holds are removed and a held one never is;
a holder whose file was removed meanwhile takes another; what dead processes left is reaped."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
from pathlib import Path

import pytest

from dicomrst.backends.dimse import slot_files
from dicomrst.backends.dimse.slots import AssociationSlots
from dicomrst.backends.dimse.spool import reap_spool
from dicomrst import runtime


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "runtime"
    monkeypatch.setattr(runtime, "runtime_directory", lambda: directory)
    monkeypatch.setattr(slot_files, "runtime_directory", lambda: directory)
    return directory


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_unheld_slot_files_are_removed_and_held_ones_kept(runtime_dir: Path):
    directory = slot_files.default_slot_directory("PACS", "h", 104)
    slots = AssociationSlots(directory, 3)
    with slots.hold(1) as held:
        with slots.hold(1):
            pass
        slot_files.remove_unused_slots(directory)
        assert [path.name for path in directory.iterdir()] == [f"{held}.lock"]
    slot_files.remove_unused_slots(directory)
    assert not directory.exists() and not runtime_dir.exists()


def test_a_slot_whose_file_was_removed_after_opening_is_not_held(runtime_dir: Path):
    directory = slot_files.default_slot_directory("PACS", "h", 104)
    directory.mkdir(parents=True)
    path = slot_files.slot_path(directory, 0)
    early = os.open(path, os.O_CREAT | os.O_RDWR)  # opened, not yet locked, when the remover runs
    slot_files.remove_unused_slots(directory)
    fcntl.flock(early, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert not slot_files.same_file_at(early, path)
    os.close(early)
    # The pool recreates its folder and its files as it needs them.
    with AssociationSlots(directory, 1).hold(1) as slot:
        assert slot == 0 and path.exists()


def test_reaping_leaves_other_gateways_held_slots(runtime_dir: Path):
    mine = AssociationSlots(slot_files.default_slot_directory("A", "h", 1), 2)
    stale = slot_files.default_slot_directory("B", "h", 2)
    stale.mkdir(parents=True)
    (stale / "0.lock").write_bytes(b"")
    with mine.hold(1) as slot:
        slot_files.reap_slot_directories()
        assert not stale.exists()
        assert (mine.directory / f"{slot}.lock").exists()


def test_metrics_folders_of_dead_masters_are_reaped(runtime_dir: Path):
    dead = runtime_dir / f"metrics-8080-{dead_pid()}"
    live = runtime_dir / f"metrics-8080-{os.getpid()}"
    other = runtime_dir / "metrics-named-by-the-operator"
    for folder in (dead, live, other):
        folder.mkdir(parents=True)
    assert runtime.reap_metrics_directories() == [dead]
    assert live.exists() and other.exists()


def test_moves_of_dead_workers_are_reaped_and_live_ones_kept(tmp_path: Path):
    base = tmp_path / "spool"
    dead_move = base / "RECV_1-x" / "PACS-y" / "11"
    live_move = base / "RECV_2-x" / "PACS-y" / "12"
    for move, pid in ((dead_move, dead_pid()), (live_move, os.getpid())):
        move.mkdir(parents=True)
        (move / "selection.json").write_text(json.dumps({"pid": pid, "created": 0.0}))
    reap_spool(base)
    assert not dead_move.parent.parent.exists()
    assert live_move.exists()
