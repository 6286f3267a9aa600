"""The scheduling tools. They know scheduling, nothing about Twilio, VAPI or HTTP.

Every tool runs inside the caller's transaction and never commits: the webhook or
endpoint that called it commits the booking, the recorded event and the audit entries
together. Writes that may race (booking, moving) run in a savepoint so a lost race
leaves the outer transaction usable.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from types import MappingProxyType
from typing import NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    String,
    Table,
    and_,
    bindparam,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import ReturningInsert

from app import sql_fast
from app.calendar.availability import (
    ONE_DAY,
    AppointmentType,
    BusyIndex,
    Interval,
    Schedule,
    Unavailable,
    check_slot,
    find_slots,
    slots_by_day,
)
from app.calendar.backend import CalendarBackend, CalendarError
from app.calendar.local import LocalCalendar
from app.db import UTCDateTime
from app.models import (
    Appointment,
    AppointmentStatus,
    BusyBlock,
    Conversation,
    SyncStatus,
    new_id,
    utcnow,
)
from app.notifications import plan as notifications
from app.security import audit
from app.tools.schemas import (
    BookAppointmentArgs,
    CancelAppointmentArgs,
    CheckAvailabilityArgs,
    ListAppointmentsArgs,
    RescheduleAppointmentArgs,
    ToolResult,
)
from app.turn_rows import (
    CONVERSATION_FIELDS,
    AgentLike,
    AgentView,
    ConversationRow,
    mark_written,
    write_unwritten,
)

PARTS_OF_DAY = {
    "morning": (time(0, 0), time(12, 0)),
    "afternoon": (time(12, 0), time(17, 0)),
    "evening": (time(17, 0), time(23, 59, 59)),
}
SEARCH_DAYS_WITHOUT_DATE = 14
READ_MARGIN = timedelta(days=1)
MIDNIGHT = time(0)
SEARCH_WITHOUT_DATE = timedelta(days=SEARCH_DAYS_WITHOUT_DATE)
_NO_COUNTS: Mapping[date, int] = MappingProxyType({})

# The availability reads, built once on the tables (plain rows, no ORM entities): a turn
# passes only the agent, the window and the appointment a move leaves out.
_appointments = cast(Table, Appointment.__table__).c
_blocks = cast(Table, BusyBlock.__table__).c
_WINDOW_START = bindparam("window_start", type_=UTCDateTime())
_WINDOW_END = bindparam("window_end", type_=UTCDateTime())
_APPOINTMENTS = select(
    _appointments.appointment_type, _appointments.start_at, _appointments.end_at
).where(
    _appointments.agent_id == bindparam("agent_id", type_=String()),
    _appointments.status == AppointmentStatus.CONFIRMED.value,
    _appointments.start_at < _WINDOW_END,
    _appointments.end_at > _WINDOW_START,
)
_APPOINTMENTS_EXCLUDING = _APPOINTMENTS.where(
    _appointments.id != bindparam("exclude_id", type_=String())
)
_BLOCKS = select(null().label("appointment_type"), _blocks.start_at, _blocks.end_at).where(
    _blocks.agent_id == bindparam("agent_id", type_=String()),
    _blocks.start_at < _WINDOW_END,
    _blocks.end_at > _WINDOW_START,
)
_LOCAL = union_all(_APPOINTMENTS, _BLOCKS)
_LOCAL_EXCLUDING = union_all(_APPOINTMENTS_EXCLUDING, _BLOCKS)
# The caller's appointments (entities: a listed one may be cancelled or moved next).
_CALLERS = {
    (include_past, no_number): (
        select(Appointment)
        .where(
            Appointment.agent_id == bindparam("agent_id", type_=String()),
            Appointment.status == AppointmentStatus.CONFIRMED.value,
            Appointment.contact_e164.is_(None)
            if no_number
            else Appointment.contact_e164 == bindparam("caller", type_=String()),
            *([] if include_past else [Appointment.end_at > bindparam("now", type_=UTCDateTime())]),
        )
        .order_by(Appointment.start_at)
    )
    for include_past in (False, True)
    for no_number in (False, True)
}


@dataclass(frozen=True)
class _Window:
    """What one availability read saw (built-in calendar only)."""

    start: datetime
    end: datetime
    appointments: list[Row[str, datetime, datetime]]
    busy: list[Interval]


@dataclass
class ToolContext:
    session: Session
    agent: AgentLike
    calendar: CalendarBackend
    now: datetime
    caller: str | None
    channel: str
    conversation_id: str | None = None
    # False when the agent's caller-ID policy wants a check the caller has not passed.
    may_manage_existing: bool = True
    # The caller's upcoming appointments (`upcoming_of`), when read with the conversation.
    upcoming: list[Appointment] | None = None
    # The agent's notification settings and sending line, when read in this transaction.
    planning: notifications.Planning | None = None
    # The conversation `conversation_id` names when it is not written yet: a booking
    # writes it with its own INSERT (one statement on PostgreSQL), and it is then held
    # as written (a later change to it is an UPDATE with the last writes).
    new_conversation: ConversationRow | None = None


def upcoming_of(
    agent_id: str | ColumnElement[str],
    caller: str | ColumnElement[str] | None,
    now: datetime | ColumnElement[datetime],
) -> ColumnElement[bool]:
    """The caller's confirmed appointments with this agent that have not ended (values,
    or bound parameters for a statement built once)."""
    return and_(
        Appointment.agent_id == agent_id,
        Appointment.contact_e164 == caller,
        Appointment.status == AppointmentStatus.CONFIRMED,
        Appointment.end_at > now,
    )


# Schedules by the very settings objects of an `AgentView`: its JSON values are parsed
# once per distinct text and shared, read only, by every turn that reads that text
# (turn_rows.parsed_json), so the same objects mean the same settings, and the look-up
# skips from_settings' key (a repr of the hours and types, each turn). Each entry holds
# its objects, so their ids stay theirs. Bounded like from_settings' own memo.
_BY_VIEW: dict[tuple[object, ...], tuple[object, object, Schedule]] = {}
_BY_VIEW_MAX = 256


def schedule_for(agent: AgentLike) -> Schedule:
    if not isinstance(agent, AgentView):
        return _schedule_of(agent)
    hours, types = agent.weekly_hours, agent.appointment_types
    key = (
        id(hours), id(types), agent.timezone, agent.slot_step_minutes,
        agent.min_notice_minutes, agent.horizon_days, agent.daily_cap,
    )  # fmt: skip
    seen = _BY_VIEW.get(key)
    if seen is not None and seen[0] is hours and seen[1] is types:
        return seen[2]
    schedule = _schedule_of(agent)
    if len(_BY_VIEW) >= _BY_VIEW_MAX:
        _BY_VIEW.clear()
    _BY_VIEW[key] = (hours, types, schedule)
    return schedule


def _schedule_of(agent: AgentLike) -> Schedule:
    return Schedule.from_settings(
        timezone=agent.timezone,
        weekly_hours=agent.weekly_hours or {},
        appointment_types=agent.appointment_types or [],
        step_minutes=agent.slot_step_minutes,
        min_notice_minutes=agent.min_notice_minutes,
        horizon_days=agent.horizon_days,
        daily_cap=agent.daily_cap,
    )


# strftime's %a, %b and %p in the C locale (Python never switches it, nor does the app).
DAY_ABBREVIATIONS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTH_ABBREVIATIONS = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)  # fmt: skip


def describe(moment: datetime, schedule: Schedule) -> str:
    """`Tue Dec 1, 3:00 PM`: short enough for SMS, plain enough for a model. Built from
    the fields, not strftime: a slot list describes every slot found, each turn."""
    return _describe_local(moment.astimezone(schedule.zone))


def _describe_local(local: datetime) -> str:
    """describe() of a moment already in the agent's zone."""
    hour = local.hour % 12 or 12
    return (
        f"{DAY_ABBREVIATIONS[local.weekday()]} {MONTH_ABBREVIATIONS[local.month - 1]} "
        f"{local.day}, {hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    )


# "3:00 PM" for each minute of a day: a slot list describes up to twenty times a call.
_CLOCKS = tuple(
    f"{m // 60 % 12 or 12}:{m % 60:02d} {'AM' if m < 720 else 'PM'}" for m in range(1440)
)


def _describe_all(local: list[datetime]) -> str:
    """`", ".join(map(_describe_local, local))`, each day's words made once and each
    time of day taken from a table (the starts of a slot list share a day or two)."""
    described = []
    day: date | None = None
    prefix = ""
    for moment in local:
        if moment.date() != day:
            day = moment.date()
            prefix = f"{DAY_ABBREVIATIONS[day.weekday()]} {MONTH_ABBREVIATIONS[day.month - 1]} "
            prefix += f"{day.day}, "
        described.append(prefix + _CLOCKS[moment.hour * 60 + moment.minute])
    return ", ".join(described)


def _in_part(
    days: Iterable[tuple[date, list[datetime]]], part: str | None
) -> Iterable[tuple[date, list[datetime]]]:
    """Each day's starts (made in the agent's zone) in the part of the day asked for; all
    of them when none was."""
    if part is None:
        return days
    low, high = PARTS_OF_DAY[part]
    return ((day, [s for s in found if low <= s.time() < high]) for day, found in days)


def _first_day_only(days: Iterable[tuple[date, list[datetime]]]) -> list[datetime]:
    """The starts (made in the agent's zone) on the local day of the first one (no date
    was asked: the soonest day is offered). Days are read only up to that day: a later
    day's starts are all on later local days, and the slot search is most of a turn's
    own CPU."""
    kept: list[datetime] = []
    first_day: date | None = None
    for window_day, found in days:
        if first_day is not None and window_day > first_day:
            break
        kept += found
        if first_day is None and kept:
            first_day = kept[0].date()
    return [s for s in kept if s.date() == first_day]


def _one_line(message: str, kind: AppointmentType) -> str:
    """`ToolResult.one_line` of a free-times message. Apart from the type's name it is
    words and single spaces (days, times, the part of the day), so when the name is
    already one line (no edge, double or other whitespace), so is the message."""
    name = kind.name
    if name and " ".join(name.split()) == name:
        return message
    return " ".join(message.split())


def _first(days: Iterable[tuple[date, list[datetime]]], limit: int) -> list[datetime]:
    """The first `limit` starts; the days after them are not searched."""
    slots: list[datetime] = []
    for _, found in days:
        slots += found
        if len(slots) >= limit:
            return slots[:limit]
    return slots


def _checked_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    # A day either side: buffers and daily caps look past the slot itself.
    return start - ONE_DAY, end + ONE_DAY


def stored_request_key(agent_id: str, caller: str | None, request_key: str) -> str:
    """The booking key for a request id. Hashed with agent and caller: another caller's
    copy of the id is another key, so it neither finds this booking nor collides."""
    raw = f"{agent_id}|{caller}|{request_key}"
    return "request:" + hashlib.sha256(raw.encode()).hexdigest()[:40]


_APPOINTMENT_COLUMNS = tuple(c.key for c in Appointment.__table__.columns)
# A new booking's row before its own values: every column, the model's defaults spelled
# out (an explicit INSERT of None would not apply them).
_NEW_APPOINTMENT: dict[str, object] = {
    **dict.fromkeys(_APPOINTMENT_COLUMNS),
    "status": AppointmentStatus.CONFIRMED,
    "sync_status": SyncStatus.NOT_APPLICABLE,
    "sync_attempts": 0,
}
_APPOINTMENT_CLASS = manager_of_class(Appointment)


def _conversation_row(conversation: ConversationRow) -> dict[str, object]:
    """Every column of a new conversation, stamped now, in the table's column order."""
    now = utcnow()
    values = {name: getattr(conversation, name) for name in CONVERSATION_FIELDS}
    values.update(created_at=now, updated_at=now)
    return {column: values[column] for column in _CONVERSATION_COLUMNS}


@cache
def _insert_appointment(dialect: str) -> ReturningInsert[str]:
    """A booking's INSERT, doing nothing on a conflict (built once per dialect)."""
    table = cast(Table, Appointment.__table__)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement: ReturningInsert[str] = insert(table).on_conflict_do_nothing().returning(table.c.id)
    return statement


_CONVERSATIONS = cast(Table, Conversation.__table__)
_CONVERSATION_COLUMNS = tuple(column.key for column in _CONVERSATIONS.columns)
_INSERT_CONVERSATION = sqlite.insert(_CONVERSATIONS)
# Parameter names of the combined statement: both tables have an id, timestamps, ...
_CONVERSATION_PARAMS = tuple(f"new_conversation_{column}" for column in _CONVERSATION_COLUMNS)


@cache
def _insert_appointment_and_conversation() -> ReturningInsert[str]:
    """PostgreSQL: the booking's INSERT with its new conversation's as a data-modifying
    CTE, one round trip (built once). The CTE runs whether or not the booking conflicts,
    as the conversation's own INSERT did, and the booking's foreign key to it is checked
    at the end of the statement, when the conversation is there."""
    conversation = (
        postgresql.insert(_CONVERSATIONS)
        .values(
            {
                column.key: bindparam(name, type_=column.type)
                for column, name in zip(_CONVERSATIONS.columns, _CONVERSATION_PARAMS, strict=True)
            }
        )
        .returning(literal(1).label("written"))
        .cte("new_conversation")
    )
    return _insert_appointment("postgresql").add_cte(conversation)


class FreeTimes(NamedTuple):
    """What check_availability found: the type's key, the agent's zone, the free starts
    in that zone, the tool's message and that message on one line (`ToolResult.one_line`,
    as a transcript records it). `result()` is the tool's answer; the offline engine,
    which built the arguments itself, reads the starts as they are. (A tuple: made at
    every search, and a frozen dataclass's fields are set one call at a time.)"""

    type_key: str
    zone_key: str
    local: list[datetime]
    message: str
    one_line: str

    def result(self) -> ToolResult:
        data = {
            "appointment_type": self.type_key,
            "timezone": self.zone_key,
            "slots": [s.isoformat() for s in self.local],
        }
        return ToolResult(ok=True, message=self.message, data=data)


class SchedulingTools:
    def __init__(self, context: ToolContext) -> None:
        self.ctx = context
        self.schedule = schedule_for(context.agent)
        self._seen: _Window | None = None
        # Forgotten at any write, as _seen.
        self._upcoming = context.upcoming

    # --- shared pieces -------------------------------------------------------------

    def resolve_type(self, wanted: str | None) -> AppointmentType | None:
        if not self.schedule.types:
            return None
        if wanted is None:
            return self.schedule.types[0]
        return self.schedule.type_named(wanted)

    def _type_error(self, wanted: str | None) -> ToolResult:
        names = ", ".join(t.name for t in self.schedule.types) or "none configured"
        return ToolResult(
            ok=False,
            message=f"Unknown appointment type {wanted!r}. Available: {names}.",
            data={"error": "unknown_type", "types": [t.key for t in self.schedule.types]},
        )

    def _localize(self, moment: datetime) -> datetime:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=self.schedule.zone)
        return moment.astimezone(UTC)

    def _appointments_between(
        self, start: datetime, end: datetime, exclude_id: str | None = None
    ) -> list[Row[str, datetime, datetime]]:
        """(type, start, end) of live appointments overlapping the window: plain rows,
        since a busy calendar has many and none of them is changed here."""
        statement = _APPOINTMENTS_EXCLUDING if exclude_id is not None else _APPOINTMENTS
        return self._read(statement, self._window_params(start, end, exclude_id))

    def _window_params(
        self, start: datetime, end: datetime, exclude_id: str | None
    ) -> dict[str, object]:
        return {
            "agent_id": self.ctx.agent.id,
            "window_start": start,
            "window_end": end,
            "exclude_id": exclude_id,
        }

    def _read(
        self, statement: Executable, params: dict[str, object]
    ) -> list[Row[str, datetime, datetime]]:
        """Rows of a statement on the tables (built once, no ORM entities), after the
        flush the ORM would do before an ORM query, so the same rows are seen."""
        session = self.ctx.session
        if session.autoflush:
            session.flush()
        # Compiled once, sent on the session's cursor (app/sql_fast.py): its rows are
        # named tuples, read like a Row (by label, by index, unpacked).
        rows = sql_fast.execute(session, statement, params).rows
        return cast(list[Row[str, datetime, datetime]], rows)

    def _busy_and_counts(
        self, start: datetime, end: datetime, exclude_id: str | None = None, fresh: bool = False
    ) -> tuple[BusyIndex, Mapping[date, int]]:
        start, end = _checked_window(start, end)
        if isinstance(self.ctx.calendar, LocalCalendar) and (fresh or exclude_id is not None):
            # The check before a write always reads exactly the window.
            appointments, external = self._read_local(start, end, exclude_id)
        elif not isinstance(self.ctx.calendar, LocalCalendar):
            # External calendars' windows are fetched and cached as asked.
            appointments = self._appointments_between(start, end, exclude_id)
            external = self.ctx.calendar.busy(self.ctx.agent, start, end, fresh=fresh)
        else:
            appointments, external = self._read_window(start, end)
        intervals = [self._blocked_by(*row) for row in appointments]
        intervals += external
        if self.schedule.daily_cap is None:
            return BusyIndex(intervals), _NO_COUNTS  # only a daily cap reads the counts
        per_day = Counter(self.schedule.local_day(row.start_at) for row in appointments)
        return BusyIndex(intervals), per_day

    def _read_window(
        self, start: datetime, end: datetime
    ) -> tuple[list[Row[str, datetime, datetime]], list[Interval]]:
        """Appointments and busy blocks of [start, end), read once per turn for a window
        a day wider than asked: the engine's next question (alternatives, a nearby day)
        is usually inside it, and each read is two round trips. Any write forgets it."""
        seen = self._seen
        if seen is None or not (seen.start <= start and end <= seen.end):
            wide_start, wide_end = start - READ_MARGIN, end + READ_MARGIN
            seen = self._seen = _Window(
                wide_start, wide_end, *self._read_local(wide_start, wide_end)
            )
        return (
            [row for row in seen.appointments if row.start_at < end and row.end_at > start],
            [block for block in seen.busy if block.start < end and block.end > start],
        )

    def _read_local(
        self, start: datetime, end: datetime, exclude_id: str | None = None
    ) -> tuple[list[Row[str, datetime, datetime]], list[Interval]]:
        """The built-in calendar's appointments and the owner's busy blocks overlapping
        [start, end), in one round trip (a block's row has no type)."""
        statement = _LOCAL_EXCLUDING if exclude_id is not None else _LOCAL
        rows = self._read(statement, self._window_params(start, end, exclude_id))
        appointments = [row for row in rows if row.appointment_type is not None]
        busy = [Interval(row.start_at, row.end_at) for row in rows if row.appointment_type is None]
        return appointments, busy

    def _blocked_by(self, type_key: str, start: datetime, end: datetime) -> Interval:
        kind = self.schedule.type_named(type_key)
        if kind is None:
            return Interval(start, end)
        blocked = kind.blocked(start)
        return Interval(blocked.start, max(blocked.end, end))

    def _own_appointment(self, appointment_id: str) -> Appointment | None:
        appointment = self.ctx.session.get(Appointment, appointment_id)
        if (
            appointment is None
            or appointment.agent_id != self.ctx.agent.id
            or appointment.contact_e164 != self.ctx.caller
        ):
            return None
        return appointment

    def _refuse_unverified(self) -> ToolResult | None:
        if self.ctx.may_manage_existing:
            return None
        return ToolResult(
            ok=False,
            message="I need to verify your identity (your PIN) before I can do that.",
            data={"error": "verification_required"},
        )

    def _audit(self, action: str, subject: str, **details: object) -> None:
        audit.record(
            self.ctx.session,
            action,
            actor=f"{self.ctx.channel}:{self.ctx.caller or 'unknown'}",
            subject=subject,
            details={"agent_id": self.ctx.agent.id, **details},
        )

    def _notify(self, appointment: Appointment, change: notifications.Change) -> None:
        """Confirmation, reminders and owner messages, in this same transaction."""
        notifications.on_change(
            self.ctx.session,
            self.ctx.agent,
            appointment,
            change,
            now=self.ctx.now,
            channel=self.ctx.channel,
            caller=self.ctx.caller,
            planning=self.ctx.planning,
        )

    # --- tools ---------------------------------------------------------------------

    def check_availability(self, args: CheckAvailabilityArgs) -> ToolResult:
        found = self.free_times(
            args.appointment_type, args.date, args.part_of_day, args.after, args.limit
        )
        if isinstance(found, ToolResult):
            return found
        return found.result()

    def free_times(
        self,
        appointment_type: str | None,
        day: date | None,
        part_of_day: str | None,
        after: datetime | None,
        limit: int,
    ) -> ToolResult | FreeTimes:
        """check_availability on values already checked (`CheckAvailabilityArgs`' own
        types and bounds): the times found, in the agent's zone, and its message. A
        type it does not know is the tool's refusal, as is."""
        kind = self.resolve_type(appointment_type)
        if kind is None:
            return self._type_error(appointment_type)
        zone = self.schedule.zone
        if day is not None:
            start = datetime.combine(day, MIDNIGHT, zone).astimezone(UTC)
            end = datetime.combine(day + ONE_DAY, MIDNIGHT, zone).astimezone(UTC)
        else:
            start = self.ctx.now
            end = self.ctx.now + SEARCH_WITHOUT_DATE
        if after is not None:
            start = max(start, self._localize(after))
        busy, per_day = self._busy_and_counts(start, end)
        days = slots_by_day(
            self.schedule,
            kind,
            busy,
            now=self.ctx.now,
            window_start=start,
            window_end=end,
            booked_per_day=per_day,
            local=True,  # made in the agent's zone: converting one is then a no-op
        )
        kept = _in_part(days, part_of_day)
        local = _first_day_only(kept)[:limit] if day is None else _first(kept, limit)
        if not local:
            when = f"on {day:%a %b} {day.day}" if day else "soon"
            part = f" in the {part_of_day}" if part_of_day else ""
            message = f"No {kind.name} times free {when}{part}."
        else:
            message = f"Free {kind.name} times: {_describe_all(local)}."
        return FreeTimes(kind.key, str(zone.key), local, message, _one_line(message, kind))

    def book_appointment(
        self, args: BookAppointmentArgs, request_key: str | None = None
    ) -> ToolResult:
        """Book at args.start. `request_key` (the server's id of the request, such as
        VAPI's toolCallId) makes a retry answer as the first time; without one the key
        is derived from caller, type and start. Keys are looked up for this agent and
        this caller only, so nobody else's key can reach someone's booking."""
        kind = self.resolve_type(args.appointment_type)
        if kind is None:
            return self._type_error(args.appointment_type)
        start = self._localize(args.start)
        # With the built-in calendar a request key is looked up only when the booking
        # cannot go ahead (its slot refused, or its key taken at the INSERT): a booking
        # made under the key holds its slot, so a repeat always gets there, and nothing
        # external is asked on the way.
        key_later = request_key is not None and isinstance(self.ctx.calendar, LocalCalendar)
        if request_key is not None:
            key = self._request_key(request_key)
            existing = None if key_later else self._by_key(key)
        else:
            key, existing = self._current_derived(kind, start)
        if existing is not None:
            return self._booked_result(existing, kind)

        reason = self._why_unavailable(kind, start)
        if reason is not None:
            earlier = self._by_key(key) if key_later else None
            if earlier is not None:
                return self._booked_result(earlier, kind)
            return self._unavailable(reason, kind, start)
        appointment = self._insert_new(
            {
                "id": new_id("apt"),
                "agent_id": self.ctx.agent.id,
                "appointment_type": kind.key,
                "start_at": start,
                "end_at": start + kind.duration,
                "contact_e164": self.ctx.caller,
                "contact_name": args.name,
                "notes": args.notes,
                "idempotency_key": key,
                "channel": self.ctx.channel,
                "conversation_id": self.ctx.conversation_id,
            }
        )
        if appointment is None:
            self._seen = self._upcoming = None  # someone else's booking committed: read again
            raced = self._by_key(key)
            if raced is not None:  # the same request, committed by a concurrent retry
                return self._booked_result(raced, kind)
            return self._unavailable(Unavailable.BUSY, kind, start)
        self._write_through(self.ctx.calendar.create_event, appointment)
        self._audit(
            "appointment.booked",
            appointment.id,
            start=start.isoformat(),
            type=kind.key,
            channel=self.ctx.channel,
        )
        self._notify(appointment, "booked")
        return self._booked_result(appointment, kind)

    def list_appointments(self, args: ListAppointmentsArgs) -> ToolResult:
        refusal = self._refuse_unverified()
        if refusal is not None:
            return refusal
        appointments = self._upcoming if not args.include_past else None
        if appointments is None:
            appointments = self._callers_appointments(args.include_past)
        items = [self._appointment_data(a) for a in appointments]
        if not appointments:
            return ToolResult(
                ok=True, message="You have no upcoming appointments.", data={"appointments": []}
            )
        listed = "; ".join(f"{i['type_name']} {i['when']} (id {i['id']})" for i in items)
        return ToolResult(
            ok=True,
            message=f"Your appointments: {listed}.",
            data={"appointments": items},
        )

    def _callers_appointments(self, include_past: bool) -> list[Appointment]:
        # No caller: rows without a number, as `contact_e164 == None` always read.
        query = _CALLERS[include_past, self.ctx.caller is None]
        params = {"agent_id": self.ctx.agent.id, "caller": self.ctx.caller, "now": self.ctx.now}
        return list(self.ctx.session.scalars(query, params))

    def cancel_appointment(self, args: CancelAppointmentArgs) -> ToolResult:
        refusal = self._refuse_unverified()
        if refusal is not None:
            return refusal
        appointment = self._own_appointment(args.appointment_id)
        if appointment is None:
            return ToolResult(
                ok=False,
                message="I couldn't find that appointment among yours.",
                data={"error": "not_found"},
            )
        if appointment.status == AppointmentStatus.CANCELLED:
            return ToolResult(
                ok=True,
                message="That appointment was already cancelled.",
                data={"appointment": self._appointment_data(appointment)},
            )
        appointment.status = AppointmentStatus.CANCELLED
        appointment.cancelled_at = self.ctx.now
        self.ctx.session.flush()
        self._write_through(self.ctx.calendar.delete_event, appointment)
        self._audit("appointment.cancelled", appointment.id, channel=self.ctx.channel)
        self._notify(appointment, "cancelled")
        data = self._appointment_data(appointment)
        return ToolResult(
            ok=True,
            message=f"Cancelled your {data['type_name']} on {data['when']}.",
            data={"appointment": data},
        )

    def reschedule_appointment(self, args: RescheduleAppointmentArgs) -> ToolResult:
        refusal = self._refuse_unverified()
        if refusal is not None:
            return refusal
        appointment = self._own_appointment(args.appointment_id)
        if appointment is None or appointment.status != AppointmentStatus.CONFIRMED:
            return ToolResult(
                ok=False,
                message="I couldn't find that appointment among your upcoming ones.",
                data={"error": "not_found"},
            )
        kind = self.resolve_type(appointment.appointment_type) or AppointmentType(
            appointment.appointment_type,
            appointment.appointment_type,
            int((appointment.end_at - appointment.start_at).total_seconds() // 60),
        )
        new_start = self._localize(args.new_start)
        if new_start == appointment.start_at:
            return self._booked_result(appointment, kind, verb="Your appointment is already")
        reason = self._why_unavailable(kind, new_start, exclude_id=appointment.id)
        if reason is not None:
            return self._unavailable(reason, kind, new_start)
        old_start = appointment.start_at
        if not self._move_guarded(appointment, new_start, new_start + kind.duration):
            self._seen = self._upcoming = None  # someone else's booking committed: read again
            return self._unavailable(Unavailable.BUSY, kind, new_start)
        self._write_through(self.ctx.calendar.update_event, appointment)
        self._audit(
            "appointment.rescheduled",
            appointment.id,
            old_start=old_start.isoformat(),
            new_start=new_start.isoformat(),
            channel=self.ctx.channel,
        )
        self._notify(appointment, "moved")
        return self._booked_result(appointment, kind, verb="Moved: your")

    def prefetch(self, name: str, raw_args: dict[str, object]) -> None:
        """Ask the external calendar what a booking or move will check, before any write
        transaction: the check inside it then reuses this answer instead of holding the
        write turn through an HTTP call. Best effort: the tool itself reports failures."""
        try:
            if name == "book_appointment":
                args = BookAppointmentArgs.model_validate(raw_args)
                kind = self.resolve_type(args.appointment_type)
                start = self._localize(args.start)
            elif name == "reschedule_appointment":
                moved = RescheduleAppointmentArgs.model_validate(raw_args)
                own = self._own_appointment(moved.appointment_id)
                kind = self.resolve_type(own.appointment_type) if own else None
                start = self._localize(moved.new_start)
            else:
                return
            if kind is not None:
                window_start, window_end = _checked_window(start, start + kind.duration)
                self.ctx.calendar.busy(self.ctx.agent, window_start, window_end, fresh=True)
        except (ValueError, CalendarError):
            return

    # --- booking internals -----------------------------------------------------------

    def _derived_key(self, kind: AppointmentType, start: datetime) -> str:
        raw = f"{self.ctx.agent.id}|{self.ctx.caller}|{kind.key}|{start.isoformat()}"
        return "derived:" + hashlib.sha256(raw.encode()).hexdigest()[:40]

    @staticmethod
    def _rekeyed(key: str, replaced_id: str) -> str:
        return "derived:" + hashlib.sha256(f"{key}|{replaced_id}".encode()).hexdigest()[:40]

    def _request_key(self, request_key: str) -> str:
        return stored_request_key(self.ctx.agent.id, self.ctx.caller, request_key)

    def _current_derived(
        self, kind: AppointmentType, start: datetime
    ) -> tuple[str, Appointment | None]:
        """The derived key stands for "this caller, this type, this start". Once its row
        was cancelled or moved it no longer answers for the request: booking the slot
        again is a new booking, with a key chained from the old one."""
        key = self._derived_key(kind, start)
        existing = self._by_key(key)
        while existing is not None and (
            existing.status != AppointmentStatus.CONFIRMED or existing.start_at != start
        ):
            key = self._rekeyed(key, existing.id)
            existing = self._by_key(key)
        return key, existing

    def _by_key(self, key: str) -> Appointment | None:
        """This caller's booking under `key` with this agent (never anyone else's)."""
        return self.ctx.session.scalar(
            select(Appointment).where(
                Appointment.agent_id == self.ctx.agent.id,
                Appointment.idempotency_key == key,
                Appointment.contact_e164.is_(None)
                if self.ctx.caller is None
                else Appointment.contact_e164 == self.ctx.caller,
            )
        )

    def _why_unavailable(
        self, kind: AppointmentType, start: datetime, exclude_id: str | None = None
    ) -> Unavailable | None:
        if self.schedule.daily_cap is None and isinstance(self.ctx.calendar, LocalCalendar):
            # No day to count: only what may overlap the slot is read.
            busy = self._busy_near(kind, start, exclude_id)
            return check_slot(self.schedule, kind, busy, now=self.ctx.now, start=start)
        # fresh: the external calendar is asked again, not answered from a cache.
        busy, per_day = self._busy_and_counts(start, start + kind.duration, exclude_id, fresh=True)
        return check_slot(
            self.schedule, kind, busy, now=self.ctx.now, start=start, booked_per_day=per_day
        )

    def _busy_near(
        self, kind: AppointmentType, start: datetime, exclude_id: str | None
    ) -> BusyIndex:
        """The built-in calendar's busy spans in the checked window that may overlap
        `kind` at `start`, read fresh: the rows `_busy_and_counts` would read, less those
        that cannot reach the slot. An appointment keeps [its start - its type's buffer
        before, the later of its end and its start + its type's duration and buffer
        after) (`_blocked_by`; its own span for a type no longer known), so one that
        reaches the slot starts before the slot's end plus the longest buffer before, and
        ends after the slot's start less the longest duration and buffer after (it ends
        after it starts: every write makes it so, and PostgreSQL's exclusion constraint
        refuses any other row). The same statement as a window's read, on a narrower
        window: a busy calendar's three days hold dozens of rows, this one a few."""
        window_start, window_end = _checked_window(start, start + kind.duration)
        blocked = kind.blocked(start)
        before, after = self.schedule.reach
        near_start = max(window_start, blocked.start - after)
        near_end = min(window_end, blocked.end + before)
        appointments, external = self._read_local(near_start, near_end, exclude_id)
        intervals = [self._blocked_by(*row) for row in appointments]
        intervals += external
        return BusyIndex(intervals)

    def _write_through(
        self, write: Callable[[AgentLike, Appointment], str | None], appointment: Appointment
    ) -> None:
        """Write to the calendar backend; on failure the change stays pending for sync.

        What the caller was told is the database's truth; an external calendar that is
        briefly down catches up later instead of un-confirming the booking. An external
        calendar is written after the transaction commits, never inside it (it would
        hold SQLite's write turn through a slow HTTP call).
        """
        self._seen = self._upcoming = None  # what this turn read before is out of date
        if self.ctx.calendar.name != "local":
            appointment.sync_status = SyncStatus.PENDING
            appointment.next_sync_at = None
            self.ctx.session.flush()
            self.ctx.calendar.write_after_commit(appointment.id)
            return
        try:
            external_id = write(self.ctx.agent, appointment)
        except CalendarError as exc:
            appointment.sync_status = SyncStatus.PENDING
            appointment.last_sync_error = str(exc)[:500]
            return
        if external_id is not None:
            appointment.external_event_id = external_id
        if self.ctx.calendar.name != "local":
            appointment.sync_status = SyncStatus.SYNCED

    def _insert_new(self, values: dict[str, object]) -> Appointment | None:
        """INSERT the new booking (`values`: its columns that are set); None when its key
        is taken or (PostgreSQL's exclusion constraint) its time overlaps a booking
        committed meanwhile. One statement that does nothing on such a conflict: no
        savepoint around it, and the transaction stays usable either way. With an
        external calendar the row then stands in the session as if loaded (the write
        through marks it for sync: an UPDATE); the built-in calendar changes nothing on
        it, so its entity stays out of the session (a later read in the transaction
        loads the row as any other), and commit has no ORM object to look after."""
        session = self.ctx.session
        now = utcnow()
        row = {**_NEW_APPOINTMENT, **values, "created_at": now, "updated_at": now}
        held = self.ctx.new_conversation
        self.ctx.new_conversation = None  # written once, whatever the booking's fate
        if held is not None:
            # Written by the booking's own statement (below), so not on its own by
            # `write_unwritten` nor again at commit. Should that statement fail, the
            # transaction rolls back, and with it this conversation.
            mark_written(session, held)
        # Rows that refer to this one (the conversation it was made in) go first.
        write_unwritten(session)
        session.flush()
        if self._execute_insert(row, held) is None:
            return None
        # As a query's load makes it: the row's values as its committed state (the
        # constructor's instrumented sets would only be reset by this).
        appointment: Appointment = _APPOINTMENT_CLASS.new_instance()
        appointment.__dict__.update(row)
        if isinstance(self.ctx.calendar, LocalCalendar):
            return appointment
        make_transient_to_detached(appointment)
        session.add(appointment)
        return appointment

    def _execute_insert(
        self, row: dict[str, object], conversation: ConversationRow | None
    ) -> str | None:
        """The booking's INSERT (its id, or None on a conflict), with `conversation`, the
        one it refers to when that is not written yet: in the same statement on
        PostgreSQL, just before it on SQLite (no INSERT in a CTE there). Statements on
        the tables, compiled once and sent on the session's cursor (app/sql_fast.py)."""
        connection = self.ctx.session.connection()
        dialect = connection.dialect.name
        if conversation is None:
            booked: str | None = sql_fast.execute(
                connection, _insert_appointment(dialect), row
            ).scalar()
            return booked
        written = _conversation_row(conversation)
        if dialect == "postgresql":
            params = dict(zip(_CONVERSATION_PARAMS, written.values(), strict=True))
            statement = _insert_appointment_and_conversation()
            booked = sql_fast.execute(connection, statement, {**row, **params}).scalar()
        else:
            sql_fast.execute(connection, _INSERT_CONVERSATION, written)
            booked = sql_fast.execute(connection, _insert_appointment(dialect), row).scalar()
        return booked

    def _move_guarded(self, appointment: Appointment, start: datetime, end: datetime) -> bool:
        """Move in a savepoint (the change itself inside it, or the savepoint's own
        flush would write it outside); False when the database refuses an overlap."""
        try:
            with self.ctx.session.begin_nested():
                appointment.start_at = start
                appointment.end_at = end
                self.ctx.session.flush()
        except IntegrityError:
            return False
        return True

    def _unavailable(
        self, reason: Unavailable, kind: AppointmentType, start: datetime
    ) -> ToolResult:
        alternatives = self._alternatives(kind, start)
        suggestion = ", ".join(describe(s, self.schedule) for s in alternatives)
        message = f"Can't book {describe(start, self.schedule)}: {reason.value}."
        if suggestion:
            message += f" Nearby free times: {suggestion}."
        return ToolResult(
            ok=False,
            message=message,
            data={
                "error": reason.name.lower(),
                "alternatives": [
                    s.astimezone(self.schedule.zone).isoformat() for s in alternatives
                ],
            },
        )

    def _alternatives(self, kind: AppointmentType, start: datetime) -> list[datetime]:
        """Up to three nearby free times; none when the calendar cannot say (the refusal
        itself stands either way)."""
        try:
            busy = self._busy_and_counts(start, start + timedelta(days=7))[0]
        except CalendarError:
            return []
        return find_slots(
            self.schedule,
            kind,
            busy,
            now=self.ctx.now,
            window_start=max(start - timedelta(hours=4), self.ctx.now),
            window_end=start + timedelta(days=7),
            limit=3,
        )

    def _appointment_data(self, appointment: Appointment) -> dict[str, object]:
        type_key = appointment.appointment_type
        kind = self.schedule.type_named(type_key)
        zone = self.schedule.zone
        start = appointment.start_at.astimezone(zone)  # describe()'s own conversion
        return {
            "id": appointment.id,
            "type": type_key,
            "type_name": kind.name if kind else type_key,
            "start": start.isoformat(),
            "end": appointment.end_at.astimezone(zone).isoformat(),
            "when": _describe_local(start),
            "status": appointment.status,
            "name": appointment.contact_name,
        }

    def _booked_result(
        self, appointment: Appointment, kind: AppointmentType, verb: str = "Booked: your"
    ) -> ToolResult:
        data = self._appointment_data(appointment)
        return ToolResult(
            ok=True,
            message=f"{verb} {kind.name} on {data['when']} (id {appointment.id}).",
            data={"appointment": data},
        )
