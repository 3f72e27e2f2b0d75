"""C-FIND as an iterator of matches, with PS3.4 C.4.1.1.4 statuses turned into typed errors."""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from pydicom import Dataset
from pynetdicom import Association
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from dicomrst.backends.base import BackendProtocolError, BackendTimeout
from dicomrst.backends.dimse.statuses import FindStatus, is_find_pending

STUDY_ROOT_FIND = str(StudyRootQueryRetrieveInformationModelFind)


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
    """Yield each match of a Study Root C-FIND until the PACS reports the query complete."""
    if not any(c.abstract_syntax == STUDY_ROOT_FIND for c in association.accepted_contexts):
        raise BackendProtocolError("the PACS does not offer Study Root C-FIND")
    waited_since = time.monotonic()
    for status, match in association.send_c_find(identifier, STUDY_ROOT_FIND):
        if "Status" not in status:
            raise _no_response(waited_since, timeout_seconds)
        code = int(status.Status)
        if is_find_pending(code):
            if match is None:
                raise BackendProtocolError("the PACS sent a C-FIND match that could not be decoded")
            yield match
            waited_since = time.monotonic()
        elif code in (FindStatus.SUCCESS, FindStatus.CANCEL):
            return
        else:
            comment = status.get("ErrorComment", "")
            raise BackendProtocolError(f"C-FIND failed with status 0x{code:04X}" + (f": {comment}" if comment else ""))


def _no_response(waited_since: float, timeout_seconds: float) -> Exception:
    # pynetdicom yields an empty status both on a DIMSE timeout and when the peer aborts.
    if time.monotonic() - waited_since >= timeout_seconds * 0.9:
        return BackendTimeout(f"the PACS sent no C-FIND response within {timeout_seconds:g} s")
    return BackendProtocolError("the PACS aborted the association during C-FIND")
