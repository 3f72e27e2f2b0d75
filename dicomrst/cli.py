"""The ``dicomrst`` command: check-config, sample-pacs, up."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

from dicomrst.config import CONFIG_ENV, DEFAULT_CONFIG_PATH, ConfigError, DimseAetConfig, load_config


def check_config(path: str | None) -> int:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    location = path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    try:
        config = load_config(location)
    except ConfigError as error:
        print(f"{location}: {error}", file=sys.stderr)
        return 1
    names = ", ".join(entry.aet for entry in config.aets) or "no AETs"
    print(f"{location}: OK ({names})")
    return 0


def receiver(config_path: str | None, ready_fd: int | None = None) -> int:
    """The move receiver on its own (gunicorn starts it by itself; this is for running it apart)."""
    from dicomrst.backends.dimse.receiver import run_receivers
    from dicomrst.logs import configure_logging

    try:
        config = load_config(config_path)
    except ConfigError as error:
        print(f"config: {error}", file=sys.stderr)
        return 1
    configure_logging(config.telemetry.level)
    run_receivers(config, ready_fd)
    return 0


def sample_pacs(argv: Sequence[str]) -> int:
    from dicomrst.sample_pacs.scp import main

    return main(list(argv))


def up(config_path: str | None, sample_aet: str, storage: str) -> int:
    """The gateway under gunicorn, with the sample PACS beside it when the config names one."""
    if config_path:
        os.environ[CONFIG_ENV] = config_path
    try:
        config = load_config()
    except ConfigError as error:
        print(f"config: {error}", file=sys.stderr)
        return 1
    children: list[subprocess.Popen[bytes]] = []
    entry = config.aet(sample_aet)
    if isinstance(entry, DimseAetConfig):
        destinations = [f"{r.aet}=127.0.0.1:{r.port}" for r in config.server.dimse]
        command = [sys.executable, "-m", "dicomrst.sample_pacs", "--aet", entry.aet, "--host", entry.host,
                   "--port", str(entry.port), "--storage", storage]
        for destination in destinations:
            command += ["--destination", destination]
        children.append(subprocess.Popen(command))
    children.append(subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "etc/gunicorn.conf.py", "wsgi:app"]))
    return _supervise(children)


def _supervise(children: list[subprocess.Popen[bytes]]) -> int:
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes = [child.wait() for child in children]
    return 0 if stopping else next((code for code in codes if code), 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dicomrst", description="A DICOMweb gateway to DIMSE PACS and S3.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-config", help="validate a config file and say what is wrong")
    check.add_argument("file", nargs="?", help=f"the YAML file (default ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})")
    receive = commands.add_parser("receiver", help="run the move receiver (gunicorn starts it by itself)")
    receive.add_argument("--config", help=f"the YAML file (default ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})")
    receive.add_argument("--ready-fd", type=int, help="write READY to this file descriptor once listening")
    commands.add_parser("sample-pacs", help="run the sample PACS (options: dicomrst sample-pacs --help)", add_help=False)
    run = commands.add_parser("up", help="run the gateway under gunicorn, with the sample PACS when configured")
    run.add_argument("--config", help=f"the YAML file (default ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})")
    run.add_argument("--sample-pacs", default="SAMPLE", metavar="AET",
                     help="the configured AET the sample PACS plays (default SAMPLE)")
    run.add_argument("--storage", default="var/sample-pacs", help="the sample PACS's folder")
    args, rest = parser.parse_known_args(argv)
    if args.command == "sample-pacs":
        return sample_pacs(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "receiver":
        return receiver(args.config, args.ready_fd)
    return up(args.config, args.sample_pacs, args.storage)


if __name__ == "__main__":
    sys.exit(main())
