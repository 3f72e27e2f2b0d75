"""A PACS spoken to with DIMSE: the Backend interface over pynetdicom."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydicom import Dataset
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation

from dicomrst.backends.base import (
    FUZZY_MATCHING_NOT_SUPPORTED,
    Backend,
    BackendError,
    BackendUnavailable,
    Health,
    InstanceSelection,
    SearchNotes,
    StoreSession,
    paged,
)
from dicomrst.backends.dimse.association import Peer, open_association
from dicomrst.backends.dimse.echo import VERIFICATION, echo
from dicomrst.backends.dimse.hierarchy import HierarchicalSearch
from dicomrst.backends.dimse.find import STUDY_ROOT_FIND, QueryOptions, agreed_query_options
from dicomrst.backends.dimse.get import get_instances
from dicomrst.backends.dimse.move import move_instances
from dicomrst.backends.dimse.slot_files import default_slot_directory
from dicomrst.backends.dimse.slots import AssociationSlots
from dicomrst.backends.dimse.spool import receiver_running, spool_root
from dicomrst.backends.dimse.store import DimseStoreSession
from dicomrst.backends.dimse.config import DimseAetConfig
from dicomrst.config import ReceiverConfig
from dicomrst.dicomweb.query import QidoQuery
from dicomrst.metrics import MOVES_IN_FLIGHT, dimse_operation


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
        with dimse_operation(self.aet, "C-FIND"), self.slots.hold(self._pool_timeout):
            with open_association(
                self.peer, [STUDY_ROOT_FIND], timeout, [_query_options(query.fuzzy_matching)]
            ) as association:
                agreed = agreed_query_options(association)
                if query.fuzzy_matching and not agreed.fuzzy_matching:
                    notes.warn(FUZZY_MATCHING_NOT_SUPPORTED)
                search = HierarchicalSearch(association, query, timeout, relational=agreed.relational,
                                            complete_attributes=self.config.qido_rs.complete_attributes, notes=notes)
                yield from paged(search.rows(), query)


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
        try:
            with dimse_operation(self.aet, "C-MOVE"):
                yield from move_instances(self.peer, self.slots, self._pool_timeout, self.receiver.aet,
                                          spool_root(self.receiver), selection, timeout,
                                          sequential=wado.mode == "sequential")
        finally:
            in_flight.dec()


    @contextmanager
    def store_session(self) -> Iterator[StoreSession]:
        session = DimseStoreSession(self.peer, self.config.stow_rs.timeout / 1000, self.aet, self.slots,
                                    self._pool_timeout)
        try:
            session.open()
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
