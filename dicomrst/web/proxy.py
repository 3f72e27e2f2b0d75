"""X-Forwarded-* honoured only from trusted proxies.

werkzeug's ProxyFix believes the headers from anyone; a client that reaches the gateway directly
could then make it hand out RetrieveURLs pointing elsewhere. So the fix applies per request, by the
address the request came from.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

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
