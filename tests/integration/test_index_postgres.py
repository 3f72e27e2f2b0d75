"""Matching in SQL on PostgreSQL (LIKE where SQLite has GLOB) agrees with the matching engine, on the
examples and the generated values of the SQLite unit tests."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine

from tests.peers import Postgres
from tests.unit.test_index import _TEXT, EXAMPLES, engine_matches, prepared, sql_matches
from tests.unit.test_matching import key as matching_key


@pytest.fixture(scope="module")
def database(postgres: Postgres) -> Engine:
    return prepared(create_engine(postgres.create_database("matching")))


@pytest.mark.parametrize("keyword_vr, key_value, stored", EXAMPLES)
def test_sql_matches_as_the_engine(database: Engine, keyword_vr: str, key_value, stored: list):
    element = matching_key(keyword_vr, key_value)
    assert sql_matches(database, element, stored) == engine_matches(element, stored)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key_value=_TEXT, stored=_TEXT.filter(lambda text: "*" not in text and "?" not in text))
def test_sql_matches_as_the_engine_for_any_text(database: Engine, key_value: str, stored: str):
    for keyword_vr in ("PatientName:PN", "PatientID:LO"):
        element = matching_key(keyword_vr, key_value)
        assert sql_matches(database, element, [stored]) == engine_matches(element, [stored])
