"""The spool where the move receiver hands instances to the worker that asked for them.

Layout under one receiver's root: ``{pacs}/{message id}/`` is a pending move. A worker registers a
move by creating that folder; ``mkdir`` is atomic, so it also makes the Move Originator Message ID
unique among the moves in flight to that PACS from every worker. Beside the instances, the folder
holds ``selection.json`` (the UIDs the move asked for and the worker's pid), which lets the receiver
route a C-STORE whose PACS left out the message id, and tells a dead worker's leftovers apart.

The receiver writes each instance under a temporary name and renames it into place, so a worker
never sees half an instance; the C-STORE-RSP reports success only after the rename.

A worker may seal its move (``seal_move``) once the PACS has sent everything for it while the client is
still reading: the receiver then routes nothing more to it, so the PACS's next move (in sequential mode,
for a PACS that leaves the message id out) cannot be taken for this one.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import time
import uuid
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dicomrst.backends.base import InstanceSelection
from dicomrst.backends.dimse.file_names import safe_name
from dicomrst.runtime import process_alive, remove_if_empty, runtime_directory
from dicomrst.config import ReceiverConfig

log = logging.getLogger(__name__)

SPOOL_ENV = "DICOMRST_SPOOL"
SELECTION_FILE = "selection.json"
SEALED_FILE = "sealed"
INSTANCE_SUFFIX = ".dcm"
_TEMPORARY_PREFIX = ".incoming-"
_MAX_MESSAGE_ID = 0xFFFF


def spool_root(receiver: ReceiverConfig) -> Path:
    """One receiver's spool; the receiver process and every worker compute the same path."""
    return spool_base() / safe_name(f"{receiver.aet}:{receiver.port}")


RECEIVER_PID_FILE = "receiver.pid"


def write_receiver_pid(root: Path) -> None:
    """Say which process receives into this spool, so workers can tell a dead receiver from a PACS
    that has nothing to send.

    Until this file is in, the root is an empty folder, which another gateway's receiver sharing the
    spool base removes when it reaps (``reap_spool``, every REAP_SECONDS): the root is made again here
    as often as it vanished meanwhile."""
    temporary = root / f".{RECEIVER_PID_FILE}.{os.getpid()}"
    for attempt in range(_PID_FILE_ATTEMPTS):
        root.mkdir(parents=True, exist_ok=True)
        try:
            temporary.write_text(str(os.getpid()))
            os.replace(temporary, root / RECEIVER_PID_FILE)
            return
        except FileNotFoundError:
            if attempt == _PID_FILE_ATTEMPTS - 1:
                raise


_PID_FILE_ATTEMPTS = 5


def receiver_running(root: Path) -> bool:
    try:
        pid = int((root / RECEIVER_PID_FILE).read_text())
    except (OSError, ValueError):
        return False
    return process_alive(pid)


def spool_base() -> Path:
    return Path(os.environ[SPOOL_ENV]) if os.environ.get(SPOOL_ENV) else runtime_directory() / "spool"


def reap_spool(base: Path) -> None:
    """Remove every pending move, of any receiver under ``base``, whose worker has died, and the
    folders that leaves empty: what a gateway killed without its clean stop left behind."""
    for root in _subdirectories(base):
        for parent in _subdirectories(root):
            _remove_abandoned(parent)
            for directory in _pending(parent):
                # A worker that died between creating its move and writing the selection.
                if _read_selection(directory) is None and time.time() - directory.stat().st_mtime > 60:
                    shutil.rmtree(directory, ignore_errors=True)
            remove_if_empty(parent)
        remove_if_empty(root)


def remove_spool(root: Path) -> None:
    """A receiver's whole spool, when it stops: no worker is left to consume what is there."""
    shutil.rmtree(root, ignore_errors=True)
    remove_if_empty(root.parent)


def _subdirectories(directory: Path) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(directory) if entry.is_dir()]
    except FileNotFoundError:
        return []


def pacs_directory(root: Path, pacs_aet: str) -> Path:
    return root / safe_name(pacs_aet)


