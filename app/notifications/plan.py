"""Notification rows for a booking change, written in the caller's transaction.

Called by the scheduling tools right after a booking, move or cancellation, inside the
same transaction: the rows commit or roll back with the change they describe, and a
worker delivers them later. A move or cancellation skips the appointment's pending
reminders (status "skipped", with the reason) and a move schedules new ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.orm import Session, aliased

from app.models import Agent, Appointment, Notification, PhoneNumber, ReminderSettings
from app.notifications.timing import earliest_send, parse_hhmm, reminder_due

Change = Literal["booked", "moved", "cancelled"]
# Channels whose conversation did not already confirm in writing.
# SMS confirms in the conversation itself; a change made by phone, VAPI, the owner's
# dashboard or an operator is confirmed to the person by text.
CONFIRM_CHANNELS = ("voice", "vapi", "dashboard", "admin")
# The owner made these themselves: no message to the owner about them.
OWNER_CHANNELS = ("dashboard",)
REMINDER_KINDS = ("reminder", "reminder_call")


def settings_for(session: Session, agent_id: str) -> ReminderSettings:
    found = session.get(ReminderSettings, agent_id)
    if found is not None:
        return found
    return default_settings(agent_id)


def default_settings(agent_id: str) -> ReminderSettings:
    """What an agent without a settings row gets."""
    # Column defaults only apply on insert; spell them out for a transient row.
    return ReminderSettings(
        agent_id=agent_id,
        reminders_enabled=True,
        offsets_minutes=[1440, 120],
        quiet_start="21:00",
        quiet_end="08:00",
        confirmations_enabled=True,
        owner_notifications=False,
        daily_agenda_time=None,
        reminder_calls=False,
    )


def sending_number(session: Session, agent_id: str) -> str:
    """The agent's dedicated line, or "" for the shared agent number (AGENT_NUMBER)."""
    line = session.scalar(
        select(PhoneNumber.e164).where(
            PhoneNumber.agent_id == agent_id, PhoneNumber.purpose == "agent_line"
        )
    )
    return line or ""


# An agent's settings row (None: the defaults) and sending line, in one round trip;
# built once, as the planner runs at every booking change.
_SETTINGS_AND_SENDER = (
    select(
        ReminderSettings,
        select(PhoneNumber.e164)
        .where(PhoneNumber.agent_id == bindparam("agent_id"), PhoneNumber.purpose == "agent_line")
        .limit(1)
        .scalar_subquery(),
    )
    .select_from(Agent)
    .outerjoin(ReminderSettings, ReminderSettings.agent_id == Agent.id)
    .where(Agent.id == bindparam("agent_id"))
)


# What the planner reads (`settings_and_sender`), as an agent's own read.
Planning = tuple[ReminderSettings, str]


def settings_and_sender(session: Session, agent_id: str) -> Planning:
    """`settings_for` and `sending_number` together."""
    found, line = session.execute(_SETTINGS_AND_SENDER, {"agent_id": agent_id}).one()
    return planning_of(agent_id, found, line)


def planning_of(agent_id: str, found: ReminderSettings | None, line: str | None) -> Planning:
    return (found if found is not None else default_settings(agent_id)), line or ""


_LINE = aliased(PhoneNumber)
_AGENTS_LINE = (
    select(_LINE.e164)
    .where(_LINE.agent_id == Agent.id, _LINE.purpose == "agent_line")
    .limit(1)
    .correlate(Agent)
    .scalar_subquery()
    .label("agent_line")
)


def with_planning(statement: Select[Any]) -> Select[Any]:
    """`statement`, which selects agents (`Agent`), with each agent's settings row and
    sending line added: what the planner reads, read along (`planning_of(row.Agent.id,
    row.ReminderSettings, row.agent_line)`)."""
    return statement.add_columns(ReminderSettings, _AGENTS_LINE).outerjoin(
        ReminderSettings, ReminderSettings.agent_id == Agent.id
    )


def owner_number(session: Session, agent: Agent) -> str | None:
    """The owner's verified phone: owner notifications go nowhere else."""
    return session.scalar(
        select(PhoneNumber.e164)
        .where(
            PhoneNumber.user_id == agent.user_id,
            PhoneNumber.purpose == "caller",
            PhoneNumber.verified_at.is_not(None),
        )
        .order_by(PhoneNumber.verified_at)
        .limit(1)
    )


