"""What a request handler needs from the app: the backend of an AET, the gateway's external URLs."""
from __future__ import annotations

from urllib.parse import quote

from flask import request

from dicomrst.backends.base import Backend
from dicomrst.backends.base import NotFound as BackendNotFound
from dicomrst.web.paths import aet_of_path
from dicomrst.web.proxy import FORWARDED_PREFIX
from dicomrst.web.state import app_state


def backend_for(aet: str) -> Backend:
    backend = app_state().backends.get(aet)
    if backend is None:
        raise BackendNotFound(f"unknown AET {aet!r}")
    return backend


def aet_root_url(aet: str) -> str:
    """This AET's DICOMweb root as the client sees it: scheme, host and prefix from the request (after a
    trusted proxy's X-Forwarded-* headers were applied), then base-path."""
    # A trusted proxy's X-Forwarded-Prefix is the external path of base-path (the proxy maps its location
    # onto base-path, or strips it when base-path is /), so it replaces base-path instead of preceding it.
    aets_path = "/aets" if request.environ.get(FORWARDED_PREFIX) else app_state().aets_path
    return f"{request.url_root.rstrip('/')}{aets_path}/{quote(aet, safe='')}"


def client_path() -> str:
    """The request's path as the client wrote it. Behind a trusted proxy's prefix, the proxy maps its
    location onto base-path, so the client never saw base-path: it is replaced by the prefix."""
    path = request.path
    if request.environ.get(FORWARDED_PREFIX):
        base_path = app_state().base_path
        if base_path and (path == base_path or path.startswith(base_path + "/")):
            path = path[len(base_path):]
    return request.script_root + path


def aet_in_path() -> str | None:
    """The ``{aet}`` of a request under ``/aets/{aet}``, routed or not."""
    return aet_of_path(request.path, app_state().aets_path)
