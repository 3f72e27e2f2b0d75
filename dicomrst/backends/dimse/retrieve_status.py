"""What the final C-MOVE / C-GET response says, as the error the client deserves (PS3.4 C.4.2.1.5)."""
from __future__ import annotations

from pydicom import Dataset

from dicomrst.backends.base import BackendError, BackendProtocolError, NotFound

PENDING = (0xFF00,)
SUCCESS = 0x0000
CANCELLED = 0xFE00
WARNING_SUBOPERATIONS_FAILED = 0xB000
MOVE_DESTINATION_UNKNOWN = 0xA801


def _count(status: Dataset, keyword: str) -> int:
    value = status.get(keyword)
    return int(value) if value not in (None, "") else 0


def final_status_error(status: Dataset, delivered: int, service: str, destination: str | None = None) -> BackendError | None:
    """None when every instance the PACS matched was delivered; else the error to raise."""
    code = int(status.Status)
    failed = _count(status, "NumberOfFailedSuboperations")
    comment = str(status.get("ErrorComment", "")).strip()
    detail = f" ({comment})" if comment else ""
    if code == SUCCESS and failed == 0:
        if delivered == 0:
            return NotFound("no instances match")
        return None
    if code == MOVE_DESTINATION_UNKNOWN:
        return BackendProtocolError(
            f"the PACS does not know the move destination {destination}: register this gateway's receiver "
            f"(AE title, host, port) at the PACS{detail}"
        )
    if code == CANCELLED:
        return BackendProtocolError(f"the PACS cancelled the {service}{detail}")
    if code == WARNING_SUBOPERATIONS_FAILED or failed:
        return BackendProtocolError(f"the PACS could not send {failed} of the instances of this {service}{detail}")
    if delivered == 0 and code in (0xA701, 0xA702, 0xA900, 0xC000) and _count(status, "NumberOfCompletedSuboperations") == 0:
        # Several PACS answer a retrieval of unknown UIDs with a failure rather than an empty success.
        return NotFound(f"no instances match (the PACS answered {service} with status 0x{code:04X}{detail})")
    return BackendProtocolError(f"{service} failed with status 0x{code:04X}{detail}")
