"""check_availability's free times (`SchedulingTools.free_times`) against the search they
replaced: every start made in UTC and converted to the agent's zone one by one, the part
of the day and the first free day read through those conversions, the day counts always
made, the transcript's line made by splitting the message. Random agents (hours across
midnight, types, buffers, steps, notice, horizon, daily caps, zones changing their
clocks at night or at midnight), random bookings and busy blocks, random questions
around the clock changes; the answers must be the same down to each start's offset and
fold."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.calendar.availability import BusyIndex, Interval, Schedule, slots_by_day
from app.calendar.local import LocalCalendar
from app.demo import DemoData
from app.models import Agent, Appointment, AppointmentStatus, BusyBlock
from app.tools.service import (
    PARTS_OF_DAY,
    SEARCH_DAYS_WITHOUT_DATE,
    FreeTimes,
    SchedulingTools,
    ToolContext,
    _describe_all,
)

# Zones and days (UTC, 2026) on which their clocks change: at 2 AM, at midnight (Havana,
# Santiago), by half an hour (Lord Howe); Kolkata never changes.
CHANGES = {
    "America/Los_Angeles": ("2026-03-08", "2026-11-01"),
    "Europe/London": ("2026-03-29", "2026-10-25"),
    "America/Havana": ("2026-03-08", "2026-11-01"),
    "America/Santiago": ("2026-04-05", "2026-09-06"),
    "Australia/Lord_Howe": ("2026-04-04", "2026-10-03"),
    "Asia/Kolkata": ("2026-06-01",),
}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Names a transcript line must show on one line (whitespace runs, tabs, edges, a
# no-break space and a line separator, which str.split also splits at).
NAMES = ("consultation", "deep  tissue", " padded ", "tab\tname", "x\u2028y", "a\xa0b", " ")


def _clock(minutes: int) -> str:
    return f"{minutes // 60 % 24:02d}:{minutes % 60:02d}"


def _settings(rng: random.Random) -> dict[str, Any]:
    hours: dict[str, list[list[str]]] = {}
    if rng.random() < 0.3:  # open around the clock: the nights the clocks change
        return {**_settings(rng), "weekly_hours": {day: [["00:00", "00:00"]] for day in WEEKDAYS}}
    for day in WEEKDAYS:
        windows = []
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            opens = rng.randrange(0, 96) * 15
            closes = opens + rng.randrange(1, 97) * 15  # past midnight: the next day
            windows.append([_clock(opens), _clock(closes)])
        if windows:
            hours[day] = windows
    types = [
        {
            "key": f"t{i}",
            "name": rng.choice(NAMES),
            "duration_minutes": rng.choice([5, 15, 30, 45, 60, 90, 240]),
            "buffer_before_minutes": rng.choice([0, 0, 5, 15, 30]),
            "buffer_after_minutes": rng.choice([0, 0, 10, 15, 45]),
        }
        for i in range(rng.randrange(1, 4))
    ]
    return {
        "timezone": rng.choice(list(CHANGES)),
        "weekly_hours": hours,
        "appointment_types": types,
        "slot_step_minutes": rng.choice([5, 10, 15, 20, 30, 45, 60]),
        "min_notice_minutes": rng.choice([0, 0, 30, 60, 24 * 60]),
        "horizon_days": rng.choice([1, 3, 14, 60]),
        "daily_cap": rng.choice([None, None, 1, 2, 4]),
    }


def _rows(
    rng: random.Random, demo: DemoData, base: datetime, types: list[dict[str, Any]]
) -> list[Appointment | BusyBlock]:
    rows: list[Appointment | BusyBlock] = []
    at = base - timedelta(days=2)
    while at < base + timedelta(days=16):
        # Back to back at the closest (PostgreSQL refuses overlapping bookings).
        at += timedelta(minutes=rng.choice([0, 15, 30, 60, 120, 240, 600]))
        minutes = rng.choice([10, 30, 45, 90])
        key = rng.choice([t["key"] for t in types] + ["gone"])  # a type no longer offered
        status = rng.choice([AppointmentStatus.CONFIRMED] * 4 + [AppointmentStatus.CANCELLED])
        rows.append(
            Appointment(
                agent_id=demo.agent_id,
                appointment_type=key,
                start_at=at,
                end_at=at + timedelta(minutes=minutes),
                status=status,
                idempotency_key=f"k{at.isoformat()}",
            )
        )
        at += timedelta(minutes=minutes)
    for _ in range(rng.randrange(0, 12)):
        start = base + timedelta(minutes=rng.randrange(-2 * 1440, 15 * 1440))
        end = start + timedelta(minutes=rng.choice([15, 25, 60, 180]))
        rows.append(BusyBlock(agent_id=demo.agent_id, start_at=start, end_at=end))
    return rows


def _reference(
    tools: SchedulingTools,
    rows: list[Appointment | BusyBlock],
    appointment_type: str | None,
    day: date | None,
    part_of_day: str | None,
    after: datetime | None,
    limit: int,
) -> tuple[str, str, list[datetime], str, str] | None:
    """What free_times answered before: starts made in UTC, each converted, the counts
    made whatever the cap, the transcript's line split out of the message."""
    schedule, now = tools.schedule, tools.ctx.now
    kind = tools.resolve_type(appointment_type)
    if kind is None:
        return None
    zone = schedule.zone
    if day is not None:
        start = datetime.combine(day, time(0), zone).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), zone).astimezone(UTC)
    else:
        start, end = now, now + timedelta(days=SEARCH_DAYS_WITHOUT_DATE)
    if after is not None:
        start = max(start, tools._localize(after))
    read_start, read_end = start - timedelta(days=1), end + timedelta(days=1)
    appointments = [
        r
        for r in rows
        if isinstance(r, Appointment)
        and r.status == AppointmentStatus.CONFIRMED
        and r.start_at < read_end
        and r.end_at > read_start
    ]
    blocks = [
        Interval(r.start_at, r.end_at)
        for r in rows
        if isinstance(r, BusyBlock) and r.start_at < read_end and r.end_at > read_start
    ]
    busy = BusyIndex([_blocked(schedule, a) for a in appointments] + blocks)
    per_day = Counter(schedule.local_day(a.start_at) for a in appointments)
    days = slots_by_day(
        schedule, kind, busy, now=now, window_start=start, window_end=end, booked_per_day=per_day
    )
    keep = _old_part_filter(part_of_day, schedule)
    if day is None:
        slots = _old_first_day_only(days, keep, schedule.local_day)[:limit]
    else:
        slots = list(islice((s for _, found in days for s in found if keep(s)), limit))
    local = [s.astimezone(zone) for s in slots]
    if not slots:
        when = f"on {day:%a %b} {day.day}" if day else "soon"
        part = f" in the {part_of_day}" if part_of_day else ""
        message = f"No {kind.name} times free {when}{part}."
    else:
        message = f"Free {kind.name} times: {', '.join(map(_old_describe, local))}."
    return kind.key, str(zone.key), local, message, " ".join(message.split())


