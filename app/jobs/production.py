"""The production engine: procrastinate on PostgreSQL, workers as separate processes.

Every periodic job becomes a procrastinate periodic task. Procrastinate defers each tick
once across all workers (its periodic_defers table), a queueing lock per lane keeps
ticks from piling up behind a slow run, and jobs with several lanes (notification
drains) get one periodic task per lane so all worker slots share a burst. The queue
lives in the same PostgreSQL as the data: no extra service, and the rows the jobs work
on, not the queue, are the source of truth.
"""

from __future__ import annotations

import logging
from typing import Any

import procrastinate
import psycopg
from procrastinate.schema import SchemaManager
from sqlalchemy.engine import make_url

from app.config import Settings
from app.jobs.registry import JobEnv, PeriodicJob

log = logging.getLogger(__name__)
SCHEMA_LOCK = 0x5C4ED  # advisory lock id while applying procrastinate's schema


def libpq_url(database_url: str) -> str:
    """SQLAlchemy's URL (postgresql+psycopg://) as psycopg's own conninfo."""
    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        raise SystemExit("JOB_ENGINE=procrastinate needs DATABASE_URL on PostgreSQL")
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def cron_for(seconds: float) -> str:
    """A cron line (procrastinate's optional 6th column is seconds) for an interval."""
    whole = max(int(seconds), 1)
    if whole < 60:
        return f"* * * * * */{whole}"
    return f"*/{max(whole // 60, 1)} * * * *"


def ensure_schema(conninfo: str) -> None:
    """Apply procrastinate's schema once (first worker to start, under a lock)."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            exists = connection.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if exists is None or exists[0] is None:
                connection.execute(SchemaManager.get_schema())
                log.info("procrastinate schema applied")
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


def build_app(settings: Settings, jobs: list[PeriodicJob], env: JobEnv) -> procrastinate.App:
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=libpq_url(settings.database_url))
    )
    for job in jobs:
        _register(app, job, env)
    return app


def _register(app: procrastinate.App, job: PeriodicJob, env: JobEnv) -> None:
    def run(timestamp: int, lane: int = 0) -> None:
        result: Any = job.run(env)
        log.debug("job %s lane %d at %d: %s", job.name, lane, timestamp, result)

    task = app.task(name=job.name, pass_context=False)(run)
    for lane in range(job.lanes):
        app.periodic(
            cron=cron_for(job.interval_seconds),
            periodic_id=f"lane{lane}",
            queueing_lock=f"{job.name}:{lane}",
            task_kwargs={"lane": lane},
        )(task)


def run_worker(settings: Settings, jobs: list[PeriodicJob], env: JobEnv) -> None:
    ensure_schema(libpq_url(settings.database_url))
    app = build_app(settings, jobs, env)
    slots = max(settings.worker_concurrency, max((job.lanes for job in jobs), default=1))
    app.run_worker(concurrency=slots, wait=True)
