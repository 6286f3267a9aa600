"""Migration 0011_booking_keys: a booking writes no index that serves nothing."""

from __future__ import annotations

from sqlalchemy import Engine, text

from app.db import upgrade_to_head
from tests.security.test_audit_migration import _downgrade, fresh_engine

__all__ = ["fresh_engine"]  # the fixture, shared with the audit migration's tests


def _indexes(engine: Engine, table: str) -> dict[str, str]:
    if engine.dialect.name == "postgresql":
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :table"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :table"
    with engine.connect() as connection:
        rows = connection.execute(text(query), {"table": table}).all()
    return {name: definition for name, definition in rows}


def test_the_sid_is_unique_among_sent_rows_and_the_prefix_index_is_gone(fresh_engine: Engine):
    upgrade_to_head(fresh_engine)
    appointments = _indexes(fresh_engine, "appointments")
    assert "ix_appointments_agent_start" not in appointments
    assert "ix_appointments_agent_start_id" in appointments  # it answers the same queries
    sid = _indexes(fresh_engine, "notifications")["uq_notifications_provider_sid"]
    assert "UNIQUE" in sid
    assert "WHERE provider_sid IS NOT NULL" in sid.replace("(", "").replace(")", "")
    if fresh_engine.dialect.name == "sqlite":
        with fresh_engine.connect() as connection:
            plan = connection.execute(
                text("EXPLAIN QUERY PLAN SELECT id FROM notifications WHERE provider_sid = 'SM1'")
            ).all()
        assert "uq_notifications_provider_sid" in str(plan)

    _downgrade(fresh_engine, "0010_audit_keys")
    assert "ix_appointments_agent_start" in _indexes(fresh_engine, "appointments")
    # The constraint again: SQLite's index of it is unnamed, PostgreSQL's has no WHERE.
    restored = _indexes(fresh_engine, "notifications").get("uq_notifications_provider_sid")
    assert restored is None or "WHERE" not in restored
    upgrade_to_head(fresh_engine)
