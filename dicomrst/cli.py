"""The ``dicomrst`` command: check-config, receiver, sample-pacs, up, index."""
from __future__ import annotations

import argparse
import copy
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dicomrst import __version__
from dicomrst.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    config_problem_lines,
    load_config,
)
from dicomrst.backends.dimse.config import DimseAetConfig
from dicomrst.processes import Listener, PortInUse, check_ports_free, die_with_parent
from dicomrst.runtime import runtime_directory
from dicomrst.receiver_process import needs_receiver

GUNICORN_CONFIG = "etc/gunicorn.conf.py"


def check_config(path: str | None) -> int:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    location = path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    try:
        config = load_config(location)
    except ConfigError as error:
        for line in config_problem_lines(location, error):
            print(line, file=sys.stderr)
        return 1
    from dicomrst.backends.s3.config import S3AetConfig
    from dicomrst.index.config import attribute_tags

    for position, entry in enumerate(config.aets):
        if isinstance(entry, S3AetConfig):
            try:
                attribute_tags(entry.index.attributes)  # needs pydicom, which the config reading avoids
            except ConfigError as error:
                print(f"{location}: aets[{position}].{error}", file=sys.stderr)
                return 1
    names = ", ".join(entry.aet for entry in config.aets) or "no AETs"
    print(f"{location}: OK ({names})")
    return 0


def index(config_path: str | None, aet: str, concurrency: int, progress: bool) -> int:
    """Index (again) the bucket of an S3 AET: what QIDO-RS on it searches."""
    from botocore.exceptions import BotoCoreError, ClientError
    from sqlalchemy.exc import SQLAlchemyError

    from dicomrst.backends.s3.backend import S3Backend, backend_error
    from dicomrst.backends.s3.config import S3AetConfig, build_s3_backend
    from dicomrst.index.instance_index import shown_url
    from dicomrst.index.rebuild import rebuild

    config = _configured(config_path)
    if config is None:
        return 1
    entry = next((e for e in config.aets if e.aet == aet), None)
    if not isinstance(entry, S3AetConfig):
        known = ", ".join(e.aet for e in config.aets if isinstance(e, S3AetConfig)) or "none"
        print(f"{aet!r} is not an S3 AET of the config (S3 AETs: {known})", file=sys.stderr)
        return 2
    backend = build_s3_backend(entry, config)
    assert isinstance(backend, S3Backend)
    print(f"indexing bucket {entry.bucket} at {entry.endpoint} into {shown_url(backend.index.url)}", file=sys.stderr)
    try:
        summary = rebuild(backend.client, entry.bucket, backend.index, concurrency, progress)
    except (BotoCoreError, ClientError) as error:
        print(f"cannot list the bucket: {backend_error(error, entry.bucket)}", file=sys.stderr)
        return 1
    except SQLAlchemyError as error:
        print(f"cannot write the index: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: what was indexed is kept; run the command again to go on", file=sys.stderr)
        return 130
    for line in summary.lines():
        print(line)
    return 1 if summary.failed else 0


def receiver(config_path: str | None, ready_fd: int | None = None) -> int:
    """The move receiver on its own (gunicorn starts it by itself; this is for running it apart)."""
    from dicomrst.backends.dimse.receiver import run_receivers

    config = _configured(config_path)
    if config is None:
        return 1
    run_receivers(config, ready_fd)
    return 0


def _configured(config_path: str | None) -> Config | None:
    """The config, logging set up by it; None (the problem printed) when it cannot be used."""
    from dicomrst.logs import configure_logging

    try:
        config = load_config(config_path)
    except ConfigError as error:
        print(f"config: {error}", file=sys.stderr)
        return None
    configure_logging(config.telemetry.level)
    return config


def sample_pacs(argv: Sequence[str]) -> int:
    from dicomrst.sample_pacs.scp import main

    return main(list(argv))


UP_DESCRIPTION = """\
Starts the gateway under gunicorn (gevent workers, etc/gunicorn.conf.py, so run it from the checkout)
with its move receiver and, when the config has the sample PACS's AET (SAMPLE in etc/dicomrst.yaml),
the bundled sample PACS, seeded with a few generated studies. Every port is checked before anything
starts. Ctrl-C stops everything; the exit status is gunicorn's."""


