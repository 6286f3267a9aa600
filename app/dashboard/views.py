"""What the pages show, read from the database for one owner's agent. Reads only: every
change goes through the scheduling tools or the admin services (app/dashboard/actions.py)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.models import (
    Agent,
    Appointment,
    AppointmentStatus,
    Attendance,
    CalendarConnection,
    Conversation,
    Message,
    PhoneNumber,
    SyncStatus,
)
from app.security import verification

CHANNELS = ("sms", "voice", "vapi", "admin", "dashboard")


def mask(e164: str | None) -> str:
    """app.phone.mask's `+1••••••0123`, without a full phonenumbers.parse per row: a page
    of 1,000 appointments spent most of its time parsing numbers it only hides."""
    if not e164:
        return "unknown"
    digits = e164.lstrip("+")
    if len(digits) <= 4:
        return "•" * len(digits)
    country = next(
        (digits[:n] for n in (1, 2, 3) if int(digits[:n]) in COUNTRY_CODE_TO_REGION_CODE), ""
    )
    hidden = len(digits) - len(country) - 4
    return f"+{country}{'•' * max(hidden, 0)}{digits[-4:]}"


CONVERSATION_PAGE = 50


def owned_agents(session: Session, user_id: str) -> list[Agent]:
    return list(
        session.scalars(select(Agent).where(Agent.user_id == user_id).order_by(Agent.created_at))
    )


def owned_agent(session: Session, user_id: str, agent_id: str) -> Agent | None:
    """The agent if it is this owner's; None otherwise (the caller answers 404 either way)."""
    agent = session.get(Agent, agent_id)
    return agent if agent is not None and agent.user_id == user_id else None


@dataclass
class AgendaRow:
    id: str
    time: str
    type_name: str
    contact: str
    channel: str


@dataclass
class AgendaDay:
    label: str
    rows: list[AgendaRow] = field(default_factory=list)


AGENDA_DAYS = 7
AGENDA_MAX_ROWS = 400


@dataclass
class AgendaPage:
    days: list[AgendaDay]
    first_day: date
    earlier: date | None
    later: date


def agenda(
    session: Session, agent: Agent, now: datetime, first_day: date | None = None
) -> AgendaPage:
    """One week of confirmed appointments from first_day (default: today) in the agent's
    zone: a page stays small however full the calendar is."""
    zone = ZoneInfo(agent.timezone)
    today = now.astimezone(zone).date()
    first_day = max(first_day or today, today)
    start = max(datetime.combine(first_day, datetime.min.time(), zone), now)
    end = datetime.combine(first_day + timedelta(days=AGENDA_DAYS), datetime.min.time(), zone)
    days = _agenda_days(session, agent, zone, start, end)
    earlier = max(first_day - timedelta(days=AGENDA_DAYS), today) if first_day > today else None
    return AgendaPage(days, first_day, earlier, first_day + timedelta(days=AGENDA_DAYS))


def _agenda_days(
    session: Session, agent: Agent, zone: ZoneInfo, start: datetime, end: datetime
) -> list[AgendaDay]:
    names = {t["key"]: t.get("name", t["key"]) for t in agent.appointment_types}
    rows = session.execute(
        select(
            Appointment.id,
            Appointment.start_at,
            Appointment.appointment_type,
            Appointment.contact_name,
            Appointment.contact_e164,
            Appointment.channel,
        )
        .where(
            Appointment.agent_id == agent.id,
            Appointment.status == AppointmentStatus.CONFIRMED,
            # Types last at most 12 h (the schema's limit): a bounded index range that
            # still includes an appointment already in progress.
            Appointment.start_at >= start - timedelta(hours=12),
            Appointment.start_at < end,
            Appointment.end_at > start,
        )
        .order_by(Appointment.start_at, Appointment.id)
        .limit(AGENDA_MAX_ROWS)
    ).all()
    days: list[AgendaDay] = []
    current: date | None = None
    for row in rows:
        local = _aware(row.start_at).astimezone(zone)
        if local.date() != current:
            current = local.date()
            days.append(AgendaDay(label=local.strftime("%A %d %B %Y")))
        # f-strings, not strftime per row: this loop runs once per appointment.
        days[-1].rows.append(
            AgendaRow(
                id=row.id,
                time=f"{local.hour:02d}:{local.minute:02d}",
                type_name=names.get(row.appointment_type, row.appointment_type),
                contact=row.contact_name or mask(row.contact_e164),
                channel=row.channel,
            )
        )
    return days


