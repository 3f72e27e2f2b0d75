"""Backends by AET: the one place that knows which backend kind serves a configured AET."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dicomrst.config import Config, DimseAetConfig

if TYPE_CHECKING:  # the master process imports light modules below this package; keep pydicom out of it
    from dicomrst.backends.base import Backend


def build_backends(config: Config) -> dict[str, Backend]:
    from dicomrst.backends.dimse.backend import DimseBackend
    from dicomrst.backends.s3 import S3Backend

    backends: dict[str, Backend] = {}
    for entry in config.aets:
        if isinstance(entry, DimseAetConfig):
            receiver = next((r for r in config.server.dimse if r.aet in entry.wado_rs.receivers), None)
            backends[entry.aet] = DimseBackend(entry, calling_aet=config.server.aet, receiver=receiver)
        else:
            backends[entry.aet] = S3Backend(entry)
    return backends
