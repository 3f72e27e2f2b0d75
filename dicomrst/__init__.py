"""dicomrst: a DICOMweb gateway to DIMSE PACS and S3 buckets."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from dicomrst.config import Config

__version__ = "0.1.0"


def create_app(config: Config | None = None) -> Flask:
    """The gateway as a WSGI app; without a config, the one $DICOMRST_CONFIG names is read."""
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

    config = config or load_config()
    configure_logging(config.telemetry.level)
    configure_sentry(config.telemetry)
    app = Flask(__name__)
    app.config["DICOMRST"] = config
    app.extensions["dicomrst.backends"] = build_backends(config)
    aets_path = config.server.http.base_path.rstrip("/") + "/aets"
    register_web(app, aets_path=aets_path, allowed_origins=config.server.http.allowed_origins,
                 tokens=config.server.http.auth)
    proxied = TrustedProxyFix(app.wsgi_app, config.server.http.trusted_proxies)
    app.wsgi_app = RequestLog(proxied, aets_path, observers=[observe_request],  # type: ignore[method-assign]
                              timeout_seconds=config.server.http.request_timeout / 1000)
    return app
