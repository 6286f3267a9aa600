"""The slot engine: pure functions, no database, no clock of their own.

Business hours live in the agent's IANA zone and are turned into UTC one local day at a
time, so a DST change moves the UTC hours and never the local ones. Busy time is merged
once and searched with bisect, so a query is O(days + busy + slots) however full the
calendar is.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import cached_property
from typing import Any, NamedTuple
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

    # Made once per type (a type lives with its schedule): a timedelta made from minutes
    # costs more than the arithmetic it is for.
    @cached_property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @cached_property
    def _buffers(self) -> tuple[timedelta, timedelta]:
        return (
            timedelta(minutes=self.buffer_before_minutes),
            timedelta(minutes=self.buffer_after_minutes),
        )

    def blocked(self, start: datetime) -> Interval:
        """The time this appointment keeps from others: itself plus its buffers."""
        before, after = self._buffers
        return Interval(start - before, start + self.duration + after)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AppointmentType:
        return cls(
            key=str(data["key"]),
            name=str(data.get("name") or data["key"]),
            duration_minutes=int(data["duration_minutes"]),
            buffer_before_minutes=int(data.get("buffer_before_minutes", 0)),
            buffer_after_minutes=int(data.get("buffer_after_minutes", 0)),
        )


# Schedules built from an agent's settings, by the settings' repr (below). Bounded: a
# process serves few agents, and an edited agent leaves its old entry behind.
_BUILT: dict[str, Schedule] = {}
_BUILT_MAX = 256
# A schedule's remembered days of opening windows (searches move on with the calendar).
_DAYS_KEPT = 512
# A schedule's remembered window grids in its zone, in starts (~56 bytes each): a turn's
# search reads a day or two of windows, a 9-to-5 window at 15-minute steps is 32 starts.
_GRID_STARTS_KEPT = 4096
ONE_DAY = timedelta(days=1)


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
    # Pure functions of the fields above, remembered per schedule: a schedule built from
    # the same settings is the same object turn after turn (from_settings).
    _day_windows: dict[date, tuple[_Window, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _named: dict[str, AppointmentType | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # Each opening window's grid starts made in the zone, by (start, end): a slot list
    # takes its starts from here instead of converting each one, turn after turn.
    _local_grids: dict[tuple[int, int], list[datetime]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _grid_starts: list[int] = field(
        default_factory=lambda: [0], init=False, repr=False, compare=False
    )

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
        """The schedule of these settings, built once per distinct settings: the agent's
        row is read every turn (an edit is seen at the next one), its parsing is not
        redone. Keyed by repr, which tells the settings' JSON values apart exactly (1 from
        1.0 and True, key order included), so equal keys build equal schedules."""
        settings = (
            timezone, weekly_hours, tuple(appointment_types), step_minutes,
            min_notice_minutes, horizon_days, daily_cap,
        )  # fmt: skip
        key = repr((cls, *settings))
        built = _BUILT.get(key)
        if built is None:
            built = cls._build(*settings)
            if len(_BUILT) >= _BUILT_MAX:
                _BUILT.clear()
            _BUILT[key] = built
        return built

    @classmethod
    def _build(
        cls,
        timezone: str,
        weekly_hours: Mapping[str, Sequence[Sequence[str]]],
        appointment_types: Iterable[Mapping[str, Any]],
        step_minutes: int,
        min_notice_minutes: int,
        horizon_days: int,
        daily_cap: int | None,
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

    @cached_property
    def reach(self) -> tuple[timedelta, timedelta]:
        """How far any of its types' appointments keeps time around its start: the
        longest buffer before, and the longest duration plus buffer after (none below
        zero)."""
        before = max([0, *(t.buffer_before_minutes for t in self.types)])
        after = max([0, *(t.duration_minutes + t.buffer_after_minutes for t in self.types)])
        return timedelta(minutes=before), timedelta(minutes=after)

    def type_named(self, key: str) -> AppointmentType | None:
        if key in self._named:
            return self._named[key]
        wanted = key.strip().lower()
        found = next((k for k in self.types if wanted in (k.key.lower(), k.name.lower())), None)
        if len(self._named) < 64:  # keys come from messages and models: keep a few
            self._named[key] = found
        return found

    def open_windows(self, day: date) -> list[Interval]:
        """The day's business hours in UTC (DST-correct for that very day)."""
        return [window.interval for window in self._windows(day)]

    def _windows(self, day: date) -> tuple[_Window, ...]:
        """open_windows(day) with their epoch seconds, worked out once per day."""
        windows = self._day_windows.get(day)
        if windows is None:
            windows = tuple(_opening_windows(day, self.hours.get(day.weekday(), ()), self.zone))
            if len(self._day_windows) >= _DAYS_KEPT:
                self._day_windows.clear()
            self._day_windows[day] = windows
        return windows

    def local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.zone).date()

    def local_grid(self, window_start: int, window_end: int) -> list[datetime]:
        """Every start of a window's grid (its start, then a step at a time, before its
        end) made in the zone, as `datetime.fromtimestamp(start, zone)` makes each one
        (its offset and fold its own): pure in the window and the schedule, so worked
        out once. Read only: callers copy the slice they need."""
        key = (window_start, window_end)
        grid = self._local_grids.get(key)
        if grid is None:
            zone = self.zone
            grid = [
                datetime.fromtimestamp(start, zone)
                for start in range(window_start, window_end, self.step_minutes * 60)
            ]
            kept = self._grid_starts
            if kept[0] + len(grid) > _GRID_STARTS_KEPT:
                self._local_grids.clear()
                kept[0] = 0
            kept[0] += len(grid)
            self._local_grids[key] = grid
        return grid


