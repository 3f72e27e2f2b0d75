"""C-GET: the instances come back as C-STOREs on the same association, so no receiver is involved.

The PACS can send an instance only in a storage SOP class the gateway proposed with the SCP role, and an
association has at most 128 presentation contexts. Before the C-GET, a C-FIND on an association of its own
asks which classes the selection has: SOP Classes in Study at STUDY level where the PACS answers it (one
response), else SOP Class UID at IMAGE level. The C-GET's association then proposes Study Root C-GET and
C-FIND and those classes alone, each in every transfer syntax; pynetdicom's 120 usual storage classes
only when the PACS could not say. The C-FIND's count also tells "nothing matches" from "could not send"
when the C-GET fails without a word (retrieve_status).
"""
from __future__ import annotations

import logging
import queue
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import AllTransferSyntaxes, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import Association, build_role, evt
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.presentation import StoragePresentationContexts
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

from dicomrst.backends.base import BackendProtocolError, BackendTimeout, InstanceSelection
from dicomrst.backends.dimse.association import ExtendedNegotiation, Peer, RequestedContext, open_association
from dicomrst.backends.dimse.find import STUDY_ROOT_FIND, find
from dicomrst.backends.dimse.retrieve_responses import RetrieveResponses, retrieve_identifier
from dicomrst.backends.dimse.retrieve_status import (
    Holdings,
    final_status_error,
    holdings_anew,
    holdings_on,
    instance_count,
    needs_c_find,
)
from dicomrst.backends.dimse.slots import AssociationSlots
from dicomrst.backends.dimse.statuses import StoreStatus
from dicomrst.backends.dimse.received import received_part10

log = logging.getLogger(__name__)

STUDY_ROOT_GET = str(StudyRootQueryRetrieveInformationModelGet)
# Instances the PACS may send ahead of a slow client; beyond that the C-STORE-RSP waits, which
# slows the PACS down instead of filling the worker's memory.
_QUEUE_DEPTH = 4
_UNCOMPRESSED = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]
_TRANSFER_SYNTAXES = _UNCOMPRESSED + [str(uid) for uid in AllTransferSyntaxes if str(uid) not in _UNCOMPRESSED]
# PS3.8 9.3.2.2: at most 128 presentation contexts; two go to C-GET and C-FIND.
_STORAGE_CONTEXTS = 128 - 2
_USUAL_CLASSES = [str(c.abstract_syntax) for c in StoragePresentationContexts]

Handler = tuple[Any, Callable[..., Any]]


class _Finished:
    """Put on the queue after the last C-GET response."""


@dataclass(frozen=True)
class _Survey:
    """What a C-FIND said of the selection: its instances' SOP classes and their number."""

    classes: frozenset[str]
    instances: int | None  # None: the PACS did not count them


def _proposal(first: Sequence[str]) -> list[str]:
    """The storage classes to propose: ``first``, then the usual ones, as many as fit. Each is offered
    in every transfer syntax, so that the PACS sends instances as it holds them."""
    return list(dict.fromkeys([*first, *_USUAL_CLASSES]))[:_STORAGE_CONTEXTS]


def _relational_find() -> SOPClassExtendedNegotiation:
    # PS3.4 C.5.1.1.1: relational queries, so an IMAGE-level C-FIND may name only the study.
    item = SOPClassExtendedNegotiation()
    item.sop_class_uid = STUDY_ROOT_FIND
    item.service_class_application_information = bytes([1])
    return item


@contextmanager
def _get_association(peer: Peer, classes: list[str], timeout_seconds: float,
                     handlers: Sequence[Handler]) -> Iterator[Association]:
    contexts: list[RequestedContext] = [STUDY_ROOT_GET, STUDY_ROOT_FIND, *((uid, _TRANSFER_SYNTAXES) for uid in classes)]
    negotiation: list[ExtendedNegotiation] = [*(build_role(uid, scp_role=True) for uid in classes), _relational_find()]
    with open_association(peer, contexts, timeout_seconds, negotiation, handlers) as association:
        if not any(c.abstract_syntax == STUDY_ROOT_GET for c in association.accepted_contexts):
            raise BackendProtocolError("the PACS does not offer Study Root C-GET")
        yield association


