"""STOW-RS (PS3.18 10.5): parts read as a stream, each instance stored as it is read, every part
either stored or reported failed."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from flask import Blueprint, Response, request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from dicomrst.messages import shown
from dicomrst.backends.base import StoreSession
from dicomrst.dicomweb.dicom_json import dataset_to_json
from dicomrst.dicomweb.accept import parse_content_type
from dicomrst.dicomweb.negotiation import StowResponseType, negotiate_stow_response
from dicomrst.dicomweb.multipart_reader import MAX_BOUNDARY_LENGTH, MultipartError
from dicomrst.dicomweb.stow import DICOM_MEDIA_TYPE, FAILURE_CANNOT_UNDERSTAND, SpooledPart, StoreReport, spool_parts
from dicomrst.dicomweb.uids import checked_uid
from dicomrst.dicomweb.dicom_xml import dataset_to_xml
from dicomrst.web.context import aet_root_url, backend_for
from dicomrst.web.errors import error_response
from dicomrst.web.state import app_state
from dicomrst.web.stow_sessions import PartStores
from dicomrst.web.streaming import read_ahead

log = logging.getLogger(__name__)

blueprint = Blueprint("stow", __name__)

_DICOM = DICOM_MEDIA_TYPE
# Parts read and spooled ahead of the one being stored: enough to keep the PACS busy, few enough that
# temporary files stay a handful of instances.
READ_AHEAD_PARTS = 2
# How long no part may be ready before the association is given back to the pool (a normal upload
# always has the next part read ahead).
IDLE_SECONDS = 0.2
# The body is read in blocks of this size: a WSGI server's read (gunicorn's) returns only once the
# whole block is in, so a part a slow client has finished sending waits for at most this much more.
READ_SIZE = 64 * 1024


@blueprint.post("/<aet>/studies")
def store_instances(aet: str) -> Response:
    return _store(aet, None)


@blueprint.post("/<aet>/studies/<study_uid>")
def store_study_instances(aet: str, study_uid: str) -> Response:
    return _store(aet, checked_uid(study_uid, "Study Instance UID"))


def _boundary() -> str:
    """The boundary of a multipart/related body of application/dicom parts; 415 or 400 otherwise.

    Parsed liberally (accept.parse_content_type): `type=application/dicom` unquoted is the same as quoted,
    parameter names in any case, white space around `;`, `=` and inside the quotes.
    """
    header = request.headers.get("Content-Type", "")
    content_type = parse_content_type(header)
    if content_type is None or content_type.essence != "multipart/related":
        if content_type is not None:
            given = content_type.essence
        else:
            given = "a malformed Content-Type" if header.strip() else "a body without Content-Type"
        raise UnsupportedMediaType(f"STOW-RS takes multipart/related; type=\"{_DICOM}\", not {given}")
    part_type = content_type.params.get("type", _DICOM).strip().lower()
    if part_type != _DICOM:
        raise UnsupportedMediaType(f"only {_DICOM} parts are accepted, not {shown(part_type)}")
    boundary = content_type.params.get("boundary")
    if not boundary:
        raise BadRequest("the multipart/related Content-Type has no boundary")
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise BadRequest(f"the multipart boundary is {len(boundary)} characters long; at most "
                         f"{MAX_BOUNDARY_LENGTH} are accepted")
    return boundary


def _store(aet: str, study_uid: str | None) -> Response:
    backend = backend_for(aet)
    boundary = _boundary()
    response_type = negotiate_stow_response(request.headers.get("Accept"))
    limit = app_state().config.server.http.max_upload_size
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(f"the body of {request.content_length} bytes exceeds the limit of {limit} bytes")
    report = StoreReport()
    root = aet_root_url(aet)
    body = _Body(request.stream.read, limit)
    silence = app_state().config.server.http.request_timeout / 1000

    def check_stalled() -> None:
        if body.silent_for() > silence:
            raise BodyStalled(f"the client sent nothing for {silence:g} s (server.http.request-timeout)")

    # The next parts are read from the network while the PACS stores the current one; while the
    # client is slow to send the next, the waiting association goes back to the pool (pause).
    stores = PartStores(_outcome_of, backend.store_session, backend.spare_store_session)
    spooled = read_ahead(spool_parts(body.read, boundary, study_uid, READ_SIZE), READ_AHEAD_PARTS, SpooledPart.discard,
                         on_idle=stores.pause, idle_seconds=IDLE_SECONDS, check_stalled=check_stalled)
    # What reading the body raised waits in read_error until every part read before is stored.
    # The PACS is reached when the first part is in: one that is down answers 503 before more is read.
    for reported in stores.run(spooled):
        reported(report, root)
    parts = len(stores.outcomes)
    try:
        if stores.read_error is not None:
            raise stores.read_error
    except MultipartError as error:
        if parts == 0:
            raise BadRequest(f"the body cannot be parsed as multipart/related: {error}") from None
        # The part being read is incomplete: it is reported, and nothing after it can be read.
        log.warning("STOW-RS body broken after %d parts: %s", parts, error)
        report.add_failed("", "", FAILURE_CANNOT_UNDERSTAND)
    except RequestEntityTooLarge:
        log.warning("STOW-RS body exceeded %d bytes after %d parts", limit, parts)
        return _answer(report, response_type, status=413)
    except BodyStalled as error:
        log.warning("STOW-RS body stalled after %d parts: %s", parts, error)
        if parts == 0:
            return error_response(408, str(error))
        report.add_failed("", "", FAILURE_CANNOT_UNDERSTAND)
        return _answer(report, response_type, status=408)
    except UnreadableBody as error:
        # Malformed transfer coding (a chunk size that is not hex) or a body cut off: the request is
        # bad, and the client still learns which instances were stored before it broke.
        log.warning("STOW-RS body unreadable after %d parts: %s", parts, error)
        if parts == 0:
            raise BadRequest(f"the request body cannot be read: {error}") from None
        report.add_failed("", "", FAILURE_CANNOT_UNDERSTAND)
        return _answer(report, response_type, status=400)
    if parts == 0:
        raise BadRequest("the multipart/related body holds no parts")
    return _answer(report, response_type, status=report.status)


class UnreadableBody(Exception):
    """The request body broke off or its transfer coding is malformed (what the WSGI server raised)."""


class BodyStalled(Exception):
    """The client sent nothing for server.http.request-timeout while the request waited for its body."""


class _Body:
    """The request body as the multipart reader reads it: 413 once more than ``limit`` bytes came in
    (a chunked body declares no length), UnreadableBody for whatever the server's reader raises
    (gunicorn's InvalidChunkSize, a reset), and when bytes last came."""

    def __init__(self, read: Callable[[int], bytes], limit: int) -> None:
        self._read = read
        self.limit = limit
        self.received = 0
        self._broken: Exception | None = None
        self._last_data = time.monotonic()

    def silent_for(self) -> float:
        return time.monotonic() - self._last_data

    def read(self, size: int) -> bytes:
        if self._broken is None:
            try:
                data = self._read(size)
            except Exception as error:
                self._broken = error
                data = _buffered(self._read, size)
        else:
            data = _buffered(self._read, size)
        if self._broken is not None and not data:
            raise UnreadableBody(str(self._broken) or type(self._broken).__name__) from self._broken
        if data:
            self._last_data = time.monotonic()
        self.received += len(data)
        if self.received > self.limit:
            raise RequestEntityTooLarge(f"the body exceeds the limit of {self.limit} bytes")
        return data


def _buffered(read: Callable[[int], bytes], size: int) -> bytes:
    """What the server's reader had decoded before the fault (gunicorn keeps it and hands it out on the
    next read): the parts it completes are stored and reported, then the fault is."""
    try:
        return read(size)
    except Exception:
        return b""


def _outcome_of(part: SpooledPart, session: StoreSession) -> Callable[[StoreReport, str], None]:
    """Store the part's instance; what to report of it, once the parts before it are reported."""
    if part.instance is None:
        failure = part.failure
        assert failure is not None
        log.warning("STOW-RS part refused: %s", failure)
        return lambda report, root: report.add_failed(failure.sop_class_uid, failure.sop_instance_uid,
                                                      FAILURE_CANNOT_UNDERSTAND)
    instance = part.instance
    outcome = session.store(instance)
    if not outcome.stored:
        return lambda report, root: report.add_failed(instance.sop_class_uid, instance.sop_instance_uid,
                                                      outcome.reason or FAILURE_CANNOT_UNDERSTAND)

    def stored(report: StoreReport, root: str) -> None:
        study_url = f"{root}/studies/{instance.study_uid}"
        instance_url = f"{study_url}/series/{instance.series_uid}/instances/{instance.sop_instance_uid}"
        report.add_stored(instance, instance_url, study_url, outcome.reason)

    return stored


def _answer(report: StoreReport, response_type: StowResponseType, status: int) -> Response:
    module = report.response_module()
    if response_type is StowResponseType.XML:
        return Response(dataset_to_xml(module), status=status, content_type="application/dicom+xml")
    return Response(json.dumps(dataset_to_json(module), ensure_ascii=False), status=status,
                    content_type="application/dicom+json")
