"""Backend errors and bad requests turned into PS3.18 statuses with a short JSON body."""
from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from dicomrst.backends.base import (
    BackendBusy,
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    NotFound,
    NotSupported,
)
from dicomrst.dicomweb.accept import NotAcceptable
from dicomrst.dicomweb.frames import FrameError
from dicomrst.dicomweb.query import QueryError
from dicomrst.dicomweb.rendered_params import RenderingError
from dicomrst.dicomweb.transcode import TranscodeError
from dicomrst.dicomweb.uids import InvalidUID
from dicomrst.web.context import aet_in_path, client_path
from dicomrst.web.state import app_state

log = logging.getLogger(__name__)

_STATUS_BY_ERROR: tuple[tuple[type[BackendError], int], ...] = (
    (NotFound, 404),
    (NotSupported, 501),
    (BackendProtocolError, 502),
    (BackendBusy, 503),
    (BackendUnavailable, 503),
    (BackendTimeout, 504),
)


def error_response(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    return response


def status_for(error: BackendError) -> int:
    return next((status for kind, status in _STATUS_BY_ERROR if isinstance(error, kind)), 502)


def _backend_error(error: BackendError) -> Response:
    status = status_for(error)
    log.warning("%s %s -> %d: %s", request.method, request.path, status, error)
    response = error_response(status, str(error))
    if isinstance(error, BackendBusy):
        response.headers["Retry-After"] = "1"
    return response


def _bad_request(error: Exception) -> Response:
    return error_response(400, str(error))


def _not_acceptable(error: Exception) -> Response:
    return error_response(406, str(error))


def _http_error(error: HTTPException) -> Response:
    if error.code == 404:
        return error_response(404, _not_found_message())
    response = error_response(error.code or 500, error.description or error.name)
    for name, value in error.get_headers():
        if name.lower() == "allow":
            response.headers[name] = value
    if error.code == 413:
        # The rest of an oversized body is not read; the connection cannot carry another request.
        response.headers["Connection"] = "close"
    return response


def _not_found_message() -> str:
    aet = aet_in_path()
    if aet is not None and aet not in app_state().backends:
        return f"unknown AET {aet!r}"
    return f"no such resource: {client_path()}"


def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal error; the gateway log has the details")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(BackendError, _backend_error)
    app.register_error_handler(QueryError, _bad_request)
    app.register_error_handler(InvalidUID, _bad_request)
    app.register_error_handler(NotAcceptable, _not_acceptable)
    app.register_error_handler(TranscodeError, _not_acceptable)
    app.register_error_handler(FrameError, _bad_request)
    app.register_error_handler(RenderingError, _bad_request)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
