"""Agents and their calendar connection: the queries and writes behind app/admin/agents.py.

Endpoints parse, authorise and answer; this module talks to the models
(endpoints → service → models). It raises no HTTP errors: it returns None or rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.admin import schemas as s
from app.admin.auth import Principal
from app.calendar.backend import CalendarFactory
from app.calendar.two_way import stop_push
from app.models import Agent, CalendarConnection
from app.security import audit
from app.security.pins import hash_pin

# Fields copied as they are; pin, the type list and the clear_* flags need care.
PLAIN_FIELDS = (
    "name",
    "greeting",
    "instructions",
    "timezone",
    "weekly_hours",
    "slot_step_minutes",
    "min_notice_minutes",
    "horizon_days",
    "daily_cap",
    "caller_id_policy",
    "language",
    "voice",
    "address",
    "services_description",
    "voice_mode",
    "active",
)


def apply_fields(row: Agent, body: s.AgentFields, fields_set: set[str]) -> list[str]:
    """Copy the fields the client sent onto the agent (not committed); the admin API and
    the dashboard both save through here. Returns the names of the fields changed."""
    changed = []
    for field in PLAIN_FIELDS:
        if field in fields_set:
            value = getattr(body, field)
            if value is None and field != "daily_cap":
                continue  # null means "unchanged" for required columns
            setattr(row, field, value)
            changed.append(field)
    if "appointment_types" in fields_set and body.appointment_types is not None:
        row.appointment_types = [t.model_dump() for t in body.appointment_types]
        changed.append("appointment_types")
    if "faq" in fields_set and body.faq is not None:
        row.faq = [entry.model_dump() for entry in body.faq]
        changed.append("faq")
    if "pin" in fields_set and body.pin is not None:
        row.pin_hash = hash_pin(body.pin)
        changed.append("pin")
    return changed


def agents_query(principal: Principal, user_id: str | None, active: bool | None) -> Select[Any]:
    query = principal.scoped(select(Agent), Agent.user_id)
    if user_id:
        query = query.where(Agent.user_id == user_id)
    if active is not None:
        query = query.where(Agent.active.is_(active))
    return query


def agent_by_id(session: Session, agent_id: str) -> Agent | None:
    return session.get(Agent, agent_id)


def create_agent(session: Session, actor: str, owner_id: str, body: s.AgentCreate) -> Agent:
    row = Agent(user_id=owner_id, name=body.name, timezone=body.timezone)
    changed = apply_fields(row, body, body.model_fields_set | {"name", "timezone"})
    session.add(row)
    session.flush()
    audit.record(
        session,
        "admin.agent.created",
        actor=actor,
        subject=row.id,
        details={"user_id": owner_id, "fields": sorted(changed)},
    )
    session.commit()
    return row


def update_agent(session: Session, actor: str, row: Agent, body: s.AgentUpdate) -> Agent:
    changed = apply_fields(row, body, body.model_fields_set)
    if body.clear_pin:
        row.pin_hash = None
        changed.append("pin")
    if body.clear_daily_cap:
        row.daily_cap = None
        changed.append("daily_cap")
    audit.record(
        session,
        "admin.agent.updated",
        actor=actor,
        subject=row.id,
        details={"fields": sorted(set(changed))},
    )
    session.commit()
    return row


def connection_of(session: Session, agent: Agent) -> CalendarConnection | None:
    return session.scalar(select(CalendarConnection).where(CalendarConnection.agent_id == agent.id))


def disconnect_calendar(
    session: Session,
    actor: str,
    calendar_factory: CalendarFactory,
    agent: Agent,
    row: CalendarConnection,
) -> CalendarConnection:
    # Stop the provider's pushes while the token can still do it.
    stop_push(session, calendar_factory, agent)
    row.status = "disconnected"
    row.encrypted_refresh_token = None
    agent.calendar_provider = "local"
    audit.record(session, "admin.calendar.disconnected", actor=actor, subject=agent.id)
    session.commit()
    return row


def record_link_created(session: Session, actor: str, agent: Agent, texted: int) -> None:
    audit.record(
        session,
        "admin.calendar.link_created",
        actor=actor,
        subject=agent.id,
        details={"texted_to": texted},
    )
    session.commit()
