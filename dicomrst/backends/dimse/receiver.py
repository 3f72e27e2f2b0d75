"""The move receiver: the Storage SCPs of ``server.dimse`` that C-MOVE sends instances to.

It runs as one process beside the gunicorn workers (started and stopped by gunicorn's server hooks)
and hands each instance to the pending move it belongs to through the spool. It accepts every
storage SOP class a PACS proposes (retired and private ones too) and no other service. It refuses
associations from AETs that are not configured (a DIMSE AET, or one of its ``wado-rs.calling-aets``),
and C-STOREs nobody is waiting for; it keeps nothing of what it refuses.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pydicom.uid import (
    UID,
    AllTransferSyntaxes,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, build_context, evt, register_uid
from pynetdicom.service_class import ServiceClass, StorageServiceClass
from pynetdicom.sop_class import Verification, uid_to_service_class
from pynetdicom.transport import ThreadedAssociationServer

from dicomrst.backends.dimse.sockets import disable_nagle
from dicomrst.backends.dimse.spool import (
    MoveGone,
    deliver,
    is_receiving,
    move_by_message_id,
    oldest_covering,
    pending_moves,
    reap_spool,
    write_receiver_pid,
    remove_spool,
    spool_base,
    spool_root,
)
from dicomrst.backends.dimse.statuses import StoreStatus
from dicomrst.backends.dimse.config import DimseAetConfig
from dicomrst.backends.dimse.received import received_part10
from dicomrst.config import Config, ReceiverConfig

log = logging.getLogger(__name__)

# Explicit VR Little Endian first: the syntax WADO-RS answers in by default, so no transcoding.
UNCOMPRESSED_TRANSFER_SYNTAXES = [str(uid) for uid in (ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                                       DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian)]
DRAIN_SECONDS = 30


def _status(code: StoreStatus, comment: str) -> Dataset:
    """A C-STORE refusal with its Error Comment (PS3.4 B.2.3)."""
    status = Dataset()
    status.Status = int(code)
    status.ErrorComment = comment[:64]
    return status


CallerRoutes = Mapping[str, Sequence[str]]


def caller_routes(config: Config) -> dict[str, tuple[str, ...]]:
    """Each calling AE title the receiver accepts, with the PACS (configured DIMSE AETs) whose moves its
    C-STOREs belong to: a PACS calls with its own AET, or with one of its ``wado-rs.calling-aets``. A
    calling AET two entries claim (two entries for one PACS) serves the moves of both, own AET first."""
    routes: dict[str, list[str]] = {}
    entries = [entry for entry in config.aets if isinstance(entry, DimseAetConfig)]
    for entry in entries:
        routes.setdefault(entry.aet.strip(), []).append(entry.aet)
    for entry in entries:
        for caller in entry.wado_rs.calling_aets:
            pacs = routes.setdefault(caller.strip(), [])
            if entry.aet not in pacs:
                pacs.append(entry.aet)
    for caller, pacs in routes.items():
        if len(pacs) > 1:
            log.info("C-STOREs called by %s go to the moves of %s", caller, ", ".join(pacs))
    return {caller: tuple(pacs) for caller, pacs in routes.items()}


class StoreRouter:
    """Routes each incoming C-STORE to its pending move.

    The calling AE title names the PACS (``routes``: its own AET, or one of its ``wado-rs.calling-aets``;
    without ``routes``, the calling AET is the PACS's AET). Then by Move Originator Message ID where the
    PACS sends it. Where it does not, the first C-STORE of an association binds that association to the
    oldest pending move that covers the instance and no other association serves yet, and the
    association's later C-STOREs follow it: a PACS opens one association per C-MOVE, so each move gets
    its own sub-operations, every instance exactly once, even when several clients ask for the same
    study at the same time. A sealed move (its worker has had everything) takes nothing more.
    """

    def __init__(self, root: Path, routes: CallerRoutes | None = None) -> None:
        self.root = root
        self.routes = routes
        self._bound: dict[int, Path] = {}
        self._lock = threading.Lock()

    def handlers(self) -> list[tuple[Any, Any]]:
        return [(evt.EVT_C_STORE, self.store), (evt.EVT_RELEASED, self._unbind), (evt.EVT_ABORTED, self._unbind),
                (evt.EVT_CONN_CLOSE, self._unbind), (evt.EVT_CONN_OPEN, disable_nagle)]

    def _unbind(self, event: Any) -> None:
        with self._lock:
            self._bound.pop(id(event.assoc), None)

    def pacs_of(self, calling_aet: str) -> Sequence[str]:
        """The PACS whose moves a calling AET's C-STOREs go to; none for an AET no entry names."""
        if self.routes is None:
            return (calling_aet,)
        return self.routes.get(calling_aet, ())

    def _move_by_message_id(self, event: Any, pacs_aets: Sequence[str], message_id: int) -> Path | None:
        found = [directory for pacs in pacs_aets
                 if (directory := move_by_message_id(self.root, pacs, message_id)) is not None]
        if len(found) <= 1:
            return found[0] if found else None
        # The same message id in flight to two PACS that share this calling AET: the move that covers it.
        dataset = event.dataset
        return oldest_covering(found, str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID),
                               str(event.request.AffectedSOPInstanceUID))

    def _move_without_message_id(self, event: Any, pacs_aets: Sequence[str], sop_uid: str) -> Path | None:
        with self._lock:
            directory = self._bound.get(id(event.assoc))
            if directory is not None and is_receiving(directory):
                return directory
            dataset = event.dataset
            moves = [move for pacs in pacs_aets for move in pending_moves(self.root, pacs)]
            directory = oldest_covering(moves, str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID), sop_uid,
                                        taken=set(self._bound.values()))
            if directory is not None:
                self._bound[id(event.assoc)] = directory
            return directory

    def store(self, event: Any) -> int | Dataset:
        calling_aet = str(event.assoc.requestor.ae_title).strip()
        pacs_aets = self.pacs_of(calling_aet)
        request = event.request
        sop_uid = str(request.AffectedSOPInstanceUID)
        message_id = request.MoveOriginatorMessageID
        try:
            if message_id is not None:
                directory = self._move_by_message_id(event, pacs_aets, int(message_id))
            else:
                directory = self._move_without_message_id(event, pacs_aets, sop_uid)
            if directory is None:
                log.warning("refused C-STORE of %s from %s: no move is waiting for it (message id %s)",
                            sop_uid, calling_aet, message_id)
                return _status(StoreStatus.REFUSED_OUT_OF_RESOURCES, "no pending move is waiting for this instance")
            deliver(directory, sop_uid, received_part10(event))
        except MoveGone:
            log.warning("refused C-STORE of %s from %s: its move has ended", sop_uid, calling_aet)
            return _status(StoreStatus.REFUSED_OUT_OF_RESOURCES, "the move this instance belongs to has ended")
        except (AttributeError, KeyError, ValueError) as error:
            log.warning("refused C-STORE of %s from %s: %s", sop_uid, calling_aet, error)
            return _status(StoreStatus.ERROR_CANNOT_UNDERSTAND, "the instance lacks its study or series UID")
        except OSError as error:
            log.error("could not spool C-STORE of %s from %s: %s", sop_uid, calling_aet, error)
            return _status(StoreStatus.REFUSED_OUT_OF_RESOURCES, "the gateway could not store the instance")
        return StoreStatus.SUCCESS


