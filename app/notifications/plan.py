"""Notification rows for a booking change, written in the caller's transaction.

Called by the scheduling tools right after a booking, move or cancellation, inside the
same transaction: the rows commit or roll back with the change they describe, and a
worker delivers them later. A move or cancellation skips the appointment's pending
reminders (status "skipped", with the reason) and a move schedules new ones.

The rows are written at commit with the transaction's other last writes
(`app/commit_writes.py`: on PostgreSQL in the same statement), not at once: nothing
reads them back before the commit except a later change to the same appointment in
the same transaction, which finds them among the rows this transaction planned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Literal, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Table, bindparam, event, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from app import commit_writes
from app.models import (
    Agent,
    Appointment,
    Notification,
    PhoneNumber,
    ReminderSettings,
    new_id,
    utcnow,
)
from app.notifications.timing import earliest_send, parse_hhmm, reminder_due
from app.turn_rows import AgentLike

Change = Literal["booked", "moved", "cancelled"]
# Channels whose conversation did not already confirm in writing.
# SMS confirms in the conversation itself; a change made by phone, VAPI, the owner's
# dashboard or an operator is confirmed to the person by text.
CONFIRM_CHANNELS = ("voice", "vapi", "dashboard", "admin")
# The owner made these themselves: no message to the owner about them.
OWNER_CHANNELS = ("dashboard",)
REMINDER_KINDS = ("reminder", "reminder_call")

_NOTIFICATIONS = cast(Table, Notification.__table__)
# Every column of a planned row, so all rows of a commit have one shape.
_UNSET_ROW: dict[str, Any] = dict.fromkeys(column.key for column in _NOTIFICATIONS.columns)
# session.info key: this transaction's planned rows, not yet written.
_PLANNED = "notifications_planned"


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


@dataclass(frozen=True)
class ReminderPolicy:
    """What the planner uses of an agent's reminder settings (its row or the defaults),
    read as plain columns: no ORM entity is loaded or built for a booking."""

    reminders_enabled: bool
    offsets_minutes: tuple[int, ...]
    quiet_start: time
    quiet_end: time
    confirmations_enabled: bool
    owner_notifications: bool
    reminder_calls: bool

    @classmethod
    def of(cls, settings: ReminderSettings | Any, prefix: str = "") -> ReminderPolicy:
        """From a settings entity, or from a row whose columns are its attributes'
        names after `prefix`."""

        def value(name: str) -> Any:
            return getattr(settings, prefix + name)

        return cls(
            reminders_enabled=value("reminders_enabled"),
            offsets_minutes=tuple(value("offsets_minutes")),
            quiet_start=parse_hhmm(value("quiet_start")),
            quiet_end=parse_hhmm(value("quiet_end")),
            confirmations_enabled=value("confirmations_enabled"),
            owner_notifications=value("owner_notifications"),
            reminder_calls=value("reminder_calls"),
        )


DEFAULT_POLICY = ReminderPolicy.of(default_settings(""))


def sending_number(session: Session, agent_id: str) -> str:
    """The agent's dedicated line, or "" for the shared agent number (AGENT_NUMBER)."""
    line = session.scalar(
        select(PhoneNumber.e164).where(
            PhoneNumber.agent_id == agent_id, PhoneNumber.purpose == "agent_line"
        )
    )
    return line or ""


# The settings columns the policy is made of, labelled so they can ride along any
# statement that selects agents; a NULL `reminder_settings_agent` means no row.
_POLICY_COLUMNS = (
    ReminderSettings.agent_id.label("reminder_settings_agent"),
    *(
        getattr(ReminderSettings, name).label(f"reminder_{name}")
        for name in (
            "reminders_enabled",
            "offsets_minutes",
            "quiet_start",
            "quiet_end",
            "confirmations_enabled",
            "owner_notifications",
            "reminder_calls",
        )
    ),
)

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
    """`statement`, which selects agents (`Agent`), with each agent's reminder settings
    and sending line added: what the planner reads, read along (`planning_of(row)`)."""
    return statement.add_columns(*_POLICY_COLUMNS, _AGENTS_LINE).outerjoin(
        ReminderSettings, ReminderSettings.agent_id == Agent.id
    )


