"""The name a caller last gave an agent, read at every turn, comes from an index in order:
not by sorting every booking the caller ever made with the agent."""

from __future__ import annotations

from sqlalchemy import Engine

from app.agent.conversations import _CONTACT_NAME
from tests.query_plans import plan_of


def test_the_callers_known_name_is_read_in_index_order(db_engine: Engine):
    statement = _CONTACT_NAME.params(agent_id="agt_x", caller="+14155550177")
    plan = plan_of(db_engine, statement)
    assert "ix_appointments_agent_contact_created" in plan, plan
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
