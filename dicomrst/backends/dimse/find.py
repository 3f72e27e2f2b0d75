"""C-FIND as an iterator of matches, with PS3.4 C.4.1.1.4 statuses turned into typed errors.

A consumer that stops reading before the final response (QIDO-RS ``limit`` reached, the client gone)
closes the iterator: the C-FIND is then cancelled (C-CANCEL, PS3.7 9.3.2.3) and its responses are read
to the final one, so the association is left in order and can be released, not aborted, and the PACS
stops matching.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom import Dataset
from pynetdicom import Association
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from dicomrst.backends.base import BackendProtocolError, BackendTimeout
from dicomrst.backends.dimse.statuses import FindStatus, is_find_pending

log = logging.getLogger(__name__)

STUDY_ROOT_FIND = str(StudyRootQueryRetrieveInformationModelFind)
_MESSAGE_IDS = itertools.count(1)
_MESSAGE_IDS_LOCK = threading.Lock()


def next_message_id() -> int:
    """A Message ID (1..65535) for the next C-FIND: each C-FIND of this process has its own, so a
    C-CANCEL names one request only (PS3.7 9.3.2.3)."""
    with _MESSAGE_IDS_LOCK:
        return (next(_MESSAGE_IDS) - 1) % 0xFFFF + 1


@dataclass(frozen=True)
class QueryOptions:
    """The C-FIND extended negotiation (PS3.4 C.5.1.1.1, table C.5-1): what the PACS agreed to on
    one association. A PACS that answers nothing agreed to nothing."""

    relational: bool = False
    combined_date_time: bool = False
    fuzzy_matching: bool = False
    timezone_adjustment: bool = False

    def request(self) -> bytes:
        return bytes([self.relational, self.combined_date_time, self.fuzzy_matching, self.timezone_adjustment])


def agreed_query_options(association: Association) -> QueryOptions:
    answers: dict[str, bytes] = {str(uid): info for uid, info in association.acceptor.sop_class_extended.items()}
    answer = answers.get(STUDY_ROOT_FIND) or b""
    flags = [bool(byte) for byte in answer[:4]] + [False] * (4 - min(len(answer), 4))
    return QueryOptions(*flags)


def find(association: Association, identifier: Dataset, timeout_seconds: float) -> Iterator[Dataset]:
    """Yield each match of a Study Root C-FIND until the PACS reports the query complete. Closing the
    iterator before that cancels the C-FIND (``cancel``)."""
    if not any(c.abstract_syntax == STUDY_ROOT_FIND for c in association.accepted_contexts):
        raise BackendProtocolError("the PACS does not offer Study Root C-FIND")
    message_id = next_message_id()
    waited_since = time.monotonic()
    responses = association.send_c_find(identifier, STUDY_ROOT_FIND, msg_id=message_id)
    for status, match in responses:
        if "Status" not in status:
            raise _no_response(waited_since, timeout_seconds)
        code = int(status.Status)
        if is_find_pending(code):
            if match is None:
                raise BackendProtocolError("the PACS sent a C-FIND match that could not be decoded")
            try:
                yield match
            except GeneratorExit:
                cancel(association, message_id, responses, timeout_seconds)
                raise
            waited_since = time.monotonic()
        elif code in (FindStatus.SUCCESS, FindStatus.CANCEL):
            return
        else:
            comment = status.get("ErrorComment", "")
            raise BackendProtocolError(f"C-FIND failed with status 0x{code:04X}" + (f": {comment}" if comment else ""))


def cancel(association: Association, message_id: int, responses: Iterator[tuple[Dataset, Dataset | None]],
           timeout_seconds: float) -> None:
    """Cancel a C-FIND whose final response has not been read (PS3.7 9.3.2.3): send C-CANCEL, then read
    its responses until the final one (Cancel 0xFE00, or whatever final status crossed the C-CANCEL)
    within ``timeout_seconds``. A PACS that keeps answering Pending after that, or fails, leaves the
    association aborted; otherwise it can be released. Never raises: it runs as the iterator closes."""
    try:
        association.send_c_cancel(message_id, query_model=STUDY_ROOT_FIND)
        deadline = time.monotonic() + timeout_seconds
        discarded = 0
        for status, _ in responses:
            if "Status" not in status:
                # No response within the DIMSE timeout (pynetdicom has aborted), or the PACS aborted.
                log.warning("the PACS did not end the cancelled C-FIND (message id %d)", message_id)
                return
            if not is_find_pending(int(status.Status)):
                log.debug("C-FIND (message id %d) cancelled after %d more matches, final status 0x%04X",
                          message_id, discarded, int(status.Status))
                return
            discarded += 1
            if time.monotonic() > deadline:
                break
        log.warning("the PACS went on answering the cancelled C-FIND (message id %d); aborting", message_id)
    except Exception as error:  # the iterator is closing: nothing may escape
        log.warning("could not cancel the C-FIND (message id %d): %s; aborting", message_id, error)
    association.abort()


def _no_response(waited_since: float, timeout_seconds: float) -> Exception:
    # pynetdicom yields an empty status both on a DIMSE timeout and when the peer aborts.
    if time.monotonic() - waited_since >= timeout_seconds * 0.9:
        return BackendTimeout(f"the PACS sent no C-FIND response within {timeout_seconds:g} s")
    return BackendProtocolError("the PACS aborted the association during C-FIND")
