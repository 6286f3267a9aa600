"""SQLite write turns are handed out in the process, in order, and always given back."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import Integer, bindparam, literal, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.types import TypeDecorator

from app import db
from app.config import Settings
from app.db import (
    StatementCache,
    UTCDateTime,
    make_engine,
    make_session_factory,
    read_only,
    upgrade_to_head,
)
from tests.conftest import _postgres_database


def test_second_writer_waits_for_the_first_to_commit_and_readers_do_not(tmp_path: Path):
    engine = make_engine(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/w.db"))
    factory = make_session_factory(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))

    events: list[str] = []
    first_holds = threading.Event()
    second_started = threading.Event()

    def first() -> None:
        with factory() as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
            first_holds.set()
            second_started.wait(timeout=10)
            # A reader is not held up by the open write turn.
            with factory() as reader, read_only(reader):
                assert reader.scalar(text("SELECT count(*) FROM t")) == 0
            events.append("first commits")
            session.commit()

    def second() -> None:
        first_holds.wait(timeout=10)
        second_started.set()
        with factory() as session:
            session.execute(text("INSERT INTO t VALUES (2)"))
            events.append("second writes")
            session.commit()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert events == ["first commits", "second writes"]

    # A rolled-back or abandoned write gives the turn back too.
    with factory() as session:
        session.execute(text("INSERT INTO t VALUES (3)"))
        session.rollback()
    with factory() as session:
        session.execute(text("INSERT INTO t VALUES (4)"))
    with factory() as session:
        assert session.scalar(text("SELECT count(*) FROM t")) == 2
        session.commit()
    engine.dispose()


def _connection_of(session: Any) -> Any:
    return session.connection().connection.dbapi_connection


def test_writes_run_on_one_connection_whose_page_cache_no_other_commit_drops(tmp_path: Path):
    # In WAL mode a connection drops its page cache when another one committed since its
    # last transaction: all writes on one connection keep it. Readers use the others.
    engine = make_engine(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/w.db"))
    factory = make_session_factory(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    writers = []
    with factory() as first, factory() as reader, read_only(reader):
        first.execute(text("INSERT INTO t VALUES (1)"))
        writers.append(_connection_of(first))
        assert _connection_of(reader) is not writers[0]
        reader.rollback()  # the reader's connection goes back first, the writer's after it
        first.commit()
    with factory() as second:
        second.execute(text("INSERT INTO t VALUES (2)"))
        writers.append(_connection_of(second))
        second.commit()
    assert writers[0] is writers[1]
    engine.dispose()


def test_a_write_waits_for_one_from_before_the_pool_was_recreated(tmp_path: Path):
    engine = make_engine(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/w.db"))
    factory = make_session_factory(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    events: list[str] = []
    with factory() as first:
        first.execute(text("INSERT INTO t VALUES (1)"))
        engine.dispose()  # a new pool; this session keeps its connection and turn

        def second() -> None:
            with factory() as session:
                session.execute(text("INSERT INTO t VALUES (2)"))
                events.append("second writes")
                session.commit()

        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=0.3)
        events.append("first commits")
        first.commit()
    thread.join(timeout=10)
    assert events == ["first commits", "second writes"]
    engine.dispose()


def test_a_write_that_waits_too_long_fails_and_the_turn_is_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(db, "SQLITE_WRITER_WAIT_SECONDS", 0.05)
    engine = make_engine(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/w.db"))
    factory = make_session_factory(engine)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    failed: list[BaseException] = []

    def second() -> None:
        try:
            with factory() as session:
                session.execute(text("INSERT INTO t VALUES (2)"))
        except TimeoutError as error:
            failed.append(error)

    with factory() as first:
        first.execute(text("INSERT INTO t VALUES (1)"))
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(timeout=10)
        first.commit()
    assert len(failed) == 1
    with factory() as third:
        third.execute(text("INSERT INTO t VALUES (3)"))
        third.commit()
        assert third.scalar(text("SELECT count(*) FROM t")) == 2
    engine.dispose()


def test_replicas_migrating_together_on_postgresql_both_reach_head():
    base = os.environ.get("TEST_DATABASE_URL", "")
    if not base.startswith("postgresql"):
        pytest.skip("the advisory lock is PostgreSQL's; SQLite has one writer anyway")
    for url in _postgres_database(base):
        engines = [make_engine(Settings(_env_file=None, database_url=url)) for _ in range(3)]
        try:
            with ThreadPoolExecutor(len(engines)) as pool:
                list(pool.map(upgrade_to_head, engines))  # re-raises a migrator's error
            with engines[0].connect() as connection:
                versions = connection.execute(text("SELECT version_num FROM alembic_version"))
                assert len(versions.all()) == 1
        finally:
            for engine in engines:
                engine.dispose()


def test_statement_cache_finds_a_statement_built_once_by_its_key_and_others_as_before(
    tmp_path: Path,
):
    engine = make_engine(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/c.db"))
    cache = engine.get_execution_options()["compiled_cache"]
    assert isinstance(cache, StatementCache)
    constant = select(literal(1).label("one")).where(bindparam("n", type_=Integer()) > 0)
    with engine.connect() as connection:
        assert connection.execute(constant, {"n": 1}).scalar() == 1
        assert connection.execute(constant, {"n": 0}).scalar() is None
        (key,) = [k for k in cache._by_identity if k[0] == id(constant._generate_cache_key().key)]
        # A statement of the same text built again has another key object: it is found
        # in the shared cache by value, compiled once, and gives its own answer.
        again = select(literal(2).label("one")).where(bindparam("n", type_=Integer()) > 0)
        assert connection.execute(again, {"n": 1}).scalar() == 2
        assert connection.execute(constant, {"n": 1}).scalar() == 1
    assert len(cache) == 1  # both shapes share one compiled statement
    assert key in cache._by_identity


def test_statement_cache_forgets_identities_past_its_bound_and_still_answers():
    cache = StatementCache(10)
    dialect, compiled = object(), object()
    keys = [(dialect, (n,), (), False, False) for n in range(StatementCache.MAX_IDENTITIES + 5)]
    for key in keys:
        cache[key] = compiled
    assert len(cache._by_identity) <= StatementCache.MAX_IDENTITIES
    # Forgotten by identity, found by value while the shared cache holds it; then by
    # identity again.
    assert cache.get(keys[-1]) is compiled
    assert cache.get((dialect, (keys[-1][1][0],), (), False, False)) is compiled
    assert cache.get((dialect, ("never",), (), False, False)) is None


# --- UTCDateTime's processors, one function each where SQLAlchemy chains two ----------------


def _generic(dialect: Any) -> tuple[Any, Any]:
    """The processors TypeDecorator itself builds from process_bind_param and
    process_result_value around the column type's own (the reference)."""
    typed = UTCDateTime().dialect_impl(dialect)
    return (
        TypeDecorator.bind_processor(typed, dialect),
        TypeDecorator.result_processor(typed, dialect, None),
    )


