"""pynetdicom's process-wide settings, set in one place by whoever starts DIMSE work in a process (the
app in each worker, the move receiver), never as a side effect of importing a module."""
from __future__ import annotations


def configure_pynetdicom(debug: bool) -> None:
    from pynetdicom import _config

    # Send instances from their files in PDU-sized chunks instead of decoding them: memory stays at a
    # chunk whatever the instance size, and no time goes into decoding and encoding (store.py).
    _config.STORE_SEND_CHUNKED_DATASET = True
    # pynetdicom's narrating handlers decode every DIMSE message to describe it, whether or not the
    # lines are shown (a seventh of the CPU of a STOW-RS), so they are bound only when DEBUG is on.
    _config.LOG_HANDLER_LEVEL = "standard" if debug else "none"
    # Every C-FIND response's identifier written out line by line (pretty_dataset) at INFO: a quarter of
    # a worker's CPU on a QIDO-RS search of 600 studies, shown or not. Only when DEBUG is on.
    _config.LOG_RESPONSE_IDENTIFIERS = debug
    _config.LOG_REQUEST_IDENTIFIERS = debug
