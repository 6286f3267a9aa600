"""Notifications, reminder settings, attendance and reminder analytics: the queries and
writes behind app/admin/notifications.py.

Endpoints parse, authorise and answer; this module talks to the models
(endpoints → service → models). It raises no HTTP errors: it returns None or rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.admin.auth import Principal
from app.models import Agent, Appointment, Attendance, Notification, ReminderSettings
from app.notifications.plan import settings_for
from app.security import audit

# Statuses of a notification that left us (handed to Twilio), whatever came of it.
SENT = ("sent", "delivered", "undelivered", "unknown")


@dataclass(frozen=True)
class ReminderCounts:
    reminders_sent: int
    reminders_delivered: int
    confirmations: int
    attendance_marked: int
    no_shows: int


def notifications_query(
    principal: Principal,
    agent_id: str | None,
    appointment_id: str | None,
    status: str | None,
    kind: str | None,
) -> Select[Any]:
    query = select(Notification)
    if principal.user_id is not None:
        owned = select(Agent.id).where(Agent.user_id == principal.user_id)
        query = query.where(Notification.agent_id.in_(owned))
    for column, value in (
        (Notification.agent_id, agent_id),
        (Notification.appointment_id, appointment_id),
        (Notification.status, status),
        (Notification.kind, kind),
    ):
        if value:
            query = query.where(column == value)
    return query


def reminder_settings(session: Session, agent_id: str) -> ReminderSettings:
    """The agent's settings, or the defaults (not stored) when it has none yet."""
    return settings_for(session, agent_id)


def apply_reminder_settings(
    session: Session, agent_id: str, values: dict[str, Any]
) -> ReminderSettings:
    """Replace the agent's reminder settings with validated values (not committed);
    the admin API and the dashboard both save through here."""
    row = session.get(ReminderSettings, agent_id) or ReminderSettings(agent_id=agent_id)
    for name, value in values.items():
        setattr(row, name, value)
    row.offsets_minutes = sorted(set(values["offsets_minutes"]), reverse=True)
    session.add(row)
    return row


def write_reminder_settings(
    session: Session, actor: str, agent_id: str, values: dict[str, Any]
) -> ReminderSettings:
    row = apply_reminder_settings(session, agent_id, values)
    audit.record(session, "agent.reminder_settings", actor=actor, subject=agent_id, details=values)
    session.commit()
    return row


def mark_attendance(
    session: Session, actor: str, appointment: Appointment, outcome: str, now: datetime
) -> Attendance:
    row = session.get(Attendance, appointment.id) or Attendance(appointment_id=appointment.id)
    row.outcome, row.outcome_at = outcome, now
    session.add(row)
    audit.record(
        session,
        "appointment.attendance_marked",
        actor=actor,
        subject=appointment.id,
        details={"outcome": outcome, "agent_id": appointment.agent_id},
    )
    session.commit()
    return row


def reminder_counts(
    session: Session, start: datetime, end: datetime, agent_id: str | None, owner_id: str | None
) -> ReminderCounts:
    """Counted over appointments starting in [start, end), of one agent and/or one owner."""
    ids = select(Appointment.id).where(Appointment.start_at >= start, Appointment.start_at < end)
    if agent_id:
        ids = ids.where(Appointment.agent_id == agent_id)
    if owner_id is not None:
        ids = ids.join(Agent, Agent.id == Appointment.agent_id).where(Agent.user_id == owner_id)
    reminders = (
        select(Notification.status, func.count())
        .where(
            Notification.appointment_id.in_(ids),
            Notification.kind.in_(("reminder", "reminder_call")),
            Notification.status.in_(SENT),
        )
        .group_by(Notification.status)
    )
    by_status: dict[str, int] = dict(session.execute(reminders).tuples().all())
    marks: dict[str | None, int] = dict(
        session.execute(
            select(Attendance.outcome, func.count())
            .where(Attendance.appointment_id.in_(ids), Attendance.outcome.is_not(None))
            .group_by(Attendance.outcome)
        )
        .tuples()
        .all()
    )
    confirmations = session.scalar(
        select(func.count()).where(
            Attendance.appointment_id.in_(ids), Attendance.confirmed_at.is_not(None)
        )
    )
    return ReminderCounts(
        reminders_sent=sum(by_status.values()),
        reminders_delivered=by_status.get("delivered", 0),
        confirmations=confirmations or 0,
        attendance_marked=sum(marks.values()),
        no_shows=marks.get("no_show", 0),
    )
