"""The reader of C-MOVE and C-GET responses, fed scripted statuses instead of pynetdicom's generators,
and the identifier both retrievals send."""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from pydicom import Dataset

from dicomrst.backends.base import BackendProtocolError, BackendTimeout, InstanceSelection
from dicomrst.backends.dimse.retrieve_responses import (
    RetrieveResponses,
    Responses,
    retrieve_identifier,
    suboperation_count,
)


EMPTY = object()  # the element present, with no value


def status(code: int | None, remaining: int | None = None, completed: int | object | None = None,
           failed: int | object | None = None) -> Dataset:
    dataset = Dataset()
    if code is not None:
        dataset.Status = code
    for keyword, value in (("NumberOfRemainingSuboperations", remaining),
                           ("NumberOfCompletedSuboperations", completed),
                           ("NumberOfFailedSuboperations", failed)):
        if value is not None:
            setattr(dataset, keyword, None if value is EMPTY else value)
    return dataset


class Script:
    """Stands for pynetdicom's send_c_move / send_c_get: yields the statuses given, records how many
    were read, and raises ``error`` (if any) once they are spent."""

    def __init__(self, *statuses: Dataset, error: Exception | None = None) -> None:
        self.statuses = statuses
        self.error = error
        self.read = 0
        self.sent = 0

    def __call__(self) -> Responses:
        self.sent += 1
        return self._responses()

    def _responses(self) -> Iterator[tuple[Dataset, Dataset | None]]:
        for response in self.statuses:
            self.read += 1
            yield response, None
        if self.error is not None:
            raise self.error


def read(script: Script, service: str = "C-MOVE", timeout_seconds: float = 7) -> RetrieveResponses:
    responses = RetrieveResponses(service, script, timeout_seconds)
    responses.read()
    return responses


def test_pending_responses_are_read_past_and_the_final_one_is_kept():
    final = status(0x0000, 0, 3, 0)
    script = Script(status(0xFF00, 2, 1, 0), status(0xFF00, 1, 2, 0), final, status(0xFF00))
    responses = read(script)
    assert responses.finished.is_set()
    assert responses.final is final and responses.error is None
    assert responses.final_response() is final
    assert responses.completed_suboperations == 3
    assert script.sent == 1
    assert script.read == 3  # nothing read past the final response


@pytest.mark.parametrize("code", [0x0000, 0xB000, 0xFE00, 0xA801, 0xA702, 0xC000, 0xFF01])
def test_any_status_but_ff00_is_final(code: int):
    responses = read(Script(status(code), status(0x0000)))
    assert responses.final is not None and int(responses.final.Status) == code


@pytest.mark.parametrize("service", ["C-MOVE", "C-GET"])
def test_an_empty_status_is_a_timeout_or_abort(service: str):
    # pynetdicom yields an empty status when the DIMSE timeout expires and when the peer aborts.
    responses = read(Script(status(0xFF00, 1, 0, 0), status(None)), service, 2.5)
    assert responses.final is None and responses.finished.is_set()
    assert isinstance(responses.error, BackendTimeout)
    assert str(responses.error) == f"the PACS sent no {service} response within 2.5 s or aborted"
    with pytest.raises(BackendTimeout):
        responses.final_response()


@pytest.mark.parametrize("statuses", [(), (status(0xFF00, 1, 0, 0),)])
def test_an_exception_is_a_protocol_error_naming_the_service(statuses: tuple[Dataset, ...]):
    responses = read(Script(*statuses, error=RuntimeError("association released")), "C-GET")
    assert isinstance(responses.error, BackendProtocolError) and not isinstance(responses.error, BackendTimeout)
    assert str(responses.error) == "C-GET failed: association released"
    assert responses.final is None and responses.completed_suboperations is None
    with pytest.raises(BackendProtocolError, match="C-GET failed: association released"):
        responses.final_response()


