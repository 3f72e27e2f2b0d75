"""Child processes that never outlive their parent, and ports checked before anything is started.

Kept free of heavy imports: gunicorn's master uses this before any worker exists.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the kernel sends the child ``signum`` when the process
    that started it dies, however it dies (SIGKILL included), so no child is left reparented to init
    holding a port. Linux only (prctl PR_SET_PDEATHSIG); elsewhere it does nothing.

    The signal follows the thread that forked, so call Popen from the thread that lives as long as the
    parent (the main thread, in gunicorn's master and in ``dicomrst up``).
    """
    parent = os.getpid()
    libc = _libc()  # loaded before the fork: nothing but a system call runs between fork and exec

    def set_parent_death_signal() -> None:
        if libc is not None and hasattr(libc, "prctl"):
            libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        # The parent may have died between fork and prctl; then nobody would ever signal us.
        if os.getppid() != parent:
            os._exit(1)

    return set_parent_death_signal


@dataclass(frozen=True)
class Listener:
    """A port something of the gateway will listen on, and what, for the message when it is taken."""

    host: str
    port: int
    what: str


class PortInUse(RuntimeError):
    def __init__(self, listener: Listener) -> None:
        super().__init__(f"port {listener.port} on {listener.host} is already in use; {listener.what} wanted it")
        self.listener = listener


def check_ports_free(listeners: Iterable[Listener]) -> None:
    """Raise PortInUse for the first listener whose port cannot be bound now.

    Bound the way the servers bind (SO_REUSEADDR, as gunicorn and pynetdicom do), so a port left in
    TIME_WAIT does not count as taken.
    """
    for listener in listeners:
        host = "" if listener.host in ("0.0.0.0", "::") else listener.host
        try:
            infos = socket.getaddrinfo(host or None, listener.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror:
            continue  # an address that does not resolve is the server's to report
        family, kind, protocol, _, address = infos[0]
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise PortInUse(listener) from None
