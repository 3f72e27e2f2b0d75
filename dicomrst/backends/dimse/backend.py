"""A PACS spoken to with DIMSE: the Backend interface over pynetdicom."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager

from pydicom import Dataset
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation

from dicomrst.backends.base import (
    FUZZY_MATCHING_NOT_SUPPORTED,
    Backend,
    BackendError,
    BackendProtocolError,
    BackendUnavailable,
    Health,
    InstanceSelection,
    NotFound,
    SearchNotes,
    StoreSession,
    paged,
)
from dicomrst.backends.dimse.association import Peer, open_association
from dicomrst.backends.dimse.echo import VERIFICATION, echo
from dicomrst.backends.dimse.hierarchy import HierarchicalSearch
from dicomrst.backends.dimse.find import STUDY_ROOT_FIND, QueryOptions, agreed_query_options
from dicomrst.backends.dimse.get import get_as_stored, get_instances
from dicomrst.backends.dimse.move import move_instances
from dicomrst.backends.dimse.slot_files import default_slot_directory
from dicomrst.backends.dimse.slots import AssociationSlots
from dicomrst.backends.dimse.spool import receiver_running, spool_root
from dicomrst.backends.dimse.store import DimseStoreSession
from dicomrst.backends.dimse.config import DimseAetConfig
from dicomrst.config import ReceiverConfig
from dicomrst.dicomweb.part10 import uids_of
from dicomrst.dicomweb.query import MatchingKey, QidoQuery, QueryLevel
from dicomrst.dicomweb.stow import UploadedInstance
from dicomrst.metrics import MOVES_IN_FLIGHT, dimse_operation

log = logging.getLogger(__name__)

_STUDY_UID, _SERIES_UID, _SOP_UID, _SOP_CLASS_UID = 0x0020000D, 0x0020000E, 0x00080018, 0x00080016


class DimseBackend(Backend):
    kind = "DIMSE"

    def __init__(self, config: DimseAetConfig, calling_aet: str, receiver: ReceiverConfig | None) -> None:
        """``receiver`` is the Storage SCP this PACS moves to; None when the gateway has none."""
        self.config = config
        self.receiver = receiver
        self.aet = config.aet
        self.peer = Peer(called_aet=config.aet, host=config.host, port=config.port, calling_aet=calling_aet)
        self.slots = AssociationSlots(default_slot_directory(config.aet, config.host, config.port), config.pool.size)

    @property
    def _pool_timeout(self) -> float:
        return self.config.pool.timeout / 1000

    def _moves_to(self) -> ReceiverConfig | None:
        return self.receiver if self.config.wado_rs.method == "move" else None

    def _check_receiver(self) -> None:
        """A C-MOVE to a receiver that is not running would find nothing and read as "not found"."""
        receiver = self._moves_to()
        if receiver is not None and not receiver_running(spool_root(receiver)):
            raise BackendUnavailable(f"the move receiver {receiver.aet} (port {receiver.port}) is not running; "
                                     "the gateway restarts it")

    def health(self) -> Health:
        timeout = self.config.qido_rs.timeout / 1000
        try:
            self._check_receiver()
            with dimse_operation(self.aet, "C-ECHO"), self.slots.hold(self._pool_timeout), open_association(
                self.peer, [VERIFICATION], timeout
            ) as association:
                echo(association)
        except BackendError as error:
            return Health(False, str(error))
        return Health(True, f"C-ECHO to {self.peer} succeeded")

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {**super().describe(), "host": self.config.host, "port": self.config.port}
        receiver = self._moves_to()
        if receiver is not None:
            described["receiver"] = {"aet": receiver.aet, "port": receiver.port,
                                     "running": receiver_running(spool_root(receiver))}
        return described

    def search(self, query: QidoQuery, notes: SearchNotes) -> Iterator[Dataset]:
        timeout = self.config.qido_rs.timeout / 1000
        with ExitStack() as held:
            held.enter_context(dimse_operation(self.aet, "C-FIND"))
            held.enter_context(self.slots.hold(self._pool_timeout))
            association = held.enter_context(open_association(
                self.peer, [STUDY_ROOT_FIND], timeout, [_query_options(query.fuzzy_matching)]))
            agreed = agreed_query_options(association)
            if query.fuzzy_matching and not agreed.fuzzy_matching:
                notes.warn(FUZZY_MATCHING_NOT_SUPPORTED)
            search = HierarchicalSearch(association, query, timeout, relational=agreed.relational,
                                        complete_attributes=self.config.qido_rs.complete_attributes, notes=notes)
            notes.next_ready = search.next_ready
            yield from paged(search.rows(), query)
            # Every match is out: the release (and with it the slot) can wait until the client has
            # the whole answer. A failure or a client gone before this point aborts here, as ever.
            notes.finish(held.pop_all().close)


    def retrieve(self, selection: InstanceSelection) -> Iterator[bytes]:
        wado = self.config.wado_rs
        timeout = wado.timeout / 1000
        if wado.method == "get":
            with dimse_operation(self.aet, "C-GET"):
                yield from get_instances(self.peer, self.slots, self._pool_timeout, selection, timeout)
            return
        if self.receiver is None:
            raise BackendUnavailable("this gateway has no move receiver (server.dimse) for C-MOVE")
        self._check_receiver()
        in_flight = MOVES_IN_FLIGHT.labels(self.aet)
        in_flight.inc()
        delivered: set[str] = set()
        try:
            with dimse_operation(self.aet, "C-MOVE"):
                for part10 in move_instances(self.peer, self.slots, self._pool_timeout, self.receiver.aet,
                                             spool_root(self.receiver), selection, timeout,
                                             sequential=wado.mode == "sequential"):
                    if self.receiver.uncompressed:
                        delivered.add(uids_of(part10)[2])
                    yield part10
        except (BackendProtocolError, NotFound) as failure:
            if not self.receiver.uncompressed:
                raise
            yield from self._fetched_natively(selection, delivered, failure)
        finally:
            in_flight.dec()

    def _fetched_natively(self, selection: InstanceSelection, delivered: set[str],
                          failure: BackendProtocolError | NotFound) -> Iterator[bytes]:
        """The instances a C-MOVE to an uncompressed-only receiver did not deliver, by C-GET in their own
        transfer syntax: a PACS that cannot decompress an instance (Orthanc 1.10 and JPEG 2000) fails its
        sub-operation, and the gateway decompresses it itself where a client wants it so."""
        missing = [found for found in self._instances_at_pacs(selection) if found[2] not in delivered]
        if not missing:
            raise failure
        log.info("%d instance(s) of %s the PACS did not send to the uncompressed receiver: retrieved by C-GET "
                 "as stored (%s)", len(missing), self.aet, failure)
        for study_uid, series_uid, sop_uid, sop_class in missing:
            with dimse_operation(self.aet, "C-GET"):
                yield from get_as_stored(self.peer, self.slots, self._pool_timeout,
                                         InstanceSelection(study_uid, series_uid, sop_uid), sop_class,
                                         self.config.wado_rs.timeout / 1000)

    def _instances_at_pacs(self, selection: InstanceSelection) -> list[tuple[str, str, str, str]]:
        matching = [MatchingKey((_STUDY_UID,), selection.study_uid)]
        if selection.series_uid is not None:
            matching.append(MatchingKey((_SERIES_UID,), selection.series_uid))
        if selection.sop_uid is not None:
            matching.append(MatchingKey((_SOP_UID,), selection.sop_uid))
        query = QidoQuery(level=QueryLevel.IMAGE, matching=tuple(matching),
                          return_keys=((_STUDY_UID,), (_SERIES_UID,), (_SOP_UID,), (_SOP_CLASS_UID,)),
                          include_all=False, limit=None, offset=0, fuzzy_matching=False)
        return [(str(match.get("StudyInstanceUID", selection.study_uid)), str(match.get("SeriesInstanceUID", "")),
                 str(match.get("SOPInstanceUID", "")), str(match.get("SOPClassUID", "")))
                for match in self.search(query, SearchNotes())]


    def store_session(self, like: Sequence[UploadedInstance] = ()) -> AbstractContextManager[StoreSession]:
        # Proposing what the first instance needs costs a tenth of the common classes' negotiation; an
        # instance of another class renegotiates, then with the common classes too.
        return self._store_session(self._pool_timeout, like)

    def spare_store_session(self, like: Sequence[UploadedInstance]) -> AbstractContextManager[StoreSession] | None:
        # Only a slot free at once: a second association never waits for, or takes from, another request.
        # It proposes what the instances so far need, as the request's own session does.
        return self._store_session(0.0, like)

    @contextmanager
    def _store_session(self, pool_timeout: float, like: Sequence[UploadedInstance]) -> Iterator[StoreSession]:
        session = DimseStoreSession(self.peer, self.config.stow_rs.timeout / 1000, self.aet, self.slots,
                                    pool_timeout)
        try:
            session.open(like)
            yield session
        finally:
            session.close()


def _query_options(fuzzy_matching: bool) -> SOPClassExtendedNegotiation:
    """PS3.4 C.5.1.1.1: ask for relational queries (needed for /series and /instances without a
    study) and, when the client asked, fuzzy semantic matching of person names."""
    item = SOPClassExtendedNegotiation()
    item.sop_class_uid = STUDY_ROOT_FIND
    item.service_class_application_information = QueryOptions(relational=True,
                                                               fuzzy_matching=fuzzy_matching).request()[:3]
    return item
