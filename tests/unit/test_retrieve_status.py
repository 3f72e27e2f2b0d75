"""What a final C-MOVE / C-GET response means for the client (PS3.4 C.4.2.1.5), with the C-FIND that
tells "nothing matches" from "could not send"."""
from __future__ import annotations

import pytest
from pydicom import Dataset

from dicomrst.backends.base import BackendProtocolError, BackendTimeout, InstanceSelection, NotFound
from dicomrst.backends.dimse.retrieve_status import (
    Holdings,
    final_status_error,
    holdings_identifier,
    needs_c_find,
)


def status(code: int, completed: int | None = None, failed: int | None = None, warning: int | None = None,
           comment: str | None = None) -> Dataset:
    dataset = Dataset()
    dataset.Status = code
    for keyword, value in (("NumberOfCompletedSuboperations", completed), ("NumberOfFailedSuboperations", failed),
                           ("NumberOfWarningSuboperations", warning)):
        if value is not None:
            setattr(dataset, keyword, value)
    if comment is not None:
        dataset.ErrorComment = comment
    return dataset


def test_success_with_everything_delivered_is_no_error():
    assert final_status_error(status(0x0000, 3, 0, 0), 3, "C-MOVE") is None


def test_success_with_nothing_is_not_found_without_a_c_find():
    assert not needs_c_find(status(0x0000, 0, 0, 0), 0)
    assert isinstance(final_status_error(status(0x0000, 0, 0, 0), 0, "C-MOVE"), NotFound)


@pytest.mark.parametrize("code", [0xA701, 0xA702, 0xA900, 0xC000, 0xC123])
def test_a_silent_failure_needs_a_c_find(code: int):
    assert needs_c_find(status(code, 0, 0, 0), 0)
    assert needs_c_find(status(code), 0)  # no counts at all


@pytest.mark.parametrize("final, delivered", [
    (status(0xC000, 0, 0, 0), 1),  # something arrived: the PACS has it
    (status(0xA702, 0, 1, 0), 0),  # the PACS counted a failure: it has it
    (status(0xB000, 1, 1, 0), 1),
    (status(0xA801), 0),  # move destination unknown: our configuration
    (status(0xFE00, 0, 0, 0), 0),  # cancelled
])
def test_no_c_find_when_the_response_says_enough(final: Dataset, delivered: int):
    assert not needs_c_find(final, delivered)


def test_silent_failure_of_something_the_pacs_holds_is_502_with_status_and_counts():
    error = final_status_error(status(0xC000, 0, 0, 0), 0, "C-MOVE", "GW", Holdings(1))
    assert isinstance(error, BackendProtocolError) and not isinstance(error, NotFound)
    assert str(error) == ("the PACS could not send 1 of 1 instances "
                          "(C-MOVE status 0xC000: 0 completed, 0 failed, 0 warning sub-operations)")


def test_silent_failure_of_something_uncounted_is_502():
    error = final_status_error(status(0xA702, comment="busy"), 0, "C-GET", holdings=Holdings(None))
    assert isinstance(error, BackendProtocolError)
    assert "holds instances of this selection but could not send them" in str(error)
    assert "C-GET status 0xA702: 0 completed, 0 failed, 0 warning sub-operations; busy" in str(error)


def test_silent_failure_of_nothing_is_404():
    error = final_status_error(status(0xC000, 0, 0, 0), 0, "C-MOVE", "GW", Holdings(0))
    assert isinstance(error, NotFound)
    assert "0xC000" in str(error)


def test_silent_failure_with_a_failing_c_find_is_502_not_a_confident_404():
    error = final_status_error(status(0xC000), 0, "C-MOVE", "GW", Holdings(error=BackendTimeout("slow PACS")))
    assert isinstance(error, BackendProtocolError)
    assert "0xC000" in str(error) and "slow PACS" in str(error)
    assert isinstance(final_status_error(status(0xC000), 0, "C-MOVE", "GW"), BackendProtocolError)


def test_counted_failures_name_the_status_and_counts():
    error = final_status_error(status(0xB000, 2, 1, 0), 2, "C-MOVE")
    assert str(error) == ("the PACS could not send 1 of 3 instances "
                          "(C-MOVE status 0xB000: 2 completed, 1 failed, 0 warning sub-operations)")
    error = final_status_error(status(0xA702, 0, 4, 0), 0, "C-GET")
    assert "could not send 4 of 4 instances (C-GET status 0xA702" in str(error)


def test_failure_after_some_instances_is_502():
    # A partial failure: the stream has begun, and ends without its close delimiter.
    error = final_status_error(status(0xC000, 0, 0, 0), 2, "C-MOVE")
    assert isinstance(error, BackendProtocolError) and not isinstance(error, NotFound)
    assert "C-MOVE failed (C-MOVE status 0xC000" in str(error)


def test_unknown_destination_and_cancel():
    assert "register this gateway's receiver" in str(final_status_error(status(0xA801), 0, "C-MOVE", "GW"))
    assert "cancelled the C-GET" in str(final_status_error(status(0xFE00, 1, 0, 0), 1, "C-GET"))


@pytest.mark.parametrize("selection, expected", [
    (InstanceSelection("1.2.3"), {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2.3",
                                  "NumberOfStudyRelatedInstances": None}),
    (InstanceSelection("1.2.3", "1.2.3.4"), {"QueryRetrieveLevel": "SERIES", "StudyInstanceUID": "1.2.3",
                                              "SeriesInstanceUID": "1.2.3.4",
                                              "NumberOfSeriesRelatedInstances": None}),
    (InstanceSelection("1.2.3", "1.2.3.4", "1.2.3.4.5"), {"QueryRetrieveLevel": "IMAGE",
                                                           "StudyInstanceUID": "1.2.3",
                                                           "SeriesInstanceUID": "1.2.3.4",
                                                           "SOPInstanceUID": "1.2.3.4.5"}),
])
def test_the_c_find_asks_at_the_selections_level(selection: InstanceSelection, expected: dict):
    identifier = holdings_identifier(selection)
    assert {element.keyword: element.value or None for element in identifier} == expected
