"""Reminder times: local wall clock across DST, quiet hours moved earlier, never later."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.notifications.timing import earliest_send, in_quiet_hours, reminder_due

LA = ZoneInfo("America/Los_Angeles")
QUIET = (time(21, 0), time(8, 0))


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LA)


def test_day_offsets_keep_the_wall_clock_across_the_fall_back_change():
    # DST ends at 02:00 Sun 1 Nov 2026 in Los Angeles: 24 real hours before Sunday 10:00
    # would be Saturday 11:00.
    start = local(2026, 11, 1, 10, 0)
    due = reminder_due(start.astimezone(UTC), 1440, LA, *QUIET)
    assert due.astimezone(LA) == local(2026, 10, 31, 10, 0)
    assert (start.astimezone(UTC) - due).total_seconds() == 25 * 3600


def test_day_offsets_keep_the_wall_clock_across_the_spring_forward_change():
    start = local(2026, 3, 8, 9, 30)  # DST begins at 02:00 Sun 8 Mar 2026
    due = reminder_due(start.astimezone(UTC), 1440, LA, *QUIET)
    assert due.astimezone(LA).replace(tzinfo=None) == datetime(2026, 3, 7, 9, 30)
    assert (start.astimezone(UTC) - due).total_seconds() == 23 * 3600


def test_hour_offsets_are_exact_durations():
    start = local(2026, 11, 24, 15, 0)
    due = reminder_due(start.astimezone(UTC), 120, LA, *QUIET)
    assert due.astimezone(LA) == local(2026, 11, 24, 13, 0)


def test_a_reminder_in_quiet_hours_goes_out_the_evening_before_not_after():
    start = local(2026, 11, 25, 9, 0)  # 2 h before is 07:00, inside 21:00-08:00
    due = reminder_due(start.astimezone(UTC), 120, LA, *QUIET)
    assert due.astimezone(LA) == local(2026, 11, 24, 20, 59)


def test_late_evening_reminder_moves_before_quiet_hours_the_same_evening():
    start = local(2026, 11, 25, 23, 30)  # 2 h before: 21:30
    due = reminder_due(start.astimezone(UTC), 120, LA, *QUIET)
    assert due.astimezone(LA) == local(2026, 11, 25, 20, 59)


@pytest.mark.parametrize(
    ("clock", "quiet"),
    [((20, 59), False), ((21, 0), True), ((23, 0), True), ((7, 59), True), ((8, 0), False)],
)
def test_quiet_hours_span_midnight(clock: tuple[int, int], quiet: bool):
    assert in_quiet_hours(local(2026, 11, 24, *clock), *QUIET) is quiet


def test_quiet_hours_within_one_day():
    assert in_quiet_hours(local(2026, 11, 24, 13, 0), time(12, 0), time(14, 0))
    assert not in_quiet_hours(local(2026, 11, 24, 14, 0), time(12, 0), time(14, 0))


def test_a_two_hour_reminder_may_go_at_most_five_minutes_early():
    start = datetime(2026, 11, 25, 15, 0, tzinfo=LA)
    due = reminder_due(start, 120, LA, *QUIET)
    earliest = earliest_send(due, start, LA, *QUIET)
    assert due - earliest == timedelta(minutes=5)


def test_an_early_send_never_reaches_into_quiet_hours():
    # 10:00 appointment, 2 h reminder at 08:00 local, right as quiet hours end.
    start = datetime(2026, 11, 25, 10, 0, tzinfo=LA)
    due = reminder_due(start, 120, LA, *QUIET)
    earliest = earliest_send(due, start, LA, *QUIET)
    assert earliest == due == datetime(2026, 11, 25, 8, 0, tzinfo=LA)
