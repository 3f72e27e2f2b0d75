"""Shared pieces of the benchmarks: peers from the test suite, timing, the closing report."""
from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.peers import Gateway, Orthanc, free_port, gateway_config, part10, start_orthanc
from dicomrst.backends.dimse.pynetdicom_settings import configure_pynetdicom

# The floors' pynetdicom set as the gateway sets its own (no narrating log handlers, no identifiers
# written out): a floor paying for logging the gateway skips would flatter the gateway.
configure_pynetdicom(debug=False)

__all__ = ["Gateway", "Orthanc", "free_port", "gateway_config", "part10", "start_orthanc", "timed", "timed_in_turn",
           "report"]


def timed(operation: Callable[[], object], repeats: int) -> list[float]:
    operation()  # warm-up: imports, first association, caches
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        operation()
        durations.append(time.perf_counter() - started)
    return durations


def timed_in_turn(operations: list[Callable[[], object]], repeats: int) -> list[list[float]]:
    """``timed`` for operations compared with each other, taken in turn on every round, so that the
    machine's drift (another process, the page cache) falls on all of them alike."""
    for operation in operations:
        operation()  # warm-up
    durations: list[list[float]] = [[] for _ in operations]
    for _ in range(repeats):
        for index, operation in enumerate(operations):
            started = time.perf_counter()
            operation()
            durations[index].append(time.perf_counter() - started)
    return durations


def report(title: str, gateway: list[float], floor: list[float], extra: dict[str, list[float]] | None = None,
           target: float | None = None) -> float:
    rows = {"gateway": gateway, "floor": floor, **(extra or {})}
    print(f"\n{title}")
    for name, durations in rows.items():
        print(f"  {name:<24} median {statistics.median(durations) * 1000:8.1f} ms   "
              f"min {min(durations) * 1000:8.1f}   max {max(durations) * 1000:8.1f} ms   runs {len(durations)}")
    ratio = statistics.median(gateway) / statistics.median(floor)
    suffix = f" (target <= {target})" if target is not None else ""
    print(f"  ratio gateway/floor {ratio:.2f}{suffix}")
    return ratio


def process_tree(root_pid: int) -> list[int]:
    """The pid and every descendant of it, read from /proc."""
    import os

    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    tree, pending = [], [root_pid]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def command_of(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80]


def report_memory(gateway: Gateway, target_mb: float = 150) -> None:
    """Peak resident memory of the gunicorn master, its workers and the move receiver."""
    assert gateway.process is not None
    peaks = {pid: peak_rss_mb(pid) for pid in process_tree(gateway.process.pid)}
    for pid, peak in sorted(peaks.items()):
        print(f"  peak RSS {peak:6.1f} MB  pid {pid}  {command_of(pid)}")
    print(f"  largest gateway process peak RSS {max(peaks.values()):.1f} MB (target <= {target_mb:g} MB)")
