"""QIDO-RS ``limit`` ends a C-FIND with C-CANCEL (PS3.7 9.3.2.3), and the association is then released,
not aborted. Real pynetdicom SCPs on loopback: the sample PACS, and small Find SCPs that answer slowly
(one that honours the C-CANCEL, one that does not), so the C-CANCEL surely comes before the last match."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind
from pynetdicom.transport import ThreadedAssociationServer

from dicomrst.backends.base import SearchNotes
from dicomrst.backends.dimse.backend import DimseBackend
from dicomrst.backends.dimse.config import DimseAetConfig, QidoConfig
from dicomrst.dicomweb.query import QueryLevel, parse_qido_query
from dicomrst.sample_pacs.scp import serve
from tests.peers import free_port

STUDY = "1.2.826.0.1.3680043.8.498.7"
SERIES = "1.2.826.0.1.3680043.8.498.7.1"
CANCEL = 0xFE00


@dataclass
class Seen:
    """What the PACS side saw of the gateway's associations."""

    find_ids: list[int] = field(default_factory=list)
    cancelled_ids: list[int] = field(default_factory=list)
    pending_sent: int = 0
    final_statuses: list[int] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def bindings(self) -> list[tuple[Any, Callable[..., Any]]]:
        return [(evt.EVT_DIMSE_RECV, self._received), (evt.EVT_DIMSE_SENT, self._sent),
                (evt.EVT_RELEASED, self._end("released")), (evt.EVT_ABORTED, self._end("aborted"))]

    def _received(self, event: Any) -> None:
        message = event.message
        name = type(message).__name__
        if name == "C_FIND_RQ":
            self.find_ids.append(int(message.command_set.MessageID))
        elif name == "C_CANCEL_RQ":
            self.cancelled_ids.append(int(message.command_set.MessageIDBeingRespondedTo))

    def _sent(self, event: Any) -> None:
        message = event.message
        if type(message).__name__ == "C_FIND_RSP":
            status = int(message.command_set.Status)
            if status in (0xFF00, 0xFF01):
                self.pending_sent += 1
            else:
                self.final_statuses.append(status)

    def _end(self, how: str) -> Callable[[Any], None]:
        def record(event: Any) -> None:
            self.ends.append(how)
            self.ended.set()

        return record


def instance_search(backend: DimseBackend, limit: int | None, **uids: str) -> list[Dataset]:
    """``/studies/{study}/series/{series}/instances?limit=...`` as the web layer runs it."""
    params = [] if limit is None else [("limit", str(limit))]
    query = parse_qido_query(QueryLevel.IMAGE, params, **uids)
    return list(backend.search(query, SearchNotes()))


def backend_for(port: int, aet: str = "PACS", timeout_ms: int = 10_000) -> DimseBackend:
    config = DimseAetConfig(aet=aet, host="127.0.0.1", port=port, qido_rs=QidoConfig(timeout=timeout_ms))
    return DimseBackend(config, calling_aet="DICOMRST-TEST", receiver=None)


# --- the sample PACS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_pacs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedAssociationServer, int]]:
    port = free_port()
    server = serve(tmp_path_factory.mktemp("sample-pacs"), aet="SAMPLE", port=port, block=False)
    assert server is not None
    yield server, port
    server.shutdown()


def watching(server: ThreadedAssociationServer) -> Seen:
    seen = Seen()
    for event, handler in seen.bindings():
        server.bind(event, handler)
    return seen


def forget(server: ThreadedAssociationServer, seen: Seen) -> None:
    for event, handler in seen.bindings():
        server.unbind(event, handler)


def test_limit_cancels_the_c_find_and_releases_the_association(sample_pacs):
    server, port = sample_pacs
    seen = watching(server)
    try:
        rows = instance_search(backend_for(port, "SAMPLE"), limit=2)
        assert seen.ended.wait(5)
    finally:
        forget(server, seen)
    assert len(rows) == 2
    # The sample studies hold 22 instances: the page was full before the final response was read.
    assert seen.cancelled_ids == seen.find_ids and len(seen.find_ids) == 1
    # The sample PACS may have sent all before the C-CANCEL came: the final status is Cancel or Success.
    assert len(seen.final_statuses) == 1 and seen.final_statuses[0] in (CANCEL, 0x0000)
    assert seen.ends == ["released"]


