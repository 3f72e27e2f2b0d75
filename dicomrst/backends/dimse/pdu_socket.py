"""The socket of an association: read and written a buffer at a time, and waited on instead of polled.

pynetdicom's ``AssociationSocket`` reads a PDU's header with one ``recv`` and its body 4,096 bytes per
``recv``, and asks ``select`` whether anything is there before every PDU. Its reactor (``DULServiceProvider``)
sleeps 1 ms whenever a pass of its loop found nothing to do. A PACS that sends each instance of a C-GET in
16 KiB PDUs and then waits for our C-STORE-RSP (Orthanc does) so pays system calls per PDU and sleeps per
instance: 60 instances took 244 ms, against 135 ms without the sleeps.

Here one ``recv`` takes whatever the kernel holds, up to ``READ_SIZE``, and the PDUs in it are handed out
from memory. PDUs to send are joined while more are queued behind them (an instance of a STOW-RS leaves
in 16 KiB PDUs when the PACS accepts no larger ones), up to ``WRITE_SIZE``, and sent with one call; what
is joined is sent before the reactor waits, so nothing stays behind. The reactor no longer sleeps:
``ready`` waits in ``select`` for the first of data from the peer and a primitive to send (the reactor's
outgoing queue wakes it), for at most ``IDLE_WAIT_SECONDS``, so that pynetdicom's timers are still
checked as often as before.
"""
from __future__ import annotations

import queue
import select
import socket
import ssl
from typing import TYPE_CHECKING, Any

from pynetdicom import AE
from pynetdicom.transport import AssociationSocket

if TYPE_CHECKING:
    from ssl import SSLContext

    from pynetdicom.association import Association
    from pynetdicom.transport import AddressInformation

# At most this much is taken from the kernel at once: several PDUs of the usual sizes, and no more
# memory per association than a few of them.
READ_SIZE = 256 * 1024
# PDUs queued back to back are sent together up to this size.
WRITE_SIZE = 256 * 1024
# The longest wait for data or a primitive to send: pynetdicom's own loop delay, so that its ARTIM and
# idle timers and a killed reactor are noticed as soon as before.
IDLE_WAIT_SECONDS = 0.001


class _WakingQueue(queue.Queue[Any]):
    """The reactor's outgoing queue: a ``put`` while the reactor waits in ``ready`` wakes it. (Not when
    it does not wait: a system call saved on each of the PDUs an instance is sent in.)"""

    def __init__(self, wake: socket.socket) -> None:
        super().__init__()
        self._wake = wake
        self.waiting = False  # set by ready() before it checks this queue and waits

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        # After the item is in: a reactor that set `waiting` later finds the item when it checks.
        if self.waiting:
            try:
                self._wake.send(b"\0")
            except OSError:  # already awake (the pipe is full), or the association is closed
                pass


class BufferedAssociationSocket(AssociationSocket):
    """An ``AssociationSocket`` read from a buffer, whose ``ready`` waits for the reactor's next event."""

    def __init__(self, assoc: Association, client_socket: socket.socket | None = None,
                 address: AddressInformation | None = None) -> None:
        self._buffer = bytearray()
        self._outgoing: list[bytes] = []
        self._outgoing_size = 0
        self._wake_reader, wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        wake_writer.setblocking(False)
        self._wake_writer = wake_writer
        # Before the base class puts anything on it (the T-CONNECT of a requestor).
        self._outgoing_queue = _WakingQueue(wake_writer)
        assoc.dul.to_provider_queue = self._outgoing_queue
        # The waiting happens in ``ready``, woken by data or by a primitive to send.
        assoc.dul._run_loop_delay = 0
        super().__init__(assoc, client_socket, address)

    @property
    def ready(self) -> bool:
        if self.socket is None or self._is_connected is False:
            return False
        self._send_joined()
        if self._buffer:
            return True
        if isinstance(self.socket, ssl.SSLSocket) and self.socket.pending():
            return True
        outgoing = self._outgoing_queue
        outgoing.waiting = True
        try:
            if not outgoing.empty():  # put before `waiting` was set: send it first, as its put did not wake
                return False
            readable, _, _ = select.select([self.socket, self._wake_reader], [], [], IDLE_WAIT_SECONDS)
        except (OSError, ValueError):
            self.event_queue.put("Evt17")  # the connection is closed, as pynetdicom's ready says
            return False
        finally:
            outgoing.waiting = False
        if self._wake_reader in readable:
            try:
                self._wake_reader.recv(4096)
            except OSError:
                pass
        return self.socket in readable

    def recv(self, nr_bytes: int) -> bytearray:
        """``nr_bytes`` bytes, or fewer if the peer closed the connection first (as pynetdicom's)."""
        buffer = self._buffer
        while len(buffer) < nr_bytes:
            assert self.socket is not None
            received = self.socket.recv(max(READ_SIZE, nr_bytes - len(buffer)))
            if not received:
                break
            buffer += received
        wanted = buffer[:nr_bytes]
        # Deleting from the front of a bytearray moves its start, not its contents.
        del buffer[:nr_bytes]
        return wanted

    def send(self, bytestream: bytes) -> None:
        """Sent at once when nothing more is queued to send (or enough is joined), else joined to what
        follows."""
        self._outgoing.append(bytestream)
        self._outgoing_size += len(bytestream)
        if self._outgoing_size >= WRITE_SIZE or self.assoc.dul.to_provider_queue.empty():
            self._send_joined()

    def _send_joined(self) -> None:
        if self._outgoing:
            joined = self._outgoing[0] if len(self._outgoing) == 1 else b"".join(self._outgoing)
            self._outgoing = []
            self._outgoing_size = 0
            super().send(joined)

    def close(self) -> None:
        if self.socket is not None and self._is_connected:
            self._send_joined()
        self._buffer.clear()
        super().close()
        self._wake_reader.close()
        self._wake_writer.close()


class BufferedAE(AE):
    """An AE whose requested associations use ``BufferedAssociationSocket``."""

    def _create_socket(self, assoc: Association, address: AddressInformation,
                       tls_args: tuple[SSLContext, str] | None) -> AssociationSocket:
        sock = BufferedAssociationSocket(assoc, address=address)
        sock.tls_args = tls_args
        return sock