_ZONES = st.sampled_from(
    [
        UTC,
        timezone(timedelta(hours=-7)),
        timezone(timedelta(hours=5, minutes=30)),
        ZoneInfo("Europe/Madrid"),
    ]
)
_AWARE = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=_ZONES
)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), psycopg.dialect()], ids=["sqlite", "pg"])
@examples(max_examples=300)
@given(value=st.one_of(st.none(), _AWARE))
def test_utc_datetime_binds_and_reads_as_sqlalchemys_chain(dialect: Any, value: Any) -> None:
    typed = UTCDateTime()
    bind, result = (
        typed._cached_bind_processor(dialect),
        typed._cached_result_processor(dialect, None),
    )
    generic_bind, generic_result = _generic(dialect)
    written = bind(value)
    assert written == generic_bind(value)
    assert type(written) is type(generic_bind(value))
    if dialect.name == "sqlite":
        assert bind is db._sqlite_bind and result is db._sqlite_result
        read = result(written)
        assert read == generic_result(written) and read.tzinfo is UTC if read else read is None
        if written is not None:
            # The round trip keeps the instant (compared in UTC: a local time in a DST
            # gap or fold never equals another zone's, by PEP 495's rule).
            assert read == value.astimezone(UTC)
            # Text SQLite may hold from elsewhere: no microseconds, or an offset.
            for text_value in (written[:19], written[:19] + "+02:00", written + "-05:00"):
                assert result(text_value) == generic_result(text_value)
                assert result(text_value).tzinfo is UTC
    else:
        assert bind is db._utc_bind and result is db._utc_result
        assert result(value) == generic_result(value)
        assert result(None) is None
        if value is not None:
            naive = value.replace(tzinfo=None)
            assert result(naive) == generic_result(naive)


@pytest.mark.parametrize("dialect", [sqlite.dialect(), psycopg.dialect()], ids=["sqlite", "pg"])
def test_utc_datetime_refuses_naive_and_non_datetimes_as_before(dialect: Any) -> None:
    bind = UTCDateTime()._cached_bind_processor(dialect)
    generic_bind, _ = _generic(dialect)
    for wrong, error in ((datetime(2030, 1, 1), ValueError), (date(2030, 1, 1), AttributeError)):
        with pytest.raises(error):
            generic_bind(wrong)
        with pytest.raises(error):
            bind(wrong)


def test_utc_datetime_keeps_sqlalchemys_chain_for_another_sqlite_format() -> None:
    class Truncated(UTCDateTime):
        impl = sqlite.DATETIME(truncate_microseconds=True)
        cache_ok = True

    dialect = sqlite.dialect()
    bind = Truncated()._cached_bind_processor(dialect)
    assert bind not in (db._sqlite_bind, db._utc_bind)
    assert bind(datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2030-01-02 03:04:05"