def _blocked(schedule: Schedule, appointment: Appointment) -> Interval:
    kind = schedule.type_named(appointment.appointment_type)
    if kind is None:
        return Interval(appointment.start_at, appointment.end_at)
    start = appointment.start_at
    before = timedelta(minutes=kind.buffer_before_minutes)
    through = timedelta(minutes=kind.duration_minutes + kind.buffer_after_minutes)
    return Interval(start - before, max(start + through, appointment.end_at))


def _old_part_filter(part: str | None, schedule: Schedule) -> Callable[[datetime], bool]:
    if part is None:
        return lambda _: True
    low, high = PARTS_OF_DAY[part]
    return lambda slot: low <= slot.astimezone(schedule.zone).time() < high


def _old_first_day_only(
    days: Iterable[tuple[date, list[datetime]]],
    keep: Callable[[datetime], bool],
    local_day: Callable[[datetime], date],
) -> list[datetime]:
    kept: list[datetime] = []
    first_day: date | None = None
    for window_day, found in days:
        if first_day is not None and window_day > first_day:
            break
        kept.extend(s for s in found if keep(s))
        if first_day is None and kept:
            first_day = local_day(kept[0])
    return [s for s in kept if local_day(s) == first_day]


def _old_describe(local: datetime) -> str:
    return f"{local:%a %b} {local.day}, {local.hour % 12 or 12}:{local:%M %p}"


