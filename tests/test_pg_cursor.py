"""psycopg's cursor with a description made when read: the same columns, when read."""

from __future__ import annotations

import os

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import make_engine
from app.pg_cursor import LazyDescription, LazyDescriptionCursor

URL = os.environ.get("TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(
    not URL.startswith("postgresql"), reason="PostgreSQL only (TEST_DATABASE_URL)"
)
# psycopg takes a libpq URL: no "+psycopg" driver suffix (SQLAlchemy's spelling).
LIBPQ_URL = make_url(URL).set(drivername="postgresql").render_as_string(False) if URL else ""


def _connect() -> psycopg.Connection[object]:
    return psycopg.connect(LIBPQ_URL, cursor_factory=LazyDescriptionCursor)


def test_description_has_psycopgs_columns_and_none_without_a_result():
    with _connect() as connection, connection.cursor() as cursor:
        assert cursor.description is None
        cursor.execute("SELECT 1 AS one, 'a'::text AS letter")
        description = cursor.description
        assert isinstance(description, LazyDescription) and len(description) == 2
        with psycopg.connect(LIBPQ_URL) as plain, plain.cursor() as reference:
            reference.execute("SELECT 1 AS one, 'a'::text AS letter")
            expected = reference.description
        assert expected is not None
        assert [tuple(c) for c in description] == [tuple(c) for c in expected]
        assert description[1].name == "letter"
        cursor.execute("CREATE TEMPORARY TABLE t (n int)")
        assert cursor.description is None


def test_a_description_read_after_the_cursor_moved_on_refuses():
    with _connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT 1 AS one")
        stale = cursor.description
        cursor.execute("SELECT 2 AS two, 3 AS three")
        assert stale is not None
        with pytest.raises(psycopg.InterfaceError):
            list(stale)


def test_the_engine_reads_rows_by_name_through_it():
    engine = make_engine(Settings(_env_file=None, database_url=URL))
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        assert isinstance(cursor, LazyDescriptionCursor)
        for value in (1, 2):  # the second execution uses SQLAlchemy's cached metadata
            row = connection.execute(text("SELECT :v AS value, 'x' AS other"), {"v": value}).one()
            assert (row.value, row.other) == (value, "x")
    engine.dispose()


def test_a_statement_with_many_parameters_is_converted_once():
    """The last writes' statement (~80 parameters, ~5 kB) is parsed once, not per run."""
    from psycopg import _queries

    values = ", ".join(f"%(p{n})s::int" for n in range(90))
    sql = f"SELECT {values} -- {'x' * 6000}"
    params = {f"p{n}": n for n in range(90)}
    with _connect() as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        before = _queries._query2pg.cache_info().hits
        cursor.execute(sql, params)
        assert _queries._query2pg.cache_info().hits == before + 1
        assert cursor.fetchone() == tuple(range(90))