def test_a_request_that_cannot_be_sent_is_a_protocol_error():
    def send() -> Responses:
        raise ValueError("no presentation context")

    responses = RetrieveResponses("C-MOVE", send, 5)
    responses.read()
    assert str(responses.error) == "C-MOVE failed: no presentation context"


def test_responses_that_stop_without_a_final_one_are_an_error():
    responses = read(Script(status(0xFF00), status(0xFF00)))
    assert isinstance(responses.error, BackendProtocolError)
    assert "no final C-MOVE response" in str(responses.error)


@pytest.mark.parametrize("completed, expected", [(5, 5), (0, 0), (EMPTY, None), (None, None)])
def test_completed_suboperations_of_the_final_response(completed: int | object | None, expected: int | None):
    assert read(Script(status(0x0000, completed=completed))).completed_suboperations == expected


def test_completed_suboperations_before_the_final_response():
    responses = RetrieveResponses("C-MOVE", Script(status(0x0000, completed=2)), 5)
    assert responses.completed_suboperations is None
    assert not responses.finished.is_set()


def test_each_response_is_the_latest_sign_of_life():
    seen: list[float] = []
    responses: RetrieveResponses

    def send() -> Responses:
        for code in (0xFF00, 0xFF00, 0x0000):
            seen.append(responses.last_response)
            yield status(code), None

    responses = RetrieveResponses("C-GET", send, 5)
    responses.read()
    assert seen == sorted(seen)
    assert responses.last_response >= seen[-1]


@pytest.mark.parametrize("script", [Script(status(0x0000, completed=1)), Script(status(None)),
                                    Script(error=OSError("reset"))])
def test_on_finished_runs_once_after_the_outcome_is_known(script: Script):
    calls: list[tuple[bool, bool]] = []
    responses: RetrieveResponses = RetrieveResponses(
        "C-GET", script, 5, on_finished=lambda: calls.append((responses.finished.is_set(),
                                                               responses.final is not None or responses.error is not None)))
    responses.read()
    assert calls == [(True, True)]


def test_start_reads_on_a_thread_of_its_own():
    release = threading.Event()
    reader_threads: list[str] = []

    def send() -> Responses:
        reader_threads.append(threading.current_thread().name)
        yield status(0xFF00, 1, 0, 0), None
        release.wait(5)
        yield status(0x0000, 0, 1, 0), None

    responses = RetrieveResponses("C-MOVE", send, 5, name="c-move-42")
    responses.start()
    assert not responses.finished.wait(0.05)  # the caller goes on while the PACS is still pending
    release.set()
    assert responses.finished.wait(5)
    assert reader_threads == ["c-move-42"]
    assert responses.final_response().Status == 0x0000


def test_suboperation_count():
    final = status(0xB000, remaining=0, completed=2, failed=EMPTY)
    assert suboperation_count(final, "NumberOfCompletedSuboperations") == 2
    assert suboperation_count(final, "NumberOfRemainingSuboperations") == 0
    assert suboperation_count(final, "NumberOfFailedSuboperations") is None
    assert suboperation_count(final, "NumberOfWarningSuboperations") is None


@pytest.mark.parametrize("selection, expected", [
    (InstanceSelection("1.2.3"), {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.3"}),
    (InstanceSelection("1.2.3", "1.2.3.4"), {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2.3",
                                              "SeriesInstanceUID": "1.2.3.4"}),
    (InstanceSelection("1.2.3", "1.2.3.4", "1.2.3.4.5"), {"QueryRetrieveLevel": "IMAGE", "StudyInstanceUID": "1.2.3",
                                                           "SeriesInstanceUID": "1.2.3.4",
                                                           "SOPInstanceUID": "1.2.3.4.5"}),
])
def test_the_identifier_names_the_selection_at_its_level(selection: InstanceSelection, expected: dict):
    assert {element.keyword: element.value for element in retrieve_identifier(selection)} == expected
