"""The slot engine: pure functions, no database, no clock of their own.

Business hours live in the agent's IANA zone and are turned into UTC one local day at a
time, so a DST change moves the UTC hours and never the local ones. Busy time is merged
once and searched with bisect, so a query is O(days + busy + slots) however full the
calendar is.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, order=True)
class Interval:
    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class AppointmentType:
    key: str
    name: str
    duration_minutes: int
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    def blocked(self, start: datetime) -> Interval:
        """The time this appointment keeps from others: itself plus its buffers."""
        return Interval(
            start - timedelta(minutes=self.buffer_before_minutes),
            start + self.duration + timedelta(minutes=self.buffer_after_minutes),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AppointmentType:
        return cls(
            key=str(data["key"]),
            name=str(data.get("name") or data["key"]),
            duration_minutes=int(data["duration_minutes"]),
            buffer_before_minutes=int(data.get("buffer_before_minutes", 0)),
            buffer_after_minutes=int(data.get("buffer_after_minutes", 0)),
        )


@dataclass(frozen=True)
class Schedule:
    zone: ZoneInfo
    # weekday (0 = Monday) → opening windows as local times
    hours: Mapping[int, Sequence[tuple[time, time]]]
    step_minutes: int = 15
    min_notice: timedelta = timedelta(hours=1)
    horizon: timedelta = timedelta(days=60)
    daily_cap: int | None = None
    types: Sequence[AppointmentType] = field(default_factory=tuple)

    @classmethod
    def from_settings(
        cls,
        *,
        timezone: str,
        weekly_hours: Mapping[str, Sequence[Sequence[str]]],
        appointment_types: Iterable[Mapping[str, Any]] = (),
        step_minutes: int = 15,
        min_notice_minutes: int = 60,
        horizon_days: int = 60,
        daily_cap: int | None = None,
    ) -> Schedule:
        hours: dict[int, list[tuple[time, time]]] = {}
        for name, windows in weekly_hours.items():
            day = WEEKDAYS.index(name[:3].lower())
            hours[day] = sorted(
                (time.fromisoformat(start), time.fromisoformat(end)) for start, end in windows
            )
        return cls(
            zone=ZoneInfo(timezone),
            hours=hours,
            step_minutes=step_minutes,
            min_notice=timedelta(minutes=min_notice_minutes),
            horizon=timedelta(days=horizon_days),
            daily_cap=daily_cap,
            types=tuple(AppointmentType.from_dict(t) for t in appointment_types),
        )

    def type_named(self, key: str) -> AppointmentType | None:
        wanted = key.strip().lower()
        for kind in self.types:
            if wanted in (kind.key.lower(), kind.name.lower()):
                return kind
        return None

    def open_windows(self, day: date) -> list[Interval]:
        """The day's business hours in UTC (DST-correct for that very day)."""
        windows = []
        for opens, closes in self.hours.get(day.weekday(), ()):
            start = datetime.combine(day, opens, self.zone).astimezone(UTC)
            end_day = day if closes > opens else day + timedelta(days=1)
            end = datetime.combine(end_day, closes, self.zone).astimezone(UTC)
            if end > start:
                windows.append(Interval(start, end))
        return windows

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()


