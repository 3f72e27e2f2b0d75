"""The index's tables (SQLAlchemy Core, the same on SQLite and PostgreSQL) and their versioned migrations.

``instances``: one row per object of a bucket that is a DICOM instance: its UIDs, its key, its header as
DICOM JSON (every attribute before the pixel data but bulk data), from which search answers are built,
and its WADO-RS metadata document when it was stored through the gateway. ``attribute_values``: one row
per value of each indexed attribute of an instance, in the forms the matching of PS3.4 C.2.2.2 compares
(``dicomrst.index.values``), so that a search is one SQL query. ``skipped_objects``: objects found not
to be DICOM, so that a resumed ``dicomrst index`` does not read them again. ``schema_version``: the
migrations applied.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.engine import Connection, Engine

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

instances = Table(
    "instances",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bucket", String(63), nullable=False),
    Column("object_key", Text, nullable=False),
    Column("study_uid", String(64), nullable=False),
    Column("series_uid", String(64), nullable=False),
    Column("sop_uid", String(64), nullable=False),
    Column("patient_id", Text, nullable=False),
    Column("etag", Text),  # as the listing gives it; None when stored by the gateway (size is checked)
    Column("size", BigInteger, nullable=False),
    Column("indexed_at", Float, nullable=False),
    Column("header", Text, nullable=False),
    # Version 2: its WADO-RS metadata document (URL placeholder), kept when stored through the gateway.
    Column("metadata", Text),
    UniqueConstraint("bucket", "object_key", name="instances_object"),
    Index("instances_study", "bucket", "study_uid"),
    Index("instances_series", "bucket", "series_uid"),
    Index("instances_sop", "bucket", "sop_uid"),
    Index("instances_patient", "bucket", "patient_id"),
)

attribute_values = Table(
    "attribute_values",
    metadata,
    Column("instance_id", Integer, ForeignKey("instances.id", ondelete="CASCADE"), nullable=False),
    Column("tag", BigInteger, nullable=False),
    Column("value", Text, nullable=False),  # as stored (a PN: the whole name)
    Column("folded", Text),  # PN: each component group, '^' trimmed, case-folded
    Column("whole", Integer),  # PN: 1 for the whole name, 0 for a component group
    Column("sortable", String(32)),  # DA, TM, DT: in a form whose string order is time order
    Column("number", Float),  # numeric VRs
    Index("attribute_values_value", "tag", "value"),
    Index("attribute_values_folded", "tag", "folded"),
    Index("attribute_values_sortable", "tag", "sortable"),
    Index("attribute_values_number", "tag", "number"),
    Index("attribute_values_instance", "instance_id"),
)

skipped_objects = Table(
    "skipped_objects",
    metadata,
    Column("bucket", String(63), nullable=False),
    Column("object_key", Text, nullable=False),
    Column("etag", Text),
    Column("reason", Text, nullable=False),
    UniqueConstraint("bucket", "object_key", name="skipped_object"),
)


def _version_1(connection: Connection) -> None:
    for table in (instances, attribute_values, skipped_objects):
        table.create(connection)


def _version_2(connection: Connection) -> None:
    # Version 1 created ``instances`` from the definition above, which now has the column; an index
    # made by version 1 of the code lacks it.
    if "metadata" not in {column["name"] for column in inspect(connection).get_columns("instances")}:
        connection.execute(text("ALTER TABLE instances ADD COLUMN metadata TEXT"))


# Append only: a deployed index is brought to the newest version by running those it has not had.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_version_1, _version_2)


def migrate(engine: Engine) -> int:
    """Apply the migrations the database has not had; the version it is at now. Safe when several
    gateway processes (or hosts, on PostgreSQL) start at once: one applies, the others wait for it."""
    try:
        schema_version.create(engine, checkfirst=True)
    except DBAPIError:
        # Another process created it between the check and the CREATE; it is there now.
        if not inspect(engine).has_table(schema_version.name):
            raise
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("LOCK TABLE schema_version IN EXCLUSIVE MODE"))
        else:
            # Takes SQLite's write lock now, so two processes cannot both read version 0.
            connection.execute(text("DELETE FROM schema_version WHERE version < 0"))
        current = connection.execute(select(schema_version.c.version)).scalar()
        applied = current or 0
        for version, migration in enumerate(MIGRATIONS, start=1):
            if version > applied:
                migration(connection)
                applied = version
        if current is None:
            connection.execute(schema_version.insert().values(version=applied))
        elif applied != current:
            connection.execute(schema_version.update().values(version=applied))
    return applied
