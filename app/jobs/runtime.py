"""Building what jobs need, and running an engine: `serve` (embedded) and
`python -m app worker` (procrastinate, or the embedded loop in the foreground)."""

from __future__ import annotations

import logging
import signal
import threading

from sqlalchemy.orm import Session, sessionmaker

from app.calendar.backend import CalendarFactory
from app.calendar.factory import build_calendar_factory, vault_for
from app.clock import Clock, system_clock
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.jobs.embedded import EmbeddedWorker
from app.jobs.registry import JobEnv, periodic_jobs
from app.notifications.outbound import OutboundSender, build_outbound
from app.notify import build_sender

log = logging.getLogger(__name__)


def build_env(
    settings: Settings,
    *,
    session_factory: sessionmaker[Session] | None = None,
    clock: Clock = system_clock,
    sender: OutboundSender | None = None,
    calendar_factory: CalendarFactory | None = None,
) -> JobEnv:
    if session_factory is None:
        session_factory = make_session_factory(make_engine(settings))
    if calendar_factory is None:
        calendar_factory = build_calendar_factory(
            settings, vault_for(settings), build_sender(settings), clock=clock
        )
    return JobEnv(
        settings=settings,
        session_factory=session_factory,
        clock=clock,
        sender=sender or build_outbound(settings),
        calendar_factory=calendar_factory,
    )


def start_embedded(env: JobEnv) -> EmbeddedWorker:
    return EmbeddedWorker(periodic_jobs(env.settings), env).start()


def run_worker(settings: Settings) -> None:
    env = build_env(settings)
    jobs = periodic_jobs(settings)
    if settings.job_engine == "procrastinate":
        from app.jobs.production import run_worker as run_procrastinate

        run_procrastinate(settings, jobs, env)
        return
    # Embedded engine in the foreground (SQLite, or PostgreSQL without procrastinate).
    worker = EmbeddedWorker(jobs, env).start()
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    worker.stop()
