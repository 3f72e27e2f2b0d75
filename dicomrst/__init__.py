"""dicomrst: a DICOMweb gateway to DIMSE PACS and S3 buckets."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from flask import Flask

    from dicomrst.backends.base import Backend
    from dicomrst.config import Config

__version__ = "0.1.0"


def create_app(config: Config | None = None, backends: Mapping[str, Backend] | None = None) -> Flask:
    """The gateway as a WSGI app; without a config, the one $DICOMRST_CONFIG names is read, and
    without backends, each configured AET's is built (tests pass their own)."""
    # Imported here, not at module level: gunicorn's master imports dicomrst.config through this
    # package before the workers monkey-patch with gevent, and must not pull in ssl, boto3 or
    # pynetdicom by doing so.
    from flask import Flask

    from dicomrst.backends import build_backends
    from dicomrst.config import load_config
    from dicomrst.logs import configure_logging
    from dicomrst.metrics import observe_request
    from dicomrst.telemetry import configure_sentry
    from dicomrst.web import register_web
    from dicomrst.web.proxy import TrustedProxyFix
    from dicomrst.web.request_log import RequestLog
    from dicomrst.web.state import AppState

    config = config or load_config()
    configure_logging(config.telemetry.level)
    configure_sentry(config.telemetry)
    app = Flask(__name__)
    aets_path = config.server.http.base_path.rstrip("/") + "/aets"
    state = AppState(config, build_backends(config) if backends is None else backends, aets_path)
    register_web(app, state)
    proxied = TrustedProxyFix(app.wsgi_app, config.server.http.trusted_proxies)
    app.wsgi_app = RequestLog(proxied, aets_path, observers=[observe_request],  # type: ignore[method-assign]
                              timeout_seconds=config.server.http.request_timeout / 1000)
    return app
