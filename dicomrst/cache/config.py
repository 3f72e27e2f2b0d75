"""``aets[].cache`` (our extension to the schema): whether and how a DIMSE AET's retrievals are kept."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dicomrst.config.reading import Section, boolean, choice, milliseconds, positive


@dataclass(frozen=True)
class CacheConfig:
    enabled: bool = True
    max_size: int = 1_000_000_000  # bytes; the least recently used go first past it
    # ms: how long a retrieved series is served before the PACS is asked again whether it still holds
    # exactly those instances (a C-FIND, at most once per ttl).
    ttl: int = 300_000
    max_age: int = 86_400_000  # ms: how long anything is kept at all
    # What a frames, metadata or instance request of one instance retrieves: its series (a viewer
    # asks for the rest next), the instance alone, or its study.
    prefetch: Literal["series", "instance", "study"] = "series"


def read_cache_config(section: Section) -> CacheConfig:
    defaults = CacheConfig()
    config = CacheConfig(
        enabled=section.get("enabled", boolean, defaults.enabled),
        max_size=section.get("max-size", positive, defaults.max_size),
        ttl=section.get("ttl", milliseconds, defaults.ttl),
        max_age=section.get("max-age", milliseconds, defaults.max_age),
        prefetch=section.get("prefetch", choice("series", "instance", "study"), defaults.prefetch),  # type: ignore[arg-type]
    )
    section.warn_unknown()
    return config
