"""Process lifecycle: the move receiver never outlives gunicorn, a taken port is one clear line,
Ctrl-C stops everything without a traceback, a bad config on the production path is the same line
check-config prints, and the runtime files of a gateway are removed when it stops."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from dicomrst.backends.dimse.slot_files import default_slot_directory
from dicomrst.runtime import runtime_directory
from tests.peers import REPO, free_port, gateway_config, port_is_free, processes_with_environment, wait_until

CONFIG_ENV = "DICOMRST_CONFIG"


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    path = directory / "dicomrst.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def receiver_config() -> dict[str, Any]:
    """A gateway that needs the move receiver; the PACS need not run for these tests."""
    return gateway_config([{"aet": "NOWHERE", "host": "127.0.0.1", "port": free_port()}])


def start_gunicorn(config_path: Path, log: Path, *extra: str, **popen: Any) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "gunicorn", "-c", "etc/gunicorn.conf.py", "wsgi:app", "-w", "2", *extra]
    with open(log, "ab") as output:
        return subprocess.Popen(command, cwd=REPO, env={**os.environ, CONFIG_ENV: str(config_path)},
                                stdout=output, stderr=output, **popen)


def wait_for_no_process(config_path: Path, ports: tuple[int, ...] = (), timeout: float = 15) -> list[object]:
    """What is left of a gateway after ``timeout``: processes with its config in their environment (the
    receiver, the sample PACS), and ``ports`` still listened on. gunicorn's master and workers rewrite
    their process title over their environment (setproctitle), so they are found by the ports they
    listen on: every worker holds the HTTP listening socket until it exits."""
    def left() -> list[object]:
        return [*processes_with_environment(CONFIG_ENV, str(config_path)),
                *(f"port {port}" for port in ports if not port_is_free(port))]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and left():
        time.sleep(0.1)
    return left()


@pytest.fixture
def listening_socket() -> Iterator[socket.socket]:
    holder = socket.create_server(("127.0.0.1", 0))
    yield holder
    holder.close()


def receiver_pid(config_path: Path, master: int) -> int:
    for pid in processes_with_environment(CONFIG_ENV, str(config_path)):
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"receiver" in command and pid != master:
            return pid
    raise AssertionError("no move receiver process found")


def test_the_receiver_dies_with_a_master_killed_by_sigkill(tmp_path: Path):
    config = receiver_config()
    config_path = write_config(tmp_path, config)
    http_port = free_port()
    master = start_gunicorn(config_path, tmp_path / "gunicorn.log", "-b", f"127.0.0.1:{http_port}")
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{http_port}/aets", timeout=1).ok, 30, "gunicorn", master)
        receiver = receiver_pid(config_path, master.pid)
        master.kill()
        master.wait()
        assert wait_for_no_process(config_path, (http_port, config["server"]["dimse"][0]["port"])) == [], \
            "workers or the receiver outlived the killed master"
        assert not Path(f"/proc/{receiver}").exists() or "Z" in Path(f"/proc/{receiver}/stat").read_text().split()[2]
        receiver_port = config["server"]["dimse"][0]["port"]
        wait_until(lambda: port_is_free(receiver_port), 10, "the receiver's port to be free")
        # And the next start works at once, on the same ports.
        again = start_gunicorn(config_path, tmp_path / "again.log", "-b", f"127.0.0.1:{http_port}")
        try:
            wait_until(lambda: requests.get(f"http://127.0.0.1:{http_port}/aets", timeout=1).ok, 30, "gunicorn", again)
        finally:
            again.terminate()
            assert again.wait(30) == 0
    finally:
        if master.poll() is None:
            master.kill()
    assert wait_for_no_process(config_path, (http_port,)) == []


def test_gunicorn_that_cannot_bind_says_so_in_one_line_and_leaves_nothing(tmp_path: Path,
                                                                          listening_socket: socket.socket):
    config = receiver_config()
    config_path = write_config(tmp_path, config)
    taken = listening_socket.getsockname()[1]
    log = tmp_path / "gunicorn.log"
    master = start_gunicorn(config_path, log, "-b", f"127.0.0.1:{taken}")
    assert master.wait(30) != 0
    output = log.read_text()
    assert f"port {taken} on 127.0.0.1 is already in use; the gateway's HTTP server" in output, output
    assert "Traceback" not in output, output
    assert wait_for_no_process(config_path) == []
    assert port_is_free(config["server"]["dimse"][0]["port"])


def test_a_taken_receiver_port_is_one_line_too(tmp_path: Path, listening_socket: socket.socket):
    config = receiver_config()
    config["server"]["dimse"][0]["port"] = listening_socket.getsockname()[1]
    config_path = write_config(tmp_path, config)
    log = tmp_path / "gunicorn.log"
    master = start_gunicorn(config_path, log, "-b", f"127.0.0.1:{free_port()}")
    assert master.wait(30) != 0
    output = log.read_text()
    assert f"port {listening_socket.getsockname()[1]} on 127.0.0.1 is already in use; the move receiver" in output
    assert "Traceback" not in output, output
    assert wait_for_no_process(config_path) == []


def up_config(directory: Path) -> tuple[Path, dict[str, Any]]:
    config = yaml.safe_load((REPO / "etc" / "dicomrst.yaml").read_text())
    config["server"]["http"]["port"] = free_port()
    config["server"]["dimse"][0]["port"] = free_port()
    config["aets"][0]["port"] = free_port()
    return write_config(directory, config), config


def ports_of(config: dict[str, Any]) -> tuple[int, ...]:
    return (config["server"]["http"]["port"], config["server"]["dimse"][0]["port"], config["aets"][0]["port"])


def start_up(config_path: Path, directory: Path, *extra: str) -> subprocess.Popen[bytes]:
    log = open(directory / "up.log", "ab")
    # A session of its own, like a terminal's foreground job: Ctrl-C signals its whole process group.
    return subprocess.Popen(
        [sys.executable, "-m", "dicomrst.cli", "up", "--config", str(config_path), "--storage", str(directory / "pacs"),
         *extra],
        cwd=REPO, stdout=log, stderr=log, env={**os.environ, "WEB_CONCURRENCY": "2"}, start_new_session=True,
    )


def test_up_aborts_when_the_sample_pacs_port_is_taken_and_leaves_nothing(tmp_path: Path,
                                                                          listening_socket: socket.socket):
    config_path, config = up_config(tmp_path)
    taken = listening_socket.getsockname()[1]
    process = start_up(config_path, tmp_path, "--sample-pacs-port", str(taken))
    assert process.wait(30) == 1
    output = (tmp_path / "up.log").read_text()
    assert output.strip() == (f"dicomrst up: port {taken} on 127.0.0.1 is already in use; the sample PACS SAMPLE "
                              "(aets[0].port, or --sample-pacs-port) wanted it"), output
    # The effective config (with the port given) is what the children would have run with.
    assert not list(runtime_directory().glob(f"up-{process.pid}.yaml"))
    assert port_is_free(config["server"]["http"]["port"]) and port_is_free(config["server"]["dimse"][0]["port"])


def test_up_stops_the_gateway_when_the_sample_pacs_dies(tmp_path: Path):
    config_path, config = up_config(tmp_path)
    process = start_up(config_path, tmp_path)
    url = f"http://127.0.0.1:{config['server']['http']['port']}/aets/SAMPLE"
    try:
        wait_until(lambda: requests.get(url, timeout=2).ok, 60, "dicomrst up", process)
        pacs = next(pid for pid in processes_with_environment(CONFIG_ENV, str(config_path))
                    if b"sample_pacs" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(pacs, signal.SIGKILL)
        assert process.wait(60) != 0
        assert "the sample PACS exited with code -9; stopping the gateway" in (tmp_path / "up.log").read_text()
        assert wait_for_no_process(config_path, ports_of(config)) == []
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_ctrl_c_on_up_stops_everything_quietly_and_cleans_up(tmp_path: Path):
    config_path, config = up_config(tmp_path)
    process = start_up(config_path, tmp_path)
    http_port = config["server"]["http"]["port"]
    url = f"http://127.0.0.1:{http_port}/aets/SAMPLE"
    try:
        wait_until(lambda: requests.get(url, timeout=2).ok, 60, "dicomrst up", process)
        studies = requests.get(f"{url}/studies", timeout=10).json()
        # A retrieval takes an association slot and registers a move in the spool.
        study_uid = studies[0]["0020000D"]["Value"][0]
        assert requests.get(f"{url}/studies/{study_uid}/metadata", timeout=30).ok
        pacs = config["aets"][0]
        slots = default_slot_directory(pacs["aet"], pacs["host"], pacs["port"])
        assert list(slots.glob("*.lock"))
        assert list(runtime_directory().glob(f"metrics-{http_port}-*"))
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = (tmp_path / "up.log").read_text()
    assert "Traceback" not in output and "SystemExit" not in output, output
    assert wait_for_no_process(config_path, ports_of(config)) == []
    assert not slots.exists(), list(slots.iterdir())
    assert not list(runtime_directory().glob(f"metrics-{http_port}-*"))
    receiver = config["server"]["dimse"][0]
    assert not list((runtime_directory() / "spool").glob(f"{receiver['aet']}_{receiver['port']}-*"))


def test_ctrl_c_on_gunicorn_prints_no_traceback(tmp_path: Path):
    config = receiver_config()
    config_path = write_config(tmp_path, config)
    http_port = free_port()
    log = tmp_path / "gunicorn.log"
    master = start_gunicorn(config_path, log, "-b", f"127.0.0.1:{http_port}", start_new_session=True)
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{http_port}/aets", timeout=1).ok, 30, "gunicorn", master)
        os.killpg(master.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches master and workers alike
        assert master.wait(30) == 0
    finally:
        if master.poll() is None:
            os.killpg(master.pid, signal.SIGKILL)
    output = log.read_text()
    assert "Traceback" not in output and "SystemExit" not in output, output
    assert wait_for_no_process(config_path, (http_port, config["server"]["dimse"][0]["port"])) == []


def test_a_bad_config_on_the_production_path_is_the_check_config_line(tmp_path: Path):
    config_path = tmp_path / "bad.yaml"
    config_path.write_text("aets:\n  - aet: PACS\n    host: h\n")
    master = subprocess.run([sys.executable, "-m", "gunicorn", "-c", "etc/gunicorn.conf.py", "wsgi:app"], cwd=REPO,
                            env={**os.environ, CONFIG_ENV: str(config_path)}, capture_output=True, text=True,
                            timeout=30)
    check = subprocess.run([sys.executable, "-m", "dicomrst.cli", "check-config", str(config_path)], cwd=REPO,
                           capture_output=True, text=True, timeout=30)
    assert master.returncode != 0 and check.returncode == 1
    assert master.stderr.strip() == check.stderr.strip() == f"{config_path}: aets[0].port: is required"


def test_stale_runtime_files_of_dead_processes_are_reaped_at_start(tmp_path: Path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    runtime = runtime_directory()
    stale_metrics = runtime / f"metrics-1-{dead.pid}"
    stale_metrics.mkdir(parents=True, exist_ok=True)
    (stale_metrics / "counter_1.db").write_bytes(b"")
    stale_slots = default_slot_directory("GONE", "127.0.0.1", 1)
    stale_slots.mkdir(parents=True, exist_ok=True)
    (stale_slots / "0.lock").write_bytes(b"")
    stale_move = runtime / "spool" / "GONE_1-000000000000" / "PACS-000000000000" / "4242"
    stale_move.mkdir(parents=True, exist_ok=True)
    (stale_move / "selection.json").write_text(f'{{"pid": {dead.pid}, "created": 0}}')

    config_path = write_config(tmp_path, receiver_config())
    http_port = free_port()
    master = start_gunicorn(config_path, tmp_path / "gunicorn.log", "-b", f"127.0.0.1:{http_port}")
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{http_port}/aets", timeout=1).ok, 30, "gunicorn", master)
        assert not stale_metrics.exists()
        assert not stale_slots.exists()
        assert not stale_move.parent.parent.exists()
    finally:
        master.terminate()
        assert master.wait(30) == 0