@dataclass
class AppointmentView:
    type_name: str
    contact: str
    day: str
    time: str
    local_start: str


def appointment(agent: Agent, row: Appointment) -> AppointmentView:
    local = _aware(row.start_at).astimezone(ZoneInfo(agent.timezone))
    names = {t["key"]: t.get("name", t["key"]) for t in agent.appointment_types}
    return AppointmentView(
        type_name=names.get(row.appointment_type, row.appointment_type),
        contact=row.contact_name or mask(row.contact_e164),
        day=local.strftime("%A %d %B %Y"),
        time=local.strftime("%H:%M"),
        local_start=local.strftime("%Y-%m-%dT%H:%M"),
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))


@dataclass
class ConversationRow:
    id: str
    channel: str
    caller: str
    updated: str
    status: str


def conversations(session: Session, agent: Agent) -> list[ConversationRow]:
    zone = ZoneInfo(agent.timezone)
    rows = session.scalars(
        select(Conversation)
        .where(Conversation.agent_id == agent.id)
        .order_by(Conversation.updated_at.desc(), Conversation.id)
        .limit(CONVERSATION_PAGE)
    )
    return [
        ConversationRow(
            id=r.id,
            channel=r.channel,
            caller=mask(r.caller_e164),
            updated=_aware(r.updated_at).astimezone(zone).strftime("%d %b %H:%M"),
            status=r.status,
        )
        for r in rows
    ]


def conversation(session: Session, agent: Agent, conversation_id: str) -> Conversation | None:
    row = session.get(Conversation, conversation_id)
    return row if row is not None and row.agent_id == agent.id else None


@dataclass
class Turn:
    id: int
    direction: str
    body: str
    at: str


def turns(session: Session, agent: Agent, conversation_id: str, after: int = 0) -> list[Turn]:
    zone = ZoneInfo(agent.timezone)
    rows = session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.id > after)
        .order_by(Message.id)
    )
    return [
        Turn(
            id=m.id,
            direction=m.direction,
            body=m.body,
            at=_aware(m.created_at).astimezone(zone).strftime("%H:%M"),
        )
        for m in rows
    ]


def report(row: Conversation) -> dict[str, Any]:
    """The provider's end-of-call report (VAPI): summary, transcript, recording."""
    value = (row.details or {}).get("report")
    return value if isinstance(value, dict) else {}


@dataclass
class CalendarStatus:
    provider: str
    status: str
    account: str | None
    last_change: str | None
    last_error: str | None
    pending_sync: int


def calendar_status(session: Session, agent: Agent) -> CalendarStatus:
    row = session.scalar(select(CalendarConnection).where(CalendarConnection.agent_id == agent.id))
    pending = session.scalar(
        select(func.count())
        .select_from(Appointment)
        .where(Appointment.agent_id == agent.id, Appointment.sync_status == SyncStatus.PENDING)
    )
    if row is None:
        return CalendarStatus(agent.calendar_provider, "not_connected", None, None, None, 0)
    zone = ZoneInfo(agent.timezone)
    return CalendarStatus(
        provider=row.provider,
        status=row.status,
        account=row.account_email,
        last_change=_aware(row.updated_at).astimezone(zone).strftime("%d %b %Y %H:%M"),
        last_error=row.last_error,
        pending_sync=pending or 0,
    )


@dataclass
class NumberRow:
    id: str
    number: str
    verified: bool
    pending: bool


def numbers(session: Session, user_id: str) -> list[NumberRow]:
    rows = session.scalars(
        select(PhoneNumber)
        .where(PhoneNumber.user_id == user_id, PhoneNumber.purpose == "caller")
        .order_by(PhoneNumber.created_at)
    )
    return [
        NumberRow(
            id=r.id,
            number=mask(r.e164),
            verified=r.verified_at is not None,
            pending=verification.pending(session, r) is not None,
        )
        for r in rows
    ]


