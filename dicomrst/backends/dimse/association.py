"""Opening, classifying and always closing an association with a PACS.

The failure of an association request is turned into the error the client deserves:

- a PACS that cannot be reached is unavailable (503);
- one that accepts the connection and then says nothing has timed out (504);
- one that is busy (A-ASSOCIATE-RJ with result rejected-transient, PS3.8 9.3.4) is asked again with a
  short, growing backoff for as long as the pool timeout of the slot held for it (``slots.held_slot``),
  and meanwhile the slots learn the PACS's limit (``HeldSlot.step_down``); still refused, it is busy
  (``PacsBusy``, 503 with Retry-After) with the PACS's reason in words;
- one that rejects us for good (rejected-permanent: an AE title it does not know, ...) answers wrongly
  (``AssociationRejected``, 502), with its reason in words;
- one that accepts the association but none of the proposed presentation contexts (pynetdicom aborts
  then) is ``NoContextsAccepted`` (502), which a caller may answer otherwise (STOW-RS: every instance
  refused).
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE, Association, evt
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation, SOPClassExtendedNegotiation

from dicomrst.backends.base import BackendBusy, BackendProtocolError, BackendTimeout, BackendUnavailable
from dicomrst.backends.dimse.pdu_socket import BufferedAE
from dicomrst.backends.dimse.slot_files import default_slot_directory
from dicomrst.backends.dimse.slots import HeldSlot, held_slot
from dicomrst.backends.dimse.sockets import disable_nagle
from dicomrst.metrics import ASSOCIATIONS_OPEN

log = logging.getLogger(__name__)

ExtendedNegotiation = SOPClassExtendedNegotiation | SCP_SCU_RoleSelectionNegotiation
Handler = tuple[evt.NotificationEvent | evt.InterventionEvent, Callable[..., Any]]

# Retrying a transient rejection: the first pause, doubled each time up to the last (each drawn at
# random from its upper half, so that rejected requests do not come back in step).
FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 1.0


@dataclass(frozen=True)
class Peer:
    """The PACS at the other end: its AE title and address, and who we say we are."""

    called_aet: str
    host: str
    port: int
    calling_aet: str

    def __str__(self) -> str:
        return f"{self.called_aet}@{self.host}:{self.port}"


# A presentation context to propose: a SOP class with pynetdicom's default transfer syntaxes, or a
# SOP class with the transfer syntaxes to offer for it.
RequestedContext = str | tuple[str, Sequence[str]]

# The A-ASSOCIATE-RJ PDU's fields in the words of PS3.8 9.3.4.
_RESULTS = {1: "rejected-permanent", 2: "rejected-transient"}
_SOURCES = {
    1: "DICOM UL service-user",
    2: "DICOM UL service-provider (ACSE related function)",
    3: "DICOM UL service-provider (Presentation related function)",
}
_REASONS = {
    1: {1: "no-reason-given", 2: "application-context-name-not-supported", 3: "calling-AE-title-not-recognized",
        7: "called-AE-title-not-recognized"},
    2: {1: "no-reason-given", 2: "protocol-version-not-supported"},
    3: {1: "temporary-congestion", 2: "local-limit-exceeded"},
}


@dataclass(frozen=True)
class Rejection:
    """An A-ASSOCIATE-RJ: its result, source and reason/diagnostic (PS3.8 9.3.4)."""

    result: int
    source: int
    reason: int

    @property
    def transient(self) -> bool:
        return self.result == 2

    def __str__(self) -> str:
        result = _RESULTS.get(self.result, f"result {self.result}")
        source = _SOURCES.get(self.source, f"source {self.source}")
        reason = _REASONS.get(self.source, {}).get(self.reason, f"reserved reason {self.reason}")
        return f"{result}, source: {source}, reason: {reason}"


class AssociationRejected(BackendProtocolError):
    """The PACS rejected the association for good (rejected-permanent): 502 with its reason."""

    def __init__(self, message: str, rejection: Rejection) -> None:
        super().__init__(message)
        self.rejection = rejection


class PacsBusy(BackendBusy):
    """The PACS kept rejecting the association as transient: 503 with Retry-After and its reason."""

    def __init__(self, message: str, rejection: Rejection) -> None:
        super().__init__(message)
        self.rejection = rejection


class NoContextsAccepted(BackendProtocolError):
    """The PACS accepted the association but none of the presentation contexts proposed on it."""

    def __init__(self, message: str, refused: Sequence[str]) -> None:
        super().__init__(message)
        self.refused = tuple(refused)  # the abstract syntaxes (SOP classes) it refused


@contextmanager
def open_association(
    peer: Peer,
    contexts: Sequence[RequestedContext],
    timeout_seconds: float,
    extended_negotiation: Sequence[ExtendedNegotiation] = (),
    handlers: Sequence[Handler] = (),
) -> Iterator[Association]:
    """An established association for the block, released after it or aborted if it raised.

    ``timeout_seconds`` bounds the TCP connect, the association negotiation and each DIMSE response.
    A client that goes away mid-response closes the generator using this, which aborts here too.
    A transient rejection is retried within the pool timeout of the slot this greenlet holds for the
    PACS (none held: not retried).
    """
    ae = BufferedAE(ae_title=peer.calling_aet)
    ae.connection_timeout = timeout_seconds
    ae.acse_timeout = timeout_seconds
    ae.dimse_timeout = timeout_seconds
    ae.network_timeout = timeout_seconds * 2
    ae.maximum_pdu_size = 0
    for context in contexts:
        if isinstance(context, str):
            ae.add_requested_context(context)
        else:
            ae.add_requested_context(context[0], list(context[1]))

    held = held_slot(default_slot_directory(peer.called_aet, peer.host, peer.port))
    association = _associate_retrying(ae, peer, timeout_seconds, extended_negotiation, handlers, held)
    log.debug("association open with %s", peer)
    open_gauge = ASSOCIATIONS_OPEN.labels(peer.called_aet)
    open_gauge.inc()
    try:
        yield association
    except BaseException:
        association.abort()
        log.debug("association with %s aborted", peer)
        raise
    else:
        association.release()
        if not association.is_released:
            association.abort()
        log.debug("association with %s released", peer)
    finally:
        open_gauge.dec()
        if held is not None:
            held.mark_released()


def _associate_retrying(ae: AE, peer: Peer, timeout_seconds: float, extended_negotiation: Sequence[ExtendedNegotiation],
                        handlers: Sequence[Handler], held: HeldSlot | None) -> Association:
    """An established association; a transient rejection is asked again after a pause (and, when the
    held slot is past the PACS's learned limit, after moving to one within it) until the held slot's
    pool timeout has passed."""
    first_rejection: float | None = None
    deadline = 0.0
    backoff = FIRST_BACKOFF_SECONDS
    attempts = 0
    while True:
        attempts += 1
        try:
            return _associate(ae, peer, timeout_seconds, extended_negotiation, handlers, held)
        except PacsBusy as busy:
            now = time.monotonic()
            if first_rejection is None:
                first_rejection = now
                deadline = now + (held.timeout_seconds if held is not None else 0.0)
            log.info("%s rejected association request %d (%s)", peer, attempts, busy.rejection)
            # Ours the PACS holds, counted now and after the pause (those it accepted just before
            # rejecting this one may not be marked yet; those released may be forgotten by then).
            open_elsewhere = held.associations_elsewhere() if held is not None else 0
            # The last pause ends at the deadline, for one last request then.
            left = deadline - now
            if left <= 0:
                raise _still_busy(peer, busy.rejection, attempts, now - first_rejection) from None
            time.sleep(min(left, backoff * random.uniform(0.5, 1.0)))
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            if held is None:
                continue
            try:
                moved = held.step_down(deadline, max(open_elsewhere, held.associations_elsewhere()))
            except BackendBusy:
                raise _still_busy(peer, busy.rejection, attempts, time.monotonic() - first_rejection) from None
            if moved:
                log.info("%s lately accepts fewer associations: moved to slot %d", peer, held.slot)


def _still_busy(peer: Peer, rejection: Rejection, attempts: int, elapsed: float) -> PacsBusy:
    tried = f"; asked {attempts} times in {elapsed:.1f} s" if attempts > 1 else ""
    return PacsBusy(f"PACS {peer} is busy: it rejected the association ({rejection}){tried}", rejection)


def _associate(ae: AE, peer: Peer, timeout_seconds: float, extended_negotiation: Sequence[ExtendedNegotiation],
               handlers: Sequence[Handler], held: HeldSlot | None) -> Association:
    connected: list[bool] = []

    def on_open(event: Any) -> None:
        connected.append(True)
        disable_nagle(event)

    def on_established(event: Any) -> None:
        # Counted by a rejected request of another worker learning the PACS's limit.
        if held is not None:
            held.mark_associated()

    started = time.monotonic()
    association = ae.associate(
        peer.host,
        peer.port,
        ae_title=peer.called_aet,
        ext_neg=list(extended_negotiation) or None,
        evt_handlers=[(evt.EVT_CONN_OPEN, on_open), (evt.EVT_ESTABLISHED, on_established), *handlers],
    )
    if not association.is_established:
        raise _association_failure(peer, association, bool(connected), time.monotonic() - started, timeout_seconds)
    return association


def _association_failure(
    peer: Peer, association: Association, connected: bool, elapsed: float, timeout_seconds: float
) -> Exception:
    if not connected:
        return BackendUnavailable(f"cannot connect to PACS {peer}")
    answer = association.acceptor.primitive  # the A-ASSOCIATE response, when one came
    if association.is_rejected:
        if answer is None:
            return BackendProtocolError(f"PACS {peer} rejected the association")
        rejection = Rejection(int(answer.result or 0), int(answer.result_source or 0), int(answer.diagnostic or 0))
        if rejection.transient:
            return _still_busy(peer, rejection, 1, elapsed)
        return AssociationRejected(f"PACS {peer} rejected the association ({rejection})", rejection)
    if answer is not None and answer.result == 0 and not association.accepted_contexts:
        refused = [str(context.abstract_syntax) for context in association.rejected_contexts]
        return NoContextsAccepted(
            f"PACS {peer} accepted the association but none of the {len(refused)} presentation contexts proposed",
            refused,
        )
    if elapsed >= timeout_seconds * 0.9:
        return BackendTimeout(f"PACS {peer} did not answer the association request within {timeout_seconds:g} s")
    return BackendUnavailable(f"PACS {peer} closed the connection during association")