@dataclass(frozen=True)
class PendingMove:
    directory: Path
    message_id: int

    def arrived(self) -> list[Path]:
        """Instances delivered and not yet consumed, in order of arrival."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return [self.directory / name for name in sorted(names) if name.endswith(INSTANCE_SUFFIX)]


def register_move(root: Path, pacs_aet: str, selection: InstanceSelection) -> PendingMove:
    """Create a pending move with a message id no other move in flight to this PACS has."""
    parent = pacs_directory(root, pacs_aet)
    parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(parent)
    for _ in range(1000):
        message_id = random.randint(1, _MAX_MESSAGE_ID)
        directory = parent / str(message_id)
        try:
            directory.mkdir()
        except FileExistsError:
            continue
        _write_selection(directory, selection)
        return PendingMove(directory, message_id)
    raise RuntimeError(f"no free message id for moves from {pacs_aet}")


def finish_move(move: PendingMove) -> None:
    shutil.rmtree(move.directory, ignore_errors=True)


def seal_move(move: PendingMove) -> None:
    """The move takes no more instances: what arrived stays to be read, the receiver routes nothing
    more to it. Sealing a move that has ended already is no error."""
    try:
        (move.directory / SEALED_FILE).touch()
    except (FileNotFoundError, NotADirectoryError):
        pass


def is_sealed(directory: Path) -> bool:
    return (directory / SEALED_FILE).exists()


def is_receiving(directory: Path) -> bool:
    """Whether a move found earlier still takes instances: not finished, not sealed."""
    return directory.is_dir() and not is_sealed(directory)


def _write_selection(directory: Path, selection: InstanceSelection) -> None:
    content = {
        "pid": os.getpid(),
        "created": time.time(),
        "study_uid": selection.study_uid,
        "series_uid": selection.series_uid,
        "sop_uid": selection.sop_uid,
    }
    temporary = directory / f"{_TEMPORARY_PREFIX}{SELECTION_FILE}"
    temporary.write_text(json.dumps(content))
    temporary.rename(directory / SELECTION_FILE)


def _read_selection(directory: Path) -> dict[str, object] | None:
    try:
        return json.loads((directory / SELECTION_FILE).read_text())
    except (OSError, ValueError):
        return None


def _owner_alive(selection: dict[str, object]) -> bool:
    return process_alive(selection.get("pid"))


def _remove_abandoned(parent: Path) -> None:
    """Moves whose worker died (a crash, a kill -9) are removed so they receive nothing more."""
    for directory in _pending(parent):
        selection = _read_selection(directory)
        if selection is not None and not _owner_alive(selection):
            log.warning("removing the spool of an abandoned move: %s", directory)
            shutil.rmtree(directory, ignore_errors=True)


def _pending(parent: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(parent))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir() and entry.name.isdigit():
            yield Path(entry.path)


# ------------------------------------------------------------------------------------ receiver side


def move_by_message_id(root: Path, pacs_aet: str, message_id: int) -> Path | None:
    directory = pacs_directory(root, pacs_aet) / str(message_id)
    selection = _read_selection(directory)
    return directory if selection is not None and _owner_alive(selection) and not is_sealed(directory) else None


def move_by_uids(root: Path, pacs_aet: str, study_uid: str, series_uid: str, sop_uid: str,
                 taken: Collection[Path] = ()) -> Path | None:
    """For a PACS that omits the Move Originator Message ID: the oldest live move, not ``taken`` by
    another association yet, whose selection covers this instance."""
    return oldest_covering(_pending(pacs_directory(root, pacs_aet)), study_uid, series_uid, sop_uid, taken)


def oldest_covering(directories: Iterable[Path], study_uid: str, series_uid: str, sop_uid: str,
                    taken: Collection[Path] = ()) -> Path | None:
    """Of ``directories`` (pending moves, possibly of several PACS), the oldest live and unsealed one,
    not ``taken``, whose selection covers this instance."""
    candidates: list[tuple[float, Path]] = []
    for directory in directories:
        if directory in taken:
            continue
        selection = _read_selection(directory)
        if selection is None or not _owner_alive(selection) or is_sealed(directory):
            continue
        if _covers(selection, study_uid, series_uid, sop_uid):
            created = selection.get("created")
            candidates.append((created if isinstance(created, float) else 0.0, directory))
    return min(candidates)[1] if candidates else None


def pending_moves(root: Path, pacs_aet: str) -> list[Path]:
    """The folders of the moves in flight to one PACS, live or not."""
    return list(_pending(pacs_directory(root, pacs_aet)))


def _covers(selection: dict[str, object], study_uid: str, series_uid: str, sop_uid: str) -> bool:
    wanted = (selection.get("study_uid"), selection.get("series_uid"), selection.get("sop_uid"))
    return all(want is None or want == have for want, have in zip(wanted, (study_uid, series_uid, sop_uid)))


class MoveGone(Exception):
    """The move ended (its worker finished or gave up) while an instance for it was arriving."""


def deliver(directory: Path, sop_uid: str, part10: bytes) -> Path:
    """Write an instance into a pending move atomically; MoveGone if the move has ended."""
    temporary = directory / f"{_TEMPORARY_PREFIX}{uuid.uuid4().hex}"
    final = directory / f"{time.time_ns():020d}-{sop_uid}{INSTANCE_SUFFIX}"
    try:
        with open(temporary, "wb") as handle:
            handle.write(part10)
        os.rename(temporary, final)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            raise MoveGone(str(directory)) from None
        _discard(temporary)
        raise
    return final


def _discard(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