@dataclass
class Insights:
    days: list[str]
    per_day: list[dict[str, int]]
    totals: dict[str, int]
    svg: str
    # Past appointments in the span the owner marked: {"attended": n, "no_show": n}.
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def no_show_rate(self) -> int | None:
        marked = sum(self.outcomes.values())
        return round(100 * self.outcomes.get("no_show", 0) / marked) if marked else None


def insights(session: Session, agent: Agent, now: datetime, span_days: int = 30) -> Insights:
    """Bookings made per local day and channel over the last span_days, counted by the
    database: each local midnight becomes a UTC boundary (DST-safe on both backends)."""
    zone = ZoneInfo(agent.timezone)
    first = now.astimezone(zone).date() - timedelta(days=span_days - 1)
    days = [first + timedelta(days=i) for i in range(span_days)]
    edges = [datetime.combine(d + timedelta(days=1), datetime.min.time(), zone) for d in days]
    since = datetime.combine(first, datetime.min.time(), zone)
    bucket = case(
        *[(Appointment.created_at < edge, i) for i, edge in enumerate(edges)], else_=span_days
    )
    rows = session.execute(
        select(bucket.label("day"), Appointment.channel, func.count())
        .where(Appointment.agent_id == agent.id, Appointment.created_at >= since)
        .group_by("day", Appointment.channel)
    ).all()
    per_day: list[dict[str, int]] = [{} for _ in days]
    totals: dict[str, int] = defaultdict(int)
    for day, channel, count in rows:
        if day < span_days:
            per_day[day][channel] = count
            totals[channel] += count
    labels = [d.strftime("%d %b") for d in days]
    outcomes = attendance_outcomes(session, agent, since, now)
    return Insights(labels, per_day, dict(totals), bar_chart(labels, per_day), outcomes)


def attendance_outcomes(
    session: Session, agent: Agent, since: datetime, now: datetime
) -> dict[str, int]:
    """Attended and no-show marks on appointments that started in [since, now)."""
    rows = session.execute(
        select(Attendance.outcome, func.count())
        .join(Appointment, Appointment.id == Attendance.appointment_id)
        .where(
            Appointment.agent_id == agent.id,
            Appointment.start_at >= since,
            Appointment.start_at < now,
            Attendance.outcome.is_not(None),
        )
        .group_by(Attendance.outcome)
    ).all()
    return {outcome: count for outcome, count in rows if outcome is not None}


CHANNEL_COLOURS = {
    "sms": "#1d4ed8",
    "voice": "#047857",
    "vapi": "#7c3aed",
    "admin": "#b45309",
    "dashboard": "#be123c",
}


def bar_chart(labels: list[str], per_day: list[dict[str, int]]) -> str:
    """A stacked bar chart as inline SVG, server-rendered: no chart library to ship."""
    width, height, pad = 600, 200, 24
    peak = max([sum(d.values()) for d in per_day] + [1])
    bar = (width - pad) / max(len(per_day), 1)
    parts = [
        f'<svg viewBox="0 0 {width} {height + pad}" role="img" class="chart" '
        f'aria-labelledby="chart-title"><title id="chart-title">{sum(map(_total, per_day))} '
        f"bookings, {labels[0]} to {labels[-1]}</title>"
        f'<line x1="{pad}" y1="{height}" x2="{width}" y2="{height}" stroke="#444"/>'
        f'<text x="0" y="12" font-size="11" fill="#222">{peak}</text>'
    ]
    for i, day in enumerate(per_day):
        y: float = height
        for channel in CHANNELS:
            n = day.get(channel, 0)
            if not n:
                continue
            h = (height - 16) * n / peak
            y -= h
            x = pad + i * bar + 1
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                f'fill="{CHANNEL_COLOURS.get(channel, "#333")}"><title>{labels[i]}: '
                f"{n} {channel}</title></rect>"
            )
    for i in range(0, len(labels), 7):
        parts.append(
            f'<text x="{pad + i * bar:.1f}" y="{height + 16}" font-size="11" '
            f'fill="#222">{labels[i]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _total(day: dict[str, int]) -> int:
    return sum(day.values())
