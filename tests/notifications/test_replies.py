"""The reminder read-along of every SMS turn finds its row by index, not by scanning the
agent's whole notification history."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from app.notifications.replies import reminded_appointment_id
from tests.query_plans import plan_of


def test_reminder_read_along_uses_the_agent_person_index(db_engine: Engine):
    subquery, params = reminded_appointment_id("agt_x", "+14155550177", datetime.now(UTC))
    plan = plan_of(db_engine, select(subquery).params(**params))
    assert "ix_notifications_agent_to_sent" in plan, plan
