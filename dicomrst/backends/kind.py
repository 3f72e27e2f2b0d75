"""What makes a backend kind: its name in ``aets[].backend``, how its config entry is read and checked,
and how its backend is built. One ``BackendKind`` per kind, listed in ``kinds.py``.

Kept free of heavy imports: the config (read by gunicorn's master) uses the kinds' schemas; a kind's
backend class, with its network libraries, is imported only when the app builds its backends.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dicomrst.config import AetConfig, Config, ServerConfig
from dicomrst.config.reading import Section

if TYPE_CHECKING:
    from dicomrst.backends.base import Backend


def _as_read(entry: AetConfig, server: ServerConfig, path: str, section: Section) -> AetConfig:
    return entry


@dataclass(frozen=True)
class BackendKind:
    name: str
    # The entry's own keys, read from its section (the ``aet`` is read already).
    read_config: Callable[[Section, str], AetConfig]
    # The backend for a checked entry; imports what it needs when called.
    build: Callable[[AetConfig, Config], Backend]
    # Checks of the entry against the server section, and defaults that come from it; problems go to
    # the section, with the entry's key path.
    resolve: Callable[[AetConfig, ServerConfig, str, Section], AetConfig] = _as_read
