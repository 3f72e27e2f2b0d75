"""DIMSE statuses by name: the codes are the standard's (PS3.7 Annex C; PS3.4 B.2.3, C.4.1.1.4, C.4.2.1.5,
C.4.3.1.4), and the categories the gateway tests hold the codes they should and no others."""
from __future__ import annotations

from enum import IntEnum

import pytest

from dicomrst.backends.dimse.statuses import (
    FindStatus,
    GeneralStatus,
    GetStatus,
    MoveStatus,
    StoreStatus,
    is_find_pending,
    is_retrieve_pending,
    is_store_warning,
)

# Each table as the standard writes it: its further meaning to its code.
TABLES: dict[type[IntEnum], dict[str, int]] = {
    GeneralStatus: {"SUCCESS": 0x0000, "CANCEL": 0xFE00, "PROCESSING_FAILURE": 0x0110,
                    "REFUSED_SOP_CLASS_NOT_SUPPORTED": 0x0122, "UNRECOGNIZED_OPERATION": 0x0211},
    StoreStatus: {"SUCCESS": 0x0000, "WARNING_COERCION_OF_DATA_ELEMENTS": 0xB000, "WARNING_ELEMENTS_DISCARDED": 0xB006,
                  "WARNING_DATA_SET_DOES_NOT_MATCH_SOP_CLASS": 0xB007, "REFUSED_OUT_OF_RESOURCES": 0xA700,
                  "ERROR_DATA_SET_DOES_NOT_MATCH_SOP_CLASS": 0xA900, "ERROR_CANNOT_UNDERSTAND": 0xC000},
    FindStatus: {"SUCCESS": 0x0000, "CANCEL": 0xFE00, "PENDING": 0xFF00, "PENDING_OPTIONAL_KEYS_NOT_SUPPORTED": 0xFF01,
                 "REFUSED_OUT_OF_RESOURCES": 0xA700, "IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS": 0xA900,
                 "UNABLE_TO_PROCESS": 0xC000},
    MoveStatus: {"SUCCESS": 0x0000, "CANCEL": 0xFE00, "PENDING": 0xFF00, "WARNING_SUBOPERATIONS_FAILED": 0xB000,
                 "REFUSED_OUT_OF_RESOURCES_MATCHES": 0xA701, "REFUSED_OUT_OF_RESOURCES_SUBOPERATIONS": 0xA702,
                 "REFUSED_MOVE_DESTINATION_UNKNOWN": 0xA801, "IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS": 0xA900,
                 "UNABLE_TO_PROCESS": 0xC000},
    GetStatus: {"SUCCESS": 0x0000, "CANCEL": 0xFE00, "PENDING": 0xFF00, "WARNING_SUBOPERATIONS_FAILED": 0xB000,
                "REFUSED_OUT_OF_RESOURCES_MATCHES": 0xA701, "REFUSED_OUT_OF_RESOURCES_SUBOPERATIONS": 0xA702,
                "IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS": 0xA900, "UNABLE_TO_PROCESS": 0xC000},
}


@pytest.mark.parametrize("table", list(TABLES), ids=lambda table: table.__name__)
def test_each_table_has_the_standards_codes(table: type[IntEnum]):
    assert {member.name: member.value for member in table} == TABLES[table]


@pytest.mark.parametrize("table", [StoreStatus, FindStatus, MoveStatus, GetStatus], ids=lambda table: table.__name__)
def test_a_services_success_and_cancel_are_the_general_ones(table: type[IntEnum]):
    assert table["SUCCESS"] == GeneralStatus.SUCCESS
    if "CANCEL" in table.__members__:
        assert table["CANCEL"] == GeneralStatus.CANCEL


def test_c_get_is_c_move_without_the_move_destination():
    # Code shared by both retrievals names their statuses by MoveStatus (retrieve_status, retrieve_responses).
    move = {member.name: member.value for member in MoveStatus}
    del move["REFUSED_MOVE_DESTINATION_UNKNOWN"]
    assert {member.name: member.value for member in GetStatus} == move


def test_members_are_the_ints_pynetdicom_hands_over():
    assert StoreStatus.SUCCESS == 0 and isinstance(StoreStatus.SUCCESS, int)
    assert 0xA801 == MoveStatus.REFUSED_MOVE_DESTINATION_UNKNOWN
    assert f"0x{StoreStatus.REFUSED_OUT_OF_RESOURCES:04X}" == "0xA700"
    assert 0xB000 in {MoveStatus.WARNING_SUBOPERATIONS_FAILED}  # hashes as its code


@pytest.mark.parametrize("code, pending", [
    (0xFF00, True), (0xFF01, True),
    (0x0000, False), (0xFE00, False), (0xA700, False), (0xA900, False), (0xC000, False), (0xFF02, False),
    (0xB000, False),
])
def test_find_pending(code: int, pending: bool):
    assert is_find_pending(code) is pending


@pytest.mark.parametrize("code, pending", [
    (0xFF00, True),
    (0xFF01, False),  # C-FIND's alone: a retrieval that answers it has ended
    (0x0000, False), (0xFE00, False), (0xB000, False), (0xA701, False), (0xA702, False), (0xA801, False),
    (0xC000, False),
])
def test_retrieve_pending(code: int, pending: bool):
    assert is_retrieve_pending(code) is pending


@pytest.mark.parametrize("code, warning", [
    (0xB000, True), (0xB006, True), (0xB007, True),
    (0x0000, False), (0xB001, False), (0xB005, False), (0xA700, False), (0xA900, False), (0xC000, False),
    (0x0110, False), (0xFF00, False),
])
def test_store_warning(code: int, warning: bool):
    assert is_store_warning(code) is warning
