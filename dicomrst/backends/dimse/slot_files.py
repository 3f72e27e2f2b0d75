"""The files behind the association slots (``slots.py``): where they live, and the removal of those
nobody holds.

A slot file is unlinked only while its remover holds its lock, and a holder checks after locking that
its file is still the one at the path (``same_file_at``), so no two processes ever hold the same slot.
Kept free of heavy imports: gunicorn's master cleans these before any worker exists.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from dicomrst.backends.dimse.file_names import safe_name
from dicomrst.runtime import remove_if_empty, runtime_directory


def default_slot_directory(aet: str, host: str, port: int) -> Path:
    """The folder of one PACS's slots; the same for every process that talks to that PACS."""
    return slots_root() / safe_name(f"{aet}@{host}:{port}")


def slots_root() -> Path:
    return runtime_directory() / "associations"


def remove_unused_slots(directory: Path) -> None:
    """Unlink every slot file of one PACS that nobody holds, then the folder if that empties it."""
    for path in directory.glob("*.lock"):
        try:
            descriptor = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Unlinked while locked: whoever opened it before sees, once it gets the lock, that the
            # path no longer leads to its file, and takes another.
            path.unlink()
        except OSError:
            pass
        finally:
            os.close(descriptor)
    remove_if_empty(directory)


def reap_slot_directories() -> None:
    """Remove the slot files left by every gateway of this host that nobody holds (the kernel drops
    a dead process's locks, so this also clears what crashed processes left)."""
    try:
        directories = [Path(entry.path) for entry in os.scandir(slots_root()) if entry.is_dir()]
    except FileNotFoundError:
        return
    for directory in directories:
        remove_unused_slots(directory)


def slot_path(directory: Path, slot: int) -> Path:
    return directory / f"{slot}.lock"


def same_file_at(descriptor: int, path: Path) -> bool:
    held = os.fstat(descriptor)
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)
