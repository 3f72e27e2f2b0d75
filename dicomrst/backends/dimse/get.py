"""C-GET: the instances come back as C-STOREs on the same association, so no receiver is involved."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from pydicom.uid import AllTransferSyntaxes, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import Association, build_role, evt
from pynetdicom.presentation import StoragePresentationContexts
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

from dicomrst.backends.base import BackendProtocolError, BackendTimeout, InstanceSelection
from dicomrst.backends.dimse.association import Peer, RequestedContext, open_association
from dicomrst.backends.dimse.move import retrieve_identifier
from dicomrst.backends.dimse.retrieve_status import PENDING, final_status_error
from dicomrst.backends.dimse.slots import AssociationSlots

STUDY_ROOT_GET = str(StudyRootQueryRetrieveInformationModelGet)
# Instances the PACS may send ahead of a slow client; beyond that the C-STORE-RSP waits, which
# slows the PACS down instead of filling the worker's memory.
_QUEUE_DEPTH = 4
_UNCOMPRESSED = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]
_TRANSFER_SYNTAXES = _UNCOMPRESSED + [str(uid) for uid in AllTransferSyntaxes if str(uid) not in _UNCOMPRESSED]


class _Finished:
    """Put on the queue after the last C-GET response."""


def _contexts() -> list[RequestedContext]:
    # 128 presentation contexts at most: the C-GET one and 120 storage classes, each offering every
    # transfer syntax so the PACS sends instances as it holds them.
    return [STUDY_ROOT_GET] + [(c.abstract_syntax, _TRANSFER_SYNTAXES) for c in StoragePresentationContexts]


def get_instances(
    peer: Peer,
    slots: AssociationSlots,
    pool_timeout_seconds: float,
    selection: InstanceSelection,
    timeout_seconds: float,
) -> Iterator[bytes]:
    arrivals: queue.Queue[Any] = queue.Queue(maxsize=_QUEUE_DEPTH)

    def on_store(event: Any) -> int:
        try:
            arrivals.put(event.encoded_dataset(), timeout=timeout_seconds)
        except queue.Full:
            return 0xA700
        return 0x0000

    roles = [build_role(str(c.abstract_syntax), scp_role=True) for c in StoragePresentationContexts]
    with slots.hold(pool_timeout_seconds), open_association(
        peer, _contexts(), timeout_seconds, roles, [(evt.EVT_C_STORE, on_store)]
    ) as association:
        if not any(c.abstract_syntax == STUDY_ROOT_GET for c in association.accepted_contexts):
            raise BackendProtocolError("the PACS does not offer Study Root C-GET")
        outcome: dict[str, Any] = {}
        reader = threading.Thread(target=_read_responses, args=(association, selection, arrivals, outcome, timeout_seconds),
                                  daemon=True)
        reader.start()
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
        if "error" in outcome:
            raise outcome["error"]
        error = final_status_error(outcome["final"], delivered, "C-GET")
        if error is not None:
            raise error


def _read_responses(association: Association, selection: InstanceSelection, arrivals: queue.Queue[Any],
                    outcome: dict[str, Any], timeout_seconds: float) -> None:
    try:
        for status, _ in association.send_c_get(retrieve_identifier(selection), STUDY_ROOT_GET):
            if "Status" not in status:
                outcome["error"] = BackendTimeout(f"the PACS sent no C-GET response within {timeout_seconds:g} s or aborted")
                break
            if int(status.Status) not in PENDING:
                outcome["final"] = status
                break
    except Exception as error:  # noqa: BLE001 - reported to the streaming side, which raises it
        outcome["error"] = BackendProtocolError(f"C-GET failed: {error}")
    finally:
        # Queued behind any instance still waiting, so the last ones are not overtaken; a consumer
        # that went away leaves the queue full, and this gives up after the timeout.
        try:
            arrivals.put(_Finished, timeout=timeout_seconds)
        except queue.Full:
            pass