@dataclass(frozen=True)
class PortOverrides:
    """Ports given on the command line, so that a taken port needs no config edit."""

    http: int | None = None
    dimse: int | None = None
    sample_pacs: int | None = None

    def apply(self, raw: dict[str, Any], config: Config, sample_index: int | None) -> dict[str, Any]:
        raw = copy.deepcopy(raw)
        server = raw["server"] = raw.get("server") or {}
        if self.http is not None:
            server["http"] = {**(server.get("http") or {}), "port": self.http}
        if self.dimse is not None:
            receivers = server.get("dimse")
            if receivers is None:
                receivers = [{"aet": receiver.aet} for receiver in config.server.dimse]
            if not receivers:
                raise ConfigError("server.dimse", "--dimse-port given, but no move receiver is configured")
            server["dimse"] = [{**receivers[0], "port": self.dimse}, *receivers[1:]]
        if self.sample_pacs is not None:
            if sample_index is None:
                raise ConfigError("aets", "--sample-pacs-port given, but the config has no sample PACS AET")
            raw["aets"][sample_index] = {**raw["aets"][sample_index], "port": self.sample_pacs}
        return raw


def up(config_path: str | None, sample_aet: str, storage: str, ports: PortOverrides) -> int:
    """The gateway under gunicorn, with the sample PACS beside it when the config names one."""
    location = config_path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH
    if not Path(GUNICORN_CONFIG).is_file():
        print(f"dicomrst up: {GUNICORN_CONFIG} not found; run it from the checkout", file=sys.stderr)
        return 1
    try:
        config = load_config(location)
        effective_path = location
        if ports != PortOverrides():
            effective_path = _write_effective_config(location, config, sample_aet, ports)
            config = load_config(effective_path)
    except ConfigError as error:
        for line in config_problem_lines(location, error):
            print(line, file=sys.stderr)
        return 1
    try:
        return _run(config, effective_path, sample_aet, storage)
    finally:
        if effective_path != location:
            Path(effective_path).unlink(missing_ok=True)


def _write_effective_config(location: str, config: Config, sample_aet: str, ports: PortOverrides) -> str:
    raw = yaml.safe_load(Path(location).read_text(encoding="utf-8"))
    sample_index = next((index for index, entry in enumerate(config.aets)
                         if entry.aet == sample_aet and isinstance(entry, DimseAetConfig)), None)
    effective = runtime_directory() / f"up-{os.getpid()}.yaml"
    effective.parent.mkdir(parents=True, exist_ok=True)
    effective.write_text(yaml.safe_dump(ports.apply(raw, config, sample_index), sort_keys=False, allow_unicode=True),
                         encoding="utf-8")
    return str(effective)


def _run(config: Config, config_path: str, sample_aet: str, storage: str) -> int:
    sample = config.aet(sample_aet)
    sample_pacs = sample if isinstance(sample, DimseAetConfig) else None
    listeners = [Listener(config.server.http.interface, config.server.http.port,
                          "the gateway's HTTP server (server.http.port, or --port)")]
    if needs_receiver(config):
        listeners += [Listener(receiver.interface, receiver.port,
                               f"the move receiver {receiver.aet} (server.dimse[{index}].port"
                               f"{', or --dimse-port' if index == 0 else ''})")
                      for index, receiver in enumerate(config.server.dimse)]
    if sample_pacs is not None:
        index = config.aets.index(sample_pacs)
        listeners.append(Listener(sample_pacs.host, sample_pacs.port,
                                  f"the sample PACS {sample_pacs.aet} (aets[{index}].port, or --sample-pacs-port)"))
    try:
        check_ports_free(listeners)
    except PortInUse as error:
        print(f"dicomrst up: {error}", file=sys.stderr)
        return 1
    environment = {**os.environ, CONFIG_ENV: config_path}
    # Each child dies with this process however it ends, and sits in a session of its own: Ctrl-C
    # reaches this process only, which stops the gateway first and the PACS it talks to last.
    detached: dict[str, Any] = {"env": environment, "preexec_fn": die_with_parent(), "start_new_session": True}
    pacs_process = None
    if sample_pacs is not None:
        command = [sys.executable, "-m", "dicomrst.sample_pacs", "--aet", sample_pacs.aet, "--host", sample_pacs.host,
                   "--port", str(sample_pacs.port), "--storage", storage]
        for receiver in config.server.dimse:
            command += ["--destination", f"{receiver.aet}=127.0.0.1:{receiver.port}"]
        pacs_process = subprocess.Popen(command, **detached)
    gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, "wsgi:app"], **detached)
    return _supervise(gunicorn, pacs_process)


