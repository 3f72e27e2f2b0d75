"""WADO-RS (PS3.18 10.4): instances, metadata, frames and bulk data, streamed as instances arrive."""
from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

from flask import Blueprint, Response, request
from werkzeug.exceptions import BadRequest

from dicomrst.backends.base import INSTANCE_URL_PLACEHOLDER, InstanceSelection, InstanceUids, Validators
from dicomrst.backends.base import NotFound as BackendNotFound
from dicomrst.dicomweb.dicom_json import encode_json_texts
from dicomrst.dicomweb.frames import check_frame_numbers, extract_frames, frame_media_type, parse_frame_list
from dicomrst.dicomweb.negotiation import (
    InstanceRepresentation,
    QidoMediaType,
    negotiate_bulkdata,
    negotiate_frames,
    negotiate_instances,
    negotiate_metadata,
)
from dicomrst.dicomweb.metadata import bulkdata_value, instance_metadata_xml
from dicomrst.dicomweb.multipart import Part, multipart_content_type, new_boundary, write_multipart
from dicomrst.dicomweb.part10 import uids_of
from dicomrst.dicomweb.transcode import TranscodeError, choose_transfer_syntax, transcode, transfer_syntax_of
from dicomrst.dicomweb.uids import checked_uid
from dicomrst.dicomweb.zip_stream import zip_stream
from dicomrst.web.context import aet_root_url, backend_for
from dicomrst.web.http_caching import caching_headers, not_modified
from dicomrst.web.streaming import gzipped, primed

log = logging.getLogger(__name__)

blueprint = Blueprint("wado", __name__)

T = TypeVar("T")

STUDY = "/<aet>/studies/<study_uid>"
SERIES = STUDY + "/series/<series_uid>"
INSTANCE = SERIES + "/instances/<sop_uid>"


def in_path(selection: InstanceSelection, instances: Iterator[T],
            uids: Callable[[T], InstanceUids] = uids_of) -> Generator[T, None, None]:  # type: ignore[assignment]
    """Only the instances that belong to the study, series and instance the URL names.

    A PACS resolves an IMAGE-level C-MOVE by SOP Instance UID alone, and an object in a bucket holds
    whatever was written there; neither proves the path. Without this check a URL with a made-up
    study UID would answer for a real instance, past any access control keyed on the study.
    Nothing left: 404, as for an instance that does not exist.
    """
    wanted = (selection.study_uid, selection.series_uid, selection.sop_uid)
    matched = 0
    for instance in instances:
        found = uids(instance)
        if all(want is None or want == have for want, have in zip(wanted, found)):
            matched += 1
            yield instance
        else:
            log.warning("dropped instance %s (study %s, series %s): not the study and series of the URL",
                        found[2], found[0], found[1])
    if matched == 0:
        raise BackendNotFound("no instance of this study and series matches")


def _retrieve(aet: str, selection: InstanceSelection, service: str = "retrieve") -> Iterator[bytes]:
    """``service`` is the backend's retrieve, metadata or frames: the same instances, which a backend
    (or a cache) may give more cheaply for the last two."""
    return in_path(selection, getattr(backend_for(aet), service)(selection))


def _instance_url(root: str, part10: bytes) -> str:
    return _url_of(root, uids_of(part10))


def _url_of(root: str, uids: InstanceUids) -> str:
    study_uid, series_uid, sop_uid = uids
    return f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"


def caching_of(aet: str, validators: Validators | None, encoding: str | None = None) -> tuple[dict[str, str], Response | None]:
    """The caching headers of this request's response, and the 304 that answers it if the client
    holds it already. What the body depends on beyond the instances: the route, what the client
    accepts, the URLs it holds, its content coding."""
    variant = f"{request.full_path}|{request.headers.get('Accept', '')}|{aet_root_url(aet)}|{encoding}"
    headers = caching_headers(validators, variant)
    # ``encoding`` None: a response whose coding never depends on Accept-Encoding.
    headers["Vary"] = "Accept" if encoding is None else "Accept, Accept-Encoding"
    return headers, not_modified(validators, headers)


def selection_of(study_uid: str, series_uid: str | None = None, sop_uid: str | None = None) -> InstanceSelection:
    checked_uid(study_uid, "Study Instance UID")
    if series_uid is not None:
        checked_uid(series_uid, "Series Instance UID")
    if sop_uid is not None:
        checked_uid(sop_uid, "SOP Instance UID")
    return InstanceSelection(study_uid, series_uid, sop_uid)


