"""X-Forwarded-* and RFC 7239 Forwarded honoured only from trusted proxies.

werkzeug's ProxyFix believes the headers from anyone; a client that reaches the gateway directly
could then make it hand out RetrieveURLs pointing elsewhere. So the fix applies per request, by the
address the request came from.

A trusted proxy that sends the standard ``Forwarded`` header instead has its last element (the one it
added) read as the X-Forwarded-* headers would be: ``proto``, ``host`` (with its port) and ``for``. An
X-Forwarded-* header the same proxy sent wins, being the more specific. RFC 7239 has no prefix
parameter; X-Forwarded-Prefix still gives it.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from flask import request
from werkzeug.exceptions import BadRequest
from werkzeug.middleware.proxy_fix import ProxyFix


# Set in the WSGI environ when a trusted proxy sent X-Forwarded-Prefix (which then is SCRIPT_NAME).
FORWARDED_PREFIX = "dicomrst.forwarded_prefix"


class TrustedProxyFix:
    def __init__(self, app: Any, trusted: Iterable[str]) -> None:
        self.app = app
        self.fixed = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)
        self.trusted = [ipaddress.ip_network(network) for network in trusted]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self._is_trusted(environ.get("REMOTE_ADDR")):
            _forwarded_as_x_forwarded(environ)
            # Read as ProxyFix(x_prefix=1) does: the last value, the one the nearest proxy set.
            prefix = environ.get("HTTP_X_FORWARDED_PREFIX", "").split(",")[-1].strip()
            environ[FORWARDED_PREFIX] = bool(prefix)
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)

    def _is_trusted(self, remote: str | None) -> bool:
        if not remote:
            return False
        try:
            address = ipaddress.ip_address(remote)
        except ValueError:
            return False
        return any(address in network for network in self.trusted)


# RFC 7239 4: forwarded-pair = token "=" value, value = token / quoted-string.
_FORWARDED_PAIR = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')
_FORWARDED_TO_X = {"proto": "HTTP_X_FORWARDED_PROTO", "host": "HTTP_X_FORWARDED_HOST", "for": "HTTP_X_FORWARDED_FOR"}


def _forwarded_as_x_forwarded(environ: dict[str, Any]) -> None:
    header = environ.get("HTTP_FORWARDED")
    if not header:
        return
    last = header.split(",")[-1]  # the element the nearest proxy added (quoted commas are not expected here)
    for pair in last.split(";"):
        match = _FORWARDED_PAIR.fullmatch(pair)
        if match is None:
            continue
        name, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        target = _FORWARDED_TO_X.get(name)
        if target is None or not value or environ.get(target):
            continue
        if name == "for":
            value = _node_address(value)
        if name == "proto" and value.lower() not in ("http", "https"):
            continue
        environ[target] = value


def _node_address(node: str) -> str:
    """RFC 7239 6: ``192.0.2.43:4711``, ``"[2001:db8::1]:4711"`` or ``unknown`` -> the address alone."""
    if node.startswith("["):
        return node[1:node.index("]")] if "]" in node else node
    return node.split(":", 1)[0] if node.count(":") == 1 else node


# RFC 3986 3.2.2 and 3.2.3: an IP literal or a reg-name, then an optional port.
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(:[0-9]{1,5})?")


def refuse_invalid_host() -> None:
    """A request whose Host (or a trusted proxy's X-Forwarded-Host) is not a host: 400, rather than
    RetrieveURLs and Content-Locations built on it (``http:///aets/...``)."""
    if _HOST.fullmatch(request.host) is None:
        raise BadRequest("the Host header does not name a host (RFC 9110 7.2)")
