"""Optional access control: bearer tokens, each opening some AETs (``server.http.auth``)."""
from __future__ import annotations

import hmac
import os
from collections.abc import Iterable

from flask import Flask, Response, g, request

from dicomrst.config import ConfigError, TokenConfig
from dicomrst.web.context import aet_in_path
from dicomrst.web.errors import error_response

ALL_AETS = "*"


def resolve_tokens(tokens: Iterable[TokenConfig]) -> list[tuple[bytes, frozenset[str]]]:
    """The secret of each token, read from the environment where the config names a variable."""
    resolved = []
    for index, entry in enumerate(tokens):
        secret = entry.token if entry.token is not None else os.environ.get(entry.token_env or "")
        if not secret:
            raise ConfigError(f"server.http.auth.tokens[{index}].token-env",
                              f"environment variable {entry.token_env} is not set")
        resolved.append((secret.encode(), frozenset(entry.aets)))
    return resolved


def _granted(header: str | None, tokens: list[tuple[bytes, frozenset[str]]]) -> frozenset[str] | None:
    if not header or not header.lower().startswith("bearer "):
        return None
    offered = header[7:].strip().encode()
    grants = [aets for secret, aets in tokens if hmac.compare_digest(secret, offered)]
    return frozenset().union(*grants) if grants else None


def allows(aet: str) -> bool:
    """Whether the request's token opens ``aet`` (always, when access control is off)."""
    granted: frozenset[str] | None = g.get("granted_aets")
    return granted is None or ALL_AETS in granted or aet in granted


def install_auth(app: Flask, tokens: list[tuple[bytes, frozenset[str]]]) -> None:
    if not tokens:
        return

    @app.before_request
    def check_token() -> Response | None:
        if request.method == "OPTIONS":
            return None  # CORS preflights carry no credentials
        granted = _granted(request.headers.get("Authorization"), tokens)
        if granted is None:
            response = error_response(401, "a valid bearer token is required")
            response.headers["WWW-Authenticate"] = 'Bearer realm="dicomrst"'
            return response
        g.granted_aets = granted
        aet = aet_in_path()
        if aet is not None and not allows(aet):
            return error_response(403, f"this token does not open AET {aet!r}")
        return None