def test_a_search_read_to_its_end_sends_no_c_cancel(sample_pacs):
    server, port = sample_pacs
    seen = watching(server)
    try:
        rows = instance_search(backend_for(port, "SAMPLE"), limit=None)
        assert seen.ended.wait(5)
    finally:
        forget(server, seen)
    assert len(rows) == 22 and seen.pending_sent == 22
    assert seen.cancelled_ids == [] and seen.final_statuses == [0x0000] and seen.ends == ["released"]


def test_a_limit_the_answer_does_not_reach_sends_no_c_cancel(sample_pacs):
    server, port = sample_pacs
    seen = watching(server)
    try:
        rows = instance_search(backend_for(port, "SAMPLE"), limit=100)
        assert seen.ended.wait(5)
    finally:
        forget(server, seen)
    assert len(rows) == 22 and seen.cancelled_ids == [] and seen.ends == ["released"]


# --- a PACS that answers slowly ---------------------------------------------------------------------


def slow_find_scp(honours_cancel: bool, matches: int = 1000, pause: float = 0.02) -> tuple[ThreadedAssociationServer,
                                                                                              int, Seen]:
    """A Find SCP holding one study of one series of ``matches`` instances, answering an instance query
    one match every ``pause`` seconds (it agrees to no relational queries: the gateway asks level by level)."""

    def on_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        level = event.identifier.QueryRetrieveLevel
        if level != "IMAGE":
            match = Dataset()
            match.QueryRetrieveLevel = level
            match.StudyInstanceUID = STUDY
            if level == "SERIES":
                match.SeriesInstanceUID = SERIES
            yield 0xFF00, match
            yield 0x0000, None
            return
        for number in range(1, matches + 1):
            if honours_cancel and event.is_cancelled:
                yield CANCEL, None
                return
            time.sleep(pause)
            match = Dataset()
            match.QueryRetrieveLevel = "IMAGE"
            match.StudyInstanceUID = STUDY
            match.SeriesInstanceUID = SERIES
            match.SOPInstanceUID = f"{SERIES}.{number}"
            yield 0xFF00, match
        yield 0x0000, None

    ae = AE(ae_title="SLOW")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 30
    seen = Seen()
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, on_find),
                                                                              *seen.bindings()])
    assert server is not None
    return server, port, seen


def test_a_pacs_stops_matching_once_cancelled():
    server, port, seen = slow_find_scp(honours_cancel=True)
    try:
        started = time.monotonic()
        rows = instance_search(backend_for(port, "SLOW"), limit=3, study_uid=STUDY, series_uid=SERIES)
        elapsed = time.monotonic() - started
        assert seen.ended.wait(5)
    finally:
        server.shutdown()
    assert [row.SOPInstanceUID for row in rows] == [f"{SERIES}.{n}" for n in (1, 2, 3)]
    # Only the instance-level C-FIND (the last) was cut short.
    assert seen.cancelled_ids == seen.find_ids[-1:]
    assert seen.final_statuses[-1] == CANCEL and CANCEL not in seen.final_statuses[:-1]
    assert seen.pending_sent < 20 and elapsed < 5  # not the 1000 matches of 20 s
    assert seen.ends == ["released"]


def test_a_pacs_that_ignores_the_c_cancel_is_aborted_after_the_timeout():
    server, port, seen = slow_find_scp(honours_cancel=False, pause=0.05)
    try:
        started = time.monotonic()
        rows = instance_search(backend_for(port, "SLOW", timeout_ms=1000), limit=2, study_uid=STUDY,
                               series_uid=SERIES)
        elapsed = time.monotonic() - started
        assert seen.ended.wait(5)
    finally:
        server.shutdown()
    # The page the client asked for is whole; the association could not be left in order.
    assert len(rows) == 2
    assert seen.cancelled_ids == seen.find_ids[-1:]
    assert seen.ends == ["aborted"] and 1 <= elapsed < 5

