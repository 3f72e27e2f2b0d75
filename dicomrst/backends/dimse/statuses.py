"""DIMSE status codes by name: one IntEnum per table of the standard, and the categories the gateway tests.

``GeneralStatus`` holds statuses PS3.7 Annex C defines for every service; each service's own table in
PS3.4 (C-STORE B.2.3, C-FIND C.4.1.1.4, C-MOVE C.4.2.1.5, C-GET C.4.3.1.4) repeats Success, Cancel and
Pending with that service's meaning, so its enum lists them too, with the same codes. The standard
writes some statuses as ranges ("A7xx", "Cxxx"): any code in the range has that meaning, and the enum
holds the range's first code, which is the one the gateway answers with.

Members are ints: they compare equal to the codes pynetdicom hands over, and pynetdicom sends a member
returned by a handler as its code.
"""
from __future__ import annotations

from enum import IntEnum, unique


@unique
class GeneralStatus(IntEnum):
    """Statuses of any DIMSE service (PS3.7 Annex C)."""

    SUCCESS = 0x0000  # C.1
    CANCEL = 0xFE00  # C.3
    # C.5, failures
    PROCESSING_FAILURE = 0x0110
    REFUSED_SOP_CLASS_NOT_SUPPORTED = 0x0122
    UNRECOGNIZED_OPERATION = 0x0211


@unique
class StoreStatus(IntEnum):
    """C-STORE response statuses (PS3.4 B.2.3, table B.2-1)."""

    SUCCESS = 0x0000
    # Warnings: the instance was stored nonetheless.
    WARNING_COERCION_OF_DATA_ELEMENTS = 0xB000
    WARNING_ELEMENTS_DISCARDED = 0xB006
    WARNING_DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xB007
    # Failures, each a range.
    REFUSED_OUT_OF_RESOURCES = 0xA700  # A7xx
    ERROR_DATA_SET_DOES_NOT_MATCH_SOP_CLASS = 0xA900  # A9xx
    ERROR_CANNOT_UNDERSTAND = 0xC000  # Cxxx


@unique
class FindStatus(IntEnum):
    """C-FIND response statuses (PS3.4 C.4.1.1.4, table C.4-1)."""

    SUCCESS = 0x0000  # matching is complete
    CANCEL = 0xFE00  # matching terminated due to Cancel
    PENDING = 0xFF00  # a match; Optional Keys supported like Required Keys
    PENDING_OPTIONAL_KEYS_NOT_SUPPORTED = 0xFF01  # a match; one or more Optional Keys not supported
    REFUSED_OUT_OF_RESOURCES = 0xA700
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC000  # Cxxx


@unique
class MoveStatus(IntEnum):
    """C-MOVE response statuses (PS3.4 C.4.2.1.5, table C.4-2)."""

    SUCCESS = 0x0000  # sub-operations complete, no failures
    CANCEL = 0xFE00  # sub-operations terminated due to Cancel
    PENDING = 0xFF00  # sub-operations are continuing
    WARNING_SUBOPERATIONS_FAILED = 0xB000  # sub-operations complete, one or more failures
    REFUSED_OUT_OF_RESOURCES_MATCHES = 0xA701  # unable to calculate the number of matches
    REFUSED_OUT_OF_RESOURCES_SUBOPERATIONS = 0xA702  # unable to perform sub-operations
    REFUSED_MOVE_DESTINATION_UNKNOWN = 0xA801
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC000  # Cxxx


@unique
class GetStatus(IntEnum):
    """C-GET response statuses (PS3.4 C.4.3.1.4, table C.4-3): C-MOVE's without the move destination,
    with the same codes, so code shared by both services may name them by ``MoveStatus``."""

    SUCCESS = 0x0000  # sub-operations complete, no failures or warnings
    CANCEL = 0xFE00  # sub-operations terminated due to Cancel
    PENDING = 0xFF00  # sub-operations are continuing
    WARNING_SUBOPERATIONS_FAILED = 0xB000  # sub-operations complete, one or more failures or warnings
    REFUSED_OUT_OF_RESOURCES_MATCHES = 0xA701  # unable to calculate the number of matches
    REFUSED_OUT_OF_RESOURCES_SUBOPERATIONS = 0xA702  # unable to perform sub-operations
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    UNABLE_TO_PROCESS = 0xC000  # Cxxx


_FIND_PENDING = frozenset({FindStatus.PENDING, FindStatus.PENDING_OPTIONAL_KEYS_NOT_SUPPORTED})
_STORE_WARNINGS = frozenset({StoreStatus.WARNING_COERCION_OF_DATA_ELEMENTS, StoreStatus.WARNING_ELEMENTS_DISCARDED,
                             StoreStatus.WARNING_DATA_SET_DOES_NOT_MATCH_SOP_CLASS})


def is_find_pending(code: int) -> bool:
    """A C-FIND response that carries a match, more to come (PS3.4 C.4.1.1.4: FF00 or FF01)."""
    return code in _FIND_PENDING


def is_retrieve_pending(code: int) -> bool:
    """A C-MOVE or C-GET response before the final one: FF00, the only Pending status of both tables
    (PS3.4 C.4.2.1.5, C.4.3.1.4). FF01 is C-FIND's alone; a retrieval answering it is taken as ended."""
    return code == MoveStatus.PENDING


def is_store_warning(code: int) -> bool:
    """A C-STORE the SCP accepted with a warning: the instance is stored (PS3.4 B.2.3: B000, B006, B007)."""
    return code in _STORE_WARNINGS
