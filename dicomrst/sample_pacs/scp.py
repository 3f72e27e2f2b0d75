"""The sample PACS: a small Query/Retrieve SCP over a folder of DICOM files.

It is the demo peer the default configuration points at and a fast peer for
tests: Verification, Storage, and Patient/Study Root C-FIND, C-MOVE and C-GET.
Any calling AE title is accepted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pynetdicom import ALL_TRANSFER_SYNTAXES, AE, AllStoragePresentationContexts
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from dicomrst.sample_pacs.handlers import Pacing, SamplePacsHandlers
from dicomrst.sample_pacs.store import InstanceStore
from dicomrst.sample_pacs.studies import sample_studies

__all__ = ["ae_title", "main", "parse_destination", "port_number", "serve"]

LOGGER = logging.getLogger(__name__)

DEFAULT_STORAGE = Path("var/sample-pacs")
NETWORK_TIMEOUT_S = 60.0
ACSE_TIMEOUT_S = 30.0
DIMSE_TIMEOUT_S = 30.0
CONNECTION_TIMEOUT_S = 10.0  # opening the C-MOVE sub-association to a destination

_QUERY_RETRIEVE = (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelGet,
)
_NO_DESTINATIONS: Mapping[str, tuple[str, int]] = MappingProxyType({})


def _build_ae(aet: str) -> AE:
    ae = AE(ae_title=aet)
    ae.network_timeout = NETWORK_TIMEOUT_S
    ae.acse_timeout = ACSE_TIMEOUT_S
    ae.dimse_timeout = DIMSE_TIMEOUT_S
    ae.connection_timeout = CONNECTION_TIMEOUT_S
    ae.require_called_aet = False
    ae.require_calling_aet = []
    ae.add_supported_context(Verification)
    for model in _QUERY_RETRIEVE:
        ae.add_supported_context(model)
    for context in AllStoragePresentationContexts:
        # Both roles: a peer storing to us is SCU; a peer doing C-GET takes the SCP role.
        assert context.abstract_syntax is not None
        ae.add_supported_context(
            context.abstract_syntax, ALL_TRANSFER_SYNTAXES, scu_role=True, scp_role=True
        )
    return ae


def _prepare_store(storage_dir: Path, seed: bool) -> InstanceStore:
    storage_dir.mkdir(parents=True, exist_ok=True)
    store = InstanceStore(storage_dir)
    if seed and not store.has_files():
        count = store.seed(sample_studies())
        LOGGER.info("seeded %s with %d sample instances", storage_dir, count)
    else:
        count = store.load()
        LOGGER.info("indexed %d instances in %s", count, storage_dir)
    return store


def serve(
    storage_dir: Path,
    *,
    aet: str = "SAMPLE",
    host: str = "127.0.0.1",
    port: int = 4243,
    destinations: Mapping[str, tuple[str, int]] = _NO_DESTINATIONS,
    seed: bool = True,
    block: bool = True,
    pacing: Pacing | None = None,
) -> ThreadedAssociationServer | None:
    """Run the sample PACS on ``host:port`` over ``storage_dir``.

    ``destinations`` maps C-MOVE destination AE titles to (host, port). With
    ``block=False`` the running server is returned; call ``.shutdown()`` on it.
    With ``block=True`` this returns ``None`` once the server stops.
    """
    store = _prepare_store(Path(storage_dir), seed)
    handlers = SamplePacsHandlers(store, destinations, pacing)
    ae = _build_ae(aet)
    LOGGER.info("sample PACS %s starting on %s:%d", aet, host, port)
    return ae.start_server((host, port), block=block, evt_handlers=handlers.bindings())


def ae_title(text: str) -> str:
    """An AE title as PS3.5 allows it: 1-16 characters of printable ASCII, no backslash."""
    title = text.strip()
    if not 0 < len(title) <= 16 or not title.isascii() or not title.isprintable() or "\\" in title:
        raise argparse.ArgumentTypeError(f"not a valid AE title: {text!r}")
    return title


def port_number(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(text)


def parse_destination(text: str) -> tuple[str, tuple[str, int]]:
    """'AET=HOST:PORT' -> ('AET', ('HOST', PORT))."""
    aet, sep, address = text.partition("=")
    host, colon, port_text = address.rpartition(":")
    if not (sep and colon and host):
        raise argparse.ArgumentTypeError(f"expected AET=HOST:PORT, got {text!r}")
    return ae_title(aet), (host, port_number(port_text))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicomrst sample-pacs",
        description="Run the sample PACS (a small Query/Retrieve SCP seeded with demo studies).",
    )
    parser.add_argument("--storage", type=Path, default=DEFAULT_STORAGE, metavar="DIR",
                        help="folder of .dcm files (default: %(default)s)")
    parser.add_argument("--aet", type=ae_title, default="SAMPLE", help="AE title (default: %(default)s)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=4243, help="listen port (default: %(default)s)")
    parser.add_argument("--destination", type=parse_destination, action="append", default=[],
                        metavar="AET=HOST:PORT", help="a C-MOVE destination; repeatable")
    parser.add_argument("--no-seed", dest="seed", action="store_false",
                        help="do not put the sample studies into an empty folder")
    parser.add_argument("--latency-ms", type=float, default=0.0, metavar="MS",
                        help="wait this long before sending the instances of each C-MOVE or C-GET, as a "
                             "real PACS does (default: 0)")
    parser.add_argument("--throughput-mb-s", type=float, default=None, metavar="MB",
                        help="send at most this many megabytes a second (default: no limit)")
    return parser


def _stop_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM, installed before the server starts so that an
    early signal is not lost (a background job may otherwise be started with SIGINT ignored)."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        LOGGER.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    return stop


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # pynetdicom logs every PDU and DIMSE message at INFO; keep its warnings only.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    stop = _stop_on_signals()
    server = serve(
        args.storage,
        aet=args.aet,
        host=args.host,
        port=args.port,
        destinations=dict(args.destination),
        seed=args.seed,
        block=False,
        pacing=Pacing(args.latency_ms / 1000,
                      None if args.throughput_mb_s is None else args.throughput_mb_s * 1_000_000),
    )
    assert server is not None  # block=False always returns the server
    try:
        # A timed wait keeps the main thread responsive to signals on every platform.
        while not stop.wait(timeout=1.0):
            pass
    finally:
        server.shutdown()
    return 0
