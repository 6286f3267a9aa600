"""The job engines run the same periodic jobs: embedded threads (in `serve`) and
procrastinate workers on PostgreSQL (`python -m app worker`)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.calendar.local import LocalCalendar
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.jobs import registry
from app.jobs.embedded import EmbeddedWorker
from app.jobs.registry import JobEnv, PeriodicJob, periodic_jobs, register_periodic
from app.models import Notification
from app.notifications.outbound import TwilioOutbound
from tests.conftest import PINNED_NOW, Reader
from tests.notifications import conftest as shared
from tests.notifications.test_delivery import add_rows

fake_twilio = shared.fake_twilio
outbound = shared.outbound


def env_for(
    settings: Settings, factory: sessionmaker[Session], sender: TwilioOutbound, clock: FixedClock
) -> JobEnv:
    quick = settings.model_copy(update={"notify_tick_seconds": 0.05, "sms_sender_mps": 0})
    return JobEnv(quick, factory, clock, sender, lambda session, agent: LocalCalendar(session))


def wait_for(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    """Poll on an Event's wait (no bare sleeps), bounded."""
    tick = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if condition():
            return True
        tick.wait(0.05)
    return condition()


def test_periodic_jobs_include_notifications_and_calendar_sync(settings: Settings):
    names = [job.name for job in periodic_jobs(settings)]
    assert names[:5] == [
        "notifications.drain",
        "notifications.plan",
        "notifications.reap",
        "notifications.agenda",
        "calendar.sync",
    ]
    drain = periodic_jobs(settings.model_copy(update={"worker_concurrency": 3}))[0]
    assert drain.lanes == 3


def test_registered_periodic_job_runs_in_the_engine(settings, session_factory, outbound, clock):
    ran = threading.Event()
    register_periodic("test.marker", 0.05, lambda env: ran.set())
    try:
        assert any(job.name == "test.marker" for job in periodic_jobs(settings))
        with pytest.raises(ValueError, match="already registered"):
            register_periodic("test.marker", 1, lambda env: None)
        env = env_for(settings, session_factory, outbound, clock)
        worker = EmbeddedWorker(periodic_jobs(settings), env).start()
        assert ran.wait(5)
        worker.stop()
    finally:
        registry._extra.clear()


def test_embedded_worker_delivers_due_notifications(
    settings, session_factory, demo: DemoData, db: Reader, fake_twilio, outbound, clock
):
    add_rows(session_factory, demo, 5)
    env = env_for(settings, session_factory, outbound, clock)
    worker = EmbeddedWorker(periodic_jobs(env.settings), env).start()
    try:
        assert wait_for(lambda: len(fake_twilio.state.messages()) == 5)
        assert wait_for(lambda: {n.status for n in db.scalars(select(Notification))} == {"sent"})
    finally:
        worker.stop()


def test_a_failing_job_does_not_stop_the_engine(settings, session_factory, outbound, clock):
    runs: list[int] = []

    def flaky(env: JobEnv) -> None:
        runs.append(1)
        raise RuntimeError("boom")

    env = env_for(settings, session_factory, outbound, clock)
    worker = EmbeddedWorker([PeriodicJob("flaky", 0.01, flaky)], env).start()
    assert wait_for(lambda: len(runs) >= 3)
    worker.stop()


def test_serve_runs_the_embedded_engine_in_process(
    settings, session_factory, demo, fake_twilio, outbound, clock, db: Reader
):
    from fastapi.testclient import TestClient

    from app.main import create_app

    add_rows(session_factory, demo, 2)
    quick = settings.model_copy(
        update={
            "notify_tick_seconds": 0.05,
            "sms_sender_mps": 0,  # the clock stands still: no pacing slots would come free
            "twilio_account_sid": shared.ACCOUNT_SID,
            "twilio_api_base_url": fake_twilio.url,
            "twilio_auth_token": SecretStr(shared.AUTH_TOKEN),
        }
    )
    app = create_app(quick, session_factory=session_factory, clock=clock, background_jobs=True)
    with TestClient(app):
        assert wait_for(lambda: len(fake_twilio.state.messages()) == 2)


def test_worker_command_is_registered():
    from app.cli import cli

    result = CliRunner().invoke(cli, ["--help"])
    assert "worker" in result.output


def test_procrastinate_worker_runs_the_jobs_on_postgresql(
    settings, session_factory, demo, db: Reader, fake_twilio, outbound, clock
):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("procrastinate needs PostgreSQL (TEST_DATABASE_URL)")
    from app.jobs.production import build_app, ensure_schema, libpq_url

    conninfo = libpq_url(settings.database_url)
    ensure_schema(conninfo)
    ensure_schema(conninfo)  # a second worker starting finds it in place
    add_rows(session_factory, demo, 4)
    env = env_for(
        settings.model_copy(update={"worker_concurrency": 2}), session_factory, outbound, clock
    )
    jobs = periodic_jobs(env.settings)
    app = build_app(env.settings, jobs, env)
    periodic = {(t.task.name, t.periodic_id) for t in app.periodic_registry.periodic_tasks.values()}
    assert ("notifications.drain", "lane0") in periodic
    assert ("notifications.drain", "lane1") in periodic
    with app.open():
        app.tasks["notifications.drain"].defer(timestamp=0, lane=0)
    app.run_worker(wait=False, install_signal_handlers=False, listen_notify=False)
    assert len(fake_twilio.state.messages()) == 4
    assert {n.status for n in db.scalars(select(Notification))} == {"sent"}
    clock.advance(seconds=1)
    assert timedelta(0) < clock() - PINNED_NOW
