from __future__ import annotations

import pytest
from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings
from app.models import AuditEntry
from app.security import audit


def write_entries(factory: sessionmaker[Session], count: int) -> None:
    for i in range(count):
        with factory() as session:
            audit.record(
                session,
                "test.event",
                actor="tester",
                subject=f"s{i}",
                details={"n": i, "caller": "+14155550123", "auth_token": "abc"},
            )
            session.commit()


def test_entries_chain_and_hide_secrets_and_numbers(session_factory, session: Session):
    write_entries(session_factory, 3)
    rows = session.query(AuditEntry).order_by(AuditEntry.id).all()
    assert rows[0].prev_hash == audit.GENESIS_HASH
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert rows[0].details["auth_token"] == "[redacted]"
    assert rows[0].details["caller"] == "+1••••••0123"
    assert audit.verify_chain(session).ok


def test_rolled_back_work_leaves_no_audit_entry(session_factory, session: Session):
    with session_factory() as other:
        audit.record(other, "test.event", actor="tester")
        other.rollback()
        other.commit()
    assert session.query(AuditEntry).count() == 0


def test_altered_entry_is_found(session_factory, session: Session):
    write_entries(session_factory, 4)
    third = session.query(AuditEntry).order_by(AuditEntry.id).all()[2]
    session.execute(update(AuditEntry).where(AuditEntry.id == third.id).values(actor="mallory"))
    session.commit()
    report = audit.verify_chain(session)
    assert not report.ok and report.first_bad_id == third.id and report.entries == 2


def test_removed_entry_breaks_the_chain(session_factory, session: Session):
    write_entries(session_factory, 4)
    second = session.query(AuditEntry).order_by(AuditEntry.id).all()[1]
    session.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": second.id})
    session.commit()
    report = audit.verify_chain(session)
    assert not report.ok and report.reason == "link to previous entry broken"


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_audit_verify_command(cli_env, session_factory, session: Session):
    write_entries(session_factory, 2)
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0 and "intact: 2 entries" in ok.output
    session.execute(update(AuditEntry).values(details={"n": 99}))
    session.commit()
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1
