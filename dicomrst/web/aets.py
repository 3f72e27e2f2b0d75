"""``/aets``: the configured AETs, and a real health check of each."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from dicomrst.config import AetConfig, DimseAetConfig

from dicomrst.web.auth import allows
from dicomrst.web.context import backend_for
from dicomrst.web.errors import error_response

blueprint = Blueprint("aets", __name__)


@blueprint.get("")
def list_aets() -> Response:
    """The AET names, as DICOM-RST gives them; ``?detail=true`` adds the backend kind and, for a PACS,
    its host and port."""
    entries = [entry for entry in current_app.config["DICOMRST"].aets if allows(entry.aet)]
    if request.args.get("detail", "").lower() != "true":
        return jsonify([entry.aet for entry in entries])
    return jsonify([_detail(entry) for entry in entries])


def _detail(entry: AetConfig) -> dict[str, object]:
    if isinstance(entry, DimseAetConfig):
        return {"aet": entry.aet, "backend": "DIMSE", "host": entry.host, "port": entry.port}
    return {"aet": entry.aet, "backend": "S3"}


@blueprint.get("/<aet>")
def health(aet: str) -> Response:
    result = backend_for(aet).health()
    if not result.healthy:
        return error_response(503, result.detail)
    return Response(result.detail + "\n", status=200, mimetype="text/plain")
