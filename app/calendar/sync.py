"""The calendar sync sweeper: pending external writes retried until they land.

The database is the source of truth. A booking confirmed to a caller whose Google write
failed is a row with sync_status="pending"; this sweeper picks due rows (next_sync_at
empty or past), writes them through the agent's backend and backs off on failure.

Each row is claimed with a lease (an UPDATE that pushes next_sync_at forward), so any
number of sweepers (app processes, `calendar sync --loop` workers) share the work
without locks held across the Google call, and a sweeper that dies mid-row only delays
that row until its lease runs out. Writes are idempotent (deterministic event ids), so
a row written twice is still one event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.backend import CalendarError, CalendarFactory
from app.clock import Clock
from app.db import read_only
from app.models import Agent, Appointment, AppointmentStatus, SyncStatus

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at an hour."""
    return min(FIRST_RETRY * int(2 ** max(attempts - 1, 0)), LONGEST_RETRY)


@dataclass
class SweepReport:
    synced: int = 0
    failed: int = 0
    skipped: int = 0
    detached: int = 0

    @property
    def attempted(self) -> int:
        return self.synced + self.failed


def due_ids(session: Session, now: datetime, limit: int) -> list[str]:
    with read_only(session):
        ids = session.scalars(
            select(Appointment.id)
            .where(
                Appointment.sync_status == SyncStatus.PENDING,
                or_(Appointment.next_sync_at.is_(None), Appointment.next_sync_at <= now),
            )
            .order_by(Appointment.next_sync_at, Appointment.id)
            .limit(limit)
        ).all()
    session.commit()
    return list(ids)


def sweep_once(
    session_factory: sessionmaker[Session],
    calendar_factory: CalendarFactory,
    clock: Clock,
    *,
    batch: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> SweepReport:
    """One pass over due rows; `progress(done, total)` after each (the CLI's bar)."""
    report = SweepReport()
    with session_factory() as session:
        ids = due_ids(session, clock(), batch)
    for done, appointment_id in enumerate(ids, 1):
        outcome = sync_one(session_factory, calendar_factory, clock, appointment_id)
        setattr(report, outcome, getattr(report, outcome) + 1)
        if progress is not None:
            progress(done, len(ids))
    if ids:
        log.info(
            "calendar sync: %d synced, %d failed, %d skipped, %d detached",
            report.synced,
            report.failed,
            report.skipped,
            report.detached,
        )
    return report


def _claim(session: Session, appointment_id: str, now: datetime) -> bool:
    claimed = session.execute(
        update(Appointment)
        .where(
            Appointment.id == appointment_id,
            Appointment.sync_status == SyncStatus.PENDING,
            or_(Appointment.next_sync_at.is_(None), Appointment.next_sync_at <= now),
        )
        .values(next_sync_at=now + LEASE, sync_attempts=Appointment.sync_attempts + 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(cast(CursorResult[Any], claimed).rowcount)


def sync_one(
    session_factory: sessionmaker[Session],
    calendar_factory: CalendarFactory,
    clock: Clock,
    appointment_id: str,
) -> str:
    """Write one pending row; "synced", "failed", "skipped" (someone else has it) or
    "detached" (the agent no longer has an external calendar)."""
    now = clock()
    with session_factory() as session:
        if not _claim(session, appointment_id, now):
            return "skipped"
        appointment = session.get(Appointment, appointment_id, populate_existing=True)
        assert appointment is not None
        agent = session.get(Agent, appointment.agent_id)
        assert agent is not None
        snapshot = (appointment.status, appointment.start_at, appointment.end_at)
        calendar = calendar_factory(session, agent)
        # End the transaction: no database lock is held while Google is called.
        session.commit()
        if calendar.name == "local":
            appointment.sync_status = SyncStatus.NOT_APPLICABLE
            appointment.next_sync_at = None
            session.commit()
            return "detached"
        error: str | None = None
        event_id: str | None = None
        try:
            if appointment.status == AppointmentStatus.CONFIRMED:
                event_id = calendar.create_event(agent, appointment)
            else:
                calendar.delete_event(agent, appointment)
        except CalendarError as exc:
            error = str(exc)
        return _record(session, appointment_id, snapshot, event_id, error, clock())


def _record(
    session: Session,
    appointment_id: str,
    snapshot: tuple[str, datetime, datetime],
    event_id: str | None,
    error: str | None,
    now: datetime,
) -> str:
    appointment = session.scalar(
        select(Appointment)
        .where(Appointment.id == appointment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if appointment is None:
        session.commit()
        return "skipped"
    if (appointment.status, appointment.start_at, appointment.end_at) != snapshot:
        # Moved or cancelled while we wrote: write the new state on the next sweep.
        appointment.sync_status = SyncStatus.PENDING
        appointment.next_sync_at = now
        session.commit()
        return "failed"
    if error is not None:
        appointment.sync_status = SyncStatus.PENDING
        appointment.next_sync_at = now + backoff(appointment.sync_attempts)
        appointment.last_sync_error = error[:500]
        session.commit()
        return "failed"
    appointment.sync_status = SyncStatus.SYNCED
    appointment.next_sync_at = None
    appointment.last_sync_error = None
    if event_id is not None:
        appointment.external_event_id = event_id
    session.commit()
    return "synced"


def run_loop(
    session_factory: sessionmaker[Session],
    calendar_factory: CalendarFactory,
    clock: Clock,
    *,
    interval: float,
    batch: int,
    stop: threading.Event,
) -> None:
    """The worker (`calendar sync --loop`): sweep until stopped."""
    while not stop.is_set():
        try:
            report = sweep_once(session_factory, calendar_factory, clock, batch=batch)
        except Exception:  # a worker reports and carries on; the rows stay pending
            log.exception("calendar sync sweep failed")
            report = SweepReport()
        # A full batch means more are due: go again at once.
        if report.attempted + report.skipped < batch:
            stop.wait(interval)
