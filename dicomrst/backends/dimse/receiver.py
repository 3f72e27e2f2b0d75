"""The move receiver: the Storage SCPs of ``server.dimse`` that C-MOVE sends instances to.

It runs as one process beside the gunicorn workers (started and stopped by gunicorn's server hooks)
and hands each instance to the pending move it belongs to through the spool. It refuses
associations from AETs that are not configured, and C-STOREs nobody is waiting for; it keeps
nothing of what it refuses.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.uid import (
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.presentation import StoragePresentationContexts
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from dicomrst.backends.dimse.sockets import disable_nagle
from dicomrst.backends.dimse.spool import (
    MoveGone,
    deliver,
    move_by_message_id,
    move_by_uids,
    reap_spool,
    remove_spool,
    spool_base,
    spool_root,
)
from dicomrst.config import Config, DimseAetConfig, ReceiverConfig

log = logging.getLogger(__name__)

# Explicit VR Little Endian first: the syntax WADO-RS answers in by default, so no transcoding.
UNCOMPRESSED_TRANSFER_SYNTAXES = [str(uid) for uid in (ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                                       DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian)]
DRAIN_SECONDS = 30

# PS3.4 B.2.3: refusals a Storage SCP may answer with.

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = comment[:64]
    return status


class StoreRouter:
    """Routes each incoming C-STORE to its pending move.

    By Move Originator Message ID where the PACS sends it. Where it does not, the first C-STORE of an
    association binds that association to the oldest pending move that covers the instance and no
    other association serves yet, and the association's later C-STOREs follow it: a PACS opens one
    association per C-MOVE, so each move gets its own sub-operations, every instance exactly once,
    even when several clients ask for the same study at the same time.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._bound: dict[int, Path] = {}
        self._lock = threading.Lock()

    def handlers(self) -> list[tuple[Any, Any]]:
        return [(evt.EVT_C_STORE, self.store), (evt.EVT_RELEASED, self._unbind), (evt.EVT_ABORTED, self._unbind),
                (evt.EVT_CONN_CLOSE, self._unbind), (evt.EVT_CONN_OPEN, disable_nagle)]

    def _unbind(self, event: Any) -> None:
        with self._lock:
            self._bound.pop(id(event.assoc), None)

    def _move_without_message_id(self, event: Any, pacs_aet: str, sop_uid: str) -> Path | None:
        with self._lock:
            directory = self._bound.get(id(event.assoc))
            if directory is not None and directory.exists():
                return directory
            dataset = event.dataset
            directory = move_by_uids(self.root, pacs_aet, str(dataset.StudyInstanceUID),
                                     str(dataset.SeriesInstanceUID), sop_uid, taken=set(self._bound.values()))
            if directory is not None:
                self._bound[id(event.assoc)] = directory
            return directory

    def store(self, event: Any) -> int | Dataset:
        pacs_aet = str(event.assoc.requestor.ae_title).strip()
        request = event.request
        sop_uid = str(request.AffectedSOPInstanceUID)
        message_id = request.MoveOriginatorMessageID
        try:
            if message_id is not None:
                directory = move_by_message_id(self.root, pacs_aet, int(message_id))
            else:
                directory = self._move_without_message_id(event, pacs_aet, sop_uid)
            if directory is None:
                log.warning("refused C-STORE of %s from %s: no move is waiting for it (message id %s)",
                            sop_uid, pacs_aet, message_id)
                return _status(STATUS_OUT_OF_RESOURCES, "no pending move is waiting for this instance")
            deliver(directory, sop_uid, event.encoded_dataset())
        except MoveGone:
            log.warning("refused C-STORE of %s from %s: its move has ended", sop_uid, pacs_aet)
            return _status(STATUS_OUT_OF_RESOURCES, "the move this instance belongs to has ended")
        except (AttributeError, KeyError, ValueError) as error:
            log.warning("refused C-STORE of %s from %s: %s", sop_uid, pacs_aet, error)
            return _status(STATUS_CANNOT_UNDERSTAND, "the instance lacks its study or series UID")
        except OSError as error:
            log.error("could not spool C-STORE of %s from %s: %s", sop_uid, pacs_aet, error)
            return _status(STATUS_OUT_OF_RESOURCES, "the gateway could not store the instance")
        return STATUS_SUCCESS


def _receiver_ae(receiver: ReceiverConfig, pacs_aets: list[str]) -> AE:
    ae = AE(ae_title=receiver.aet)
    transfer_syntaxes = UNCOMPRESSED_TRANSFER_SYNTAXES if receiver.uncompressed else _all_transfer_syntaxes()
    for context in StoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, transfer_syntaxes)
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    # Refuse whole associations from AETs that are not configured: nothing of theirs is kept.
    ae.require_calling_aet = pacs_aets
    ae.maximum_pdu_size = 0
    ae.network_timeout = 60
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    ae.maximum_associations = 64
    return ae


def _all_transfer_syntaxes() -> list[str]:
    return UNCOMPRESSED_TRANSFER_SYNTAXES + [
        str(uid) for uid in AllTransferSyntaxes if str(uid) not in UNCOMPRESSED_TRANSFER_SYNTAXES
    ]


def start_receivers(config: Config) -> list[ThreadedAssociationServer]:
    pacs_aets = [entry.aet for entry in config.aets if isinstance(entry, DimseAetConfig)]
    reap_spool(spool_base())
    servers = []
    for receiver in config.server.dimse:
        root = spool_root(receiver)
        root.mkdir(parents=True, exist_ok=True)
        ae = _receiver_ae(receiver, pacs_aets)
        server = ae.start_server(
            (receiver.interface, receiver.port), block=False, evt_handlers=StoreRouter(root).handlers()
        )
        log.info("move receiver %s listening on %s:%d, spool %s", receiver.aet, receiver.interface, receiver.port, root)
        servers.append(server)
    return servers


def run_receivers(config: Config, ready_fd: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then let the associations in progress finish.
    ``ready_fd`` gets a line once every Storage SCP listens, for whoever started this process."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    servers = start_receivers(config)
    if ready_fd is not None:
        os.write(ready_fd, b"READY\n")
    stop.wait()
    log.info("move receivers stopping")
    in_progress = [association for server in servers for association in server.active_associations]
    for server in servers:
        server.shutdown()
    # Drain: moves under way finish their C-STOREs while no new association is accepted; whatever
    # is still open at the deadline (a peer that went quiet) is aborted.
    deadline = time.monotonic() + DRAIN_SECONDS
    for association in in_progress:
        association.join(max(0.0, deadline - time.monotonic()))
        if association.is_alive():
            association.abort()
    # The workers have stopped before the receiver (gunicorn's on_exit): nobody will read the spool.
    for receiver in config.server.dimse:
        remove_spool(spool_root(receiver))
