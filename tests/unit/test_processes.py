"""Children that die with their parent, and ports checked before anything starts."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dicomrst.processes import Listener, PortInUse, check_ports_free


def test_a_taken_port_is_named_with_what_wanted_it():
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse) as caught:
            check_ports_free([Listener("127.0.0.1", port, "the thing")])
    assert str(caught.value) == f"port {port} on 127.0.0.1 is already in use; the thing wanted it"


def test_a_free_port_passes():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_ports_free([Listener("127.0.0.1", port, "x"), Listener("0.0.0.0", port, "y")])


PARENT = """
import subprocess, sys, time
from dicomrst.processes import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(60)
"""


def test_a_child_dies_when_its_parent_is_killed(tmp_path: Path):
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert Path(f"/proc/{child}").exists()
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _running(child):
        time.sleep(0.05)
    assert not _running(child)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return not state[state.rindex(")") + 2:].startswith("Z")
