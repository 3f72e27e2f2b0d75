"""BufferedAssociationSocket: PDUs handed out from large reads, and a reactor that waits for its next
event instead of sleeping. Real pynetdicom associations over a socket pair, no peer needed."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pynetdicom import AE
from pynetdicom.association import Association

from dicomrst.backends.dimse import pdu_socket
from dicomrst.backends.dimse.pdu_socket import BufferedAssociationSocket


@pytest.fixture
def pair() -> Iterator[tuple[BufferedAssociationSocket, socket.socket]]:
    ours, peer = socket.socketpair()
    association = Association(AE(), "acceptor")
    buffered = BufferedAssociationSocket(association, client_socket=ours)
    yield buffered, peer
    buffered.close()
    peer.close()


def test_pdus_sent_together_are_read_one_at_a_time(pair: tuple[BufferedAssociationSocket, socket.socket]):
    buffered, peer = pair
    pdus = [bytes([4, 0]) + len(body).to_bytes(4, "big") + body
            for body in (b"a" * 10, b"b" * 70_000, b"c" * 3)]
    peer.sendall(b"".join(pdus))
    for pdu in pdus:
        assert buffered.ready
        assert bytes(buffered.recv(6)) == pdu[:6]
        assert bytes(buffered.recv(len(pdu) - 6)) == pdu[6:]


def test_a_value_larger_than_a_read_is_read_whole(pair: tuple[BufferedAssociationSocket, socket.socket]):
    buffered, peer = pair
    body = bytes(range(256)) * (3 * pdu_socket.READ_SIZE // 256)
    sender = threading.Thread(target=peer.sendall, args=(body,))
    sender.start()
    assert bytes(buffered.recv(len(body))) == body
    sender.join()


def test_a_closed_connection_gives_what_came_before(pair: tuple[BufferedAssociationSocket, socket.socket]):
    buffered, peer = pair
    peer.sendall(b"\x04\x00\x00")
    peer.shutdown(socket.SHUT_WR)
    assert bytes(buffered.recv(6)) == b"\x04\x00\x00"


def test_nothing_to_read_is_not_ready(pair: tuple[BufferedAssociationSocket, socket.socket]):
    buffered, _ = pair
    assert not buffered.ready


def test_the_wait_ends_when_data_comes(pair: tuple[BufferedAssociationSocket, socket.socket],
                                       monkeypatch: pytest.MonkeyPatch):
    buffered, peer = pair
    monkeypatch.setattr(pdu_socket, "IDLE_WAIT_SECONDS", 30.0)
    threading.Timer(0.1, peer.sendall, args=(b"\x05",)).start()
    started = time.monotonic()
    assert buffered.ready
    assert time.monotonic() - started < 10


def test_the_wait_ends_when_a_primitive_is_queued_to_send(pair: tuple[BufferedAssociationSocket, socket.socket],
                                                         monkeypatch: pytest.MonkeyPatch):
    """A C-STORE-RSP queued while the reactor waits for the peer is sent at once, not after the wait: the
    PACS sends nothing more until it has that response."""
    buffered, _ = pair
    monkeypatch.setattr(pdu_socket, "IDLE_WAIT_SECONDS", 30.0)
    queue = buffered.assoc.dul.to_provider_queue
    threading.Timer(0.1, queue.put, args=("a primitive",)).start()
    started = time.monotonic()
    assert not buffered.ready
    assert time.monotonic() - started < 10
    assert queue.get_nowait() == "a primitive"
    monkeypatch.setattr(pdu_socket, "IDLE_WAIT_SECONDS", 0.01)
    assert not buffered.ready  # the wake-up was consumed


def test_the_reactor_does_not_sleep_between_passes(pair: tuple[BufferedAssociationSocket, socket.socket]):
    buffered, _ = pair
    assert buffered.assoc.dul._run_loop_delay == 0


def test_a_closed_socket_is_not_ready_and_takes_no_wake_up(pair: tuple[BufferedAssociationSocket, socket.socket]):
    buffered, _ = pair
    buffered.close()
    assert not buffered.ready
    buffered.assoc.dul.to_provider_queue.put("late")  # no error from the closed wake-up pair


def received_now(peer: socket.socket) -> bytes:
    peer.setblocking(False)
    try:
        return peer.recv(1 << 20)
    except BlockingIOError:
        return b""
    finally:
        peer.setblocking(True)


def test_a_pdu_with_nothing_queued_behind_it_is_sent_at_once(pair: tuple[BufferedAssociationSocket, socket.socket]):
    buffered, peer = pair
    buffered.send(b"\x05\x00\x00\x00\x00\x04abcd")
    assert received_now(peer) == b"\x05\x00\x00\x00\x00\x04abcd"


def test_pdus_queued_back_to_back_leave_together_before_the_reactor_waits(
        pair: tuple[BufferedAssociationSocket, socket.socket]):
    buffered, peer = pair
    queue = buffered.assoc.dul.to_provider_queue
    queue.put("the next P-DATA")
    buffered.send(b"first")
    buffered.send(b"second")
    assert received_now(peer) == b""  # more is queued: joined, not sent yet
    queue.get_nowait()
    assert not buffered.ready  # about to wait for the peer: what is joined goes first
    assert received_now(peer) == b"firstsecond"


def test_joined_pdus_leave_once_they_fill_a_write(pair: tuple[BufferedAssociationSocket, socket.socket]):
    buffered, peer = pair
    buffered.assoc.dul.to_provider_queue.put("more")
    pdu = b"x" * (16 * 1024)
    count = pdu_socket.WRITE_SIZE // len(pdu)
    received = bytearray()

    def read() -> None:  # beside the sending: one write is more than a socket pair holds
        while len(received) < count * len(pdu):
            received.extend(peer.recv(1 << 20))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    for _ in range(count):
        buffered.send(pdu)
    reader.join(10)
    assert bytes(received) == pdu * count  # sent with "more" still queued: the write was full


def test_closing_sends_what_is_joined(pair: tuple[BufferedAssociationSocket, socket.socket]):
    buffered, peer = pair
    buffered.assoc.dul.to_provider_queue.put("more")
    buffered.send(b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00")  # an A-ABORT
    buffered.close()
    assert peer.recv(100) == b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def test_a_primitive_queued_while_the_reactor_is_busy_costs_no_wake_up(
        pair: tuple[BufferedAssociationSocket, socket.socket], monkeypatch: pytest.MonkeyPatch):
    buffered, _ = pair
    monkeypatch.setattr(pdu_socket, "IDLE_WAIT_SECONDS", 30.0)
    buffered.assoc.dul.to_provider_queue.put("a primitive")
    with pytest.raises(BlockingIOError):
        buffered._wake_reader.recv(1)
    started = time.monotonic()
    assert not buffered.ready  # ready() returns at once, for the reactor to send it
    assert time.monotonic() - started < 10
