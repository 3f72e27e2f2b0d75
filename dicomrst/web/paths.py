"""Where a request path points, without Flask (the request log is WSGI middleware around the app)."""
from __future__ import annotations


def aet_of_path(path: str, aets_path: str) -> str | None:
    """The ``{aet}`` of a path under ``{aets_path}/{aet}``, routed or not."""
    prefix = aets_path.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    return path[len(prefix):].split("/", 1)[0] or None
