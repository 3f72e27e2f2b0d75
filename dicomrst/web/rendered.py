"""Rendered resources and thumbnails (PS3.18 8.3.5, 10.4.1.1.3, 10.4.1.1.4): what a person can look at.

An instance, or frames of it, is rendered from the instance the backend retrieves (through the retrieve
cache for a DIMSE AET) with ``dicomweb.rendering``. A rendered series or study is a multipart/related of
one image per instance. A thumbnail of a study or series is one representative instance's: the middle
instance (by Instance Number) of the first series (by Series Number), found with C-FIND and retrieved
alone, never the whole study. Rendered bytes are kept by the backend where it can (the cache), keyed by
the instance and everything that shapes them.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator

from flask import Blueprint, Response, request

from dicomrst.backends.base import Backend, InstanceSelection, NotFound, SearchNotes
from dicomrst.dicomweb.frames import parse_frame_list
from dicomrst.dicomweb.multipart import Part, multipart_content_type, new_boundary, write_multipart
from dicomrst.dicomweb.part10 import read_instance
from dicomrst.dicomweb.query import MatchingKey, QidoQuery, QueryLevel
from dicomrst.dicomweb.rendered_params import (
    RenderParameters,
    negotiate_rendered,
    parse_rendered_parameters,
    thumbnail_parameters,
)
from dicomrst.dicomweb.rendering import render, render_frames, render_instance
from dicomrst.web.context import backend_for
from dicomrst.web.wado import INSTANCE, SERIES, STUDY, caching_of, in_path, selection_of

blueprint = Blueprint("rendered", __name__)

_STUDY_UID, _SERIES_UID, _SOP_UID = 0x0020000D, 0x0020000E, 0x00080018
_SERIES_NUMBER, _INSTANCE_NUMBER = 0x00200011, 0x00200013


# ------------------------------------------------------------------------------------------ rendered


@blueprint.get(STUDY + "/rendered")
def rendered_study(aet: str, study_uid: str) -> Response:
    return _rendered_instances(aet, selection_of(study_uid))


@blueprint.get(SERIES + "/rendered")
def rendered_series(aet: str, study_uid: str, series_uid: str) -> Response:
    return _rendered_instances(aet, selection_of(study_uid, series_uid))


@blueprint.get(INSTANCE + "/rendered")
def rendered_instance(aet: str, study_uid: str, series_uid: str, sop_uid: str) -> Response:
    return _rendered_one(aet, selection_of(study_uid, series_uid, sop_uid), None, thumbnail=False)


@blueprint.get(INSTANCE + "/frames/<frame_list>/rendered")
def rendered_frames(aet: str, study_uid: str, series_uid: str, sop_uid: str, frame_list: str) -> Response:
    return _rendered_one(aet, selection_of(study_uid, series_uid, sop_uid), parse_frame_list(frame_list), thumbnail=False)


# ----------------------------------------------------------------------------------------- thumbnail


@blueprint.get(STUDY + "/thumbnail")
def study_thumbnail(aet: str, study_uid: str) -> Response:
    return _rendered_one(aet, _representative(aet, selection_of(study_uid)), None, thumbnail=True)


@blueprint.get(SERIES + "/thumbnail")
def series_thumbnail(aet: str, study_uid: str, series_uid: str) -> Response:
    return _rendered_one(aet, _representative(aet, selection_of(study_uid, series_uid)), None, thumbnail=True)


@blueprint.get(INSTANCE + "/thumbnail")
def instance_thumbnail(aet: str, study_uid: str, series_uid: str, sop_uid: str) -> Response:
    return _rendered_one(aet, selection_of(study_uid, series_uid, sop_uid), None, thumbnail=True)


@blueprint.get(INSTANCE + "/frames/<frame_list>/thumbnail")
def frame_thumbnail(aet: str, study_uid: str, series_uid: str, sop_uid: str, frame_list: str) -> Response:
    numbers = parse_frame_list(frame_list)
    # A thumbnail is one image (PS3.18 10.4.1.1.4): the first frame named.
    return _rendered_one(aet, selection_of(study_uid, series_uid, sop_uid), numbers[:1], thumbnail=True)


# ------------------------------------------------------------------------------------------ the work


def _media_type() -> str:
    """The ``accept`` query parameter when given, which a client sets where it cannot set the header (or
    sets the header for another purpose, as OHIF does for thumbnails), else the Accept header."""
    return negotiate_rendered(request.args.get("accept") or request.headers.get("Accept"))


def _parameters(thumbnail: bool) -> RenderParameters:
    parameters = parse_rendered_parameters(request.args.items(multi=True))
    return thumbnail_parameters(parameters) if thumbnail else parameters


def _rendered_one(aet: str, selection: InstanceSelection, frame_numbers: list[int] | None,
                  thumbnail: bool) -> Response:
    backend_for(aet)
    parameters = _parameters(thumbnail)
    media_type = _media_type()
    return render_selection(aet, selection, frame_numbers, parameters, media_type)


def render_selection(aet: str, selection: InstanceSelection, frame_numbers: list[int] | None,
                     parameters: RenderParameters, media_type: str) -> Response:
    """One instance (or frames of it) rendered as ``media_type``: the response."""
    backend = backend_for(aet)
    headers, unchanged = caching_of(aet, backend.validators(selection))
    if unchanged is not None:
        return unchanged
    variant = repr((parameters, media_type, frame_numbers))
    # Kept under the UIDs of the path: a rendering is only ever kept once the retrieved instance proved
    # them (single_instance checks the path), so a made-up path finds nothing kept.
    assert selection.series_uid is not None and selection.sop_uid is not None
    uids = (selection.study_uid, selection.series_uid, selection.sop_uid)
    image = backend.kept_rendering(uids, hashlib.sha256(variant.encode()).hexdigest(),
                                   lambda: _render(single_instance(backend, selection), parameters, media_type,
                                                   frame_numbers))
    if frame_numbers is not None and len(frame_numbers) > 1 and media_type != "image/gif":
        # Several frames of a still-image type: one image per frame (PS3.18 8.3.5.1).
        return _multipart_images(_split(image), media_type, headers)
    return Response(image, content_type=media_type, headers=headers)


def _render(part10: bytes, parameters: RenderParameters, media_type: str, frame_numbers: list[int] | None) -> bytes:
    ds = read_instance(part10)
    if frame_numbers is None:
        return render_instance(ds, parameters, media_type)
    indexes = [number - 1 for number in frame_numbers]
    if media_type == "image/gif":
        return render_frames(ds, indexes, parameters, media_type)
    if len(indexes) == 1:
        return render(ds, indexes[0], parameters, media_type)
    return _joined([render(ds, index, parameters, media_type) for index in indexes])


# Several still images kept as one value: each prefixed by its length.
def _joined(images: list[bytes]) -> bytes:
    return b"".join(len(image).to_bytes(8, "big") + image for image in images)


def _split(value: bytes) -> list[bytes]:
    images, offset = [], 0
    while offset < len(value):
        length = int.from_bytes(value[offset:offset + 8], "big")
        images.append(value[offset + 8:offset + 8 + length])
        offset += 8 + length
    return images


def _multipart_images(images: Iterator[bytes] | list[bytes], media_type: str, headers: dict[str, str]) -> Response:
    boundary = new_boundary()
    parts = (Part(image, {"Content-Type": media_type}) for image in images)
    return Response(write_multipart(parts, media_type, boundary),
                    content_type=multipart_content_type(media_type, boundary), headers=headers)


def _rendered_instances(aet: str, selection: InstanceSelection) -> Response:
    """A rendered series or study: each instance rendered (its first frame, or all as a GIF), in order."""
    backend = backend_for(aet)
    parameters = _parameters(thumbnail=False)
    media_type = _media_type()
    headers, unchanged = caching_of(aet, backend.validators(selection))
    if unchanged is not None:
        return unchanged
    instances = in_path(selection, backend.retrieve(selection))
    first = next(instances, None)
    if first is None:
        raise NotFound("no instance matches")

    def images() -> Iterator[bytes]:
        for part10 in (first, *instances):
            yield render_instance(read_instance(part10), parameters, media_type)

    return _multipart_images(images(), media_type, headers)


def single_instance(backend: Backend, selection: InstanceSelection) -> bytes:
    """The one instance ``selection`` names, retrieved alone (not its series), its path checked."""
    found: bytes | None = None
    for part10 in in_path(selection, backend.retrieve_alone(selection)):
        if found is None:
            found = part10
    if found is None:
        raise NotFound("no instance matches")
    return found


def _representative(aet: str, selection: InstanceSelection) -> InstanceSelection:
    """The instance a study's or series' thumbnail shows: the middle one of its first series (the two
    C-FINDs that find it are remembered by the retrieve cache, for a warm thumbnail asks no DIMSE)."""
    backend = backend_for(aet)
    name = f"representative {selection.study_uid} {selection.series_uid or ''}"
    uids = backend.remembered(name, lambda: "\\".join(_find_representative(backend, selection)))
    study_uid, series_uid, sop_uid = uids.split("\\")
    return InstanceSelection(study_uid, series_uid, sop_uid)


def _find_representative(backend: Backend, selection: InstanceSelection) -> tuple[str, str, str]:
    series_uid = selection.series_uid or _first_series(backend, selection.study_uid)
    sop_uids = _instances_in_order(backend, selection.study_uid, series_uid)
    if not sop_uids:
        raise NotFound("no instance matches")
    return selection.study_uid, series_uid, sop_uids[len(sop_uids) // 2]


def _search(backend: Backend, level: QueryLevel, matching: dict[int, str], return_keys: list[int]) -> list[dict[int, str]]:
    query = QidoQuery(level=level, matching=tuple(MatchingKey((tag,), value) for tag, value in matching.items()),
                      return_keys=tuple((tag,) for tag in return_keys), include_all=False, limit=None, offset=0,
                      fuzzy_matching=False)
    return [{tag: str(match[tag].value) if tag in match and match[tag].value is not None else "" for tag in return_keys}
            for match in backend.search(query, SearchNotes())]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("inf")  # unnumbered last


def _first_series(backend: Backend, study_uid: str) -> str:
    rows = _search(backend, QueryLevel.SERIES, {_STUDY_UID: study_uid}, [_SERIES_UID, _SERIES_NUMBER])
    if not rows:
        raise NotFound("no series in this study")
    return min(rows, key=lambda row: (_number(row[_SERIES_NUMBER]), row[_SERIES_UID]))[_SERIES_UID]


def _instances_in_order(backend: Backend, study_uid: str, series_uid: str) -> list[str]:
    rows = _search(backend, QueryLevel.IMAGE, {_STUDY_UID: study_uid, _SERIES_UID: series_uid},
                   [_SOP_UID, _INSTANCE_NUMBER])
    rows.sort(key=lambda row: (_number(row[_INSTANCE_NUMBER]), row[_SOP_UID]))
    return [row[_SOP_UID] for row in rows]
