"""Logging set from ``telemetry.level``."""
from __future__ import annotations

import logging

from dicomrst.messages import loggable

FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class OneLineFormatter(logging.Formatter):
    """A record's message is one line whatever it quotes: a client's path with ``%0A`` in it, an AE
    title a peer sent, cannot forge a log line of their own. A traceback keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = loggable(record.message)
        return super().formatMessage(record)


def configure_logging(level: str) -> None:
    """Levels for dicomrst and pynetdicom, and pynetdicom's own settings that depend on them."""
    from dicomrst.backends.dimse.pynetdicom_settings import configure_pynetdicom

    numeric = logging.DEBUG if level == "TRACE" else getattr(logging, level, logging.INFO)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(OneLineFormatter(FORMAT))
        root.addHandler(handler)
    logging.getLogger("dicomrst").setLevel(numeric)
    # pynetdicom narrates every association at INFO; that detail belongs to DEBUG here.
    debug = numeric <= logging.DEBUG
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if debug else logging.WARNING)
    configure_pynetdicom(debug)