def _supervise(gunicorn: subprocess.Popen[bytes], sample_pacs: subprocess.Popen[bytes] | None) -> int:
    """Wait for a signal or for a child to end; then stop gunicorn (it drains its requests and the
    move receiver), then the sample PACS. The exit status is gunicorn's."""
    signals_received = 0

    def stop(signum: int, frame: object) -> None:
        nonlocal signals_received
        signals_received += 1
        if signals_received > 1 and gunicorn.poll() is None:
            gunicorn.send_signal(signal.SIGINT)  # asked twice: gunicorn's quick stop

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    while not signals_received and gunicorn.poll() is None and (sample_pacs is None or sample_pacs.poll() is None):
        time.sleep(0.1)
    pacs_failed = not signals_received and sample_pacs is not None and sample_pacs.poll() is not None
    if pacs_failed:
        assert sample_pacs is not None
        print(f"dicomrst up: the sample PACS exited with code {sample_pacs.returncode}; stopping the gateway",
              file=sys.stderr)
    if gunicorn.poll() is None:
        gunicorn.send_signal(signal.SIGTERM)
    code = gunicorn.wait()
    if sample_pacs is not None and sample_pacs.poll() is None:
        sample_pacs.send_signal(signal.SIGTERM)
        try:
            sample_pacs.wait(10)
        except subprocess.TimeoutExpired:
            sample_pacs.kill()
            sample_pacs.wait()
    return (code or 1) if pacs_failed else code


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dicomrst", description="A DICOMweb gateway to DIMSE PACS and S3.")
    parser.add_argument("--version", action="version", version=f"dicomrst {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-config", help="validate a config file and say what is wrong")
    check.add_argument("file", nargs="?", help=f"the YAML file (default ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})")
    receive = commands.add_parser("receiver", help="run the move receiver (gunicorn starts it by itself)")
    receive.add_argument("--config", help=f"the YAML file (default ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})")
    receive.add_argument("--ready-fd", type=int, help="write READY to this file descriptor once listening")
    commands.add_parser("sample-pacs", help="run the sample PACS (options: dicomrst sample-pacs --help)", add_help=False)
    run = commands.add_parser("up", help="run the gateway under gunicorn, with the sample PACS when configured",
                              description=UP_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--config", help=f"the YAML file (default ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})")
    run.add_argument("--sample-pacs", default="SAMPLE", metavar="AET",
                     help="the configured AET the sample PACS plays (default SAMPLE)")
    run.add_argument("--storage", default="var/sample-pacs", help="the sample PACS's folder")
    run.add_argument("--port", type=_port, help="the gateway's HTTP port (instead of server.http.port)")
    run.add_argument("--dimse-port", type=_port, help="the move receiver's port (instead of server.dimse[0].port)")
    run.add_argument("--sample-pacs-port", type=_port, help="the sample PACS's port (instead of its aets[].port)")
    indexing = commands.add_parser("index", help="index an S3 AET's bucket for QIDO-RS (resumes where it stopped)")
    indexing.add_argument("aet", help="the S3 AET whose bucket is indexed")
    indexing.add_argument("--config", help=f"the YAML file (default ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})")
    indexing.add_argument("--concurrency", type=int, default=16, help="objects read at once (default 16)")
    indexing.add_argument("--no-progress", action="store_true", help="no progress bar")
    args, rest = parser.parse_known_args(argv)
    if args.command == "sample-pacs":
        return sample_pacs(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "receiver":
        return receiver(args.config, args.ready_fd)
    if args.command == "index":
        return index(args.config, args.aet, max(1, args.concurrency), not args.no_progress)
    return up(args.config, args.sample_pacs, args.storage,
              PortOverrides(http=args.port, dimse=args.dimse_port, sample_pacs=args.sample_pacs_port))


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


if __name__ == "__main__":
    sys.exit(main())
