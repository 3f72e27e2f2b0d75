"""C-MOVE from the worker's side: register a pending move, ask the PACS to send the instances to the
move receiver, and stream each one from the spool as it lands."""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

from dicomrst.backends.base import BackendProtocolError, BackendTimeout, InstanceSelection
from dicomrst.backends.dimse.association import Peer, open_association
from dicomrst.backends.dimse.find import STUDY_ROOT_FIND
from dicomrst.backends.dimse.file_names import safe_name
from dicomrst.backends.dimse.retrieve_responses import RetrieveResponses, retrieve_identifier
from dicomrst.backends.dimse.retrieve_status import final_status_error, holdings_anew, holdings_on, needs_c_find
from dicomrst.backends.dimse.slots import AssociationSlots
from dicomrst.backends.dimse.spool import PendingMove, finish_move, register_move

log = logging.getLogger(__name__)

STUDY_ROOT_MOVE = str(StudyRootQueryRetrieveInformationModelMove)
_POLL_SECONDS = 0.005


def _stream_arrivals(move: PendingMove, responses: RetrieveResponses, timeout_seconds: float) -> Iterator[bytes]:
    """Yield instances as the receiver spools them, until the PACS reports the move complete and
    as many instances as it says it sent have arrived (a PACS that omits the message id may have its
    sub-operations of identical moves bound to either move, so they can trail the final response)."""
    last_activity = time.monotonic()
    delivered = 0
    while True:
        finished = responses.finished.is_set()
        arrived = move.arrived()
        for path in arrived:
            data = path.read_bytes()
            path.unlink()
            delivered += 1
            yield data
        now = time.monotonic()
        if arrived:
            last_activity = now
            continue
        if finished:
            expected = responses.completed_suboperations
            if expected is None or delivered >= expected or responses.error is not None:
                return
        if now - max(last_activity, responses.last_response) > timeout_seconds:
            if finished:
                raise BackendProtocolError(
                    f"the PACS reported {responses.completed_suboperations} instances sent, {delivered} arrived"
                )
            raise BackendTimeout(f"no instance and no C-MOVE response from the PACS within {timeout_seconds:g} s")
        time.sleep(_POLL_SECONDS)


def move_instances(
    peer: Peer,
    slots: AssociationSlots,
    pool_timeout_seconds: float,
    destination: str,
    spool: Path,
    selection: InstanceSelection,
    timeout_seconds: float,
    sequential: bool,
) -> Iterator[bytes]:
    """Each instance of ``selection`` as Part-10 bytes, streamed while the PACS is still sending."""
    with ExitStack() as stack:
        if sequential:
            # PACS that omit the Move Originator Message ID: one move at a time to this PACS.
            turn = AssociationSlots(spool / "sequential" / safe_name(peer.called_aet), 1)
            stack.enter_context(turn.hold(timeout_seconds))
        stack.enter_context(slots.hold(pool_timeout_seconds))
        move = register_move(spool, peer.called_aet, selection)
        stack.callback(finish_move, move)
        holdings = None
        # C-FIND is proposed too: it tells "nothing matches" from "could not send" when the move fails
        # without a word (retrieve_status), on this association.
        with open_association(peer, [STUDY_ROOT_MOVE, STUDY_ROOT_FIND], timeout_seconds) as association:
            if not any(c.abstract_syntax == STUDY_ROOT_MOVE for c in association.accepted_contexts):
                raise BackendProtocolError("the PACS does not offer Study Root C-MOVE")
            identifier = retrieve_identifier(selection)
            responses = RetrieveResponses(
                "C-MOVE",
                lambda: association.send_c_move(identifier, destination, STUDY_ROOT_MOVE, msg_id=move.message_id),
                timeout_seconds, name=f"c-move-{move.message_id}",
            )
            responses.start()
            delivered = 0
            for instance in _stream_arrivals(move, responses, timeout_seconds):
                delivered += 1
                yield instance
            final = responses.final_response()
            if needs_c_find(final, delivered):
                holdings = holdings_on(association, selection, timeout_seconds)
        if needs_c_find(final, delivered) and holdings is None:
            # The PACS did not accept C-FIND beside C-MOVE: ask on a new association, in the same slot.
            holdings = holdings_anew(peer, selection, timeout_seconds)
        error = final_status_error(final, delivered, "C-MOVE", destination, holdings)
        if error is not None:
            raise error
