"""gunicorn's own error answers (a request line, header or field it refuses before the app runs: 400,
414, 431) as the JSON document every other error of the gateway is, not gunicorn's HTML page.

Installed by etc/gunicorn.conf.py in the master, so every forked worker has it. Standard library only:
the master imports it.
"""
from __future__ import annotations

import json
import logging
import socket
from typing import Any


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    from gunicorn import util

    body = json.dumps({"error": f"{reason}: {mesg}" if mesg else reason}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1", "replace") + body)


def install(util_module: Any) -> None:
    """Replace ``gunicorn.util.write_error``, which its workers call for what they refuse."""
    util_module.write_error = write_json_error


class SlowClientFilter(logging.Filter):
    """gunicorn's "Socket error processing request." with the traceback of a write that timed out, as
    one line: the gateway bounded the write on purpose (request-timeout) and cut the client off."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], TimeoutError):
            record.msg = "response cut off: the client read too slowly to take it within request-timeout"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
