"""The HTTP side: one blueprint per DICOMweb service under ``{base-path}/aets``."""
from __future__ import annotations

from flask import Flask
from flask_cors import CORS

from dicomrst.web.state import AppState, install_state
from dicomrst.web import aets, metrics, qido, rendered, stow, wado, wado_uri
from dicomrst.web.auth import install_auth, resolve_tokens
from dicomrst.web.errors import register_error_handlers
from dicomrst.web.proxy import refuse_invalid_host


# Headers DICOMweb clients read from responses, which browsers hide from scripts unless exposed.
EXPOSED_HEADERS = ["Content-Type", "Content-Length", "Content-Location", "Warning", "X-Request-Id"]


def register_web(app: Flask, state: AppState) -> None:
    install_state(app, state)
    app.before_request(refuse_invalid_host)
    http = state.config.server.http
    aets_path = state.aets_path
    allowed_origins, tokens = http.allowed_origins, http.auth
    install_auth(app, resolve_tokens(tokens))
    origins = "*" if "*" in allowed_origins else list(allowed_origins)
    CORS(app, origins=origins, expose_headers=EXPOSED_HEADERS, allow_headers="*", max_age=600)
    app.register_blueprint(aets.blueprint, url_prefix=aets_path)
    app.register_blueprint(qido.blueprint, url_prefix=aets_path)
    app.register_blueprint(wado.blueprint, url_prefix=aets_path)
    app.register_blueprint(rendered.blueprint, url_prefix=aets_path)
    app.register_blueprint(wado_uri.blueprint, url_prefix=aets_path)
    app.register_blueprint(stow.blueprint, url_prefix=aets_path)
    app.register_blueprint(metrics.blueprint, url_prefix=state.base_path or None)
    app.before_request(metrics.remember_route)
    register_error_handlers(app)
