"""The ``aets[]`` entry of a PACS spoken to with DIMSE (DICOM-RST's schema, plus ``wado-rs.method``), and
the DIMSE kind. Kept free of heavy imports: the config is read in gunicorn's master."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from dicomrst.backends.kind import BackendKind
from dicomrst.cache.config import CacheConfig, read_cache_config
from dicomrst.config import AetConfig, Config, ServerConfig
from dicomrst.config.reading import (
    Section,
    ae_titles,
    boolean,
    choice,
    milliseconds,
    port,
    positive,
    string,
    timeout_of,
)

if TYPE_CHECKING:
    from dicomrst.backends.base import Backend


@dataclass(frozen=True)
class PoolConfig:
    size: int = 16
    timeout: int = 10_000


@dataclass(frozen=True)
class QidoConfig:
    timeout: int = 10_000
    # Our extension: compute ModalitiesInStudy and the related counts from the levels below when the
    # PACS leaves them out (a series-level C-FIND per such study, an instance-level one per series
    # whose count is missing).
    complete_attributes: bool = True


@dataclass(frozen=True)
class StowConfig:
    timeout: int = 10_000


@dataclass(frozen=True)
class WadoConfig:
    timeout: int = 30_000
    mode: Literal["concurrent", "sequential"] = "concurrent"
    receivers: tuple[str, ...] = ()
    method: Literal["move", "get"] = "move"
    # Our extension: the AE titles this PACS's storage SCU calls the move receiver with, when they are not
    # its own (``aet``): a PACS whose C-MOVE sub-operations come from another AE than its query/retrieve
    # one. The receiver accepts them too and hands their C-STOREs to this PACS's moves.
    calling_aets: tuple[str, ...] = ()


@dataclass(frozen=True)
class DimseAetConfig(AetConfig):
    """A PACS spoken to with DIMSE."""

    host: str
    port: int
    pool: PoolConfig = field(default_factory=PoolConfig)
    qido_rs: QidoConfig = field(default_factory=QidoConfig)
    stow_rs: StowConfig = field(default_factory=StowConfig)
    wado_rs: WadoConfig = field(default_factory=WadoConfig)
    # Our extension: the retrieve cache.
    cache: CacheConfig = field(default_factory=CacheConfig)

    @property
    def backend(self) -> str:
        return "DIMSE"


def read_dimse_config(section: Section, aet: str) -> DimseAetConfig:
    pool_section = section.section("pool")
    pool = PoolConfig(
        size=pool_section.get("size", positive, PoolConfig.size),
        timeout=pool_section.get("timeout", milliseconds, PoolConfig.timeout),
    )
    pool_section.warn_unknown()
    qido_section = section.section("qido-rs")
    qido = QidoConfig(timeout=timeout_of(qido_section, QidoConfig.timeout),
                      complete_attributes=qido_section.get("complete-attributes", boolean,
                                                           QidoConfig.complete_attributes))
    qido_section.warn_unknown()
    stow_section = section.section("stow-rs")
    stow = StowConfig(timeout=timeout_of(stow_section, StowConfig.timeout))
    stow_section.warn_unknown()
    wado_section = section.section("wado-rs")
    wado = WadoConfig(
        timeout=timeout_of(wado_section, WadoConfig.timeout),
        mode=wado_section.get("mode", choice("concurrent", "sequential"), WadoConfig.mode),  # type: ignore[arg-type]
        receivers=wado_section.get("receivers", ae_titles, ()),
        method=wado_section.get("method", choice("move", "get"), WadoConfig.method),  # type: ignore[arg-type]
        calling_aets=wado_section.get("calling-aets", ae_titles, WadoConfig.calling_aets),
    )
    wado_section.warn_unknown()
    return DimseAetConfig(
        aet=aet,
        host=section.require("host", string),
        port=section.require("port", port),
        pool=pool,
        qido_rs=qido,
        stow_rs=stow,
        wado_rs=wado,
        cache=read_cache_config(section.section("cache")),
    )


def resolve_dimse_config(entry: AetConfig, server: ServerConfig, path: str, section: Section) -> AetConfig:
    """A C-MOVE needs a receiver, and the receivers it names must be listed under ``server.dimse``; an
    AET that names none uses the first, as DICOM-RST does."""
    assert isinstance(entry, DimseAetConfig)
    receiver_aets = {receiver.aet for receiver in server.dimse}
    if entry.wado_rs.method == "move" and not receiver_aets:
        section.problem(f"{path}.wado-rs", "C-MOVE needs a receiver: list one under server.dimse, or set method: get")
    for position, receiver in enumerate(entry.wado_rs.receivers):
        if receiver not in receiver_aets:
            section.problem(f"{path}.wado-rs.receivers[{position}]",
                            f"receiver {receiver!r} is not listed under server.dimse")
    if server.dimse and not entry.wado_rs.receivers:
        return replace(entry, wado_rs=replace(entry.wado_rs, receivers=(server.dimse[0].aet,)))
    return entry


def build_dimse_backend(entry: AetConfig, config: Config) -> Backend:
    from dicomrst.backends.dimse.backend import DimseBackend

    assert isinstance(entry, DimseAetConfig)
    receiver = next((r for r in config.server.dimse if r.aet in entry.wado_rs.receivers), None)
    backend = DimseBackend(entry, calling_aet=config.server.aet, receiver=receiver)
    if not entry.cache.enabled:
        return backend
    from pathlib import Path

    from dicomrst.backends.dimse.file_names import safe_name
    from dicomrst.cache.cached_backend import CachedBackend
    from dicomrst.cache.instances import InstanceCache
    from dicomrst.runtime import runtime_directory

    root = Path(config.server.cache_path) if config.server.cache_path else runtime_directory() / "cache"
    # One folder per PACS, not per name: an AET pointed at another PACS never serves the first one's files.
    directory = root / safe_name(f"{entry.aet}@{entry.host}_{entry.port}")
    cache = InstanceCache(directory, entry.cache.max_size, entry.cache.max_age / 1000)
    # A request following a retrieval gives up when it notes no progress for longer than the
    # retrieval itself would wait on the PACS.
    return CachedBackend(backend, cache, entry.cache, wait_seconds=entry.wado_rs.timeout / 1000 + 5)


DIMSE = BackendKind("DIMSE", read_dimse_config, build_dimse_backend, resolve_dimse_config)
