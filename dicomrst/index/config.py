"""``aets[].index`` (our extension to the schema): where an S3 AET's QIDO index lives and what it holds.

Given as a database URL (``sqlite:///path`` or ``postgresql://user@host/db``), or as a mapping
``{url, attributes}``. Without it an S3 AET has an SQLite index beside the retrieve cache.
Kept free of heavy imports: the config is read in gunicorn's master.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dicomrst.config.reading import ConfigError, Section, kind_of, string

_SCHEMES = ("sqlite", "postgresql")


@dataclass(frozen=True)
class IndexConfig:
    # None: an SQLite file under the server's cache folder (server.cache.path).
    url: str | None = None
    # Attributes indexed for matching beyond the default QIDO attributes of every level (PS3.18
    # 10.6.3-3..5) and StudyDescription: keywords or 8-digit tags.
    attributes: tuple[str, ...] = ()


def database_url(value: Any, path: str) -> str:
    text = string(value, path)
    scheme = text.split(":", 1)[0].split("+", 1)[0]
    if scheme not in _SCHEMES or "://" not in text:
        raise ConfigError(path, f"{text!r} is not a database URL: expected sqlite:///path or postgresql://host/db")
    return text


_ATTRIBUTE_RE = re.compile(r"[A-Z][A-Za-z0-9]*|[0-9A-Fa-f]{8}")


def _attributes(value: Any, path: str) -> tuple[str, ...]:
    # Keywords are looked up in pydicom's dictionary where the index is opened (``attribute_tags``):
    # importing pydicom here would import ssl into gunicorn's master, before gevent patches it.
    if not isinstance(value, list):
        raise ConfigError(path, f"expected a list of attribute keywords or tags, got {kind_of(value)}")
    names = []
    for index, item in enumerate(value):
        text = string(item, f"{path}[{index}]")
        if not _ATTRIBUTE_RE.fullmatch(text):
            raise ConfigError(f"{path}[{index}]", f"{text!r} is not an attribute keyword or 8-digit tag")
        names.append(text)
    return tuple(dict.fromkeys(names))


def attribute_tags(names: tuple[str, ...]) -> tuple[int, ...]:
    """The tags of ``aets[].index.attributes``; ConfigError for a keyword pydicom does not know or a
    sequence (its items' attributes are what is indexed)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    tags = []
    for name in names:
        tag = tag_for_keyword(name)
        if tag is None and re.fullmatch(r"[0-9A-Fa-f]{8}", name):
            tag = int(name, 16)
        if tag is None:
            raise ConfigError("index.attributes", f"{name!r} is not a DICOM attribute keyword")
        try:
            if dictionary_VR(tag) == "SQ":
                raise ConfigError("index.attributes", f"{name} is a sequence; index the attributes of its items")
        except KeyError:
            pass  # a private tag: indexed as the text it holds
        tags.append(tag)
    return tuple(tags)


def read_index_config(section: Section, key: str = "index") -> IndexConfig:
    raw = section.raw.get(key)
    if isinstance(raw, str):
        return IndexConfig(url=section.get(key, database_url, None))
    inner = section.section(key)
    config = IndexConfig(
        url=inner.get("url", database_url, None),
        attributes=inner.get("attributes", _attributes, ()),
    )
    inner.warn_unknown()
    return config
