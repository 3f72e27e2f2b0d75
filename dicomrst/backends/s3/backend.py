"""An S3 bucket in the DICOM-RST layout ``{study}/{series}/{instance}.dcm`` at the bucket root."""
from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from contextlib import contextmanager
from typing import Any

from botocore.client import BaseClient
from pydicom import Dataset
from sqlalchemy.exc import SQLAlchemyError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as BotoConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from dicomrst.backends.base import (
    Backend,
    BackendError,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    Health,
    InstanceSelection,
    InstanceUids,
    NotFound,
    SearchNotes,
    StoreOutcome,
    StoreSession,
)
from dicomrst.backends.s3.client import MissingCredentials, make_client
from dicomrst.backends.s3.keys import instance_key, selection_prefix
from dicomrst.backends.s3.config import S3AetConfig
from dicomrst.dicomweb.query import QidoQuery
from dicomrst.dicomweb.stow import FAILURE_CANNOT_UNDERSTAND, FAILURE_OUT_OF_RESOURCES, UploadedInstance
from dicomrst.index.headers import NotAnInstance, read_file_header
from dicomrst.index.instance_index import InstanceIndex, shown_url

log = logging.getLogger(__name__)

KEPT_METADATA_MAX_BYTES = 16 * 1024 * 1024


def backend_error(error: Exception, what: str) -> BackendError:
    """A boto3 failure as the error the client deserves."""
    if isinstance(error, MissingCredentials):
        return BackendUnavailable(f"S3 credentials: {error}")
    if isinstance(error, (ConnectTimeoutError, ReadTimeoutError)):
        return BackendTimeout(f"{what}: the S3 endpoint did not answer in time")
    if isinstance(error, (EndpointConnectionError, BotoConnectionError)):
        return BackendUnavailable(f"{what}: the S3 endpoint cannot be reached")
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "error")
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFound(f"{what}: not found")
        if code == "NoSuchBucket":
            return BackendUnavailable(f"{what}: the bucket does not exist")
        return BackendProtocolError(f"{what}: S3 answered {code}")
    return BackendProtocolError(f"{what}: {error}")


