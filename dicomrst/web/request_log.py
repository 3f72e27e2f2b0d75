"""One log line per request, written when the response has been sent whole (or broken off), with the
bytes actually sent and a request id that is also returned to the client as ``X-Request-Id``.

A WSGI middleware rather than a Flask hook: DICOMweb responses are streamed, and only the end of the
stream knows how many bytes went out and how long it took.
"""
from __future__ import annotations

import logging
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from dicomrst.web.paths import aet_of_path

log = logging.getLogger("dicomrst.requests")

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_ENVIRON = "dicomrst.request_id"
# A client's own id is kept when it is short and plain, so it can be followed across systems.
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

# The least time the first chunk of a response is given to be written.
FIRST_WRITE_SECONDS = 5.0

Observer = Callable[[dict[str, Any], str, int, float], None]


class RequestTimeout(Exception):
    """The request ran past ``server.http.request-timeout``; its response is broken off."""


class RequestLog:
    def __init__(self, app: Any, aets_path: str, observers: Iterable[Observer] = (),
                 timeout_seconds: float | None = None) -> None:
        self.app = app
        self.aets_path = aets_path
        self.observers = list(observers)
        self.timeout_seconds = timeout_seconds

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        offered = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = offered if _CLIENT_ID.match(offered) else uuid.uuid4().hex[:16]
        environ[REQUEST_ID_ENVIRON] = request_id
        started = time.monotonic()
        status: list[str] = ["500"]

        def start(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = status_line.split(" ", 1)[0]
            headers.append((REQUEST_ID_HEADER, request_id))
            return start_response(status_line, headers, exc_info)

        body = self.app(environ, start)
        deadline = None if self.timeout_seconds is None else started + self.timeout_seconds
        return _Counted(body, lambda sent, broken: self._done(environ, request_id, status[0], sent, broken, started),
                        deadline, environ.get("gunicorn.socket"))

    def _aet(self, path: str) -> str:
        return aet_of_path(path, self.aets_path) or "-"

    def _done(self, environ: dict[str, Any], request_id: str, status: str, sent: int, broken: bool,
              started: float) -> None:
        duration = time.monotonic() - started
        path = environ.get("PATH_INFO", "")
        log.info("%s %s %s aet=%s status=%s bytes=%d duration_ms=%.1f%s", request_id, environ.get("REQUEST_METHOD"),
                 path, self._aet(path), status, sent, duration * 1000, " broken-off" if broken else "")
        for observer in self.observers:
            observer(environ, status, sent, duration)


class _Counted:
    """The response body, counting what leaves and reporting when the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int, bool], None], deadline: float | None,
                 client: socket.socket | None = None) -> None:
        self.body = body
        self.done = done
        self.deadline = deadline
        self.client = client
        self.client_timeout = client.gettimeout() if client is not None else None
        self.sent = 0
        self.finished = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            # The first chunk always leaves: a response computed whole (a STOW-RS answer after a long
            # upload) is never cut; streams that run on past the deadline are.
            if self.sent and self.deadline is not None and time.monotonic() > self.deadline:
                # The status line is gone: dropping the connection is how the client learns.
                raise RequestTimeout("the request ran past server.http.request-timeout; response broken off")
            if self.deadline is not None and self.client is not None:
                # The server writes this chunk once it is yielded: a reader too slow to take it before
                # the deadline makes the write time out (gevent bounds the whole sendall), instead of
                # holding the worker's greenlet for as long as it trickles. The first chunk, which may
                # be an answer computed past the deadline, gets a few seconds whatever is left.
                floor = FIRST_WRITE_SECONDS if not self.sent else 0.01
                self.client.settimeout(max(floor, self.deadline - time.monotonic()))
            self.sent += len(chunk)
            yield chunk
        self.finished = True

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            if self.client is not None:
                try:
                    self.client.settimeout(self.client_timeout)
                except OSError:
                    pass  # closed already
            self.done(self.sent, not self.finished)
