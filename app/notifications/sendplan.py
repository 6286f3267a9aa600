"""The send planner: when each scheduled notification goes out, so that none is late.

Reminders come in bursts (every 10:00 appointment's 24 h reminder is due at 10:00 the
day before). One number sends SMS_SENDER_MPS messages a second and the workers together
about `capacity` a second, so a burst has to start before its due time. The planner (a
periodic job, one at a time) looks ahead over the backlog and gives every scheduled row
a send time, as late as possible: rows are placed latest-due first, each at the latest
moment that is no later than its due time, 1/mps after the next one on its number, and
in a second with room left under `capacity`. A row never goes out before its
`not_before` (a reminder: 1/24 of its lead, never in quiet hours; other rows: not before
they are due), nor more than NOTIFY_MAX_EARLY_MINUTES early. A row that cannot fit goes
at the earliest it may: it will be late, and nothing better was possible.

`capacity` is NOTIFY_THROUGHPUT_PER_SECOND; when the planner finds the workers behind
(rows planned to have left LAG ago still waiting), it plans with the rate they achieved
over the last MEASURE window instead, so the rest of a burst starts earlier. It plans
for HEADROOM of it, so a slow moment does not make the tail of a burst late.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.clock import Clock
from app.config import Settings
from app.models import Notification

log = logging.getLogger(__name__)
LAG = timedelta(seconds=5)
MEASURE = timedelta(seconds=30)
# Plan for this share of the capacity: workers slowed for a moment (a busy database,
# another process on the machine) then still finish a burst by its due time.
HEADROOM = 0.8
# A change smaller than this is not written back (rows re-planned each run stay put).
SETTLE = timedelta(milliseconds=500)


@dataclass(frozen=True)
class PlanConfig:
    mps: float = 1.0
    capacity: float = 50.0
    max_early: timedelta = timedelta(minutes=30)
    # Rows planned to go out within this long are being claimed: left alone.
    frozen: timedelta = timedelta(seconds=2)
    # Aim this long before the due time: a worker's claim and Twilio's answer take a
    # moment, and a message planned right at its due time would arrive just after it.
    margin: timedelta = timedelta(0)

    @classmethod
    def from_settings(cls, settings: Settings) -> PlanConfig:
        return cls(
            mps=settings.sms_sender_mps,
            capacity=settings.notify_throughput_per_second,
            max_early=timedelta(minutes=settings.notify_max_early_minutes),
            frozen=timedelta(seconds=2 * settings.notify_tick_seconds),
            margin=timedelta(seconds=settings.notify_tick_seconds),
        )


@dataclass(frozen=True)
class Pending:
    id: str
    sender: str
    due: float
    earliest: float
    send_at: float


@dataclass
class PlanReport:
    planned: int = 0
    moved: int = 0
    late: int = 0
    capacity: float = 0.0
    first_early_seconds: float = 0.0


class Seconds:
    """Per-second send budget of all workers together: the latest second at or before
    a given one that still has room (bins of at least one message)."""

    def __init__(self, capacity: float) -> None:
        self.width = max(1.0, 1.0 / capacity) if capacity > 0 else 0.0
        self.room = max(1, math.floor(capacity * self.width)) if capacity > 0 else 0
        self.used: dict[int, int] = {}
        self.full_before: dict[int, int] = {}  # a full bin → the bin to look at next

    def latest(self, moment: float, floor: float) -> float | None:
        """The latest time ≤ moment in a bin with room, not before floor's bin."""
        if not self.room:
            return moment
        wanted = math.floor(moment / self.width)
        stop = math.floor(floor / self.width)
        current = self._find(wanted)
        if current < stop:
            return None
        self.used[current] = self.used.get(current, 0) + 1
        if self.used[current] >= self.room:
            self.full_before[current] = current - 1
        if current == wanted:
            return moment
        return (current + 1) * self.width - 1e-3

    def _find(self, index: int) -> int:
        path = []
        while index in self.full_before:
            path.append(index)
            index = self.full_before[index]
        for visited in path:  # path compression: full runs are skipped in one step
            self.full_before[visited] = index
        return index