def _exactly(found: FreeTimes) -> tuple[str, str, list[tuple[str, int, object]], str, str]:
    """Each start's wall time, offset, fold and zone: equal moments can differ in those."""
    starts = [(s.isoformat(), s.fold, s.tzinfo) for s in found.local]
    return found.type_key, found.zone_key, starts, found.message, found.one_line


def _question(
    rng: random.Random, base: datetime, zone: str, types: list[dict[str, Any]]
) -> tuple[str | None, date | None, str | None, datetime | None, int]:
    kind = rng.choice([None, None, *(t["key"] for t in types), "unknown"])
    local_base = base.astimezone(Schedule.from_settings(timezone=zone, weekly_hours={}).zone)
    day = rng.choice([None, local_base.date() + timedelta(days=rng.randrange(-2, 5))])
    part = rng.choice([None, None, *PARTS_OF_DAY])
    after = None
    if rng.random() < 0.4:
        after = base + timedelta(minutes=rng.randrange(-1440, 4 * 1440))
        if rng.random() < 0.3:
            after = after.astimezone(local_base.tzinfo).replace(tzinfo=None)  # local, as read
    return kind, day, part, after, rng.choice([1, 3, 5, 20])


def test_free_times_are_the_converted_search(session: Session, demo: DemoData) -> None:
    rng = random.Random(1607)
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    seen = Counter[str]()
    for _ in range(80):
        settings = _settings(rng)
        for name, value in settings.items():
            setattr(agent, name, value)
        zone = settings["timezone"]
        change = datetime.fromisoformat(rng.choice(CHANGES[zone])).replace(tzinfo=UTC)
        base = change + timedelta(minutes=rng.randrange(-3 * 1440, 1440))
        session.execute(delete(Appointment))
        session.execute(delete(BusyBlock))
        rows = _rows(rng, demo, base, settings["appointment_types"])
        session.add_all(rows)
        session.flush()
        now = base - timedelta(minutes=rng.randrange(0, 2 * 1440), seconds=rng.randrange(60))
        context = ToolContext(
            session=session,
            agent=agent,
            calendar=LocalCalendar(session),
            now=now,
            caller=demo.caller,
            channel="sms",
        )
        tools = SchedulingTools(context)
        for _ in range(25):
            question = _question(rng, base, zone, settings["appointment_types"])
            found = tools.free_times(*question)
            expected = _reference(tools, rows, *question)
            if expected is None:
                assert not isinstance(found, FreeTimes)
                continue
            assert isinstance(found, FreeTimes), question
            starts = [(s.isoformat(), s.fold, s.tzinfo) for s in expected[2]]
            assert _exactly(found) == (*expected[:2], starts, *expected[3:]), question
            assert found.result().model_dump() == {
                "ok": True,
                "message": expected[3],
                "data": {
                    "appointment_type": expected[0],
                    "timezone": expected[1],
                    "slots": [s.isoformat() for s in expected[2]],
                },
            }
            seen["starts" if found.local else "none"] += 1
            seen["folded"] += any(s.fold for s in found.local)
            seen["capped"] += settings["daily_cap"] is not None and bool(found.local)
            seen["long line"] += found.one_line != found.message
    # The questions reached what the search must get right.
    assert seen["starts"] > 300 and seen["none"] > 50
    assert seen["capped"] > 20 and seen["long line"] > 20 and seen["folded"] > 0


def test_describe_all_is_describe_of_each() -> None:
    """The reference's description (strftime) and the slot list's (tables) agree."""
    zone = Schedule.from_settings(timezone="America/Santiago", weekly_hours={}).zone
    moment = datetime(2026, 4, 4, 20, 0, tzinfo=UTC)
    local = [(moment + timedelta(minutes=25 * i)).astimezone(zone) for i in range(120)]
    assert _describe_all(local) == ", ".join(map(_old_describe, local))
