"""The periodic jobs and what they need. A job is a plain function of `JobEnv`; the
engines (embedded threads, procrastinate workers) only decide when and where it runs.

Other rooms add their own with `register_periodic` (e.g. audit sealing), before the
engine starts: the embedded worker and `python -m app worker` both read the registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.calendar import sync as calendar_sync
from app.calendar.backend import CalendarFactory
from app.calendar.two_way import TwoWaySync
from app.clock import Clock
from app.config import Settings
from app.notifications.agenda import schedule_agendas
from app.notifications.delivery import Deliverer, DeliveryConfig
from app.notifications.outbound import OutboundSender
from app.notifications.sendplan import PlanConfig, SendPlanner
from app.security import audit

log = logging.getLogger(__name__)


@dataclass
class JobEnv:
    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Clock
    sender: OutboundSender
    calendar_factory: CalendarFactory

    def deliverer(self) -> Deliverer:
        return Deliverer(
            self.session_factory,
            self.sender,
            self.clock,
            DeliveryConfig.from_settings(self.settings),
        )


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    interval_seconds: float
    run: Callable[[JobEnv], object]
    # How many copies may run at once (each in its own worker slot): drains share a
    # queue of rows, so parallel copies split the work.
    lanes: int = 1


_extra: list[PeriodicJob] = []
DEFAULT_SYNC_SECONDS = 30.0


def register_periodic(name: str, interval_seconds: float, run: Callable[[JobEnv], object]) -> None:
    """Add a periodic job (before the engine starts). Names are unique."""
    if any(job.name == name for job in _extra):
        raise ValueError(f"periodic job {name!r} is already registered")
    _extra.append(PeriodicJob(name, interval_seconds, run))


def drain_notifications(env: JobEnv) -> object:
    return env.deliverer().drain()


def plan_sends(env: JobEnv) -> object:
    config = PlanConfig.from_settings(env.settings)
    return SendPlanner(env.session_factory, env.clock, config).run()


def reap_notifications(env: JobEnv) -> object:
    return env.deliverer().reap()


def daily_agendas(env: JobEnv) -> object:
    with env.session_factory() as session:
        written = schedule_agendas(session, env.clock())
        session.commit()
    return written


def sync_calendars(env: JobEnv) -> object:
    return calendar_sync.sweep_once(
        env.session_factory, env.calendar_factory, env.clock, batch=env.settings.calendar_sync_batch
    )


def two_way_sync(env: JobEnv) -> object:
    return _two_way(env).poll_all()


def calendar_watches(env: JobEnv) -> object:
    return _two_way(env).ensure_watches()


def _two_way(env: JobEnv) -> TwoWaySync:
    return TwoWaySync(env.settings, env.session_factory, env.calendar_factory, env.clock)


def seal_audit(env: JobEnv) -> object:
    return audit.seal_all(env.session_factory, env.settings.audit_seal_batch)


def periodic_jobs(settings: Settings) -> list[PeriodicJob]:
    jobs = [
        PeriodicJob(
            "notifications.drain",
            settings.notify_tick_seconds,
            drain_notifications,
            lanes=max(settings.worker_concurrency, 1),
        ),
        PeriodicJob("notifications.plan", settings.notify_plan_seconds, plan_sends),
        PeriodicJob("notifications.reap", 30, reap_notifications),
        PeriodicJob("notifications.agenda", 60, daily_agendas),
    ]
    sync_every = settings.calendar_sync_interval_seconds or DEFAULT_SYNC_SECONDS
    jobs.append(PeriodicJob("calendar.sync", sync_every, sync_calendars))
    # Owner-side changes: polled with sync tokens / delta links; push channels renewed.
    jobs.append(PeriodicJob("calendar.two_way", settings.calendar_poll_seconds, two_way_sync))
    jobs.append(PeriodicJob("calendar.watch", 600, calendar_watches))
    if settings.audit_seal_interval_seconds > 0:
        # Any number of workers may run it: the seal turn is a try-lock, one seals.
        jobs.append(PeriodicJob("audit.seal", settings.audit_seal_interval_seconds, seal_audit))
    return jobs + list(_extra)
