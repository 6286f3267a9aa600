"""Notifications in the admin API: list and filter them, per-agent reminder settings,
attendance marked by the owner, and reminder analytics (sent, confirmed, no-shows)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from app.admin import agent_service, appointment_service, notification_service
from app.admin.auth import Operator, Principal, ReadOnly
from app.admin.errors import ApiError, not_found
from app.admin.pagination import DEFAULT_LIMIT, Order, Page, paginate
from app.admin.users import Cursor, Limit
from app.deps import ServicesDep, SessionDep
from app.models import Agent, AppointmentStatus, Notification, ReminderSettings
from app.phone import mask

router = APIRouter()
NOT_MARKABLE: dict[int | str, dict[str, Any]] = {
    409: {"description": "only a booked appointment that has started"}
}
BAD_RANGE: dict[int | str, dict[str, Any]] = {
    400: {"description": "until before since, or more than 366 days"}
}
Status = Literal[
    "scheduled", "sending", "sent", "delivered", "undelivered", "failed", "skipped", "unknown"
]
Kind = Literal[
    "confirmation",
    "reminder",
    "reminder_call",
    "owner_booked",
    "owner_moved",
    "owner_cancelled",
    "owner_agenda",
]
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class NotificationOut(BaseModel):
    id: str
    agent_id: str
    appointment_id: str | None
    kind: str
    channel: str
    to: str = Field(description="Masked recipient number")
    body: str
    status: str
    reason: str | None
    due_at: datetime
    send_at: datetime = Field(
        description="When it goes out: its due time, or earlier when a burst starts early"
    )
    sent_at: datetime | None
    status_at: datetime | None
    attempts: int
    created_at: datetime


class ReminderSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reminders_enabled: bool = True
    offsets_minutes: list[Annotated[int, Field(ge=5, le=14 * 24 * 60)]] = Field(
        default=[1440, 120], max_length=5, description="Minutes before the start"
    )
    quiet_start: str = Field("21:00", examples=["21:00"])
    quiet_end: str = Field("08:00", examples=["08:00"])
    confirmations_enabled: bool = True
    owner_notifications: bool = False
    daily_agenda_time: str | None = Field(None, examples=["07:30"])
    reminder_calls: bool = False

    @field_validator("quiet_start", "quiet_end", "daily_agenda_time")
    @classmethod
    def _hhmm(cls, value: str | None) -> str | None:
        if value is not None and not HHMM.match(value):
            raise ValueError("use 24-hour HH:MM")
        return value


class ReminderSettingsOut(ReminderSettingsIn):
    agent_id: str


class AttendanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["attended", "no_show"]


class AttendanceOut(BaseModel):
    appointment_id: str
    confirmed_at: datetime | None
    confirmed_via: str | None
    outcome: str | None
    outcome_at: datetime | None


class ReminderAnalytics(BaseModel):
    since: date
    until: date
    reminders_sent: int = Field(description="Reminders handed to Twilio (SMS and calls)")
    reminders_delivered: int
    confirmations: int = Field(description="Appointments whose person confirmed attendance")
    attendance_marked: int = Field(description="Past appointments the owner marked")
    no_shows: int
    no_show_rate: float | None = Field(description="no_shows / attendance_marked")


def _agent(session: Session, principal: Principal, agent_id: str) -> Agent:
    agent = agent_service.agent_by_id(session, agent_id)
    if agent is None:
        raise not_found("agent")
    principal.check_user(agent.user_id, "agent")
    return agent


def _out(row: Notification) -> NotificationOut:
    return NotificationOut(
        id=row.id,
        agent_id=row.agent_id,
        appointment_id=row.appointment_id,
        kind=row.kind,
        channel=row.channel,
        to=mask(row.to_e164),
        body=row.body,
        status=row.status,
        reason=row.reason,
        due_at=row.due_at,
        send_at=row.send_at,
        sent_at=row.sent_at,
        status_at=row.status_at,
        attempts=row.attempts,
        created_at=row.created_at,
    )


@router.get(
    "/notifications",
    response_model=Page[NotificationOut],
    summary="List outbound notifications (newest due first)",
)
def list_notifications(
    principal: ReadOnly,
    session: SessionDep,
    agent_id: Annotated[str | None, Query(max_length=32)] = None,
    appointment_id: Annotated[str | None, Query(max_length=32)] = None,
    status: Status | None = None,
    kind: Kind | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[NotificationOut]:
    query = notification_service.notifications_query(
        principal, agent_id, appointment_id, status, kind
    )
    order = Order(Notification.due_at, Notification.id, descending=True)
    rows, next_cursor = paginate(session, query, order, cursor, limit)
    return Page(items=[_out(r) for r in rows], next_cursor=next_cursor, limit=limit)


@router.get(
    "/agents/{agent_id}/reminder-settings",
    response_model=ReminderSettingsOut,
    summary="Reminder, confirmation and owner-notification settings",
)
def read_reminder_settings(
    agent_id: str, principal: ReadOnly, session: SessionDep
) -> ReminderSettingsOut:
    _agent(session, principal, agent_id)
    return _settings_out(notification_service.reminder_settings(session, agent_id))


@router.put(
    "/agents/{agent_id}/reminder-settings",
    response_model=ReminderSettingsOut,
    summary="Replace the agent's reminder settings",
)
def write_reminder_settings(
    agent_id: str, body: ReminderSettingsIn, principal: Operator, session: SessionDep
) -> ReminderSettingsOut:
    _agent(session, principal, agent_id)
    row = notification_service.write_reminder_settings(
        session, f"apikey:{principal.prefix}", agent_id, body.model_dump()
    )
    return _settings_out(row)


def _settings_out(row: ReminderSettings) -> ReminderSettingsOut:
    return ReminderSettingsOut(
        agent_id=row.agent_id,
        reminders_enabled=row.reminders_enabled,
        offsets_minutes=list(row.offsets_minutes),
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
        confirmations_enabled=row.confirmations_enabled,
        owner_notifications=row.owner_notifications,
        daily_agenda_time=row.daily_agenda_time,
        reminder_calls=row.reminder_calls,
    )


@router.put(
    "/appointments/{appointment_id}/attendance",
    response_model=AttendanceOut,
    summary="Mark a past appointment attended or a no-show",
    responses=NOT_MARKABLE,
)
def mark_attendance(
    appointment_id: str,
    body: AttendanceIn,
    principal: Operator,
    session: SessionDep,
    services: ServicesDep,
) -> AttendanceOut:
    found = appointment_service.appointment_with_agent(session, appointment_id)
    if found is None:
        raise not_found("appointment")
    appointment, agent = found
    principal.check_user(agent.user_id, "appointment")
    now: datetime = services.clock()
    if appointment.status != AppointmentStatus.CONFIRMED or appointment.start_at > now:
        raise ApiError(409, "only a booked appointment that has started can be marked")
    row = notification_service.mark_attendance(
        session, f"apikey:{principal.prefix}", appointment, body.outcome, now
    )
    return AttendanceOut(
        appointment_id=appointment_id,
        confirmed_at=row.confirmed_at,
        confirmed_via=row.confirmed_via,
        outcome=row.outcome,
        outcome_at=row.outcome_at,
    )


@router.get(
    "/analytics/reminders",
    response_model=ReminderAnalytics,
    summary="Reminders sent, attendance confirmations and the no-show rate",
    description="Counted over appointments starting in [since, until] (UTC days).",
    responses=BAD_RANGE,
)
def reminder_analytics(
    principal: ReadOnly,
    session: SessionDep,
    since: date,
    until: date,
    agent_id: Annotated[str | None, Query(max_length=32)] = None,
) -> ReminderAnalytics:
    if until < since or until - since > timedelta(days=366):
        raise ApiError(400, "until must be on or after since, at most 366 days later")
    start = datetime.combine(since, time(0), UTC)
    end = datetime.combine(until + timedelta(days=1), time(0), UTC)
    counts = notification_service.reminder_counts(session, start, end, agent_id, principal.user_id)
    marked, no_shows = counts.attendance_marked, counts.no_shows
    return ReminderAnalytics(
        since=since,
        until=until,
        reminders_sent=counts.reminders_sent,
        reminders_delivered=counts.reminders_delivered,
        confirmations=counts.confirmations,
        attendance_marked=marked,
        no_shows=no_shows,
        no_show_rate=round(no_shows / marked, 4) if marked else None,
    )
