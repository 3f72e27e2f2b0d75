"""Running the whole gateway from gunicorn: the move receiver process starts and stops with it.

Kept free of heavy imports: gunicorn's master loads this through its config file, before any worker
monkey-patches with gevent.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time

from dicomrst.config import CONFIG_ENV, Config, DimseAetConfig

log = logging.getLogger(__name__)

STARTUP_SECONDS = 20


def needs_receiver(config: Config) -> bool:
    return bool(config.server.dimse) and any(
        isinstance(entry, DimseAetConfig) and entry.wado_rs.method == "move" for entry in config.aets
    )


def start_receiver_process(config: Config, config_path: str | None) -> subprocess.Popen[bytes] | None:
    """Start ``dicomrst receiver`` and wait until every Storage SCP port accepts connections."""
    if not needs_receiver(config):
        return None
    environment = dict(os.environ)
    if config_path:
        environment[CONFIG_ENV] = config_path
    process = subprocess.Popen([sys.executable, "-m", "dicomrst.cli", "receiver"], env=environment)
    deadline = time.monotonic() + STARTUP_SECONDS
    pending = [(r.interface, r.port) for r in config.server.dimse]
    while pending:
        if process.poll() is not None:
            raise RuntimeError(f"the move receiver exited with code {process.returncode} while starting")
        if time.monotonic() > deadline:
            stop_receiver_process(process, 1)
            raise RuntimeError(f"the move receiver did not listen on {pending} within {STARTUP_SECONDS} s")
        pending = [address for address in pending if not _listening(*address)]
        time.sleep(0.05)
    return process


def _listening(interface: str, port: int) -> bool:
    host = "127.0.0.1" if interface in ("0.0.0.0", "") else ("::1" if interface == "::" else interface)
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_receiver_process(process: subprocess.Popen[bytes] | None, timeout_seconds: float) -> None:
    """SIGTERM lets the receiver finish the C-STOREs under way; past the timeout it is killed."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_seconds)
    except subprocess.TimeoutExpired:
        log.warning("the move receiver did not stop within %g s; killing it", timeout_seconds)
        process.kill()
        process.wait()