# ---------------------------------------------------------------------------------------- instances


@blueprint.get(STUDY)
def retrieve_study(aet: str, study_uid: str) -> Response:
    return _instances(aet, selection_of(study_uid))


@blueprint.get(SERIES)
def retrieve_series(aet: str, study_uid: str, series_uid: str) -> Response:
    return _instances(aet, selection_of(study_uid, series_uid))


@blueprint.get(INSTANCE)
def retrieve_instance(aet: str, study_uid: str, series_uid: str, sop_uid: str) -> Response:
    return _instances(aet, selection_of(study_uid, series_uid, sop_uid))


class NoAcceptableTransferSyntax(TranscodeError):
    """An instance that cannot be sent in any transfer syntax the client accepts (406 if it is the first)."""


def _in_accepted_syntax(part10: bytes, representation: InstanceRepresentation) -> tuple[bytes, str]:
    stored = transfer_syntax_of(part10)
    target = choose_transfer_syntax(stored, representation.transfer_syntaxes)
    if target is None:
        raise NoAcceptableTransferSyntax(
            f"an instance stored as {stored} cannot be sent in any accepted transfer syntax "
            f"({', '.join(representation.transfer_syntaxes)})"
        )
    return (part10 if target == stored else transcode(part10, target)), target


def _instances(aet: str, selection: InstanceSelection) -> Response:
    backend = backend_for(aet)
    representation = negotiate_instances(request.headers.get("Accept"), single_instance=selection.sop_uid is not None)
    headers, unchanged = caching_of(aet, backend.validators(selection))
    if unchanged is not None:
        return unchanged
    root = aet_root_url(aet)
    # Each instance's header read once, for the check of the path and for its URL.
    with_uids = ((uids_of(part10), part10) for part10 in backend.retrieve(selection))
    checked = in_path(selection, with_uids, lambda pair: pair[0])
    # Rendering the first instance before answering turns "cannot transcode" into a 406.
    rendered = primed((*_in_accepted_syntax(part10, representation), _url_of(root, uids))
                      for uids, part10 in checked)
    if representation.container == "single":
        body, transfer_syntax, url = _only(rendered)
        return Response(body, content_type=f"application/dicom; transfer-syntax={transfer_syntax}",
                        headers={**headers, "Content-Location": url})
    if representation.container == "zip":
        files = ((f"{index:06d}.dcm", body) for index, (body, _, _) in enumerate(rendered, start=1))
        return Response(zip_stream(files), content_type="application/zip",
                        headers={**headers, "Content-Disposition": 'attachment; filename="instances.zip"'})
    boundary = new_boundary()
    # PS3.18 8.7.3.3: each part may say where its instance lives.
    parts = (Part(body, {"Content-Type": f"application/dicom; transfer-syntax={ts}", "Content-Location": url})
             for body, ts, url in rendered)
    return Response(write_multipart(parts, "application/dicom", boundary),
                    content_type=multipart_content_type("application/dicom", boundary), headers=headers)


# ----------------------------------------------------------------------------------------- metadata


@blueprint.get(STUDY + "/metadata")
def study_metadata(aet: str, study_uid: str) -> Response:
    return _metadata(aet, selection_of(study_uid))


@blueprint.get(SERIES + "/metadata")
def series_metadata(aet: str, study_uid: str, series_uid: str) -> Response:
    return _metadata(aet, selection_of(study_uid, series_uid))


@blueprint.get(INSTANCE + "/metadata")
def instance_metadata_resource(aet: str, study_uid: str, series_uid: str, sop_uid: str) -> Response:
    return _metadata(aet, selection_of(study_uid, series_uid, sop_uid))


