"""`python -m app worker`: run the background jobs in this process, in the foreground."""

from __future__ import annotations

import typer

from app.config import get_settings


def worker() -> None:
    """Run background jobs: procrastinate on PostgreSQL (JOB_ENGINE=procrastinate), or
    the embedded engine in the foreground. Start as many as you like."""
    from app.jobs.runtime import run_worker
    from app.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    typer.echo(f"worker: engine {settings.job_engine}")
    run_worker(settings)