class S3Backend(Backend):
    kind = "S3"

    def __init__(self, config: S3AetConfig, index: InstanceIndex) -> None:
        self.config = config
        self.aet = config.aet
        self.index = index
        self._client: BaseClient | None = None

    @property
    def client(self) -> BaseClient:
        # Built on first use, in the worker (after gevent patched the sockets), and shared: boto3
        # clients are safe to use from several threads.
        if self._client is None:
            self._client = make_client(self.config)
        return self._client

    def health(self) -> Health:
        try:
            # One attempt: a health check reports the state now, within the connect timeout.
            make_client(self.config, attempts=1).head_bucket(Bucket=self.config.bucket)
        except (MissingCredentials, BotoCoreError, ClientError) as error:
            return Health(False, str(backend_error(error, f"bucket {self.config.bucket} at {self.config.endpoint}")))
        return Health(True, f"bucket {self.config.bucket} at {self.config.endpoint} answers")

    def describe(self) -> dict[str, object]:
        return {**super().describe(), "bucket": self.config.bucket, "index": self.index.describe()}

    def search(self, query: QidoQuery, notes: SearchNotes) -> Iterator[Dataset]:
        # Person names are always matched without regard to case, so fuzzy matching is done as asked.
        # The matches come from the index's database, never from a PACS that makes one wait: each is
        # at hand, and the web layer sends them in few writes.
        notes.next_ready = _always
        try:
            yield from self.index.search(query)
        except SQLAlchemyError as error:
            log.warning("index %s: %s", shown_url(self.index.url), error)
            raise BackendUnavailable("the bucket's index cannot be read") from None

    def metadata_documents(self, selection: InstanceSelection) -> Iterator[tuple[InstanceUids, str]]:
        """From the index when it keeps the document of every instance of the selection (those stored
        through the gateway): no object is read."""
        try:
            kept = self.index.metadata_documents(selection.study_uid, selection.series_uid, selection.sop_uid)
        except SQLAlchemyError as error:
            log.warning("index %s: %s", shown_url(self.index.url), error)
            kept = []
        if kept and all(document is not None for _, document in kept):
            for uids, document in kept:
                assert document is not None
                yield uids, document
            return
        yield from super().metadata_documents(selection)

    def retrieve(self, selection: InstanceSelection) -> Iterator[bytes]:
        if selection.sop_uid is not None:
            return iter([self._get(instance_key(selection))])
        return self._get_all(selection_prefix(selection))

    def _get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.config.bucket, Key=key)["Body"].read()
        except (MissingCredentials, BotoCoreError, ClientError) as error:
            raise backend_error(error, f"object {key}") from None

    def _keys(self, prefix: str) -> Iterator[str]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.config.bucket, Prefix=prefix)
            for page in pages:
                for entry in page.get("Contents", []):
                    if entry["Key"].endswith(".dcm"):
                        yield entry["Key"]
        except (MissingCredentials, BotoCoreError, ClientError) as error:
            raise backend_error(error, f"listing {prefix}") from None

    def _get_all(self, prefix: str) -> Iterator[bytes]:
        """Every instance under ``prefix``, ``concurrency`` downloads in flight, each yielded as soon
        as it is in: memory holds at most ``concurrency`` instances."""
        in_flight: set[Future[bytes]] = set()
        found = False
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            try:
                for key in self._keys(prefix):
                    found = True
                    in_flight.add(pool.submit(self._get, key))
                    if len(in_flight) >= self.config.concurrency:
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        for future in done:
                            yield future.result()
                for future in as_completed(in_flight):
                    in_flight.discard(future)
                    yield future.result()
            finally:
                for future in in_flight:
                    future.cancel()
        if not found:
            raise NotFound("no instances match")

    @contextmanager
    def store_session(self, like: Sequence[UploadedInstance] = ()) -> Iterator[StoreSession]:
        try:
            self.client.head_bucket(Bucket=self.config.bucket)
        except (MissingCredentials, BotoCoreError, ClientError) as error:
            raise backend_error(error, f"bucket {self.config.bucket}") from None
        yield S3StoreSession(self.client, self.config.bucket, self.index)


class S3StoreSession(StoreSession):
    def __init__(self, client: Any, bucket: str, index: InstanceIndex) -> None:
        self.client = client
        self.bucket = bucket
        self.index = index

    def store(self, instance: UploadedInstance) -> StoreOutcome:
        if not instance.study_uid or not instance.series_uid:
            # The layout needs both; without them there is no key to store the instance under.
            return StoreOutcome(False, FAILURE_CANNOT_UNDERSTAND)
        key = instance_key(InstanceSelection(instance.study_uid, instance.series_uid, instance.sop_instance_uid))
        try:
            # Storing the same instance again overwrites the same key: idempotent.
            self.client.upload_file(str(instance.path), self.bucket, key,
                                    ExtraArgs={"ContentType": "application/dicom"})
        except (BotoCoreError, ClientError) as error:
            log.warning("cannot store %s in bucket %s: %s", key, self.bucket, error)
            return StoreOutcome(False, FAILURE_OUT_OF_RESOURCES)
        # Indexed before it is reported stored, so a search right after the STOW finds it.
        size = instance.path.stat().st_size
        try:
            # Its metadata document is kept too, but not for an instance too large to hold in memory at once.
            self.index.add(read_file_header(instance.path), key, size,
                           part10=instance.path.read_bytes() if size <= KEPT_METADATA_MAX_BYTES else None)
        except (NotAnInstance, SQLAlchemyError, OSError) as error:
            log.warning("stored %s in bucket %s but cannot index it: %s", key, self.bucket, error)
            return StoreOutcome(False, FAILURE_OUT_OF_RESOURCES)
        return StoreOutcome(True)


def _always() -> bool:
    return True