def place(rows: list[Pending], now: float, config: PlanConfig, capacity: float) -> dict[str, float]:
    """Send times for rows (a pure function): latest-due first, as late as allowed."""
    gap = 1.0 / config.mps if config.mps > 0 else 0.0
    margin = config.margin.total_seconds()
    budget = Seconds(capacity)
    next_on: dict[str, float] = {}  # per number: the send time of its next (later) row
    planned: dict[str, float] = {}
    for row in sorted(rows, key=lambda r: (r.due, r.id), reverse=True):
        floor = max(row.earliest, now)
        moment = min(row.due - margin, next_on.get(row.sender, math.inf) - gap)
        found = budget.latest(moment, floor) if moment >= floor else None
        when = max(found if found is not None else floor, floor)
        planned[row.id] = when
        next_on[row.sender] = min(when, next_on.get(row.sender, math.inf))
    return planned


class SendPlanner:
    def __init__(
        self, session_factory: sessionmaker[Session], clock: Clock, config: PlanConfig
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock
        self.config = config

    def run(self) -> PlanReport:
        now = self.clock()
        with self.session_factory() as session:
            rows = self._pending(session, now)
            capacity = self._capacity(session, now)
            planned = place(rows, now.timestamp(), self.config, capacity * HEADROOM)
            changes = [
                {"nid": row.id, "when": _utc(planned[row.id])}
                for row in rows
                if abs(planned[row.id] - row.send_at) > SETTLE.total_seconds()
            ]
            if changes:
                # Core executemany: one statement, every changed row.
                table: Table = Notification.__table__  # type: ignore[assignment]  # declarative maps a Table
                session.execute(
                    update(table)
                    .where(table.c.id == bindparam("nid"), table.c.status == "scheduled")
                    .values(send_at=bindparam("when")),
                    changes,
                )
            session.commit()
        report = self._report(rows, planned, len(changes), capacity, now.timestamp())
        if report.late:
            log.warning(
                "send planner: %d notifications cannot go out by their due time at %.1f msg/s",
                report.late,
                capacity,
            )
        return report

    def _pending(self, session: Session, now: datetime) -> list[Pending]:
        """Scheduled rows due within the look-ahead and not about to be claimed."""
        horizon = now + 2 * self.config.max_early
        found = session.execute(
            select(
                Notification.id,
                Notification.from_e164,
                Notification.due_at,
                Notification.not_before,
                Notification.send_at,
            ).where(
                Notification.status == "scheduled",
                Notification.due_at <= horizon,
                Notification.send_at > now + self.config.frozen,
            )
        )
        rows = []
        for nid, sender, due, not_before, send_at in found:
            earliest = max(not_before or due, due - self.config.max_early)
            rows.append(
                Pending(nid, sender, due.timestamp(), earliest.timestamp(), send_at.timestamp())
            )
        return rows

    def _capacity(self, session: Session, now: datetime) -> float:
        """The configured rate, or what the workers achieved when they are behind."""
        behind = session.scalar(
            select(Notification.id)
            .where(Notification.status == "scheduled", Notification.send_at < now - LAG)
            .limit(1)
        )
        if behind is None:
            return self.config.capacity
        done = session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.sent_at > now - MEASURE, Notification.sent_at <= now)
        )
        measured = (done or 0) / MEASURE.total_seconds()
        if measured <= 0:
            return self.config.capacity
        log.info("send planner: workers behind; planning with %.1f msg/s measured", measured)
        return min(self.config.capacity, measured)

    def _report(
        self,
        rows: list[Pending],
        planned: dict[str, float],
        moved: int,
        capacity: float,
        now: float,
    ) -> PlanReport:
        late = sum(1 for row in rows if planned[row.id] > row.due)
        early = max((row.due - planned[row.id] for row in rows), default=0.0)
        return PlanReport(len(rows), moved, late, capacity, max(early, 0.0))


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