class BusyIndex:
    """Merged, sorted busy intervals with O(log n) overlap tests.

    Kept as integer epoch seconds: the slot search runs thousands of probes per query,
    and comparing ints is many times cheaper than comparing aware datetimes.
    """

    def __init__(self, intervals: Iterable[Interval]) -> None:
        spans = sorted([(int(i.start.timestamp()), int(i.end.timestamp())) for i in intervals])
        starts: list[int] = []
        ends: list[int] = []
        for start, end in spans:
            if ends and start <= ends[-1]:
                if end > ends[-1]:
                    ends[-1] = end
            else:
                starts.append(start)
                ends.append(end)
        self._starts = starts
        self._ends = ends

    def __len__(self) -> int:
        return len(self._starts)

    def conflict_end(self, start: int, end: int) -> int | None:
        """End (epoch seconds) of the busy span overlapping [start, end), if any."""
        position = bisect.bisect_left(self._starts, end)
        if position and self._ends[position - 1] > start:
            return self._ends[position - 1]
        return None

    def conflict(self, candidate: Interval) -> Interval | None:
        position = bisect.bisect_left(self._starts, _epoch(candidate.end))
        if position and self._ends[position - 1] > _epoch(candidate.start):
            return Interval(_moment(self._starts[position - 1]), _moment(self._ends[position - 1]))
        return None


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _moment(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class Unavailable(StrEnum):
    CLOSED = "outside business hours"
    TOO_SOON = "too soon: that is inside the minimum notice"
    PAST_HORIZON = "too far ahead: beyond the booking horizon"
    BUSY = "that time is already taken"
    DAILY_CAP = "that day is fully booked"
    IN_PAST = "that time has already passed"


def find_slots(
    schedule: Schedule,
    kind: AppointmentType,
    busy: BusyIndex,
    *,
    now: datetime,
    window_start: datetime,
    window_end: datetime,
    booked_per_day: Mapping[date, int] | None = None,
    limit: int | None = None,
) -> list[datetime]:
    """Every bookable start (UTC) in [window_start, window_end), earliest first."""
    slots: list[datetime] = []
    days = slots_by_day(
        schedule,
        kind,
        busy,
        now=now,
        window_start=window_start,
        window_end=window_end,
        booked_per_day=booked_per_day,
    )
    for _, found in days:
        slots.extend(found)
        if limit is not None and len(slots) >= limit:
            return slots[:limit]
    return slots


def slots_by_day(
    schedule: Schedule,
    kind: AppointmentType,
    busy: BusyIndex,
    *,
    now: datetime,
    window_start: datetime,
    window_end: datetime,
    booked_per_day: Mapping[date, int] | None = None,
) -> Iterator[tuple[date, list[datetime]]]:
    """find_slots' starts grouped by the local day whose opening hours hold them, one
    day at a time, so a caller that needs only the first days stops there. A day's
    windows open on that local day, so its starts are on that day or later."""
    earliest = max(window_start, now + schedule.min_notice)
    latest = min(window_end, now + schedule.horizon)
    step = timedelta(minutes=schedule.step_minutes)
    booked_per_day = booked_per_day or {}
    day = schedule.local_day(earliest) - timedelta(days=1)
    last_day = schedule.local_day(latest)
    while day <= last_day:
        found: list[datetime] = []
        if schedule.daily_cap is None or booked_per_day.get(day, 0) < schedule.daily_cap:
            for window in schedule.open_windows(day):
                _collect(found, window, kind, busy, step, earliest, latest)
        yield day, found
        day += timedelta(days=1)


def _collect(
    slots: list[datetime],
    window: Interval,
    kind: AppointmentType,
    busy: BusyIndex,
    step: timedelta,
    earliest: datetime,
    latest: datetime,
) -> None:
    step_s = int(step.total_seconds())
    duration = kind.duration_minutes * 60
    before = kind.buffer_before_minutes * 60
    after = kind.buffer_after_minutes * 60
    start, window_end = _epoch(window.start), _epoch(window.end)
    earliest_s, latest_s = _epoch(earliest), _epoch(latest)
    if start < earliest_s:
        # Keep slots on the window's grid (9:00, 9:15, ...) after the notice cut-off.
        start += step_s * -(-(earliest_s - start) // step_s)
    # BusyIndex.conflict_end and _moment, inlined: this loop runs once per step of
    # every open window searched, a few dozen times a turn.
    busy_starts, busy_ends = busy._starts, busy._ends
    bisect_left, moment, append = bisect.bisect_left, datetime.fromtimestamp, slots.append
    while start < latest_s and start + duration <= window_end:
        position = bisect_left(busy_starts, start + duration + after)
        if position and busy_ends[position - 1] > start - before:
            # Jump past the conflict, staying on the grid.
            conflict_end = busy_ends[position - 1]
            start += step_s * max(1, -(-(conflict_end + before - start) // step_s))
        else:
            append(moment(start, UTC))
            start += step_s


def check_slot(
    schedule: Schedule,
    kind: AppointmentType,
    busy: BusyIndex,
    *,
    now: datetime,
    start: datetime,
    booked_per_day: Mapping[date, int] | None = None,
) -> Unavailable | None:
    """Why `start` cannot be booked, or None when it can (off-grid starts are allowed)."""
    if start <= now:
        return Unavailable.IN_PAST
    if start < now + schedule.min_notice:
        return Unavailable.TOO_SOON
    if start >= now + schedule.horizon:
        return Unavailable.PAST_HORIZON
    end = start + kind.duration
    local_day = schedule.local_day(start)
    windows = schedule.open_windows(local_day) + schedule.open_windows(
        local_day - timedelta(days=1)
    )
    if not any(w.start <= start and end <= w.end for w in windows):
        return Unavailable.CLOSED
    if schedule.daily_cap is not None and (booked_per_day or {}).get(local_day, 0) >= (
        schedule.daily_cap
    ):
        return Unavailable.DAILY_CAP
    if busy.conflict(kind.blocked(start)) is not None:
        return Unavailable.BUSY
    return None
