"""A boto3 S3 client built from an S3 AET's config: endpoint style, region, credentials, timeouts."""
from __future__ import annotations

import os

import boto3
from botocore import UNSIGNED
from botocore.client import BaseClient
from botocore.config import Config as BotoConfig

from dicomrst.backends.s3.config import S3AetConfig, S3Credentials

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 30


class MissingCredentials(ValueError):
    """A credentials-env variable named in the config is not set."""


def _key_pair(credentials: S3Credentials) -> tuple[str, str]:
    access_key = credentials.access_key or _from_env(credentials.access_key_env)
    secret_key = credentials.secret_key or _from_env(credentials.secret_key_env)
    return access_key, secret_key


def _from_env(name: str | None) -> str:
    value = os.environ.get(name or "")
    if not value:
        raise MissingCredentials(f"environment variable {name} is not set")
    return value


def make_client(config: S3AetConfig, attempts: int = 3) -> BaseClient:
    boto_config = BotoConfig(
        s3={"addressing_style": "path" if config.endpoint_style == "path" else "virtual"},
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        retries={"max_attempts": attempts, "mode": "standard"},
        max_pool_connections=max(10, config.concurrency),
        signature_version=UNSIGNED if config.credentials is None else None,
    )
    keys: dict[str, str] = {}
    if config.credentials is not None:
        access_key, secret_key = _key_pair(config.credentials)
        keys = {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.endpoint,
        region_name=config.region or "us-east-1",
        config=boto_config,
        **keys,
    )