def _metadata(aet: str, selection: InstanceSelection) -> Response:
    backend = backend_for(aet)
    media_type = negotiate_metadata(request.headers.get("Accept"))
    root = aet_root_url(aet)
    # JSON metadata is large and repetitive: a series of CT compresses about tenfold.
    encoding = "gzip" if media_type is QidoMediaType.JSON and request.accept_encodings["gzip"] > 0 else ""
    headers, unchanged = caching_of(aet, backend.validators(selection), encoding)
    if unchanged is not None:
        return unchanged
    if media_type is QidoMediaType.JSON:
        documents = primed(in_path(selection, backend.metadata_documents(selection), lambda document: document[0]))
        texts = (text.replace(INSTANCE_URL_PLACEHOLDER, _url_of(root, uids)) for uids, text in documents)
        body = encode_json_texts(texts)
        if encoding:
            return Response(gzipped(body), mimetype="application/dicom+json",
                            headers={**headers, "Content-Encoding": "gzip"})
        return Response(body, mimetype="application/dicom+json", headers=headers)
    instances = primed(_retrieve(aet, selection, "metadata"))
    boundary = new_boundary()
    parts = (instance_metadata_xml(part10, _instance_url(root, part10)) for part10 in instances)
    return Response(write_multipart(parts, "application/dicom+xml", boundary),
                    content_type=multipart_content_type("application/dicom+xml", boundary), headers=headers)


# ---------------------------------------------------------------------------------- frames and bulk


def _only(items: Iterator[T]) -> T:
    """The one item an instance-level retrieval yields; the retrieval runs to its end so the
    association is released normally rather than aborted."""
    first: T | None = None
    for item in items:
        if first is None:
            first = item
    if first is None:
        raise BackendNotFound("no instance matches")
    return first


def _single_instance(aet: str, selection: InstanceSelection) -> bytes:
    return _only(_retrieve(aet, selection, "frames"))


@blueprint.get(INSTANCE + "/frames/<frame_list>")
def frames(aet: str, study_uid: str, series_uid: str, sop_uid: str, frame_list: str) -> Response:
    selection = selection_of(study_uid, series_uid, sop_uid)
    numbers = parse_frame_list(frame_list)
    backend = backend_for(aet)
    frame_bytes: list[bytes] | None = None
    stored = backend.stored_frames(selection)
    if stored is not None:
        # Read from the stored file's byte ranges: the instance is neither loaded nor parsed.
        transfer_syntax = stored.transfer_syntax
        representation = negotiate_frames(request.headers.get("Accept"), frame_media_type(transfer_syntax))
        if not representation.decompress:
            check_frame_numbers(numbers, stored.count)
            frame_bytes = stored.read(numbers)
    if frame_bytes is None:
        part10 = _single_instance(aet, selection)
        transfer_syntax = transfer_syntax_of(part10)
        representation = negotiate_frames(request.headers.get("Accept"), frame_media_type(transfer_syntax))
        frame_bytes = extract_frames(part10, numbers, representation.decompress)
    # Known once the instance is at hand: the frames of a cold instance carry validators too.
    headers, unchanged = caching_of(aet, backend.validators(selection))
    if unchanged is not None:
        return unchanged
    part_type = representation.media_type
    if part_type != "application/octet-stream":
        part_type_header = f"{part_type}; transfer-syntax={transfer_syntax}"
    else:
        part_type_header = part_type
    boundary = new_boundary()
    # PS3.18 8.7.3.3: each frame part says which frame it is, by the URL of that one frame.
    instance_url = f"{aet_root_url(aet)}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
    parts = (Part(body, {"Content-Type": part_type_header, "Content-Location": f"{instance_url}/frames/{number}"})
             for number, body in zip(numbers, frame_bytes))
    return Response(write_multipart(parts, part_type, boundary),
                    content_type=multipart_content_type(part_type, boundary), headers=headers)


@blueprint.get(INSTANCE + "/bulkdata/<path:bulk_path>")
def bulkdata(aet: str, study_uid: str, series_uid: str, sop_uid: str, bulk_path: str) -> Response:
    selection = selection_of(study_uid, series_uid, sop_uid)
    negotiate_bulkdata(request.headers.get("Accept"))
    part10 = _single_instance(aet, selection)
    headers, unchanged = caching_of(aet, backend_for(aet).validators(selection))
    if unchanged is not None:
        return unchanged
    try:
        value = bulkdata_value(part10, bulk_path)
    except KeyError:
        raise BackendNotFound(f"the instance has no bulk data at {bulk_path}") from None
    except ValueError as error:
        raise BadRequest(str(error)) from None
    boundary = new_boundary()
    location = (f"{aet_root_url(aet)}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
                f"/bulkdata/{bulk_path}")
    part = Part(value, {"Content-Location": location})
    return Response(write_multipart([part], "application/octet-stream", boundary),
                    content_type=multipart_content_type("application/octet-stream", boundary), headers=headers)

