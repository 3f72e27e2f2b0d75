"""WADO-URI (PS3.18 9): ``GET {base}/aets/{aet}/wado?requestType=WADO&studyUID=&seriesUID=&objectUID=``, the
single-instance retrieval legacy viewers and scripts still use.

``contentType`` (a comma list, the first the gateway can produce wins; ``image/jpeg`` by default for an
image, PS3.18 9.1.2.4.1) chooses between the instance itself (``application/dicom``, in ``transferSyntax``,
Explicit VR Little Endian by default, PS3.18 9.1.2.4.4) and a rendered image (``image/jpeg``,
``image/png``, ``image/gif``), which takes ``frameNumber``, ``rows``, ``columns``, ``windowCenter`` +
``windowWidth`` and ``imageQuality``. What the gateway does not offer is refused with 400 rather than
silently ignored: ``anonymize=yes`` (an instance not de-identified must not be taken for one), and
presentation states (``presentationUID``), which would change what is shown.
"""
from __future__ import annotations

from flask import Blueprint, Response, request
from werkzeug.exceptions import BadRequest

from dicomrst.backends.base import InstanceSelection
from dicomrst.dicomweb.accept import NotAcceptable
from dicomrst.dicomweb.frames import parse_frame_list
from dicomrst.dicomweb.rendered_params import RENDERED_MEDIA_TYPES, parse_rendered_parameters
from dicomrst.dicomweb.transcode import choose_transfer_syntax, transcode, transfer_syntax_of
from dicomrst.dicomweb.uids import checked_uid
from dicomrst.messages import shown
from dicomrst.web.context import backend_for
from dicomrst.web.rendered import render_selection, single_instance
from dicomrst.web.wado import caching_of, selection_of

blueprint = Blueprint("wado_uri", __name__)

DICOM = "application/dicom"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
_REFUSED = {
    "anonymize": "anonymized retrieval (anonymize=yes) is not offered by this gateway",
    "presentationUID": "presentation states (presentationUID) are not applied by this gateway",
    "presentationSeriesUID": "presentation states (presentationSeriesUID) are not applied by this gateway",
}


@blueprint.get("/<aet>/wado")
def wado_uri(aet: str) -> Response:
    backend_for(aet)
    args = request.args
    if args.get("requestType") != "WADO":
        raise BadRequest("requestType must be WADO (PS3.18 9.1.2.1)")
    for name, reason in _REFUSED.items():
        value = args.get(name)
        if value and not (name == "anonymize" and value.lower() == "no"):
            raise BadRequest(reason)
    uids = []
    for name, what in (("studyUID", "Study Instance UID"), ("seriesUID", "Series Instance UID"),
                       ("objectUID", "SOP Instance UID")):
        value = args.get(name)
        if not value:
            raise BadRequest(f"{name} is required (PS3.18 9.1.2.1)")
        uids.append(checked_uid(value, what))
    selection = selection_of(*uids)
    content_type = _content_type(args.get("contentType", ""))
    if content_type == DICOM:
        return _instance(aet, selection, args.get("transferSyntax", EXPLICIT_VR_LITTLE_ENDIAN))
    frame_number = args.get("frameNumber")
    frames = parse_frame_list(frame_number) if frame_number else None
    if frames is not None and len(frames) != 1:
        raise BadRequest("frameNumber names one frame")
    return render_selection(aet, selection, frames, parse_rendered_parameters(_rendering_parameters()),
                            content_type)


def _content_type(listed: str) -> str:
    """The first listed content type the gateway produces (``*/*`` or ``image/*`` take the default)."""
    offered = [item.split(";")[0].strip().lower() for item in listed.split(",") if item.strip()]
    if not offered:
        return RENDERED_MEDIA_TYPES[0]
    for candidate in offered:
        if candidate in (DICOM, *RENDERED_MEDIA_TYPES):
            return candidate
        if candidate in ("*/*", "image/*"):
            return RENDERED_MEDIA_TYPES[0]
    raise NotAcceptable(f"none of the content types {shown(listed)} can be produced; "
                        f"offered: {', '.join((DICOM, *RENDERED_MEDIA_TYPES))}")


def _rendering_parameters() -> list[tuple[str, str]]:
    """WADO-URI's image parameters (PS3.18 9.1.2.4) as the rendered resources' (8.3.5.1)."""
    args = request.args
    parameters = []
    center, width = args.get("windowCenter"), args.get("windowWidth")
    if (center is None) != (width is None):
        raise BadRequest("windowCenter and windowWidth go together (PS3.18 9.1.2.4.7)")
    if center is not None and width is not None:
        parameters.append(("window", f"{center},{width}"))
    rows, columns = args.get("rows"), args.get("columns")
    if rows or columns:
        # One of them alone bounds that side; the image keeps its aspect ratio either way.
        parameters.append(("viewport", f"{columns or rows},{rows or columns}"))
    if args.get("imageQuality"):
        parameters.append(("quality", args["imageQuality"]))
    return parameters


def _instance(aet: str, selection: InstanceSelection, transfer_syntax: str) -> Response:
    backend = backend_for(aet)
    headers, unchanged = caching_of(aet, backend.validators(selection))
    if unchanged is not None:
        return unchanged
    part10 = single_instance(backend, selection)
    stored = transfer_syntax_of(part10)
    wanted = "*" if transfer_syntax == "*" else checked_uid(transfer_syntax, "Transfer Syntax UID")
    target = choose_transfer_syntax(stored, [wanted])
    if target is None:
        raise NotAcceptable(f"an instance stored as {stored} cannot be sent as {wanted}")
    body = part10 if target == stored else transcode(part10, target)
    return Response(body, content_type=f"{DICOM}; transfer-syntax={target}", headers=headers)
