"""The reminder read-along of every SMS turn finds its row by index, not by scanning the
agent's whole notification history."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select, text

from app.notifications.replies import reminded_appointment_id


def test_reminder_read_along_uses_the_agent_person_index(db_engine: Engine):
    subquery, params = reminded_appointment_id("agt_x", "+14155550177", datetime.now(UTC))
    statement = select(subquery).params(**params)
    sql = str(statement.compile(db_engine, compile_kwargs={"literal_binds": True}))
    with db_engine.connect() as connection:
        if db_engine.dialect.name == "postgresql":
            # Empty tables: without this the planner rightly prefers a sequential scan.
            connection.execute(text("SET LOCAL enable_seqscan = off"))
            rows = connection.exec_driver_sql("EXPLAIN " + sql).all()
        else:
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
        plan = "\n".join(str(row) for row in rows)
    assert "ix_notifications_agent_to_sent" in plan, plan
