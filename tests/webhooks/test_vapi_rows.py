"""The VAPI claim's read-ahead as plain columns (app/webhooks/vapi_rows.py): the same
routing rows, agent views and conversation as routing's ORM lookup and the entity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from app import routing, sql_fast
from app.demo import DemoData
from app.models import Agent, Conversation, PhoneNumber, ReminderSettings
from app.notifications.plan import DEFAULT_POLICY, planning_of
from app.routing import LookedUp, numbers_of, route
from app.security.idempotency import ClaimRequest
from app.tools import service
from app.turn_rows import (
    AGENT_FIELDS,
    AGENT_WIDTH,
    AgentView,
    ConversationRow,
    agent_at,
    conversation_at,
)
from app.webhooks import vapi

UNKNOWN = "+14155550999"


def _read_ahead(session: Session, caller: str, dialled: str | None, call_id: str) -> Any:
    statement, layout = vapi._read_ahead(with_claim=False)
    params = {**numbers_of(caller, dialled), "call_id": call_id, "caller": caller}
    return sql_fast.execute(session, statement, params).rows, layout


def _expected(session: Session, demo: DemoData, numbers: list[str]) -> list[tuple[Any, ...]]:
    """Each demo number found, with the demo agent it leads to (its own line, or the
    owner's only agent), from the entities."""
    agent = AgentView.of(session.get_one(Agent, demo.agent_id))
    found = session.scalars(select(PhoneNumber).where(PhoneNumber.e164.in_(numbers))).all()
    return sorted(((n.e164, n.purpose, n.user_id, n.verified_at, agent) for n in found), key=repr)


@pytest.mark.parametrize("line", [True, False])
def test_the_read_ahead_finds_what_routing_finds(session: Session, demo: DemoData, line: bool):
    dialled = demo.dedicated_line if line else None
    rows, layout = _read_ahead(session, demo.caller, dialled, "call_none")
    looked = [layout.looked_up(row) for row in rows]
    numbers = [demo.caller, *([dialled] if dialled else [])]
    assert sorted((tuple(r) for r in looked), key=repr) == _expected(session, demo, numbers)
    assert all(isinstance(r.Agent, AgentView) for r in looked if r.Agent is not None)
    assert route(session, demo.caller, dialled, looked_up=looked) == route(  # type: ignore[arg-type]
        session, demo.caller, dialled
    )
    assert layout.conversation(rows[0]) is None
    # No conversation yet: the caller's known name rides along (the demo owner calls).
    assert any(row.owner_name for row in rows)
    assert planning_of(rows[0]) == (DEFAULT_POLICY, demo.dedicated_line)


def test_an_unknown_caller_is_still_one_row(session: Session, demo: DemoData):
    rows, layout = _read_ahead(session, UNKNOWN, None, "call_none")
    assert [tuple(layout.looked_up(row)) for row in rows] == [(None, None, None, None, None)]
    assert isinstance(route(session, UNKNOWN, None, looked_up=[]), routing.Unrouted)


def test_the_call_s_conversation_is_read_as_a_row(session: Session, demo: DemoData):
    session.add(
        Conversation(
            id="cnv_read",
            channel="vapi",
            external_id="call_read",
            caller_e164=demo.caller,
            agent_id=demo.agent_id,
            state={"step": 2},
            details={"vapi": {"pin_verified": True}},
            status="active",
        )
    )
    session.add(ReminderSettings(agent_id=demo.agent_id, reminders_enabled=False))
    session.commit()
    rows, layout = _read_ahead(session, demo.caller, demo.dedicated_line, "call_read")
    found = layout.conversation(rows[0])
    assert isinstance(found, ConversationRow)
    assert (found.id, found.channel, found.external_id) == ("cnv_read", "vapi", "call_read")
    assert (found.caller_e164, found.agent_id) == (demo.caller, demo.agent_id)
    assert (found.state, found.details, found.status) == (
        {"step": 2},
        {"vapi": {"pin_verified": True}},
        "active",
    )
    assert found.stored == (found.state, found.details, found.status)
    # A known conversation: no name is looked for; the agent's own settings are read.
    assert not any(row.owner_name or row.contact_name for row in rows)
    policy, _ = planning_of(next(row for row in rows if row.agent_id is not None))
    assert policy.reminders_enabled is False


def test_a_row_without_an_agent_or_conversation_is_none():
    assert agent_at((None,) * AGENT_WIDTH, 0) is None
    assert conversation_at((None,) * 8, 0) is None
    values = ["x"] * AGENT_WIDTH
    for name in ("weekly_hours", "appointment_types", "faq"):
        values[AGENT_FIELDS.index(name)] = '{"a": 1}'
    view = agent_at(["pad", *values], 1)
    assert view is not None and view.weekly_hours == {"a": 1} and view.id == "x"
    assert LookedUp(None, None, None, None, None).Agent is None


def _both_ways(factory: sessionmaker[Session], statement: Any, params: dict[str, Any]) -> Any:
    """The statement's rows through SQLAlchemy's execution and through sql_fast, each in a
    transaction rolled back after."""
    found = []
    for fast in (False, True):
        with factory() as session:
            if fast:
                result: Any = sql_fast.execute(session, statement, params)
                rows, count = result.rows, result.rowcount
            else:
                result = session.connection().execute(statement, params)
                rows, count = (list(result) if result.returns_rows else []), result.rowcount
            found.append([tuple(row) for row in rows] or [count])
            session.rollback()
    return found


@pytest.mark.parametrize("with_claim", [False, True])
def test_the_read_ahead_reads_the_same_both_ways(
    session_factory: sessionmaker[Session], db_engine: Engine, demo: DemoData, with_claim: bool
):
    if with_claim and db_engine.dialect.name != "postgresql":
        pytest.skip("the claim rides on the read only on PostgreSQL")
    statement, _ = vapi._read_ahead(with_claim=with_claim)
    params = {**numbers_of(demo.caller, demo.dedicated_line), "call_id": "c", "caller": demo.caller}
    if with_claim:
        request = ClaimRequest("vapi", "tc|x", "tool-call", {"name": "n"}, datetime.now(UTC))
        params.update(request.params())
    reference, fast = _both_ways(session_factory, statement, params)
    if with_claim:  # a sequence moves on past the rolled-back claim
        assert all(row[0] is not None for row in reference + fast)
        reference, fast = [r[1:] for r in reference], [r[1:] for r in fast]
    assert fast == reference and len(fast) == 2


def test_the_booking_inserts_send_the_same_both_ways(
    session_factory: sessionmaker[Session], db_engine: Engine, demo: DemoData
):
    now = datetime.now(UTC)
    conversation = ConversationRow(
        "cnv_both", "vapi", "call_both", demo.caller, demo.agent_id, {}, {"a": 1}, "active"
    )
    row = {
        **service._NEW_APPOINTMENT,
        "id": "apt_both",
        "agent_id": demo.agent_id,
        "appointment_type": "consultation",
        "start_at": now + timedelta(days=2),
        "end_at": now + timedelta(days=2, minutes=30),
        "contact_e164": demo.caller,
        "idempotency_key": "request:both",
        "channel": "vapi",
        "created_at": now,
        "updated_at": now,
    }
    dialect = db_engine.dialect.name
    assert (
        _both_ways(session_factory, service._insert_appointment(dialect), row)
        == [[("apt_both",)]] * 2
    )
    written = service._conversation_row(conversation)
    if dialect == "postgresql":
        params = dict(zip(service._CONVERSATION_PARAMS, written.values(), strict=True))
        statement = service._insert_appointment_and_conversation()
        both = _both_ways(
            session_factory, statement, {**row, **params, "conversation_id": "cnv_both"}
        )
        assert both == [[("apt_both",)]] * 2
    else:
        assert _both_ways(session_factory, service._INSERT_CONVERSATION, written) == [[1], [1]]
