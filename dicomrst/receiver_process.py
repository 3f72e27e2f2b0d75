"""Running the whole gateway from gunicorn: the move receiver process starts and stops with it.

Kept free of heavy imports: gunicorn's master loads this through its config file, before any worker
monkey-patches with gevent.
"""
from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys

from dicomrst.backends.dimse.config import DimseAetConfig
from dicomrst.config import CONFIG_ENV, Config
from dicomrst.processes import Listener, die_with_parent

log = logging.getLogger(__name__)

STARTUP_SECONDS = 20
READY = b"READY"


def needs_receiver(config: Config) -> bool:
    return bool(config.server.dimse) and any(
        isinstance(entry, DimseAetConfig) and entry.wado_rs.method == "move" for entry in config.aets
    )


def receiver_listeners(config: Config) -> list[Listener]:
    if not needs_receiver(config):
        return []
    return [Listener(receiver.interface, receiver.port, f"the move receiver {receiver.aet} (server.dimse[{index}].port)")
            for index, receiver in enumerate(config.server.dimse)]


def start_receiver_process(config: Config, config_path: str | None) -> subprocess.Popen[bytes] | None:
    """Start ``dicomrst receiver`` and wait until it says every Storage SCP is listening."""
    if not needs_receiver(config):
        return None
    environment = dict(os.environ)
    if config_path:
        environment[CONFIG_ENV] = config_path
    # It dies with gunicorn's master however that ends (a kill -9 included), and sits in a session of
    # its own so that Ctrl-C in a terminal reaches the master, which stops it in order, and not it.
    process = subprocess.Popen([sys.executable, "-m", "dicomrst.cli", "receiver", "--ready-fd", "1"],
                               env=environment, stdout=subprocess.PIPE, preexec_fn=die_with_parent(),
                               start_new_session=True)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_SECONDS)
    line = process.stdout.readline() if ready else b""
    process.stdout.close()
    if line.strip() != READY:
        stop_receiver_process(process, 1)
        raise RuntimeError(f"the move receiver did not start within {STARTUP_SECONDS} s (exit code {process.poll()})")
    return process


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