class RejectionLog:
    """Logs the associations refused for their calling AE title, which pynetdicom rejects before any
    handler runs and without a word at the receiver's log level: a PACS whose storage SCU calls with
    another AET than its configured one needs that AET in its ``wado-rs.calling-aets``."""

    def __init__(self, calling_aets: list[str]) -> None:
        self.calling_aets = {aet.strip() for aet in calling_aets}

    def handlers(self) -> list[tuple[Any, Any]]:
        return [(evt.EVT_REJECTED, self.on_rejected)]

    def on_rejected(self, event: Any) -> None:
        calling_aet = str(event.assoc.requestor.primitive.calling_ae_title).strip()
        if calling_aet not in self.calling_aets:
            log.warning("refused an association from %s: not the AET of a configured PACS nor one of their "
                        "wado-rs.calling-aets", calling_aet)


def _receiver_ae(receiver: ReceiverConfig, calling_aets: list[str]) -> AE:
    ae = AE(ae_title=receiver.aet)
    # Storage contexts are added per association, for the classes the PACS proposes (StorageClasses).
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    # Refuse whole associations from AETs that are not configured: nothing of theirs is kept.
    ae.require_calling_aet = calling_aets
    ae.maximum_pdu_size = 0
    ae.network_timeout = 60
    ae.acse_timeout = 30
    ae.dimse_timeout = 60
    ae.maximum_associations = 64
    return ae


