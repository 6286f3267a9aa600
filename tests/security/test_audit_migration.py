"""Migration 0006_perf: entries written under the old chained scheme are signed with the
configured key and sealed by the first seal, so `audit verify` covers them too."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.config import Config
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from alembic import command
from app.config import PROJECT_ROOT, Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.security import audit
from tests.conftest import _postgres_database


@pytest.fixture
def fresh_engine(tmp_path: Path) -> Iterator[Engine]:
    base = os.environ.get("TEST_DATABASE_URL")
    if base and base.startswith("postgresql"):
        urls = _postgres_database(base)
        url = next(urls)
    else:
        urls, url = None, f"sqlite:///{tmp_path / 'migrate.db'}"
    engine = make_engine(Settings(_env_file=None, database_url=url))
    yield engine
    engine.dispose()
    if urls is not None:
        next(urls, None)


def _migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    """Alembic's `step` (command.upgrade or command.downgrade) to `revision` on `engine`."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.attributes["configure_logging"] = False
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        step(config, revision)


def _upgrade(engine: Engine, revision: str) -> None:
    _migrate(engine, command.upgrade, revision)


def test_old_entries_are_signed_and_sealed_after_the_upgrade(fresh_engine: Engine):
    _upgrade(fresh_engine, "0005")
    at = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    # Written as the old code wrote it: SQLite keeps naive UTC.
    stored = at if fresh_engine.dialect.name == "postgresql" else at.replace(tzinfo=None)
    with fresh_engine.begin() as connection:
        for n in range(3):
            connection.execute(
                text(
                    "INSERT INTO audit_log (at, actor, action, subject, details, prev_hash, hash)"
                    " VALUES (:at, 'tester', 'old.event', :subject, :details, :prev, :hash)"
                ),
                {
                    "at": stored,
                    "subject": f"s{n}",
                    "details": f'{{"n": {n}}}',
                    "prev": f"{n:064d}",
                    "hash": f"{n + 1:064d}",
                },
            )
    upgrade_to_head(fresh_engine)
    factory = make_session_factory(fresh_engine)
    with factory() as session:
        report = audit.verify_chain(session)
    assert report.ok and report.entries == 3 and report.sealed == 0
    assert audit.seal_all(factory) == 3
    with factory() as session:
        report = audit.verify_chain(session)
        assert report.ok and report.sealed == 3
        session.execute(text("UPDATE audit_log SET subject = 'x' WHERE subject = 's1'"))
        session.commit()
        assert not audit.verify_chain(session).ok


def _downgrade(engine: Engine, revision: str) -> None:
    _migrate(engine, command.downgrade, revision)


def _chain_key_indexes(engine: Engine) -> dict[str, str]:
    """The definitions of the indexes that hold the chain's keys, by name."""
    if engine.dialect.name == "postgresql":
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_log'"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'audit_log'"
    with engine.connect() as connection:
        rows = connection.execute(text(query)).all()
    return {name: definition for name, definition in rows if name.startswith("uq_audit_log_")}


def _insert_entry(engine: Engine, n: int, seq: int | None, hash_: str | None) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO audit_log (at, actor, action, subject, details, mac, seq, hash)"
                " VALUES (CURRENT_TIMESTAMP, 'tester', 'e', :subject, '{}', 'm', :seq, :hash)"
            ),
            {"subject": f"s{n}", "seq": seq, "hash": hash_},
        )


def test_the_chain_keys_are_unique_among_sealed_entries_and_unsealed_ones_hold_none(
    fresh_engine: Engine,
):
    # An unsealed entry (no seq, no hash yet) writes no key to either index: a UNIQUE
    # constraint's index held a NULL key for every entry, a page written per turn.
    upgrade_to_head(fresh_engine)
    definitions = _chain_key_indexes(fresh_engine)
    assert set(definitions) == {"uq_audit_log_seq", "uq_audit_log_hash"}
    for key in ("seq", "hash"):
        definition = definitions[f"uq_audit_log_{key}"]
        bare = definition.replace("(", "").replace(")", "")  # PostgreSQL's WHERE (...)
        assert "UNIQUE" in definition and f"WHERE {key} IS NOT NULL" in bare
    _insert_entry(fresh_engine, 1, None, None)
    _insert_entry(fresh_engine, 2, None, None)
    _insert_entry(fresh_engine, 3, 1, "a" * 64)
    for seq, hash_ in ((1, "b" * 64), (2, "a" * 64)):
        with pytest.raises(IntegrityError):
            _insert_entry(fresh_engine, 4, seq, hash_)

    # And back: the constraints as they were, with the entries kept.
    _downgrade(fresh_engine, "0009_ms365")
    assert set(_chain_key_indexes(fresh_engine)) <= {"uq_audit_log_seq", "uq_audit_log_hash"}
    with pytest.raises(IntegrityError):
        _insert_entry(fresh_engine, 5, 1, "c" * 64)
    upgrade_to_head(fresh_engine)
    with fresh_engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM audit_log")) == 3
