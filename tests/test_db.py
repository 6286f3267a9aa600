"""SQLite write turns are handed out in the process, in order, and always given back."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text

from app.config import Settings
from app.db import make_engine, make_session_factory, read_only, upgrade_to_head
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
