"""The folder where the processes of one host meet (association slots, the move spool, metrics files),
and the cleaning of what a process that died left there.

Kept free of heavy imports: gunicorn's master uses this before any worker exists.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

_METRICS_PREFIX = "metrics-"
_METRICS_NAME = re.compile(rf"^{_METRICS_PREFIX}\d+-(\d+)$")


def runtime_directory() -> Path:
    """One folder per user on this host; every gateway process of that user computes the same path."""
    return Path(tempfile.gettempdir()) / f"dicomrst-{os.getuid()}"


def process_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def metrics_directory(http_port: int) -> Path:
    """The multiprocess metrics files of one gateway: named by its port and its gunicorn master's pid,
    so a folder whose master is gone is known to be stale."""
    return runtime_directory() / f"{_METRICS_PREFIX}{http_port}-{os.getpid()}"


def reap_metrics_directories() -> list[Path]:
    """Remove the metrics folders of gateways whose master died without cleaning up."""
    reaped = []
    for entry in _entries(runtime_directory()):
        match = _METRICS_NAME.match(entry.name)
        if match and entry.is_dir() and not process_alive(int(match.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            reaped.append(Path(entry.path))
    return reaped


def remove_if_empty(directory: Path) -> None:
    """Remove ``directory`` and then each parent up to the runtime folder, as long as they are empty.
    Another process may be filling one of them at the same moment; then it simply stays."""
    top = runtime_directory()
    current = directory
    while True:
        try:
            current.rmdir()
        except OSError:
            return
        if current == top or top not in current.parents:
            return
        current = current.parent


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        return list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