# An agent's settings (NULLs: the defaults) and sending line, in one round trip; built
# once, as the planner runs at every booking change.
_SETTINGS_AND_SENDER = with_planning(select(Agent.id)).where(Agent.id == bindparam("agent_id"))


# What the planner reads (`settings_and_sender`), as an agent's own read.
Planning = tuple[ReminderPolicy, str]


def settings_and_sender(session: Session, agent_id: str) -> Planning:
    """The agent's reminder policy and sending line together."""
    return planning_of(session.execute(_SETTINGS_AND_SENDER, {"agent_id": agent_id}).one())


def planning_of(row: Any) -> Planning:
    """The planning in a row read `with_planning`."""
    line: str = row.agent_line or ""
    if row.reminder_settings_agent is None:
        return DEFAULT_POLICY, line
    return ReminderPolicy.of(row, prefix="reminder_"), line


def owner_number(session: Session, agent: AgentLike) -> str | None:
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


# strftime's %a and %b in the C locale (Python never switches it, nor does the app).
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def when_text(moment: datetime, zone: ZoneInfo) -> str:
    """`Tue Dec 1 at 3:05 PM`, built from the fields: its two strftime calls were a
    fifth of a booking's notification plan."""
    local = moment.astimezone(zone)
    hour = local.hour % 12 or 12
    return (
        f"{_DAYS[local.weekday()]} {_MONTHS[local.month - 1]} {local.day} at "
        f"{hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    )


class Planner:
    def __init__(
        self, session: Session, agent: AgentLike, now: datetime, planning: Planning | None = None
    ) -> None:
        """`planning`: the agent's settings and line when read in this transaction."""
        self.session = session
        self.agent = agent
        self.now = now
        self.zone = ZoneInfo(agent.timezone)
        self.settings, self.sender = planning or settings_and_sender(session, agent.id)
        self._when_made: tuple[datetime, str] | None = None

    def on_change(
        self, appointment: Appointment, change: Change, *, channel: str, caller: str | None
    ) -> list[dict[str, Any]]:
        """The rows planned for `change` (written at commit)."""
        # A booking's row was inserted in this very transaction: no notification can
        # refer to it yet, so there is none to count or to skip.
        if change == "booked":
            self._sequence = 0
        else:
            self.session.flush()
            self._sequence = self._existing(appointment.id)
            self.drop_pending(appointment.id, f"appointment {change}")
        rows: list[dict[str, Any]] = []
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
        self._write(rows)
        return rows

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self.session.in_nested_transaction():
            # A savepoint may roll back alone; rows kept for the commit would outlive it.
            self.session.connection().execute(insert(_NOTIFICATIONS), rows)
            return
        _planning_rows(self.session).extend(rows)

    def drop_pending(self, appointment_id: str, reason: str) -> None:
        for row in _planned(self.session):
            if (
                row["appointment_id"] == appointment_id
                and row["kind"] in REMINDER_KINDS
                and row["status"] == "scheduled"
            ):
                row.update(status="skipped", reason=reason, status_at=self.now)
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

    def reminders(self, appointment: Appointment) -> list[dict[str, Any]]:
        to = appointment.contact_e164
        if not self.settings.reminders_enabled or not to:
            return []
        quiet = self.settings.quiet_start, self.settings.quiet_end
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
                to,
                due,
                self._reminder_text(appointment, kind),
                suffix=str(offset),
            )
            row["not_before"] = max(
                earliest_send(due, appointment.start_at, self.zone, *quiet), self.now
            )
            rows.append(row)
        return rows

    def _existing(self, appointment_id: str) -> int:
        """How many notifications the appointment has: written, or planned in this
        transaction (their keys are numbered on from them)."""
        written: int | None = self.session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.appointment_id == appointment_id)
        )
        planned = sum(
            1 for row in _planned(self.session) if row["appointment_id"] == appointment_id
        )
        return (written or 0) + planned

    def _row(
        self,
        appointment: Appointment,
        kind: str,
        to: str,
        due: datetime,
        body: str,
        suffix: str = "",
    ) -> dict[str, Any]:
        """A notification row with every column (the model's defaults spelled out)."""
        self._sequence += 1
        return {
            **_UNSET_ROW,
            "id": new_id("ntf"),
            "agent_id": self.agent.id,
            "appointment_id": appointment.id,
            "kind": kind,
            "channel": "call" if kind == "reminder_call" else "sms",
            "to_e164": to,
            "from_e164": self.sender,
            "body": body,
            "due_at": due,
            "send_at": due,
            "status": "scheduled",
            "attempts": 0,
            "dedupe_key": f"{appointment.id}:{self._sequence}:{kind}:{suffix}",
            "created_at": utcnow(),
        }

    def _when(self, appointment: Appointment) -> str:
        """`when_text` of the appointment's start, made once for all of a change's
        messages (a booking's confirmation and reminders all name it)."""
        start = appointment.start_at
        if self._when_made is None or self._when_made[0] != start:
            self._when_made = (start, when_text(start, self.zone))
        return self._when_made[1]

    def _what(self, appointment: Appointment) -> str:
        return f"{appointment.appointment_type} with {self.agent.name}"

    def _confirmation_text(self, appointment: Appointment, change: Change) -> str:
        when = self._when(appointment)
        if change == "cancelled":
            return f"Cancelled: your {self._what(appointment)} on {when}."
        verb = "Moved" if change == "moved" else "Confirmed"
        return f"{verb}: your {self._what(appointment)} on {when}. Reply here to change it."

    def _reminder_text(self, appointment: Appointment, kind: str) -> str:
        when = self._when(appointment)
        if kind == "reminder_call":
            return f"This is a reminder: your {self._what(appointment)} is {when}."
        return (
            f"Reminder: your {self._what(appointment)} is {when}. Reply C to confirm, "
            "or tell me if you need to move or cancel it."
        )

    def _owner_text(self, appointment: Appointment, change: Change) -> str:
        who = appointment.contact_name or "A caller"
        when = self._when(appointment)
        preposition = "to" if change == "moved" else "on"
        return f"{who} {change} {appointment.appointment_type} {preposition} {when}."


