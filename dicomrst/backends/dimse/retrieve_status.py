"""What the final C-MOVE / C-GET response says, as the error the client deserves (PS3.4 C.4.2.1.5).

A PACS that fails a retrieval without sending anything and without counting a failed sub-operation
may mean "nothing matches" (several answer unknown UIDs that way rather than with an empty success)
or "I have them but could not send them" (Orthanc answers both with Unable to Process, Cxxx, and no
counts). Only a C-FIND can tell these apart: the gateway asks one at the selection's level, on the
retrieval's own association when the PACS accepted C-FIND there, and answers 404 only when it finds
nothing. Codes are named by ``statuses.MoveStatus``, whose codes C-GET shares (PS3.4 C.4.3.1.4).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pydicom import Dataset
from pynetdicom import Association

from dicomrst.backends.base import BackendError, BackendProtocolError, InstanceSelection, NotFound
from dicomrst.backends.dimse.association import Peer, open_association
from dicomrst.backends.dimse.find import STUDY_ROOT_FIND, find
from dicomrst.backends.dimse.retrieve_responses import retrieve_identifier, suboperation_count
from dicomrst.backends.dimse.statuses import MoveStatus

log = logging.getLogger(__name__)

# Statuses that say enough by themselves, with no C-FIND (the move destination is C-MOVE's alone).
_EXPLAINED = frozenset({MoveStatus.SUCCESS, MoveStatus.CANCEL, MoveStatus.WARNING_SUBOPERATIONS_FAILED,
                        MoveStatus.REFUSED_MOVE_DESTINATION_UNKNOWN, MoveStatus.PENDING})
# The instance count a C-FIND returns at each level (PS3.4 C.6.1.1.4, C.6.1.1.5).
_RELATED_INSTANCES = {"STUDY": "NumberOfStudyRelatedInstances", "SERIES": "NumberOfSeriesRelatedInstances"}
_SUBOPERATIONS = ("NumberOfCompletedSuboperations", "NumberOfFailedSuboperations", "NumberOfWarningSuboperations")


@dataclass(frozen=True)
class Holdings:
    """What a C-FIND at the selection's level says the PACS holds: ``instances`` is 0 for nothing and
    None for matches the PACS did not count; ``error`` is why the C-FIND could not tell."""

    instances: int | None = None
    error: BackendError | None = None


def _count(status: Dataset, keyword: str) -> int:
    return suboperation_count(status, keyword) or 0


def _counts(status: Dataset) -> str:
    completed, failed, warning = (_count(status, keyword) for keyword in _SUBOPERATIONS)
    return f"{completed} completed, {failed} failed, {warning} warning sub-operations"


def needs_c_find(status: Dataset, delivered: int) -> bool:
    """True when the PACS failed without delivering anything and without a sub-operation count, so that
    only a C-FIND can tell "nothing matches" from "could not send"."""
    code = int(status.Status)
    if delivered or code in _EXPLAINED:
        return False
    return not any(_count(status, keyword) for keyword in _SUBOPERATIONS)


def final_status_error(status: Dataset, delivered: int, service: str, destination: str | None = None,
                       holdings: Holdings | None = None) -> BackendError | None:
    """None when every instance the PACS matched was delivered; else the error to raise. ``holdings`` is
    the C-FIND's answer where ``needs_c_find`` asked for one."""
    code = int(status.Status)
    failed = _count(status, "NumberOfFailedSuboperations")
    comment = str(status.get("ErrorComment", "")).strip()
    detail = f"{service} status 0x{code:04X}: {_counts(status)}" + (f"; {comment}" if comment else "")
    if code == MoveStatus.SUCCESS and failed == 0:
        if delivered == 0:
            return NotFound("no instances match")
        return None
    if code == MoveStatus.REFUSED_MOVE_DESTINATION_UNKNOWN:
        return BackendProtocolError(
            f"the PACS does not know the move destination {destination}: register this gateway's receiver "
            f"(AE title, host, port) at the PACS ({detail})"
        )
    if code == MoveStatus.CANCEL:
        return BackendProtocolError(f"the PACS cancelled the {service} ({detail})")
    if code == MoveStatus.WARNING_SUBOPERATIONS_FAILED or failed:
        attempted = sum(_count(status, keyword) for keyword in _SUBOPERATIONS)
        return BackendProtocolError(
            f"the PACS could not send {failed} of {max(attempted, delivered + failed)} instances ({detail})")
    if needs_c_find(status, delivered):
        if holdings is None or holdings.error is not None:
            why = holdings.error if holdings is not None else "no C-FIND was made"
            return BackendProtocolError(
                f"{service} failed ({detail}), and whether the PACS holds these instances is unknown: {why}")
        if holdings.instances == 0:
            return NotFound(f"no instances match (a C-FIND found none; {detail})")
        if holdings.instances is None:
            return BackendProtocolError(
                f"the PACS holds instances of this selection but could not send them ({detail})")
        return BackendProtocolError(
            f"the PACS could not send {holdings.instances} of {holdings.instances} instances ({detail})")
    return BackendProtocolError(f"{service} failed ({detail})")


def holdings_identifier(selection: InstanceSelection) -> Dataset:
    """A Study Root C-FIND at the selection's level with its UIDs (the retrieval's identifier), asking for
    the instance count."""
    identifier = retrieve_identifier(selection)
    count_keyword = _RELATED_INSTANCES.get(selection.level)
    if count_keyword is not None:
        setattr(identifier, count_keyword, None)
    return identifier


def find_holdings(association: Association, selection: InstanceSelection, timeout_seconds: float) -> Holdings:
    """Ask the PACS by C-FIND what it holds of ``selection``; a failing C-FIND is reported, not raised."""
    count_keyword = _RELATED_INSTANCES.get(selection.level)
    instances: int | None = 0
    try:
        for match in find(association, holdings_identifier(selection), timeout_seconds):
            # At IMAGE level each match is one instance.
            counted = 1 if count_keyword is None else instance_count(match.get(count_keyword))
            instances = None if instances is None or counted is None else instances + counted
    except BackendError as error:
        log.warning("C-FIND of %s to tell 'not found' from 'could not send' failed: %s", selection, error)
        return Holdings(error=error)
    return Holdings(instances)


def instance_count(value: object) -> int | None:
    """A C-FIND's NumberOf...RelatedInstances as a number; None when absent or not a number."""
    try:
        return int(value) if value not in (None, "") else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def holdings_on(association: Association, selection: InstanceSelection, timeout_seconds: float) -> Holdings | None:
    """``find_holdings`` on the retrieval's own association; None when the PACS did not accept C-FIND on it."""
    if not any(c.abstract_syntax == STUDY_ROOT_FIND for c in association.accepted_contexts):
        return None
    return find_holdings(association, selection, timeout_seconds)


def holdings_anew(peer: Peer, selection: InstanceSelection, timeout_seconds: float) -> Holdings:
    """``find_holdings`` on an association of its own; call it once the retrieval's association is
    closed, in the same association slot."""
    try:
        with open_association(peer, [STUDY_ROOT_FIND], timeout_seconds) as association:
            return find_holdings(association, selection, timeout_seconds)
    except BackendError as error:
        return Holdings(error=error)
