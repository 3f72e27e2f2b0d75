"""``/aets``: the configured AETs, and a real health check of each."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request


from dicomrst.web.auth import allows
from dicomrst.web.context import backend_for
from dicomrst.web.errors import error_response
from dicomrst.web.state import app_state

blueprint = Blueprint("aets", __name__)


@blueprint.get("")
def list_aets() -> Response:
    """The AET names, as DICOM-RST gives them; ``?detail=true`` adds the backend kind and, for a PACS,
    its host and port."""
    entries = [entry for entry in app_state().config.aets if allows(entry.aet)]
    if request.args.get("detail", "").lower() != "true":
        return jsonify([entry.aet for entry in entries])
    return jsonify([backend_for(entry.aet).describe() for entry in entries])


@blueprint.get("/<aet>")
def health(aet: str) -> Response:
    result = backend_for(aet).health()
    if not result.healthy:
        return error_response(503, result.detail)
    return Response(result.detail + "\n", status=200, mimetype="text/plain")