class StorageClasses:
    """Accepts every storage SOP class a PACS proposes, retired and private ones included, in the
    receiver's transfer syntaxes, and keeps refusing every other service.

    pynetdicom's acceptor supports the abstract syntaxes it was given beforehand, and serves a C-STORE
    only for a SOP class it has registered with its Storage service (``uid_to_service_class``); retired
    classes such as Ultrasound Image Storage (Retired) are in its usual list of contexts but not
    registered, so their C-STOREs aborted the association; private ones were refused outright. So, on
    each association request (``evt.EVT_REQUESTED``, before negotiation), this adds a supported context
    for each proposed storage class to that association alone, and registers a class pynetdicom does
    not know with its Storage service (``pynetdicom.sop_class.register_uid``, which pynetdicom's own
    error message points to for private and retired classes). pynetdicom's documented
    ``_config.UNRESTRICTED_STORAGE_SERVICE`` would accept any class too, but in the requestor's first
    transfer syntax, which breaks ``uncompressed: true``.
    """

    # Registrations are for the whole process (pynetdicom keeps them in module tables) and stay, so
    # their number is bounded, whatever the configured PACS propose.
    MAX_REGISTERED = 1000
    _registered: set[str] = set()
    _lock = threading.Lock()

    def __init__(self, transfer_syntaxes: list[str], calling_aets: list[str]) -> None:
        self.transfer_syntaxes = transfer_syntaxes
        self.calling_aets = {aet.strip() for aet in calling_aets}

    def handlers(self) -> list[tuple[Any, Any]]:
        return [(evt.EVT_REQUESTED, self.on_requested)]

    def on_requested(self, event: Any) -> None:
        association = event.assoc
        if str(association.requestor.primitive.calling_ae_title).strip() not in self.calling_aets:
            return  # rejected during negotiation (require_calling_aet); nothing of theirs is registered
        supported = list(association.acceptor.supported_contexts)
        offered = {str(context.abstract_syntax) for context in supported}
        for context in association.requestor.requested_contexts:
            uid = str(context.abstract_syntax)
            if uid in offered or not is_storage_class(uid) or not self._served(uid):
                continue
            supported.append(build_context(uid, self.transfer_syntaxes))
            offered.add(uid)
        association.acceptor.supported_contexts = supported

    def _served(self, uid: str) -> bool:
        """Whether pynetdicom routes C-STOREs of ``uid`` to its Storage service, registering it if need be."""
        if uid_to_service_class(uid) is not ServiceClass:
            return True
        with self._lock:
            if uid in self._registered:
                return True
            if len(self._registered) >= self.MAX_REGISTERED:
                log.warning("refused storage SOP class %s: %d unknown classes registered already", uid,
                            len(self._registered))
                return False
            register_uid(uid, "DicomrstStorage_" + uid.replace(".", "_"), StorageServiceClass)
            self._registered.add(uid)
        log.info("accepting storage SOP class %s, unknown to pynetdicom", uid)
        return True


# Storage classes unknown to pynetdicom (retired, private, newer) that pydicom may still name.
_STORAGE_NAME = re.compile(r"\bStorage\b")
_STORAGE_ROOT = "1.2.840.10008.5.1.4.1.1."  # PS3.6 Annex A: where the composite storage classes live


def is_storage_class(uid: str) -> bool:
    """A storage SOP class (the Storage service, or non-patient object storage), retired, private or
    newer than pynetdicom included; not a class of any other service (Query/Retrieve, worklist, print,
    storage commitment, ...)."""
    service = uid_to_service_class(uid)
    if issubclass(service, StorageServiceClass):  # non-patient object storage too
        return True
    if service is not ServiceClass:
        return False  # another service pynetdicom implements
    name = UID(uid)
    if not name.is_valid or name.is_transfer_syntax:
        return False
    if name.is_private or uid.startswith(_STORAGE_ROOT):
        return True
    # A public UID outside the storage root: storage only if pydicom names it so.
    return name.type == "SOP Class" and bool(_STORAGE_NAME.search(name.name)) and "Commitment" not in name.name


def _transfer_syntaxes(receiver: ReceiverConfig) -> list[str]:
    return UNCOMPRESSED_TRANSFER_SYNTAXES if receiver.uncompressed else _all_transfer_syntaxes()


def _all_transfer_syntaxes() -> list[str]:
    return UNCOMPRESSED_TRANSFER_SYNTAXES + [
        str(uid) for uid in AllTransferSyntaxes if str(uid) not in UNCOMPRESSED_TRANSFER_SYNTAXES
    ]


def start_receivers(config: Config) -> list[ThreadedAssociationServer]:
    routes = caller_routes(config)
    calling_aets = list(routes)
    reap_spool(spool_base())
    servers = []
    for receiver in config.server.dimse:
        root = spool_root(receiver)
        root.mkdir(parents=True, exist_ok=True)
        ae = _receiver_ae(receiver, calling_aets)
        storage_classes = StorageClasses(_transfer_syntaxes(receiver), calling_aets)
        server = ae.start_server(
            (receiver.interface, receiver.port), block=False,
            evt_handlers=[*storage_classes.handlers(), *StoreRouter(root, routes).handlers(),
                          *RejectionLog(calling_aets).handlers()],
        )
        assert server is not None  # block=False returns the server
        log.info("move receiver %s listening on %s:%d, spool %s", receiver.aet, receiver.interface, receiver.port, root)
        servers.append(server)
        write_receiver_pid(root)
    return servers


# How often the spool is checked for moves whose worker died.
REAP_SECONDS = 2.0


def run_receivers(config: Config, ready_fd: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then let the associations in progress finish.
    ``ready_fd`` gets a line once every Storage SCP listens, for whoever started this process."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    servers = start_receivers(config)
    if ready_fd is not None:
        os.write(ready_fd, b"READY\n")
    # A worker killed mid-move leaves its spool folder behind, and the PACS may still be filling it:
    # it is removed within seconds, not when the next move of that PACS happens to look.
    while not stop.wait(REAP_SECONDS):
        try:
            reap_spool(spool_base())
        except OSError as error:
            log.warning("reaping the spool failed: %s", error)
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
