"""C-MOVE from the worker's side: register a pending move, ask the PACS to send the instances to the
move receiver, and stream each one from the spool as it lands."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
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
from dicomrst.backends.dimse.spool import PendingMove, finish_move, register_move, seal_move

log = logging.getLogger(__name__)

STUDY_ROOT_MOVE = str(StudyRootQueryRetrieveInformationModelMove)
_POLL_SECONDS = 0.005
_FIRST_POLL_SECONDS = 0.001


class _Progress:
    """How far one move has come: instances read from the spool so far."""

    def __init__(self) -> None:
        self.delivered = 0


def _all_sent(move: PendingMove, responses: RetrieveResponses, progress: _Progress) -> bool:
    """Whether the PACS is done with this move: its final response is in, and every instance it says
    it sent is in the spool (read or not); or it failed, and nothing more will come."""
    if not responses.finished.is_set():
        return False
    expected = responses.completed_suboperations
    if expected is None or responses.error is not None:
        return True
    return progress.delivered + len(move.arrived()) >= expected


class _SequentialTurn:
    """``wado-rs.mode: sequential``: the PACS's one-slot turn (a one-slot ``AssociationSlots`` in the
    spool), held while the PACS sends this move's instances and given up as soon as it has sent them all,
    so the next move to this PACS does not wait for a slow client. The move is sealed first: the next
    move's instances, routed by UIDs where the PACS leaves the message id out, cannot land in it."""

    def __init__(self, slots: AssociationSlots, timeout_seconds: float) -> None:
        self._held = ExitStack()
        self._held.enter_context(slots.hold(timeout_seconds))
        self._lock = threading.Lock()
        self._given_up = False

    def give_up_once_sent(self, move: PendingMove, responses: RetrieveResponses, progress: _Progress) -> None:
        """Seal the move and give the turn up if the PACS has sent all of it. Called from the C-MOVE
        reader's thread when the final response comes, and from the streaming loop after that."""
        if self._given_up or not _all_sent(move, responses, progress):
            return
        with self._lock:
            if self._given_up:
                return
            self._given_up = True
        seal_move(move)
        self.release()

    def release(self) -> None:
        """Give the turn up; again is no error."""
        with self._lock:
            self._held.close()


def _stream_arrivals(move: PendingMove, responses: RetrieveResponses, timeout_seconds: float,
                     progress: _Progress, when_finished: Callable[[], None] = lambda: None) -> Iterator[bytes]:
    """Yield instances as the receiver spools them, until the PACS reports the move complete and
    as many instances as it says it sent have arrived (a PACS that omits the message id may have its
    sub-operations of identical moves bound to either move, so they can trail the final response).
    ``when_finished`` is called on each round once the final response is in."""
    last_activity = time.monotonic()
    while True:
        finished = responses.finished.is_set()
        arrived = move.arrived()
        if finished:
            when_finished()
        for path in arrived:
            data = path.read_bytes()
            path.unlink()
            progress.delivered += 1
            yield data
        now = time.monotonic()
        if arrived:
            last_activity = now
            continue
        if finished:
            expected = responses.completed_suboperations
            if expected is None or progress.delivered >= expected or responses.error is not None:
                return
        if now - max(last_activity, responses.last_response) > timeout_seconds:
            if finished:
                raise BackendProtocolError(
                    f"the PACS reported {responses.completed_suboperations} instances sent, {progress.delivered} arrived"
                )
            raise BackendTimeout(f"no instance and no C-MOVE response from the PACS within {timeout_seconds:g} s")
        # Until the first instance is in, every millisecond counts towards the client's first byte.
        time.sleep(_POLL_SECONDS if progress.delivered else _FIRST_POLL_SECONDS)


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
    """Each instance of ``selection`` as Part-10 bytes, streamed while the PACS is still sending.

    In sequential mode the PACS's turn is taken first and given up once the PACS has sent everything
    (the final C-MOVE response is in and the instances it counts are in the spool): the move is sealed
    then, so the next move's instances cannot be routed to it, and the client reads the rest from the
    spool at its own pace."""
    with ExitStack() as stack:
        turn: _SequentialTurn | None = None
        if sequential:
            # PACS that omit the Move Originator Message ID: one move at a time to this PACS.
            turn = _SequentialTurn(AssociationSlots(spool / "sequential" / safe_name(peer.called_aet), 1),
                                   timeout_seconds)
            stack.callback(turn.release)
        stack.enter_context(slots.hold(pool_timeout_seconds))
        move = register_move(spool, peer.called_aet, selection)
        stack.callback(finish_move, move)
        progress = _Progress()

        def when_finished() -> None:
            if turn is not None:
                turn.give_up_once_sent(move, responses, progress)

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
                timeout_seconds, name=f"c-move-{move.message_id}", on_finished=when_finished,
            )
            responses.start()
            yield from _stream_arrivals(move, responses, timeout_seconds, progress, when_finished)
            delivered = progress.delivered
            final = responses.final_response()
            if needs_c_find(final, delivered):
                holdings = holdings_on(association, selection, timeout_seconds)
        if needs_c_find(final, delivered) and holdings is None:
            # The PACS did not accept C-FIND beside C-MOVE: ask on a new association, in the same slot.
            holdings = holdings_anew(peer, selection, timeout_seconds)
        error = final_status_error(final, delivered, "C-MOVE", destination, holdings)
        if error is not None:
            raise error
