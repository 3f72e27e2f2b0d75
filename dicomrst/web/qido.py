"""QIDO-RS (PS3.18 10.6): the six search resources, streamed as the PACS answers."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator

from flask import Blueprint, Response, request
from pydicom import Dataset, config
from pydicom.dataelem import DataElement

from dicomrst.backends.base import SearchNotes
from dicomrst.dicomweb.dicom_json import dataset_to_json, encode_json_array
from dicomrst.dicomweb.negotiation import QidoMediaType, negotiate_qido
from dicomrst.dicomweb.multipart import multipart_content_type, new_boundary, write_multipart
from dicomrst.dicomweb.query import QueryLevel, parse_qido_query
from dicomrst.dicomweb.uids import checked_uid, is_valid_uid
from dicomrst.dicomweb.unconverted import text_value
from dicomrst.dicomweb.dicom_xml import dataset_to_xml
from dicomrst.web.context import aet_root_url, backend_for
from dicomrst.web.streaming import primed

log = logging.getLogger(__name__)

blueprint = Blueprint("qido", __name__)

_RETRIEVE_URL = 0x00081190
_QUERY_RETRIEVE_LEVEL = 0x00080052
_STUDY_INSTANCE_UID = 0x0020000D
_SERIES_INSTANCE_UID = 0x0020000E
_SOP_INSTANCE_UID = 0x00080018


@blueprint.get("/<aet>/studies")
def search_studies(aet: str) -> Response:
    return _search(aet, QueryLevel.STUDY)


@blueprint.get("/<aet>/studies/<study_uid>/series")
def search_study_series(aet: str, study_uid: str) -> Response:
    return _search(aet, QueryLevel.SERIES, study_uid=study_uid)


@blueprint.get("/<aet>/series")
def search_series(aet: str) -> Response:
    return _search(aet, QueryLevel.SERIES)


@blueprint.get("/<aet>/studies/<study_uid>/series/<series_uid>/instances")
def search_series_instances(aet: str, study_uid: str, series_uid: str) -> Response:
    return _search(aet, QueryLevel.IMAGE, study_uid=study_uid, series_uid=series_uid)


@blueprint.get("/<aet>/studies/<study_uid>/instances")
def search_study_instances(aet: str, study_uid: str) -> Response:
    return _search(aet, QueryLevel.IMAGE, study_uid=study_uid)


@blueprint.get("/<aet>/instances")
def search_instances(aet: str) -> Response:
    return _search(aet, QueryLevel.IMAGE)


def _search(aet: str, level: QueryLevel, study_uid: str | None = None, series_uid: str | None = None) -> Response:
    backend = backend_for(aet)
    if study_uid is not None:
        checked_uid(study_uid, "Study Instance UID")
    if series_uid is not None:
        checked_uid(series_uid, "Series Instance UID")
    media_type = negotiate_qido(request.headers.get("Accept"))
    query = parse_qido_query(level, request.args.items(multi=True), study_uid=study_uid, series_uid=series_uid)
    # The search's closing (the association's release) runs once the response is out.
    notes = SearchNotes(finishing=[])
    try:
        response = _matches_response(backend.search(query, notes), notes, aet, level, media_type)
    except BaseException:
        notes.run_finishing()
        raise
    response.call_on_close(notes.run_finishing)
    return response


def _matches_response(found: Iterator[Dataset], notes: SearchNotes, aet: str, level: QueryLevel,
                      media_type: QidoMediaType) -> Response:
    matches = primed(found)
    root = aet_root_url(aet)
    with_urls = (_with_retrieve_url(match, root, level) for match in matches)
    # The first match (or the end) is in hand, so the notes of the negotiation are complete.
    headers = [("Warning", warning_header(text)) for text in notes.warnings]
    if media_type is QidoMediaType.JSON:
        body = encode_json_array((dataset_to_json(match) for match in with_urls), next_ready=notes.next_ready)
        return Response(body, mimetype="application/dicom+json", headers=headers)
    boundary = new_boundary()
    parts = (dataset_to_xml(match) for match in with_urls)
    return Response(
        write_multipart(parts, "application/dicom+xml", boundary),
        content_type=multipart_content_type("application/dicom+xml", boundary),
        headers=headers,
    )


def warning_header(text: str) -> str:
    """``299 {host}: "{text}"`` as PS3.18 8.3.4.1 writes it, the host being this gateway as the client
    named it (RFC 7234 5.5's warn-agent). Quotes and backslashes in the text are escaped."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 {request.host}: "{escaped}"'


def _with_retrieve_url(match: Dataset, root: str, level: QueryLevel) -> Dataset:
    """RetrieveURL (0008,1190): where this gateway serves the match over WADO-RS. The C-FIND echo of
    QueryRetrieveLevel is dropped: it describes the DIMSE query, not the match."""
    match.pop(_QUERY_RETRIEVE_LEVEL, None)
    path = _retrieve_path(match, level)
    if path is not None:
        # Built from UIDs just checked: pydicom's check of the URL's characters (a regex per match) is skipped.
        match.add(DataElement(_RETRIEVE_URL, "UR", root + path, validation_mode=config.IGNORE))
    return match


def _retrieve_path(match: Dataset, level: QueryLevel) -> str | None:
    uids = [text_value(match, _STUDY_INSTANCE_UID)]
    if level in (QueryLevel.SERIES, QueryLevel.IMAGE):
        uids.append(text_value(match, _SERIES_INSTANCE_UID))
    if level is QueryLevel.IMAGE:
        uids.append(text_value(match, _SOP_INSTANCE_UID))
    if not all(is_valid_uid(uid) for uid in uids):
        return None
    segments: Iterable[str] = ("studies", "series", "instances")
    return "".join(f"/{segment}/{uid}" for segment, uid in zip(segments, uids))
