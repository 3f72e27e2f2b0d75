"""``/aets``: the configured AETs, and a real health check of each."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from dicomrst.web.context import backend_for
from dicomrst.web.errors import error_response

blueprint = Blueprint("aets", __name__)


@blueprint.get("")
def list_aets() -> Response:
    return jsonify(list(current_app.extensions["dicomrst.backends"]))


@blueprint.get("/<aet>")
def health(aet: str) -> Response:
    result = backend_for(aet).health()
    if not result.healthy:
        return error_response(503, result.detail)
    return Response(result.detail + "\n", status=200, mimetype="text/plain")
