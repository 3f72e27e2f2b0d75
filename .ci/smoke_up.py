"""The README's run command, as a newcomer types it, in a venv that has `pip install .` and nothing else:
`dicomrst up` must serve /aets and a QIDO answer from the sample PACS, stop on Ctrl-C with status 0 and
no traceback, and leave no process and no port behind.

Standard library only: it runs with the machine's python3, outside the venv it checks.
Usage: python3 .ci/smoke_up.py VENV
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def processes_of(venv: Path) -> list[str]:
    """Command lines of the processes still running from the venv (the gateway, its workers, the
    move receiver, the sample PACS all run its python)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(venv) in command:
            found.append(f"{entry.name}: {command}")
    return found


def fail(message: str, log: Path) -> None:
    print(f"smoke: FAILED: {message}\n--- dicomrst up's output ---\n{log.read_text(errors='replace')}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    venv = Path(sys.argv[1]).resolve()
    http_port, dimse_port, pacs_port = free_port(), free_port(), free_port()
    workspace = Path(tempfile.mkdtemp(prefix="dicomrst-smoke-"))
    log = workspace / "up.log"
    command = [str(venv / "bin" / "dicomrst"), "up", "--port", str(http_port), "--dimse-port", str(dimse_port),
               "--sample-pacs-port", str(pacs_port), "--storage", str(workspace / "sample-pacs")]
    print(f"smoke: {' '.join(command)}")
    with open(log, "wb") as output:
        # A session of its own, as a terminal's foreground job: Ctrl-C goes to its whole process group.
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 120
    studies: object = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail(f"dicomrst up exited with {process.returncode} before serving", log)
        try:
            if "SAMPLE" in get_json(f"{base}/aets"):  # type: ignore[operator]
                studies = get_json(f"{base}/aets/SAMPLE/studies")
                break
        except OSError:
            pass
        time.sleep(0.5)
    if not isinstance(studies, list) or not studies:
        os.killpg(process.pid, signal.SIGKILL)
        fail(f"no QIDO answer from the sample PACS within 120 s (got {studies!r})", log)
    print(f"smoke: /aets lists SAMPLE; /aets/SAMPLE/studies answered {len(studies)} studies")  # type: ignore[arg-type]

    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does
    try:
        code = process.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        fail("dicomrst up did not stop within 90 s of Ctrl-C", log)
    if code != 0:
        fail(f"dicomrst up exited with {code} after Ctrl-C", log)
    if "Traceback" in log.read_text(errors="replace"):
        fail("a traceback was printed", log)
    deadline = time.monotonic() + 10
    while processes_of(venv) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = processes_of(venv)
    if left:
        fail("processes left after the stop:\n" + "\n".join(left), log)
    taken = [port for port in (http_port, dimse_port, pacs_port) if not port_free(port)]
    if taken:
        fail(f"ports still taken after the stop: {taken}", log)
    print("smoke: Ctrl-C stopped everything: status 0, no traceback, no process or port left")


if __name__ == "__main__":
    main()
