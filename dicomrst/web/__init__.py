"""The HTTP side: one blueprint per DICOMweb service under ``{base-path}/aets``."""
from __future__ import annotations

from flask import Flask

from dicomrst.web import aets, qido, stow, wado
from dicomrst.web.errors import register_error_handlers


def register_web(app: Flask, aets_path: str) -> None:
    app.config["DICOMRST_AETS_PATH"] = aets_path
    app.register_blueprint(aets.blueprint, url_prefix=aets_path)
    app.register_blueprint(qido.blueprint, url_prefix=aets_path)
    app.register_blueprint(wado.blueprint, url_prefix=aets_path)
    app.register_blueprint(stow.blueprint, url_prefix=aets_path)
    register_error_handlers(app)
