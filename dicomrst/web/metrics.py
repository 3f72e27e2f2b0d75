"""``/metrics``: the Prometheus text format, summed over all gunicorn workers."""
from __future__ import annotations

from flask import Blueprint, Response, request

from dicomrst.metrics import ROUTE_ENVIRON, render

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = render()
    return Response(body, content_type=content_type)


def remember_route() -> None:
    """Label requests by their route template, so UIDs in paths never become label values."""
    rule = request.url_rule
    request.environ[ROUTE_ENVIRON] = rule.rule if rule is not None else "unmatched"
