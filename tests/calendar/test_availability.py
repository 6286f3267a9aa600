"""The pure slot engine: time zones, DST, notice, horizon, buffers, caps."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.calendar.availability import (
    AppointmentType,
    BusyIndex,
    Interval,
    Schedule,
    Unavailable,
    check_slot,
    find_slots,
)

LA = ZoneInfo("America/Los_Angeles")
NINE_TO_FIVE = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
HOUR = AppointmentType("visit", "visit", 60)


def schedule(**overrides) -> Schedule:  # type: ignore[no-untyped-def]
    options = {
        "timezone": "America/Los_Angeles",
        "weekly_hours": NINE_TO_FIVE,
        "step_minutes": 60,
        "min_notice_minutes": 0,
        "horizon_days": 365,
    }
    options.update(overrides)
    return Schedule.from_settings(**options)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LA)


def day_slots(sched: Schedule, day: date, now: datetime, busy=(), kind=HOUR, **kw):  # type: ignore[no-untyped-def]
    start = datetime.combine(day, datetime.min.time(), LA)
    return find_slots(
        sched,
        kind,
        BusyIndex(busy),
        now=now,
        window_start=start.astimezone(UTC),
        window_end=(start + timedelta(days=1)).astimezone(UTC),
        **kw,
    )


@pytest.mark.parametrize("day", [date(2027, 3, 13), date(2027, 3, 14), date(2027, 3, 15)])
def test_local_hours_hold_across_spring_forward(day: date):
    now = local(2027, 3, 1, 0, 0)
    slots = day_slots(schedule(), day, now)
    assert [s.astimezone(LA).hour for s in slots] == list(range(9, 17))
    assert all(s.astimezone(LA).date() == day for s in slots)


def test_utc_offsets_change_with_dst_in_fall():
    now = local(2026, 10, 25, 0, 0)
    before = day_slots(schedule(), date(2026, 10, 31), now)[0]
    after = day_slots(schedule(), date(2026, 11, 2), now)[0]
    assert before == datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # PDT, UTC-7
    assert after == datetime(2026, 11, 2, 17, 0, tzinfo=UTC)  # PST, UTC-8


def test_day_of_fall_back_has_exactly_the_business_hours():
    slots = day_slots(schedule(), date(2026, 11, 1), local(2026, 10, 25, 0, 0))
    assert [s.astimezone(LA).hour for s in slots] == list(range(9, 17))


def test_minimum_notice_and_grid():
    sched = schedule(min_notice_minutes=90, step_minutes=30)
    slots = day_slots(sched, date(2026, 11, 23), local(2026, 11, 23, 10, 10))
    assert slots[0] == local(2026, 11, 23, 12, 0)  # 11:40 rounded up to the 30-minute grid
    assert (
        check_slot(
            sched,
            HOUR,
            BusyIndex([]),
            now=local(2026, 11, 23, 10, 10),
            start=local(2026, 11, 23, 11, 0),
        )
        is Unavailable.TOO_SOON
    )


def test_horizon_edges():
    sched = schedule(horizon_days=7)
    now = local(2026, 11, 23, 12, 0)
    last_day = day_slots(sched, date(2026, 11, 30), now)
    assert last_day[-1] == local(2026, 11, 30, 11, 0)  # the horizon ends at 12:00 local
    assert day_slots(sched, date(2026, 12, 1), now) == []
    assert (
        check_slot(sched, HOUR, BusyIndex([]), now=now, start=local(2026, 11, 30, 12, 0))
        is Unavailable.PAST_HORIZON
    )
    assert check_slot(sched, HOUR, BusyIndex([]), now=now, start=local(2026, 11, 30, 11, 0)) is None


def test_busy_blocks_and_buffers():
    kind = AppointmentType("cut", "cut", 30, buffer_before_minutes=15, buffer_after_minutes=15)
    busy = [Interval(local(2026, 11, 24, 10, 0), local(2026, 11, 24, 11, 0))]
    slots = day_slots(
        schedule(step_minutes=15),
        date(2026, 11, 24),
        local(2026, 11, 23, 8, 0),
        busy=busy,
        kind=kind,
    )
    times = [s.astimezone(LA).strftime("%H:%M") for s in slots]
    assert "09:15" in times and "09:30" not in times  # 09:30 + 30 + 15 buffer runs into 10:00
    assert "11:00" not in times and "11:15" in times  # 15 min buffer before
    # A buffer may reach outside opening hours (preparation before opening is fine).
    assert times[0] == "09:00"


def test_closed_days_and_split_hours():
    sched = schedule(weekly_hours={"mon": [["09:00", "12:00"], ["13:00", "15:00"]]})
    monday = day_slots(sched, date(2026, 11, 23), local(2026, 11, 22, 0, 0))
    assert [s.astimezone(LA).hour for s in monday] == [9, 10, 11, 13, 14]
    assert day_slots(sched, date(2026, 11, 24), local(2026, 11, 22, 0, 0)) == []
    assert (
        check_slot(
            sched,
            HOUR,
            BusyIndex([]),
            now=local(2026, 11, 22, 0, 0),
            start=local(2026, 11, 23, 11, 30),
        )
        is Unavailable.CLOSED
    )


def test_daily_cap():
    sched = schedule(daily_cap=2)
    now = local(2026, 11, 22, 0, 0)
    full = {date(2026, 11, 23): 2}
    assert day_slots(sched, date(2026, 11, 23), now, booked_per_day=full) == []
    assert (
        check_slot(
            sched,
            HOUR,
            BusyIndex([]),
            now=now,
            start=local(2026, 11, 23, 9, 0),
            booked_per_day=full,
        )
        is Unavailable.DAILY_CAP
    )


def test_busy_index_merges_and_finds_conflicts():
    a = Interval(local(2026, 11, 24, 9, 0), local(2026, 11, 24, 10, 0))
    b = Interval(local(2026, 11, 24, 9, 30), local(2026, 11, 24, 11, 0))
    index = BusyIndex([b, a])
    assert len(index) == 1
    probe = Interval(local(2026, 11, 24, 10, 59), local(2026, 11, 24, 11, 30))
    assert index.conflict(probe) == Interval(a.start, b.end)
    touching = Interval(local(2026, 11, 24, 11, 0), local(2026, 11, 24, 12, 0))
    assert index.conflict(touching) is None
