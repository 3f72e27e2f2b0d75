"""What C-MOVE and C-GET share on the worker's side: the identifier they send and the reading of their responses.

Both services answer one request with Pending responses while the sub-operations run, then one final
response (PS3.4 C.4.2.1.5, C.4.3.1.4). The instances come another way (C-STOREs to the move receiver,
or on the C-GET's own association), so ``RetrieveResponses`` reads the responses on a thread of their
own (a greenlet under gevent) while the caller streams the instances, and keeps what the caller needs
once they stop: the final response, or the error that stands for it.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from pydicom import Dataset

from dicomrst.backends.base import BackendProtocolError, BackendTimeout, InstanceSelection
from dicomrst.backends.dimse.statuses import is_retrieve_pending

# What pynetdicom's send_c_move and send_c_get return: (status, identifier) per response.
Responses = Iterable[tuple[Dataset, Dataset | None]]


def retrieve_identifier(selection: InstanceSelection) -> Dataset:
    """A Study Root C-MOVE / C-GET identifier: the selection's level and its UIDs."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = selection.level
    identifier.StudyInstanceUID = selection.study_uid
    if selection.series_uid is not None:
        identifier.SeriesInstanceUID = selection.series_uid
    if selection.sop_uid is not None:
        identifier.SOPInstanceUID = selection.sop_uid
    return identifier


def suboperation_count(status: Dataset, keyword: str) -> int | None:
    """A response's Number of Completed / Failed / Warning / Remaining Sub-operations; None when left out."""
    value = status.get(keyword)
    return int(value) if value not in (None, "") else None


class RetrieveResponses:
    """The responses to one C-MOVE or C-GET. ``send`` makes the request and returns pynetdicom's
    responses; ``start`` reads them on a thread of its own, ``read`` on the caller's. Once ``finished``
    is set, ``final`` holds the final response, or ``error`` says why there is none: no response within
    the DIMSE timeout or an abort (pynetdicom yields an empty status for both), or an exception.
    ``on_finished`` is called after that, on the reading thread."""

    def __init__(self, service: str, send: Callable[[], Responses], timeout_seconds: float, *,
                 name: str | None = None, on_finished: Callable[[], None] | None = None) -> None:
        self.service = service
        self.timeout_seconds = timeout_seconds
        self.finished = threading.Event()
        self.final: Dataset | None = None
        self.error: Exception | None = None
        self.last_response = time.monotonic()
        self._send = send
        self._on_finished = on_finished
        self._thread = threading.Thread(target=self.read, name=name or f"{service.lower()}-responses", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def read(self) -> None:
        try:
            for status, _ in self._send():
                self.last_response = time.monotonic()
                if "Status" not in status:
                    self.error = BackendTimeout(
                        f"the PACS sent no {self.service} response within {self.timeout_seconds:g} s or aborted"
                    )
                    return
                if not is_retrieve_pending(int(status.Status)):
                    self.final = status
                    return
            self.error = BackendProtocolError(f"the PACS sent no final {self.service} response")
        except Exception as error:
            self.error = BackendProtocolError(f"{self.service} failed: {error}")
        finally:
            self.finished.set()
            if self._on_finished is not None:
                self._on_finished()

    @property
    def completed_suboperations(self) -> int | None:
        """What the final response counts as sent; None before it, or when the PACS left the count out."""
        return None if self.final is None else suboperation_count(self.final, "NumberOfCompletedSuboperations")

    def final_response(self) -> Dataset:
        """The final response, once reading has finished; else the error that stands for it is raised."""
        if self.error is not None:
            raise self.error
        if self.final is None:
            raise BackendProtocolError(f"the PACS sent no final {self.service} response")
        return self.final
