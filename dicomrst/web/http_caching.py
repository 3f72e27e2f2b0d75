"""HTTP caching of WADO-RS responses (RFC 9110 8.8 and 13, RFC 9111) for browsers and proxies.

Every WADO-RS response is ``Cache-Control: private``: it holds patient data, which a shared cache (nginx)
must not keep for others. Where the backend knows, before serving, what the response will be made of
(``Backend.validators``: the retrieve cache), the response also carries a weak ``ETag`` (multipart
boundaries differ from one response to the next, so bodies are equivalent, not identical), a
``Last-Modified`` (when the instances were retrieved), ``Age`` (since the PACS last confirmed them) and
``max-age`` (how long the gateway serves them without asking the PACS), and a matching
``If-None-Match`` or ``If-Modified-Since`` is answered 304 without a body.
"""
from __future__ import annotations

import hashlib

from flask import Response, request
from werkzeug.http import http_date

from dicomrst.backends.base import Validators

PRIVATE = "private"


def caching_headers(validators: Validators | None, variant: str) -> dict[str, str]:
    """The caching headers of a response; ``variant`` names what, beyond the instances, makes its
    body (the route, the negotiated representation, the URLs it holds, its encoding)."""
    if validators is None:
        return {"Cache-Control": PRIVATE}
    digest = hashlib.sha256(f"{validators.identity}|{variant}".encode()).hexdigest()[:32]
    return {
        "Cache-Control": f"{PRIVATE}, max-age={int(validators.max_age)}",
        "ETag": f'W/"{digest}"',
        "Last-Modified": http_date(int(validators.last_modified)),
        "Age": str(int(validators.age)),
    }


def not_modified(validators: Validators | None, headers: dict[str, str]) -> Response | None:
    """304 when the client already holds what would be sent, else None.

    If-None-Match decides when present (RFC 9110 13.2.2: If-Modified-Since is then ignored); a GET
    compares entity tags weakly (13.1.2).
    """
    if validators is None:
        return None
    if request.if_none_match:
        etag = headers["ETag"]
        if not request.if_none_match.contains_weak(etag.removeprefix("W/").strip('"')):
            return None
    elif request.if_modified_since is not None:
        if int(validators.last_modified) > request.if_modified_since.timestamp():
            return None
    else:
        return None
    return Response(status=304, headers=headers)
