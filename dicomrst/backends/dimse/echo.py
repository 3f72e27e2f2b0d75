"""C-ECHO, the DIMSE health check."""
from __future__ import annotations

from pynetdicom import Association
from pynetdicom.sop_class import Verification

from dicomrst.backends.base import BackendProtocolError
from dicomrst.backends.dimse.statuses import GeneralStatus

VERIFICATION = str(Verification)


def echo(association: Association) -> None:
    """Raise unless the PACS answers a C-ECHO with success."""
    status = association.send_c_echo()
    if "Status" not in status:
        raise BackendProtocolError("the PACS did not answer the C-ECHO")
    if int(status.Status) != GeneralStatus.SUCCESS:
        raise BackendProtocolError(f"the PACS answered the C-ECHO with status 0x{int(status.Status):04X}")
