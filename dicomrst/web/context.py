"""What a request handler needs from the app: the backend of an AET, the gateway's external URLs."""
from __future__ import annotations

from urllib.parse import quote

from flask import current_app, request

from dicomrst.backends.base import Backend
from dicomrst.backends.base import NotFound as BackendNotFound


def backend_for(aet: str) -> Backend:
    backends: dict[str, Backend] = current_app.extensions["dicomrst.backends"]
    backend = backends.get(aet)
    if backend is None:
        raise BackendNotFound(f"unknown AET {aet!r}")
    return backend


def aet_root_url(aet: str) -> str:
    """This AET's DICOMweb root as the client sees it: scheme, host and prefix from the request (after a
    trusted proxy's X-Forwarded-* headers were applied), then base-path."""
    return f"{request.url_root.rstrip('/')}{current_app.config['DICOMRST_AETS_PATH']}/{quote(aet, safe='')}"