class _Window(NamedTuple):
    """An opening window in UTC, and its ends in whole epoch seconds for the slot search."""

    interval: Interval
    start: int
    end: int


def _opening_windows(
    day: date, hours: Iterable[tuple[time, time]], zone: ZoneInfo
) -> Iterator[_Window]:
    for opens, closes in hours:
        start = datetime.combine(day, opens, zone).astimezone(UTC)
        end_day = day if closes > opens else day + timedelta(days=1)
        end = datetime.combine(end_day, closes, zone).astimezone(UTC)
        if end > start:
            yield _Window(Interval(start, end), _epoch(start), _epoch(end))


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
    local: bool = False,
) -> Iterator[tuple[date, list[datetime]]]:
    """find_slots' starts grouped by the local day whose opening hours hold them, one
    day at a time, so a caller that needs only the first days stops there. A day's
    windows open on that local day, so its starts are on that day or later. `local`:
    the starts in the schedule's zone (the same moments), for a caller that would
    convert each one."""
    earliest = max(window_start, now + schedule.min_notice)
    latest = min(window_end, now + schedule.horizon)
    grid = _Grid(kind, busy, schedule.step_minutes * 60, _epoch(earliest), _epoch(latest))
    if local:
        grid.zone, grid.local_grid = schedule.zone, schedule.local_grid
    booked_per_day = booked_per_day or {}
    day = schedule.local_day(earliest) - ONE_DAY
    last_day = schedule.local_day(latest)
    while day <= last_day:
        found: list[datetime] = []
        if schedule.daily_cap is None or booked_per_day.get(day, 0) < schedule.daily_cap:
            for window in schedule._windows(day):
                grid.collect(found, window.start, window.end)
        yield day, found
        day += ONE_DAY


class _Grid:
    """The free starts of opening windows: the window's grid (9:00, 9:15, ...) from the
    notice cut-off, minus the starts whose appointment (buffers included) would overlap a
    busy span. Worked out per gap between busy spans, not per step: each free run of the
    grid is one range."""

    def __init__(
        self, kind: AppointmentType, busy: BusyIndex, step: int, earliest: int, latest: int
    ) -> None:
        self.step, self.earliest, self.latest = step, earliest, latest
        self.duration = kind.duration_minutes * 60
        self.before = kind.buffer_before_minutes * 60
        self.after = kind.buffer_after_minutes * 60
        self.busy_starts, self.busy_ends = busy._starts, busy._ends
        self.zone: tzinfo = UTC  # the zone the starts are made in
        # The schedule's grids in that zone (`Schedule.local_grid`) when it is the
        # schedule's: most starts are then taken from there.
        self.local_grid: Callable[[int, int], list[datetime]] | None = None

    def collect(self, slots: list[datetime], window_start: int, window_end: int) -> None:
        step, before, zone = self.step, self.before, self.zone
        grid: list[datetime] | None = None
        start = window_start
        if start < self.earliest:
            # Keep slots on the window's grid after the notice cut-off.
            start += step * -(-(self.earliest - start) // step)
        last = min(self.latest - 1, window_end - self.duration)  # the latest start allowed
        starts, ends = self.busy_starts, self.busy_ends
        # Spans ending by `start - before` cannot overlap this start or any later one.
        span = bisect.bisect_right(ends, start - before)
        while start <= last:
            if span < len(starts):
                # Starts up to here end (with the buffer after) before the next span opens.
                free_last = min(last, starts[span] - self.duration - self.after)
            else:
                free_last = last
            if start <= free_last:
                count = (free_last - start) // step + 1
                stop = start + step * count
                if self.local_grid is not None:
                    # The run's starts are on the window's grid: a slice of it (all of
                    # them unless a start reaches the window's end: a zero duration).
                    grid = grid or self.local_grid(window_start, window_end)
                    first = (start - window_start) // step
                    run = grid[first : first + count]
                    slots.extend(run)
                    start += step * len(run)
                if start < stop:
                    made = range(start, stop, step)
                    slots.extend([datetime.fromtimestamp(s, zone) for s in made])
                    start = stop
            if span == len(starts):
                return
            if start - before < ends[span]:
                # Overlapping the span: the first start on the grid after it (and its buffer).
                start += step * -(-(ends[span] + before - start) // step)
            span += 1


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
    windows = schedule._windows(local_day) + schedule._windows(local_day - ONE_DAY)
    if not any(w.interval.start <= start and end <= w.interval.end for w in windows):
        return Unavailable.CLOSED
    if schedule.daily_cap is not None and (booked_per_day or {}).get(local_day, 0) >= (
        schedule.daily_cap
    ):
        return Unavailable.DAILY_CAP
    if busy.conflict(kind.blocked(start)) is not None:
        return Unavailable.BUSY
    return None