@contextmanager
def _find_association(peer: Peer, timeout_seconds: float) -> Iterator[Association]:
    with open_association(peer, [STUDY_ROOT_FIND], timeout_seconds, [_relational_find()]) as association:
        yield association


def _survey(association: Association, selection: InstanceSelection, timeout_seconds: float) -> _Survey | None:
    """The selection's SOP classes and instance count by C-FIND; None when the PACS cannot say (the usual
    classes are proposed then)."""
    if not any(c.abstract_syntax == STUDY_ROOT_FIND for c in association.accepted_contexts):
        return None
    try:
        if selection.level == "SERIES":
            # The study's classes are one answer where the series' are one per instance; its count is not
            # the series', so none is kept (the final C-GET response is then checked by a C-FIND if need be).
            survey = _study_survey(association, InstanceSelection(selection.study_uid), timeout_seconds)
            if survey is not None:
                return _Survey(survey.classes, 0 if survey.instances == 0 else None)
        survey = _study_survey(association, selection, timeout_seconds) if selection.level == "STUDY" else None
        return survey or _image_survey(association, selection, timeout_seconds)
    except BackendProtocolError as error:
        if not association.is_established:
            raise
        log.info("the PACS did not say which SOP classes %s has (%s): proposing the usual ones", selection, error)
        return None


def _study_survey(association: Association, selection: InstanceSelection, timeout_seconds: float) -> _Survey | None:
    """One STUDY-level answer with SOP Classes in Study (Orthanc computes it); None when the PACS leaves
    it out, and only the IMAGE level can tell."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = selection.study_uid
    identifier.SOPClassesInStudy = None
    identifier.NumberOfStudyRelatedInstances = None
    classes: set[str] = set()
    instances: int | None = 0
    for match in find(association, identifier, timeout_seconds):
        value = match.get("SOPClassesInStudy")
        classes.update(str(uid).strip() for uid in (value if isinstance(value, (list, MultiValue)) else [value]) if uid)
        counted = instance_count(match.get("NumberOfStudyRelatedInstances"))
        instances = None if instances is None or counted is None else instances + counted
    if instances != 0 and not classes:
        return None
    return _Survey(frozenset(classes), instances)


def _image_survey(association: Association, selection: InstanceSelection, timeout_seconds: float) -> _Survey:
    """One answer per instance, with its SOP class."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "IMAGE"
    identifier.StudyInstanceUID = selection.study_uid
    identifier.SeriesInstanceUID = selection.series_uid or ""
    identifier.SOPInstanceUID = selection.sop_uid or ""
    identifier.SOPClassUID = ""
    classes: set[str] = set()
    instances = 0
    for match in find(association, identifier, timeout_seconds):
        instances += 1
        sop_class = str(match.get("SOPClassUID") or "").strip()
        if sop_class:
            classes.add(sop_class)
    return _Survey(frozenset(classes), instances)


def get_instances(
    peer: Peer,
    slots: AssociationSlots,
    pool_timeout_seconds: float,
    selection: InstanceSelection,
    timeout_seconds: float,
) -> Iterator[bytes]:
    arrivals: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_DEPTH)
    handlers = [(evt.EVT_C_STORE, _storing_into(arrivals, timeout_seconds))]
    with slots.hold(pool_timeout_seconds):
        # First a small association for the C-FIND that names the selection's SOP classes, then the C-GET's
        # proposing those classes alone: proposing the usual 120 classes in every transfer syntax cost
        # Orthanc ~110 ms to negotiate, more than the C-GET of one frame. Released first: two associations
        # at once would take a second slot of the pool.
        with _find_association(peer, timeout_seconds) as association:
            survey = _survey(association, selection, timeout_seconds)
        classes = sorted(survey.classes) if survey is not None and survey.classes else []
        proposed = classes[:_STORAGE_CONTEXTS] if classes else _proposal([])
        if len(classes) > len(proposed):
            log.warning("%s has %d SOP classes; only %d fit in one association", selection, len(classes),
                        len(proposed))
        with _get_association(peer, proposed, timeout_seconds, handlers) as association:
            final, delivered, holdings = yield from _get(association, selection, arrivals, timeout_seconds, survey)
        if needs_c_find(final, delivered) and holdings is None:
            holdings = holdings_anew(peer, selection, timeout_seconds)
    error = final_status_error(final, delivered, "C-GET", holdings=holdings)
    if error is not None:
        raise error