def when_text(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    return f"{local:%a %b} {local.day} at {local:%I:%M %p}".replace(" 0", " ")


class Planner:
    def __init__(
        self, session: Session, agent: Agent, now: datetime, planning: Planning | None = None
    ) -> None:
        """`planning`: the agent's settings and line when read in this transaction."""
        self.session = session
        self.agent = agent
        self.now = now
        self.zone = ZoneInfo(agent.timezone)
        self.settings, self.sender = planning or settings_and_sender(session, agent.id)

    def on_change(
        self, appointment: Appointment, change: Change, *, channel: str, caller: str | None
    ) -> list[Notification]:
        self.session.flush()
        # A booking's row was inserted in this very transaction: no notification can
        # refer to it yet, so there is none to count.
        self._sequence = 0 if change == "booked" else self._existing(appointment.id)
        rows: list[Notification] = []
        if change != "booked":
            self.drop_pending(appointment.id, f"appointment {change}")
        if change != "cancelled":
            rows += self.reminders(appointment)
        if channel in CONFIRM_CHANNELS and caller and self.settings.confirmations_enabled:
            rows.append(
                self._row(
                    appointment,
                    "confirmation",
                    caller,
                    self.now,
                    self._confirmation_text(appointment, change),
                )
            )
        owner = (
            owner_number(self.session, self.agent)
            if self.settings.owner_notifications and channel not in OWNER_CHANNELS
            else None
        )
        if owner:
            rows.append(
                self._row(
                    appointment,
                    f"owner_{change}",
                    owner,
                    self.now,
                    self._owner_text(appointment, change),
                )
            )
        self.session.add_all(rows)
        return rows

    def drop_pending(self, appointment_id: str, reason: str) -> None:
        self.session.execute(
            update(Notification)
            .where(
                Notification.appointment_id == appointment_id,
                Notification.kind.in_(REMINDER_KINDS),
                Notification.status == "scheduled",
            )
            .values(status="skipped", reason=reason, status_at=self.now)
            .execution_options(synchronize_session=False)
        )

    def reminders(self, appointment: Appointment) -> list[Notification]:
        if not self.settings.reminders_enabled or not appointment.contact_e164:
            return []
        quiet = parse_hhmm(self.settings.quiet_start), parse_hhmm(self.settings.quiet_end)
        kind = "reminder_call" if self.settings.reminder_calls else "reminder"
        rows, seen = [], set()
        for offset in sorted(set(self.settings.offsets_minutes), reverse=True):
            due = reminder_due(appointment.start_at, offset, self.zone, *quiet)
            if due <= self.now or due >= appointment.start_at or due in seen:
                continue  # too late to remind, or the same moment as another reminder
            seen.add(due)
            row = self._row(
                appointment,
                kind,
                appointment.contact_e164,
                due,
                self._reminder_text(appointment, kind),
                suffix=str(offset),
            )
            row.not_before = max(
                earliest_send(due, appointment.start_at, self.zone, *quiet), self.now
            )
            rows.append(row)
        return rows

    def _existing(self, appointment_id: str) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.appointment_id == appointment_id)
            )
            or 0
        )

    def _row(
        self,
        appointment: Appointment,
        kind: str,
        to: str,
        due: datetime,
        body: str,
        suffix: str = "",
    ) -> Notification:
        self._sequence += 1
        return Notification(
            agent_id=self.agent.id,
            appointment_id=appointment.id,
            kind=kind,
            channel="call" if kind == "reminder_call" else "sms",
            to_e164=to,
            from_e164=self.sender,
            body=body,
            due_at=due,
            status="scheduled",
            attempts=0,
            dedupe_key=f"{appointment.id}:{self._sequence}:{kind}:{suffix}",
        )

    def _what(self, appointment: Appointment) -> str:
        return f"{appointment.appointment_type} with {self.agent.name}"

    def _confirmation_text(self, appointment: Appointment, change: Change) -> str:
        when = when_text(appointment.start_at, self.zone)
        if change == "cancelled":
            return f"Cancelled: your {self._what(appointment)} on {when}."
        verb = "Moved" if change == "moved" else "Confirmed"
        return f"{verb}: your {self._what(appointment)} on {when}. Reply here to change it."

    def _reminder_text(self, appointment: Appointment, kind: str) -> str:
        when = when_text(appointment.start_at, self.zone)
        if kind == "reminder_call":
            return f"This is a reminder: your {self._what(appointment)} is {when}."
        return (
            f"Reminder: your {self._what(appointment)} is {when}. Reply C to confirm, "
            "or tell me if you need to move or cancel it."
        )

    def _owner_text(self, appointment: Appointment, change: Change) -> str:
        who = appointment.contact_name or "A caller"
        when = when_text(appointment.start_at, self.zone)
        preposition = "to" if change == "moved" else "on"
        return f"{who} {change} {appointment.appointment_type} {preposition} {when}."


def on_change(
    session: Session,
    agent: Agent,
    appointment: Appointment,
    change: Change,
    *,
    now: datetime,
    channel: str,
    caller: str | None,
    planning: Planning | None = None,
) -> list[Notification]:
    return Planner(session, agent, now, planning).on_change(
        appointment, change, channel=channel, caller=caller
    )
