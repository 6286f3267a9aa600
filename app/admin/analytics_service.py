"""Analytics computed in SQL (GROUP BY in the database, not in Python), on SQLite and
PostgreSQL alike; the queries behind app/admin/analytics.py. Buckets are UTC days or
hours, labelled as text by the database.

Endpoints parse, authorise and answer; this module talks to the models
(endpoints → service → models). It raises no HTTP errors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from app.admin import schemas as s
from app.models import Agent, Appointment, Conversation, Message

Granularity = Literal["day", "hour"]
CALL_CHANNELS = ("voice", "vapi")


def agent_scope(owner_id: str | None, agent_id: str | None) -> Any:
    """The agent ids to count: an owner's, one agent, both, or None for every agent."""
    agent_ids: Any = None
    if owner_id is not None:
        agent_ids = select(Agent.id).where(Agent.user_id == owner_id)
    if agent_id:
        agent_ids = (
            select(Agent.id).where(Agent.id == agent_id)
            if agent_ids is None
            else agent_ids.where(Agent.id == agent_id)
        )
    return agent_ids


def bucket(column: Any, granularity: Granularity, dialect: str) -> ColumnElement[str]:
    if dialect == "postgresql":
        fmt = "YYYY-MM-DD" if granularity == "day" else 'YYYY-MM-DD"T"HH24'
        return func.to_char(func.timezone("UTC", column), fmt)
    fmt = "%Y-%m-%d" if granularity == "day" else "%Y-%m-%dT%H"
    return func.strftime(fmt, column)


def _agent_filter(column: Any, agent_ids: Any) -> ColumnElement[bool]:
    return column.in_(agent_ids) if agent_ids is not None else literal(True)


def traffic(
    session: Session,
    start: datetime,
    end: datetime,
    granularity: Granularity,
    agent_ids: Any,
) -> list[s.Bucket]:
    dialect = session.get_bind().dialect.name
    calls = select(
        bucket(Conversation.created_at, granularity, dialect).label("b"),
        literal(1).label("calls"),
        literal(0).label("messages"),
    ).where(
        Conversation.channel.in_(CALL_CHANNELS),
        Conversation.created_at >= start,
        Conversation.created_at < end,
        _agent_filter(Conversation.agent_id, agent_ids),
    )
    texts = (
        select(
            bucket(Message.created_at, granularity, dialect).label("b"),
            literal(0).label("calls"),
            literal(1).label("messages"),
        )
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Conversation.channel == "sms",
            Message.created_at >= start,
            Message.created_at < end,
            _agent_filter(Conversation.agent_id, agent_ids),
        )
    )
    both = union_all(calls, texts).subquery()
    rows = session.execute(
        select(both.c.b, func.sum(both.c.calls), func.sum(both.c.messages))
        .group_by(both.c.b)
        .order_by(both.c.b)
    )
    return [s.Bucket(bucket=b, calls=int(c), messages=int(m)) for b, c, m in rows]


def bookings_per_agent(
    session: Session, start: datetime, end: datetime, agent_ids: Any
) -> list[s.AgentBookings]:
    booked_in = (Appointment.created_at >= start) & (Appointment.created_at < end)
    cancelled_in = (Appointment.cancelled_at >= start) & (Appointment.cancelled_at < end)
    rows = session.execute(
        select(
            Appointment.agent_id,
            func.sum(case((booked_in, 1), else_=0)),
            func.sum(case((cancelled_in, 1), else_=0)),
        )
        .where(or_(booked_in, cancelled_in), _agent_filter(Appointment.agent_id, agent_ids))
        .group_by(Appointment.agent_id)
        .order_by(Appointment.agent_id)
    )
    return [s.AgentBookings(agent_id=a, bookings=int(b), cancellations=int(c)) for a, b, c in rows]


def conversion_per_channel(
    session: Session, start: datetime, end: datetime, agent_ids: Any
) -> list[s.ChannelConversion]:
    rows = session.execute(
        select(
            Conversation.channel,
            func.count(func.distinct(Conversation.id)),
            func.count(func.distinct(Appointment.conversation_id)),
        )
        .outerjoin(Appointment, Appointment.conversation_id == Conversation.id)
        .where(
            Conversation.created_at >= start,
            Conversation.created_at < end,
            _agent_filter(Conversation.agent_id, agent_ids),
        )
        .group_by(Conversation.channel)
        .order_by(Conversation.channel)
    )
    return [
        s.ChannelConversion(
            channel=channel,
            conversations=int(total),
            with_booking=int(booked),
            conversion=round(booked / total, 4) if total else 0.0,
        )
        for channel, total, booked in rows
    ]
