"""The index of a bucket's instances in a database: SQLite (one file, WAL, shared by every worker of a
host) or PostgreSQL (shared by several hosts), through SQLAlchemy Core so that one code speaks to both.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydicom import Dataset
from sqlalchemy import Engine, create_engine, delete, distinct, event, func, select
from sqlalchemy.engine import make_url

from dicomrst.dicomweb.query import QidoQuery
from dicomrst.index.headers import QIDO_TAGS, IndexedInstance, indexed_instance
from dicomrst.index.schema import attribute_values, instances, migrate, skipped_objects
from dicomrst.index.search import Bucket, search

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedInstance:
    instance: IndexedInstance
    object_key: str
    size: int
    etag: str | None


def engine_url(url: str) -> str:
    """``postgresql://`` through psycopg (version 3), the driver the package brings."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def shown_url(url: str) -> str:
    """The URL with its password hidden, for /aets?detail and the logs."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    # A writer waits for another process's transaction instead of failing at once.
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(connection: Any, record: Any) -> None:
        cursor = connection.cursor()
        # WAL: readers do not wait for the writer, and every worker of a host shares the one file.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


_VALUE_COLUMNS = ("instance_id", "tag", "value", "folded", "whole", "sortable", "number")


def _copy_values(connection: Any, values: list[dict[str, Any]]) -> None:
    """PostgreSQL's COPY, in the transaction under way: an INSERT per value row (some 50 per instance)
    took most of an indexing run's writing time through psycopg's executemany."""
    dbapi_connection = connection.connection.driver_connection
    with dbapi_connection.cursor() as cursor:
        with cursor.copy(f"COPY attribute_values ({', '.join(_VALUE_COLUMNS)}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(tuple(row[column] for column in _VALUE_COLUMNS))


class InstanceIndex:
    def __init__(self, url: str, bucket: str, retrieve_aet: str, extra_tags: tuple[int, ...] = ()) -> None:
        self.url = engine_url(url)
        self.bucket = Bucket(bucket, retrieve_aet, QIDO_TAGS | frozenset(extra_tags))
        self._engine: Engine | None = None
        self._opening = threading.Lock()

    @property
    def engine(self) -> Engine:
        # Opened on first use, in the worker (after gevent patched the sockets), migrated once.
        with self._opening:
            if self._engine is None:
                engine = _sqlite_engine(self.url) if self.url.startswith("sqlite") else \
                    create_engine(self.url, pool_pre_ping=True)
                migrate(engine)
                self._engine = engine
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def prepared(self, header: Dataset, object_key: str, size: int, etag: str | None = None,
                 part10: bytes | None = None) -> PreparedInstance:
        """What ``add_all`` writes of one instance (with its metadata document when the object itself,
        ``part10``, is given): done apart, so that several threads can prepare while one writes."""
        return PreparedInstance(indexed_instance(header, self.bucket.indexed_tags, part10), object_key, size, etag)

    def add(self, header: Dataset, object_key: str, size: int, etag: str | None = None,
            part10: bytes | None = None) -> None:
        """Index one instance as stored at ``object_key``; one stored there before is replaced."""
        self.add_all([self.prepared(header, object_key, size, etag, part10)])

    def add_all(self, prepared: list[PreparedInstance]) -> None:
        """Index instances in one transaction, each replacing what was stored at its key."""
        if not prepared:
            return
        with self.engine.begin() as connection:
            self._forget(connection, [one.object_key for one in prepared])
            now = time.time()
            rows = [{"bucket": self.bucket.name, "object_key": one.object_key, "study_uid": one.instance.study_uid,
                     "series_uid": one.instance.series_uid, "sop_uid": one.instance.sop_uid,
                     "patient_id": one.instance.patient_id, "etag": one.etag, "size": one.size, "indexed_at": now,
                     "header": one.instance.header, "metadata": one.instance.metadata} for one in prepared]
            inserted = connection.execute(instances.insert().returning(instances.c.id, sort_by_parameter_order=True),
                                          rows).scalars().all()
            values = [{**row, "instance_id": instance_id}
                      for instance_id, one in zip(inserted, prepared) for row in one.instance.values]
            if values and connection.dialect.name == "postgresql":
                _copy_values(connection, values)
            elif values:
                connection.execute(attribute_values.insert(), values)

    def _forget(self, connection: Any, object_keys: list[str]) -> None:
        # Bounded IN lists: SQLite allows some thousands of parameters in one statement.
        for start in range(0, len(object_keys), 500):
            keys = object_keys[start:start + 500]
            held = select(instances.c.id).where(instances.c.bucket == self.bucket.name,
                                                instances.c.object_key.in_(keys))
            connection.execute(delete(attribute_values).where(attribute_values.c.instance_id.in_(held)))
            connection.execute(delete(instances).where(instances.c.bucket == self.bucket.name,
                                                       instances.c.object_key.in_(keys)))
            connection.execute(delete(skipped_objects).where(skipped_objects.c.bucket == self.bucket.name,
                                                             skipped_objects.c.object_key.in_(keys)))

    def remove(self, object_key: str) -> None:
        with self.engine.begin() as connection:
            self._forget(connection, [object_key])

    def skip(self, object_key: str, etag: str | None, reason: str) -> None:
        """Record an object that is not an instance, so that the next indexing does not read it again."""
        with self.engine.begin() as connection:
            self._forget(connection, [object_key])
            connection.execute(skipped_objects.insert().values(bucket=self.bucket.name, object_key=object_key,
                                                               etag=etag, reason=reason[:500]))

    def known(self) -> dict[str, tuple[str | None, int | None]]:
        """Each object key indexed or skipped, with the ETag (and size, for instances) it had then."""
        found: dict[str, tuple[str | None, int | None]] = {}
        with self.engine.connect() as connection:
            for key, etag, size in connection.execute(select(instances.c.object_key, instances.c.etag,
                                                             instances.c.size)
                                                      .where(instances.c.bucket == self.bucket.name)):
                found[key] = (etag, size)
            for key, etag in connection.execute(select(skipped_objects.c.object_key, skipped_objects.c.etag)
                                                .where(skipped_objects.c.bucket == self.bucket.name)):
                found[key] = (etag, None)
        return found

    def metadata_documents(self, study_uid: str, series_uid: str | None = None,
                           sop_uid: str | None = None) -> list[tuple[tuple[str, str, str], str | None]]:
        """The kept metadata document (or None) of each indexed instance of a study, series or instance."""
        conditions = [instances.c.bucket == self.bucket.name, instances.c.study_uid == study_uid]
        if series_uid is not None:
            conditions.append(instances.c.series_uid == series_uid)
        if sop_uid is not None:
            conditions.append(instances.c.sop_uid == sop_uid)
        with self.engine.connect() as connection:
            return [((row.study_uid, row.series_uid, row.sop_uid), row.metadata) for row in connection.execute(
                select(instances.c.study_uid, instances.c.series_uid, instances.c.sop_uid, instances.c.metadata)
                .where(*conditions).order_by(instances.c.id))]

    def search(self, query: QidoQuery) -> Iterator[Dataset]:
        with self.engine.connect() as connection:
            yield from search(connection, self.bucket, query)

    def counts(self) -> dict[str, int]:
        in_bucket = instances.c.bucket == self.bucket.name
        with self.engine.connect() as connection:
            studies, series, count = connection.execute(
                select(func.count(distinct(instances.c.study_uid)), func.count(distinct(instances.c.series_uid)),
                       func.count()).where(in_bucket)).one()
        return {"studies": studies, "series": series, "instances": count}

    def describe(self) -> dict[str, object]:
        described: dict[str, object] = {"url": shown_url(self.url)}
        try:
            described.update(self.counts())
        except Exception as error:  # /aets?detail reports a broken index, it does not fail with it
            log.warning("index %s cannot be read: %s", shown_url(self.url), error)
            described["error"] = "the index cannot be read"
        return described
