"""Backends by AET: each configured AET's backend, built by its kind (``kinds.py``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dicomrst.config import Config

if TYPE_CHECKING:  # the master process imports light modules below this package; keep pydicom out of it
    from dicomrst.backends.base import Backend


def build_backends(config: Config) -> dict[str, Backend]:
    from dicomrst.backends.kinds import KINDS

    return {entry.aet: KINDS[entry.backend].build(entry, config) for entry in config.aets}