def get_as_stored(
    peer: Peer,
    slots: AssociationSlots,
    pool_timeout_seconds: float,
    selection: InstanceSelection,
    sop_class: str,
    timeout_seconds: float,
) -> Iterator[bytes]:
    """One instance of ``sop_class`` by C-GET in the transfer syntax the PACS holds it in: a presentation
    context per transfer syntax, compressed ones first, so that a PACS which picks from what the requestor
    proposed (Orthanc does) can choose the one needing no conversion, where one context listing every
    syntax would have it convert to the first (uncompressed), which it may not be able to do."""
    arrivals: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_DEPTH)
    syntaxes = [uid for uid in _TRANSFER_SYNTAXES if uid not in _UNCOMPRESSED] + _UNCOMPRESSED
    contexts: list[RequestedContext] = [STUDY_ROOT_GET, STUDY_ROOT_FIND,
                                        *((sop_class, [syntax]) for syntax in syntaxes[:_STORAGE_CONTEXTS])]
    negotiation: list[ExtendedNegotiation] = [build_role(sop_class, scp_role=True), _relational_find()]
    with slots.hold(pool_timeout_seconds):
        with open_association(peer, contexts, timeout_seconds, negotiation,
                              [(evt.EVT_C_STORE, _storing_into(arrivals, timeout_seconds))]) as association:
            final, delivered, holdings = yield from _get(association, selection, arrivals, timeout_seconds, None)
    error = final_status_error(final, delivered, "C-GET", holdings=holdings)
    if error is not None:
        raise error


def _storing_into(arrivals: queue.Queue[Any], timeout_seconds: float) -> Callable[[Any], int]:
    """The EVT_C_STORE handler: the gateway is the Storage SCP of the C-GET's sub-operations (PS3.4
    B.2.3); each instance goes onto ``arrivals``, refused when the reader has not taken it in time."""
    def on_store(event: Any) -> int:
        try:
            arrivals.put(received_part10(event), timeout=timeout_seconds)
        except queue.Full:
            return StoreStatus.REFUSED_OUT_OF_RESOURCES
        return StoreStatus.SUCCESS

    return on_store


def _get(association: Association, selection: InstanceSelection, arrivals: queue.Queue[Any], timeout_seconds: float,
         survey: _Survey | None) -> Generator[bytes, None, tuple[Dataset, int, Holdings | None]]:
    """Yield each instance the C-GET brings; return its final response, the number delivered and, when
    the final response alone cannot tell "not found" from "could not send", what the PACS holds."""
    identifier = retrieve_identifier(selection)
    responses = RetrieveResponses("C-GET", lambda: association.send_c_get(identifier, STUDY_ROOT_GET), timeout_seconds,
                                  on_finished=lambda: _finish(arrivals, timeout_seconds))
    responses.start()
    delivered = 0
    while True:
        try:
            item = arrivals.get(timeout=timeout_seconds)
        except queue.Empty:
            raise BackendTimeout(f"no instance and no C-GET response from the PACS within {timeout_seconds:g} s") from None
        if item is _Finished:
            break
        delivered += 1
        yield item
    final = responses.final_response()
    holdings = None
    if needs_c_find(final, delivered):
        # A survey that did not count the selection's instances (a series surveyed by its study's classes)
        # cannot tell "nothing matches" from "could not send": a C-FIND of the selection does.
        if survey is not None and survey.instances is not None:
            holdings = Holdings(survey.instances)
        else:
            holdings = holdings_on(association, selection, timeout_seconds)
    return final, delivered, holdings


def _finish(arrivals: queue.Queue[Any], timeout_seconds: float) -> None:
    """Put ``_Finished`` on the queue once the responses are read. Queued behind any instance still
    waiting, so the last ones are not overtaken; a consumer that went away leaves the queue full, and
    this gives up after the timeout."""
    try:
        arrivals.put(_Finished, timeout=timeout_seconds)
    except queue.Full:
        pass
