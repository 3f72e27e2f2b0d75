"""Opening, classifying and always closing an association with a PACS.

The failure of an association request is turned into the error the client deserves: a PACS that
cannot be reached is unavailable (503), one that accepts the connection and then says nothing has
timed out (504), one that rejects us answers wrongly (502).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE, Association, evt
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation, SOPClassExtendedNegotiation

from dicomrst.backends.base import BackendProtocolError, BackendTimeout, BackendUnavailable
from dicomrst.backends.dimse.sockets import disable_nagle
from dicomrst.metrics import ASSOCIATIONS_OPEN

log = logging.getLogger(__name__)

ExtendedNegotiation = SOPClassExtendedNegotiation | SCP_SCU_RoleSelectionNegotiation


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


@contextmanager
def open_association(
    peer: Peer,
    contexts: Sequence[RequestedContext],
    timeout_seconds: float,
    extended_negotiation: Sequence[ExtendedNegotiation] = (),
    handlers: Sequence[tuple[evt.NotificationEvent | evt.InterventionEvent, Callable[..., Any]]] = (),
) -> Iterator[Association]:
    """An established association for the block, released after it or aborted if it raised.

    ``timeout_seconds`` bounds the TCP connect, the association negotiation and each DIMSE response.
    A client that goes away mid-response closes the generator using this, which aborts here too.
    """
    ae = AE(ae_title=peer.calling_aet)
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

    connected: list[bool] = []

    def on_open(event: Any) -> None:
        connected.append(True)
        disable_nagle(event)

    started = time.monotonic()
    association = ae.associate(
        peer.host,
        peer.port,
        ae_title=peer.called_aet,
        ext_neg=list(extended_negotiation) or None,
        evt_handlers=[(evt.EVT_CONN_OPEN, on_open), *handlers],
    )
    if not association.is_established:
        raise _association_failure(peer, association, bool(connected), time.monotonic() - started, timeout_seconds)
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


def _association_failure(
    peer: Peer, association: Association, connected: bool, elapsed: float, timeout_seconds: float
) -> Exception:
    if not connected:
        return BackendUnavailable(f"cannot connect to PACS {peer}")
    if association.is_rejected:
        return BackendProtocolError(f"PACS {peer} rejected the association")
    if elapsed >= timeout_seconds * 0.9:
        return BackendTimeout(f"PACS {peer} did not answer the association request within {timeout_seconds:g} s")
    return BackendUnavailable(f"PACS {peer} closed the connection during association")
