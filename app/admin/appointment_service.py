"""Appointments and conversations: the queries and writes behind app/admin/appointments.py.

Endpoints parse, authorise and answer; this module talks to the models
(endpoints → service → models). It raises no HTTP errors: it returns None or rows.
Cancel and reschedule go through the scheduling tools, so an operator's change obeys the
same rules, calendar write-through and audit as a caller's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.admin.auth import Principal
from app.models import Agent, Appointment, AppointmentStatus, Conversation, Message
from app.security import audit
from app.tools.schemas import ToolResult


def _owned_agent_ids(principal: Principal) -> Select[str]:
    return select(Agent.id).where(Agent.user_id == principal.user_id)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


def appointments_query(
    principal: Principal,
    agent_id: str | None,
    status: AppointmentStatus | None,
    channel: str | None,
    date_from: date | None,
    date_to: date | None,
) -> Select[Any]:
    """Dates are UTC calendar days: from date_from 00:00 to the end of date_to."""
    query = select(Appointment)
    if principal.user_id is not None:
        query = query.where(Appointment.agent_id.in_(_owned_agent_ids(principal)))
    if agent_id:
        query = query.where(Appointment.agent_id == agent_id)
    if status:
        query = query.where(Appointment.status == status)
    if channel:
        query = query.where(Appointment.channel == channel)
    if date_from:
        query = query.where(Appointment.start_at >= _day_start(date_from))
    if date_to:
        query = query.where(Appointment.start_at < _day_start(date_to) + timedelta(days=1))
    return query


def appointment_with_agent(
    session: Session, appointment_id: str
) -> tuple[Appointment, Agent] | None:
    row = session.get(Appointment, appointment_id)
    agent = session.get(Agent, row.agent_id) if row is not None else None
    if row is None or agent is None:
        return None
    return row, agent


def record_tool_outcome(
    session: Session, actor: str, action: str, row: Appointment, result: ToolResult
) -> Appointment:
    """Commit what the tool did, or undo it when it refused; audit either way."""
    if not result.ok:
        # Nothing changed; the refusal is still worth a line in the trail.
        session.rollback()
        session.refresh(row)
    audit.record(
        session,
        action,
        actor=actor,
        subject=row.id,
        details={"ok": result.ok, "error": result.data.get("error")},
    )
    session.commit()
    return row


def conversations_query(
    principal: Principal,
    agent_id: str | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Select[Any]:
    query = select(Conversation)
    if principal.user_id is not None:
        query = query.where(Conversation.agent_id.in_(_owned_agent_ids(principal)))
    if agent_id:
        query = query.where(Conversation.agent_id == agent_id)
    if channel:
        query = query.where(Conversation.channel == channel)
    if since:
        query = query.where(Conversation.created_at >= since)
    if until:
        query = query.where(Conversation.created_at < until)
    return query


def conversation_with_owner(
    session: Session, conversation_id: str
) -> tuple[Conversation, str | None] | None:
    """The conversation and the user id owning its agent (None when it has no agent)."""
    row = session.get(Conversation, conversation_id)
    if row is None:
        return None
    agent = session.get(Agent, row.agent_id) if row.agent_id else None
    return row, agent.user_id if agent else None


def transcript(session: Session, conversation_id: str) -> Sequence[Message]:
    return session.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
    ).all()
