"""Migration 0006_perf: entries written under the old chained scheme are signed with the
configured key and sealed by the first seal, so `audit verify` covers them too."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

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


def _upgrade(engine: Engine, revision: str) -> None:
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.attributes["configure_logging"] = False
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


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
