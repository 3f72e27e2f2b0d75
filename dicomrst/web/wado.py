"""WADO-RS (PS3.18 10.4): instances, metadata, frames and bulk data, streamed as instances arrive."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TypeVar

from flask import Blueprint, Response, request
from werkzeug.exceptions import BadRequest

from dicomrst.backends.base import InstanceSelection
from dicomrst.backends.base import NotFound as BackendNotFound
from dicomrst.dicomweb.dicom_json import encode_json_array
from dicomrst.dicomweb.frames import extract_frames, frame_media_type, parse_frame_list
from dicomrst.dicomweb.negotiation import (
    InstanceRepresentation,
    QidoMediaType,
    negotiate_bulkdata,
    negotiate_frames,
    negotiate_instances,
    negotiate_metadata,
)
from dicomrst.dicomweb.metadata import bulkdata_value, instance_metadata, instance_metadata_xml
from dicomrst.dicomweb.multipart import Part, multipart_content_type, new_boundary, write_multipart
from dicomrst.dicomweb.part10 import uids_of
from dicomrst.dicomweb.transcode import TranscodeError, choose_transfer_syntax, transcode, transfer_syntax_of
from dicomrst.dicomweb.uids import checked_uid
from dicomrst.dicomweb.zip_stream import zip_stream
from dicomrst.web.context import aet_root_url, backend_for
from dicomrst.web.streaming import primed

log = logging.getLogger(__name__)

blueprint = Blueprint("wado", __name__)

T = TypeVar("T")

STUDY = "/<aet>/studies/<study_uid>"
SERIES = STUDY + "/series/<series_uid>"
INSTANCE = SERIES + "/instances/<sop_uid>"


def _in_path(selection: InstanceSelection, instances: Iterator[bytes]) -> Iterator[bytes]:
    """Only the instances that belong to the study, series and instance the URL names.

    A PACS resolves an IMAGE-level C-MOVE by SOP Instance UID alone, and an object in a bucket holds
    whatever was written there; neither proves the path. Without this check a URL with a made-up
    study UID would answer for a real instance, past any access control keyed on the study.
    Nothing left: 404, as for an instance that does not exist.
    """
    wanted = (selection.study_uid, selection.series_uid, selection.sop_uid)
    matched = 0
    for part10 in instances:
        found = uids_of(part10)
        if all(want is None or want == have for want, have in zip(wanted, found)):
            matched += 1
            yield part10
        else:
            log.warning("dropped instance %s (study %s, series %s): not the study and series of the URL",
                        found[2], found[0], found[1])
    if matched == 0:
        raise BackendNotFound("no instance of this study and series matches")


def _retrieve(aet: str, selection: InstanceSelection, service: str = "retrieve") -> Iterator[bytes]:
    """``service`` is the backend's retrieve, metadata or frames: the same instances, which a backend
    (or a cache) may give more cheaply for the last two."""
    return _in_path(selection, getattr(backend_for(aet), service)(selection))


def _instance_url(root: str, part10: bytes) -> str:
    study_uid, series_uid, sop_uid = uids_of(part10)
    return f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"


def _selection(study_uid: str, series_uid: str | None = None, sop_uid: str | None = None) -> InstanceSelection:
    checked_uid(study_uid, "Study Instance UID")
    if series_uid is not None:
        checked_uid(series_uid, "Series Instance UID")
    if sop_uid is not None:
        checked_uid(sop_uid, "SOP Instance UID")
    return InstanceSelection(study_uid, series_uid, sop_uid)


# ---------------------------------------------------------------------------------------- instances


@blueprint.get(STUDY)
def retrieve_study(aet: str, study_uid: str) -> Response:
    return _instances(aet, _selection(study_uid))


@blueprint.get(SERIES)
def retrieve_series(aet: str, study_uid: str, series_uid: str) -> Response:
    return _instances(aet, _selection(study_uid, series_uid))


@blueprint.get(INSTANCE)
def retrieve_instance(aet: str, study_uid: str, series_uid: str, sop_uid: str) -> Response:
    return _instances(aet, _selection(study_uid, series_uid, sop_uid))


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
    backend_for(aet)
    representation = negotiate_instances(request.headers.get("Accept"), single_instance=selection.sop_uid is not None)
    root = aet_root_url(aet)
    # Rendering the first instance before answering turns "cannot transcode" into a 406.
    rendered = primed((*_in_accepted_syntax(part10, representation), _instance_url(root, part10))
                      for part10 in _retrieve(aet, selection))
    if representation.container == "single":
        body, transfer_syntax, url = _only(rendered)
        return Response(body, content_type=f"application/dicom; transfer-syntax={transfer_syntax}",
                        headers={"Content-Location": url})
    if representation.container == "zip":
        files = ((f"{index:06d}.dcm", body) for index, (body, _, _) in enumerate(rendered, start=1))
        return Response(zip_stream(files), content_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="instances.zip"'})
    boundary = new_boundary()
    # PS3.18 8.7.3.3: each part may say where its instance lives.
    parts = (Part(body, {"Content-Type": f"application/dicom; transfer-syntax={ts}", "Content-Location": url})
             for body, ts, url in rendered)
    return Response(write_multipart(parts, "application/dicom", boundary),
                    content_type=multipart_content_type("application/dicom", boundary))


# ----------------------------------------------------------------------------------------- metadata


@blueprint.get(STUDY + "/metadata")
def study_metadata(aet: str, study_uid: str) -> Response:
    return _metadata(aet, _selection(study_uid))


@blueprint.get(SERIES + "/metadata")
def series_metadata(aet: str, study_uid: str, series_uid: str) -> Response:
    return _metadata(aet, _selection(study_uid, series_uid))


@blueprint.get(INSTANCE + "/metadata")
def instance_metadata_resource(aet: str, study_uid: str, series_uid: str, sop_uid: str) -> Response:
    return _metadata(aet, _selection(study_uid, series_uid, sop_uid))


def _metadata(aet: str, selection: InstanceSelection) -> Response:
    backend_for(aet)
    media_type = negotiate_metadata(request.headers.get("Accept"))
    root = aet_root_url(aet)
    instances = primed(_retrieve(aet, selection, "metadata"))
    if media_type is QidoMediaType.JSON:
        documents = (instance_metadata(part10, _instance_url(root, part10)) for part10 in instances)
        return Response(encode_json_array(documents), mimetype="application/dicom+json")
    boundary = new_boundary()
    parts = (instance_metadata_xml(part10, _instance_url(root, part10)) for part10 in instances)
    return Response(write_multipart(parts, "application/dicom+xml", boundary),
                    content_type=multipart_content_type("application/dicom+xml", boundary))


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
    selection = _selection(study_uid, series_uid, sop_uid)
    numbers = parse_frame_list(frame_list)
    part10 = _single_instance(aet, selection)
    transfer_syntax = transfer_syntax_of(part10)
    representation = negotiate_frames(request.headers.get("Accept"), frame_media_type(transfer_syntax))
    frame_bytes = extract_frames(part10, numbers, representation.decompress)
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
    return Response(write_multipart(parts, part_type, boundary), content_type=multipart_content_type(part_type, boundary))


@blueprint.get(INSTANCE + "/bulkdata/<path:bulk_path>")
def bulkdata(aet: str, study_uid: str, series_uid: str, sop_uid: str, bulk_path: str) -> Response:
    selection = _selection(study_uid, series_uid, sop_uid)
    negotiate_bulkdata(request.headers.get("Accept"))
    part10 = _single_instance(aet, selection)
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
                    content_type=multipart_content_type("application/octet-stream", boundary))

