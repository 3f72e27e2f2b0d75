"""``/metrics``: the Prometheus text format, summed over all gunicorn workers."""
from __future__ import annotations

import re

from flask import Blueprint, Response, g, request

from dicomrst.metrics import ROUTE_ENVIRON, render
from dicomrst.web.auth import ALL_AETS

blueprint = Blueprint("metrics", __name__)

_AET_LABEL = re.compile(rb'[{,]aet="([^"]*)"')


@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    """With access control on, a token sees the samples of the AETs it opens and those of no AET
    (HTTP, process): what one PACS is asked is not another token's business."""
    body, content_type = render()
    granted: frozenset[str] | None = g.get("granted_aets")
    if granted is not None and ALL_AETS not in granted:
        body = b"\n".join(line for line in body.split(b"\n") if _visible(line, granted))
    return Response(body, content_type=content_type)


def _visible(line: bytes, granted: frozenset[str]) -> bool:
    found = _AET_LABEL.search(line)
    return found is None or found.group(1).decode("ascii", "replace") in granted


def remember_route() -> None:
    """Label requests by their route template, so UIDs in paths never become label values."""
    rule = request.url_rule
    request.environ[ROUTE_ENVIRON] = rule.rule if rule is not None else "unmatched"
