"""When a reminder goes out: pure functions of the appointment, the offsets, the agent's
zone and its quiet hours. Whole-day offsets keep the wall-clock time (a 24 h reminder
for 10:00 is sent at 10:00 the day before, even across a DST change); the rest are
exact durations. A time inside quiet hours moves earlier, to just before they begin.

A reminder may go out a little early when a burst of them is due together (the send
planner starts early so none is late): at most EARLY_SHARE of its lead (5 minutes for
a 2 h reminder), and never inside quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_MINUTES = 24 * 60
# Sent this long before quiet hours begin when moved out of them.
QUIET_MARGIN = timedelta(minutes=1)
# How early a reminder may go out, as a share of how long before the appointment it is.
EARLY_SHARE = 1 / 24


def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(local: datetime, quiet_start: time, quiet_end: time) -> bool:
    moment = local.time()
    if quiet_start == quiet_end:
        return False
    if quiet_start < quiet_end:  # e.g. 01:00-06:00, within one day
        return quiet_start <= moment < quiet_end
    return moment >= quiet_start or moment < quiet_end  # e.g. 21:00-08:00, overnight


def _wall_clock_minus_days(local: datetime, days: int, zone: ZoneInfo) -> datetime:
    naive = local.replace(tzinfo=None) - timedelta(days=days)
    return naive.replace(tzinfo=zone)


def before_quiet_hours(local: datetime, quiet_start: time, zone: ZoneInfo) -> datetime:
    """The last moment before the quiet hours that contain `local` began."""
    day = local.date()
    if local.time() < quiet_start:  # after midnight: they began the evening before
        day -= timedelta(days=1)
    start = datetime.combine(day, quiet_start).replace(tzinfo=zone)
    return start - QUIET_MARGIN


def reminder_due(
    start: datetime, offset_minutes: int, zone: ZoneInfo, quiet_start: time, quiet_end: time
) -> datetime:
    """UTC due time of the reminder `offset_minutes` before `start`, out of quiet hours."""
    local = start.astimezone(zone)
    days, minutes = divmod(offset_minutes, DAY_MINUTES)
    due = _wall_clock_minus_days(local, days, zone) - timedelta(minutes=minutes)
    due = due.astimezone(UTC).astimezone(zone)  # normalise a wall time DST skipped
    if in_quiet_hours(due, quiet_start, quiet_end):
        due = before_quiet_hours(due, quiet_start, zone)
    return due.astimezone(UTC)


def local_time_today(now: datetime, at: time, zone: ZoneInfo) -> datetime:
    """Today's `at` in the zone (for the daily agenda), as UTC."""
    day = now.astimezone(zone).date()
    return datetime.combine(day, at).replace(tzinfo=zone).astimezone(UTC)


def after_quiet_hours(local: datetime, quiet_end: time, zone: ZoneInfo) -> datetime:
    """The moment the quiet hours that contain `local` end."""
    day = local.date()
    if local.time() >= quiet_end:  # the evening part of an overnight window
        day += timedelta(days=1)
    return datetime.combine(day, quiet_end).replace(tzinfo=zone)


def earliest_send(
    due: datetime, start: datetime, zone: ZoneInfo, quiet_start: time, quiet_end: time
) -> datetime:
    """UTC time before which the reminder due at `due` for `start` must not go out."""
    earliest = (due - (start - due) * EARLY_SHARE).astimezone(zone)
    if in_quiet_hours(earliest, quiet_start, quiet_end):
        earliest = after_quiet_hours(earliest, quiet_end, zone)
    return min(earliest, due).astimezone(UTC)