def on_change(
    session: Session,
    agent: AgentLike,
    appointment: Appointment,
    change: Change,
    *,
    now: datetime,
    channel: str,
    caller: str | None,
    planning: Planning | None = None,
) -> list[dict[str, Any]]:
    """Plan the notifications of `change`; they are written when the session commits."""
    return Planner(session, agent, now, planning).on_change(
        appointment, change, channel=channel, caller=caller
    )


def _planned(session: Session) -> list[dict[str, Any]]:
    """The rows this transaction planned and has not written yet."""
    planned: list[dict[str, Any]] = session.info.get(_PLANNED, [])
    return planned


def _planning_rows(session: Session) -> list[dict[str, Any]]:
    """The transaction's planned rows, to add to: written at its commit."""
    planned = session.info.get(_PLANNED)
    if planned is None:
        planned = session.info[_PLANNED] = []
        commit_writes.prepare_at_commit(session, _PLANNED, _write_planned)
    return cast(list[dict[str, Any]], planned)


def _write_planned(session: Session) -> None:
    """At commit: the planned rows join the transaction's last writes."""
    for row in session.info.pop(_PLANNED, ()):
        commit_writes.insert_row(session, _NOTIFICATIONS, row)


@event.listens_for(Session, "after_rollback")
def _forget_planned(session: Session) -> None:
    session.info.pop(_PLANNED, None)
