"""Logging set from ``telemetry.level``."""
from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    numeric = logging.DEBUG if level == "TRACE" else getattr(logging, level, logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    logging.getLogger("dicomrst").setLevel(numeric)
    # pynetdicom narrates every association at INFO; that detail belongs to DEBUG here. Its narrating
    # handlers also decode every DIMSE message to describe it, whether or not the lines are shown (a
    # seventh of the CPU of a STOW-RS), so they are bound only when DEBUG is on.
    debug = numeric <= logging.DEBUG
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if debug else logging.WARNING)
    from pynetdicom import _config as pynetdicom_config

    pynetdicom_config.LOG_HANDLER_LEVEL = "standard" if debug else "none"
