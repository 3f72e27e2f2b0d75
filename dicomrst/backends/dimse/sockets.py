"""Socket options pynetdicom leaves at their defaults."""
from __future__ import annotations

import socket
from typing import Any


def disable_nagle(event: Any) -> None:
    """EVT_CONN_OPEN handler. DIMSE alternates small PDUs (a command, an acknowledgement) with data;
    with Nagle's algorithm on, each small PDU that follows unacknowledged data can wait ~40 ms for
    the peer's delayed ACK."""
    transport = getattr(event.assoc.dul.socket, "socket", None)
    if transport is not None:
        transport.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
