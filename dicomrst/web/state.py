"""The one state of the app: its config, its backends by AET, and where its routes live. Handlers reach
it through the accessors here, never through ``current_app.config`` keys."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from flask import Flask, current_app

from dicomrst.backends.base import Backend
from dicomrst.config import Config

_EXTENSION = "dicomrst"


@dataclass(frozen=True)
class AppState:
    config: Config
    backends: Mapping[str, Backend]
    # ``{base-path}/aets``: the prefix of every DICOMweb route.
    aets_path: str

    @property
    def base_path(self) -> str:
        return self.aets_path.rsplit("/aets", 1)[0]


def install_state(app: Flask, state: AppState) -> None:
    app.extensions[_EXTENSION] = state


def app_state() -> AppState:
    state: AppState = current_app.extensions[_EXTENSION]
    return state
