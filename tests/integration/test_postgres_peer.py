"""The PostgreSQL peer itself: a database it creates takes SQLAlchemy's connections, DDL and rows."""
from __future__ import annotations

import sqlalchemy

from tests.peers import Postgres


def test_a_created_database_keeps_what_is_written_to_it(postgres: Postgres) -> None:
    engine = sqlalchemy.create_engine(postgres.create_database("peer_check"))
    try:
        with engine.begin() as connection:
            assert connection.execute(sqlalchemy.text("SELECT 1")).scalar_one() == 1
            connection.execute(sqlalchemy.text("CREATE TABLE studies (uid text PRIMARY KEY, patient_name text NOT NULL)"))
            connection.execute(sqlalchemy.text("INSERT INTO studies VALUES (:uid, :name)"),
                               {"uid": "1.2.826.0.1.3680043.8.498.1", "name": "Yamada^Tarou=山田^太郎"})
        # A connection of its own, so the row is read back from what was committed.
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text("SELECT uid, patient_name FROM studies")).all()
        assert [tuple(row) for row in rows] == [("1.2.826.0.1.3680043.8.498.1", "Yamada^Tarou=山田^太郎")]
    finally:
        engine.dispose()
