"""The slot search works per gap between busy spans; it must find exactly the starts the
step-by-step search found (every grid step probed against the busy index), on any hours,
busy blocks, buffers, notice and window. The old search is kept here as the reference."""

from __future__ import annotations

import bisect
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.calendar import availability
from app.calendar.availability import (
    AppointmentType,
    BusyIndex,
    Interval,
    Schedule,
    find_slots,
    slots_by_day,
)

MONDAY = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the week before a US DST change
ZONES = ("America/Los_Angeles", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def stepped_slots(
    schedule: Schedule,
    kind: AppointmentType,
    busy: BusyIndex,
    now: datetime,
    window_start: datetime,
    window_end: datetime,
) -> list[datetime]:
    """The search before this round: one busy-index probe per grid step."""
    earliest = max(window_start, now + schedule.min_notice)
    latest = min(window_end, now + schedule.horizon)
    step = schedule.step_minutes * 60
    duration, before = kind.duration_minutes * 60, kind.buffer_before_minutes * 60
    after = kind.buffer_after_minutes * 60
    earliest_s, latest_s = int(earliest.timestamp()), int(latest.timestamp())
    slots: list[datetime] = []
    day = schedule.local_day(earliest) - timedelta(days=1)
    while day <= schedule.local_day(latest):
        for window in schedule.open_windows(day):
            start, end = int(window.start.timestamp()), int(window.end.timestamp())
            if start < earliest_s:
                start += step * -(-(earliest_s - start) // step)
            while start < latest_s and start + duration <= end:
                position = bisect.bisect_left(busy._starts, start + duration + after)
                if position and busy._ends[position - 1] > start - before:
                    conflict_end = busy._ends[position - 1]
                    start += step * max(1, -(-(conflict_end + before - start) // step))
                else:
                    slots.append(datetime.fromtimestamp(start, UTC))
                    start += step
        day += timedelta(days=1)
    return slots


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


windows = st.lists(
    st.tuples(st.integers(0, 95), st.integers(1, 96)).map(
        lambda w: [clock(w[0] * 15 % 1440), clock(w[1] * 15 % 1440)]
    ),
    max_size=3,
)
busy_spans = st.lists(
    st.tuples(st.integers(0, 7 * 24 * 60), st.integers(1, 8 * 60)), max_size=25
).map(
    lambda spans: [
        Interval(MONDAY + timedelta(minutes=at), MONDAY + timedelta(minutes=at + length))
        for at, length in spans
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    hours=st.lists(windows, min_size=7, max_size=7),
    step=st.sampled_from([5, 10, 15, 20, 30, 45, 60]),
    notice=st.integers(0, 36 * 60),
    duration=st.integers(5, 180),
    before=st.integers(0, 45),
    after=st.integers(0, 45),
    busy=busy_spans,
    offset=st.integers(-24 * 60, 3 * 24 * 60),
    length=st.integers(0, 5 * 24 * 60),
    now_offset=st.integers(-600, 24 * 60),
)
def test_same_slots_as_the_stepped_search(
    zone: str,
    hours: list[list[list[str]]],
    step: int,
    notice: int,
    duration: int,
    before: int,
    after: int,
    busy: list[Interval],
    offset: int,
    length: int,
    now_offset: int,
) -> None:
    schedule = Schedule.from_settings(
        timezone=zone,
        weekly_hours=dict(zip(WEEKDAYS, hours, strict=True)),
        step_minutes=step,
        min_notice_minutes=notice,
        horizon_days=4,
    )
    kind = AppointmentType("visit", "Visit", duration, before, after)
    index = BusyIndex(busy)
    now = MONDAY + timedelta(minutes=now_offset, seconds=now_offset % 7)
    start = MONDAY + timedelta(minutes=offset)
    end = start + timedelta(minutes=length)
    expected = stepped_slots(schedule, kind, index, now, start, end)
    found = find_slots(schedule, kind, index, now=now, window_start=start, window_end=end)
    assert found == expected
    by_day = slots_by_day(schedule, kind, index, now=now, window_start=start, window_end=end)
    assert [slot for _, slots in by_day for slot in slots] == expected
    local = slots_by_day(
        schedule, kind, index, now=now, window_start=start, window_end=end, local=True
    )
    assert _exactly([slot for _, slots in local for slot in slots]) == _exactly(
        [slot.astimezone(schedule.zone) for slot in expected]
    )


def _exactly(slots: list[datetime]) -> list[tuple[str, int, object]]:
    """What tells two datetimes apart beyond equal moments: wall time, offset, fold, zone."""
    return [(slot.isoformat(), slot.fold, slot.tzinfo) for slot in slots]


def test_local_starts_are_the_utc_starts_converted_across_a_fall_back_night() -> None:
    """The hour that happens twice: each start is made in the zone with its own fold."""
    schedule = Schedule.from_settings(
        timezone="America/Los_Angeles",
        weekly_hours={day: [["00:00", "23:59"]] for day in WEEKDAYS},
        min_notice_minutes=0,
        horizon_days=30,
    )
    kind = AppointmentType("visit", "Visit", 30)
    now = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    start, end = datetime(2026, 11, 1, 6, 0, tzinfo=UTC), datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    utc = find_slots(schedule, kind, BusyIndex([]), now=now, window_start=start, window_end=end)
    local = slots_by_day(
        schedule, kind, BusyIndex([]), now=now, window_start=start, window_end=end, local=True
    )
    made = [slot for _, slots in local for slot in slots]
    assert _exactly(made) == _exactly([slot.astimezone(schedule.zone) for slot in utc])
    assert [slot.fold for slot in made].count(1) == 4  # 1:00-1:45 AM the second time


def test_schedule_of_the_same_settings_is_built_once() -> None:
    hours = {"mon": [["09:00", "17:00"]]}
    first = Schedule.from_settings(timezone="Europe/London", weekly_hours=hours)
    again = Schedule.from_settings(timezone="Europe/London", weekly_hours={**hours})
    shorter = {"mon": [["09:00", "16:00"]]}
    edited = Schedule.from_settings(timezone="Europe/London", weekly_hours=shorter)
    assert again is first
    assert edited is not first and edited.hours[0] != first.hours[0]
    # Values that compare equal but build different schedules are different settings.
    as_int = Schedule.from_settings(timezone="UTC", weekly_hours={}, daily_cap=1)
    as_bool = Schedule.from_settings(timezone="UTC", weekly_hours={}, daily_cap=True)
    assert as_bool is not as_int and as_bool.daily_cap is True


# Zones and days (UTC) around their clock changes: at 2 AM, at midnight, by half an hour.
CHANGE_DAYS = {
    "America/Los_Angeles": ("2026-03-08", "2026-11-01"),
    "America/Havana": ("2026-03-08", "2026-11-01"),
    "America/Santiago": ("2026-04-05", "2026-09-06"),
    "Australia/Lord_Howe": ("2026-04-04", "2026-10-03"),
    "Europe/London": ("2026-03-29", "2026-10-25"),
}


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(list(CHANGE_DAYS)),
    which=st.integers(0, 1),
    hours=st.lists(windows, min_size=7, max_size=7),
    step=st.sampled_from([5, 15, 20, 45, 60]),
    duration=st.integers(5, 120),
    busy=busy_spans,
    offset=st.integers(-2 * 24 * 60, 24 * 60),
    length=st.integers(0, 3 * 24 * 60),
    kept=st.sampled_from([0, 40, 4096]),
)
def test_local_starts_from_the_grid_memo_across_clock_changes(
    zone: str,
    which: int,
    hours: list[list[list[str]]],
    step: int,
    duration: int,
    busy: list[Interval],
    offset: int,
    length: int,
    kept: int,
) -> None:
    """The starts a search makes in the zone come from each window's grid worked out once
    (`Schedule.local_grid`): on the nights the clocks change, a second search (the memo
    read back) and a memo too small for one window give each start the wall time,
    offset and fold that converting it gives."""
    change = datetime.fromisoformat(CHANGE_DAYS[zone][which]).replace(tzinfo=UTC)
    schedule = Schedule.from_settings(
        timezone=zone,
        weekly_hours=dict(zip(WEEKDAYS, hours, strict=True)),
        step_minutes=step,
        min_notice_minutes=0,
        horizon_days=7,
    )
    kind = AppointmentType("visit", "Visit", duration)
    start = change + timedelta(minutes=offset)
    spans = BusyIndex(
        [Interval(s.start + (change - MONDAY), s.end + (change - MONDAY)) for s in busy]
    )
    now = change - timedelta(days=3)
    search = dict(now=now, window_start=start, window_end=start + timedelta(minutes=length))
    utc = find_slots(schedule, kind, spans, **search)  # type: ignore[arg-type]
    expected = _exactly([slot.astimezone(schedule.zone) for slot in utc])
    with pytest.MonkeyPatch.context() as patch:
        if kept:
            patch.setattr(availability, "_GRID_STARTS_KEPT", kept)
        for _ in range(2):
            local = slots_by_day(schedule, kind, spans, local=True, **search)  # type: ignore[arg-type]
            assert _exactly([slot for _, slots in local for slot in slots]) == expected


@given(
    minutes=st.lists(st.tuples(st.integers(0, 720), st.integers(0, 240), st.integers(0, 240))),
    at=st.integers(-(10**6), 10**6),
)
def test_a_types_times_are_made_once_with_the_same_values(
    minutes: list[tuple[int, int, int]], at: int
) -> None:
    """`duration`, `blocked` and the schedule's `reach` keep timedeltas made once per type
    (and schedule): the values they were made from minutes at each call."""
    types = tuple(AppointmentType(f"t{i}", "T", *m) for i, m in enumerate(minutes))
    start = MONDAY + timedelta(minutes=at)
    for kind in types:
        duration, before, after = (timedelta(minutes=m) for m in kind_minutes(kind))
        for _ in range(2):
            assert kind.duration == duration
            assert kind.blocked(start) == Interval(start - before, start + duration + after)
    schedule = Schedule(
        zone=Schedule.from_settings(timezone="UTC", weekly_hours={}).zone, hours={}, types=types
    )
    longest_before = max([0, *(k.buffer_before_minutes for k in types)])
    longest_after = max([0, *(k.duration_minutes + k.buffer_after_minutes for k in types)])
    assert schedule.reach == (timedelta(minutes=longest_before), timedelta(minutes=longest_after))


def kind_minutes(kind: AppointmentType) -> tuple[int, int, int]:
    return kind.duration_minutes, kind.buffer_before_minutes, kind.buffer_after_minutes
