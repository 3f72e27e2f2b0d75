"""The ``aets[]`` entry of an S3 bucket (DICOM-RST's schema), and the S3 kind. Kept free of heavy
imports: the config is read in gunicorn's master."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dicomrst.backends.kind import BackendKind
from dicomrst.config import AetConfig, Config
from dicomrst.config.reading import ConfigError, Section, choice, positive, string, url
from dicomrst.index.config import IndexConfig, read_index_config

if TYPE_CHECKING:
    from dicomrst.backends.base import Backend
    from dicomrst.index.instance_index import InstanceIndex


@dataclass(frozen=True)
class S3Credentials:
    access_key: str | None = None
    secret_key: str | None = None
    access_key_env: str | None = None
    secret_key_env: str | None = None


@dataclass(frozen=True)
class S3AetConfig(AetConfig):
    """A bucket in DICOM-RST's layout, spoken to over the S3 API."""

    endpoint: str
    bucket: str
    region: str | None = None
    endpoint_style: Literal["path", "vhost"] = "vhost"
    concurrency: int = 32
    credentials: S3Credentials | None = None
    # Our extension: the QIDO-RS index of the bucket.
    index: IndexConfig = field(default_factory=IndexConfig)

    @property
    def backend(self) -> str:
        return "S3"


def _credentials(section: Section) -> S3Credentials | None:
    if not section.raw:
        section.warn_unknown()
        return None
    credentials = S3Credentials(
        access_key=section.get("access-key", string, None),
        secret_key=section.get("secret-key", string, None),
        access_key_env=section.get("access-key-env", string, None),
        secret_key_env=section.get("secret-key-env", string, None),
    )
    section.warn_unknown()
    has_access = credentials.access_key is not None or credentials.access_key_env is not None
    has_secret = credentials.secret_key is not None or credentials.secret_key_env is not None
    if has_access != has_secret:
        section.problem(section.path, "needs both an access key and a secret key (or neither, for anonymous access)")
    if credentials.access_key is not None and credentials.access_key_env is not None:
        section.problem(section.path, "give access-key or access-key-env, not both")
    if credentials.secret_key is not None and credentials.secret_key_env is not None:
        section.problem(section.path, "give secret-key or secret-key-env, not both")
    return credentials if has_access else None


def read_s3_config(section: Section, aet: str) -> S3AetConfig:
    return S3AetConfig(
        aet=aet,
        endpoint=section.require("endpoint", url),
        bucket=section.require("bucket", _bucket),
        region=section.get("region", string, None),
        endpoint_style=section.get("endpoint-style", choice("path", "vhost"), "vhost"),  # type: ignore[arg-type]
        concurrency=section.get("concurrency", positive, S3AetConfig.concurrency),
        credentials=_credentials(section.section("credentials")),
        index=read_index_config(section),
    )


def _bucket(value: Any, path: str) -> str:
    text = string(value, path)
    if not re.match(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$", text):
        raise ConfigError(path, f"{text!r} is not a valid S3 bucket name")
    return text


def build_s3_backend(entry: AetConfig, config: Config) -> Backend:
    from dicomrst.backends.s3.backend import S3Backend

    assert isinstance(entry, S3AetConfig)
    return S3Backend(entry, open_index(entry, config))


def index_url(entry: S3AetConfig, config: Config) -> str:
    """``aets[].index``, or an SQLite file of the bucket's beside the retrieve cache: two AETs of one
    bucket share it."""
    if entry.index.url is not None:
        return entry.index.url
    from pathlib import Path
    from urllib.parse import urlsplit

    from dicomrst.backends.dimse.file_names import safe_name
    from dicomrst.runtime import runtime_directory

    root = Path(config.server.cache_path) if config.server.cache_path else runtime_directory() / "cache"
    name = safe_name(f"{entry.bucket}@{urlsplit(entry.endpoint).netloc}")
    return f"sqlite:///{(root / 'index' / name).with_suffix('.sqlite')}"


def open_index(entry: S3AetConfig, config: Config) -> InstanceIndex:
    from dicomrst.index.config import attribute_tags
    from dicomrst.index.instance_index import InstanceIndex

    return InstanceIndex(index_url(entry, config), entry.bucket, entry.aet, attribute_tags(entry.index.attributes))


S3 = BackendKind("S3", read_s3_config, build_s3_backend)
