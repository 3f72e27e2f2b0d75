"""Logging set from ``telemetry.level``."""
from __future__ import annotations

import logging


def configure_logging(level: str) -> None:
    """Levels for dicomrst and pynetdicom, and pynetdicom's own settings that depend on them."""
    from dicomrst.backends.dimse.pynetdicom_settings import configure_pynetdicom

    numeric = logging.DEBUG if level == "TRACE" else getattr(logging, level, logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    logging.getLogger("dicomrst").setLevel(numeric)
    # pynetdicom narrates every association at INFO; that detail belongs to DEBUG here.
    debug = numeric <= logging.DEBUG
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if debug else logging.WARNING)
    configure_pynetdicom(debug)
