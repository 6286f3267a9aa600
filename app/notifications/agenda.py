"""The owner's daily agenda: one SMS per agent and local day, at the chosen local time.

The periodic job writes the row (unique per agent and day, so any number of workers
running it write one); delivery sends it like any other notification.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.models import Agent, Appointment, AppointmentStatus, Notification, ReminderSettings, new_id
from app.notifications.plan import owner_number, sending_number
from app.notifications.timing import local_time_today, parse_hhmm

# An agenda not written within this long after its time (workers down) is not sent late.
LATE_CUTOFF = timedelta(hours=1)


def agenda_text(session: Session, agent: Agent, day_start: datetime, zone: ZoneInfo) -> str:
    rows = session.execute(
        select(Appointment.start_at, Appointment.appointment_type, Appointment.contact_name)
        .where(
            Appointment.agent_id == agent.id,
            Appointment.status == AppointmentStatus.CONFIRMED,
            Appointment.start_at >= day_start,
            Appointment.start_at < day_start + timedelta(days=1),
        )
        .order_by(Appointment.start_at)
    ).all()
    if not rows:
        return f"{agent.name}: no appointments today."
    items = [
        f"{start.astimezone(zone):%I:%M %p}".lstrip("0") + f" {kind} ({name or 'no name'})"
        for start, kind, name in rows
    ]
    return f"{agent.name} today ({len(rows)}): " + "; ".join(items)


def schedule_agendas(session: Session, now: datetime) -> int:
    """Write today's agenda for every opted-in agent whose agenda time has come."""
    written = 0
    candidates = session.execute(
        select(Agent, ReminderSettings.daily_agenda_time)
        .join(ReminderSettings, ReminderSettings.agent_id == Agent.id)
        .where(
            Agent.active.is_(True),
            ReminderSettings.owner_notifications.is_(True),
            ReminderSettings.daily_agenda_time.is_not(None),
        )
    ).all()
    for agent, at in candidates:
        zone = ZoneInfo(agent.timezone)
        due = local_time_today(now, parse_hhmm(at or ""), zone)
        owner = owner_number(session, agent)
        if owner is None or not (due <= now < due + LATE_CUTOFF):
            continue
        day = due.astimezone(zone).date()
        midnight = datetime.combine(day, datetime.min.time()).replace(tzinfo=zone)
        written += _insert_once(
            session,
            agent_id=agent.id,
            to=owner,
            sender=sending_number(session, agent.id),
            body=agenda_text(session, agent, midnight, zone),
            due=due,
            key=f"agenda:{agent.id}:{day.isoformat()}",
        )
    return written


def _insert_once(
    session: Session, *, agent_id: str, to: str, sender: str, body: str, due: datetime, key: str
) -> int:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = session.execute(
        insert(Notification)
        .values(
            id=new_id("ntf"),
            agent_id=agent_id,
            kind="owner_agenda",
            channel="sms",
            to_e164=to,
            from_e164=sender,
            body=body,
            due_at=due,
            status="scheduled",
            attempts=0,
            dedupe_key=key,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Notification.id)
    )
    return len(result.all())
