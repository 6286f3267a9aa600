"""SQLite write turns are handed out in the process, in order, and always given back."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Integer, bindparam, literal, select, text

from app.config import Settings
from app.db import (
    StatementCache,
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
