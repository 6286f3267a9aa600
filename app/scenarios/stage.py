"""The stage a scenario plays on: a real server (uvicorn, in a thread, on a free local
port) over a fresh SQLite database, with a pinned clock the runner moves per scenario,
and the agent, caller and calendar each scenario starts from."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.agent.engine import Engine
from app.clock import FixedClock
from app.config import Settings
from app.db import Base, make_engine, make_session_factory, upgrade_to_head
from app.loopback import listening_socket
from app.models import Agent, Appointment, BusyBlock, PhoneNumber, User, utcnow
from app.scenarios.model import Booking, Scenario

PORTS = range(18300, 18400)
PUBLIC_BASE_URL = "https://scenarios.example.com"
CALLER = "+14155550123"
OTHER = "+14155550188"
TOKEN = "scenario-runner-twilio-token"  # a throwaway signing key for this run


@dataclass(frozen=True)
class Seeded:
    agent_id: str
    caller: str


def _serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = listening_socket(PORTS)
    if sock is None:
        raise RuntimeError("no free port in 18300-18399 for the scenario server")
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="on")
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="scenario-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()
        raise RuntimeError(f"the scenario server did not start on port {port}")
    return server, thread, port


def stage_settings(database_url: str, engine_name: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        public_base_url=PUBLIC_BASE_URL,
        twilio_auth_token=TOKEN,
        conversation_engine=engine_name,
        rate_limit_webhook="100000/minute",
        rate_limit_default="100000/minute",
        rate_limit_pin="100000/minute",
        redis_url=None,
        demo_data=False,
        log_level="WARNING",
    )


class Stage:
    def __init__(
        self, settings: Settings, factory: sessionmaker[Session], clock: FixedClock, url: str
    ) -> None:
        self.settings = settings
        self.factory = factory
        self.clock = clock
        self.url = url

    def reset(self) -> None:
        with self.factory.begin() as session:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(table.delete())

    def seed(self, scenario: Scenario) -> Seeded:
        """Empty database, then the scenario's agent, caller and calendar; clock pinned."""
        self.reset()
        self.clock.now = scenario.now.astimezone(UTC)
        profile = scenario.profile
        with self.factory.begin() as session:
            user = User(name=scenario.person["name"], email="owner@example.com")
            session.add(user)
            session.flush()
            agent = Agent(
                user_id=user.id,
                name=profile.get("name", "Scheduling line"),
                timezone=profile["timezone"],
                weekly_hours=profile["hours"],
                appointment_types=profile["types"],
                horizon_days=profile.get("horizon_days", 60),
                min_notice_minutes=profile.get("min_notice_minutes", 60),
                greeting=profile.get("greeting", ""),
                language=scenario.language,
                address=profile.get("address", ""),
                services_description=profile.get("services_description", ""),
                faq=profile.get("faq", []),
            )
            session.add(agent)
            session.flush()
            session.add(
                PhoneNumber(e164=CALLER, purpose="caller", user_id=user.id, verified_at=utcnow())
            )
            for index, booking in enumerate(scenario.calendar):
                session.add(self._appointment(agent, booking, scenario, index))
            for block in scenario.busy:
                session.add(
                    BusyBlock(
                        agent_id=agent.id,
                        start_at=block.start.astimezone(UTC),
                        end_at=block.end.astimezone(UTC),
                    )
                )
            return Seeded(agent.id, CALLER)

    @staticmethod
    def _appointment(agent: Agent, booking: Booking, scenario: Scenario, index: int) -> Appointment:
        types = {t["key"]: t for t in agent.appointment_types}
        kind = booking.type or next(iter(types))
        minutes = int(types.get(kind, {}).get("duration_minutes", 30))
        start = booking.at.astimezone(UTC)
        mine = booking.who == "caller"
        return Appointment(
            agent_id=agent.id,
            appointment_type=kind,
            start_at=start,
            end_at=start + timedelta(minutes=minutes),
            status=booking.status,
            contact_e164=CALLER if mine else OTHER,
            contact_name=booking.name or (scenario.person["name"] if mine else "Alex Moreno"),
            idempotency_key=f"scenario-seed-{index}",
            channel="sms",
        )

    def appointments(self, agent_id: str) -> list[Appointment]:
        with self.factory() as session:
            query = select(Appointment).where(Appointment.agent_id == agent_id)
            return list(session.scalars(query.order_by(Appointment.start_at, Appointment.id)))


@contextmanager
def running_stage(
    engine_name: str, workdir: Path | None = None, engine: Engine | None = None
) -> Iterator[Stage]:
    """A server for the whole run; the database file is new and is removed afterwards.
    `engine` replaces the one CONVERSATION_ENGINE names (the runner's own tests use it)."""
    from app.main import create_app

    # The database is thrown away after the run: keep it in memory-backed /dev/shm when
    # there is one, so the suite's many small commits do not wait on a disk.
    shm = Path("/dev/shm")
    if workdir is None and shm.is_dir() and os.access(shm, os.W_OK):
        workdir = shm
    with tempfile.TemporaryDirectory(prefix="scenarios-", dir=workdir) as folder:
        settings = stage_settings(f"sqlite:///{Path(folder) / 'scenarios.db'}", engine_name)
        db_engine = make_engine(settings)
        upgrade_to_head(db_engine)
        factory = make_session_factory(db_engine)
        clock = FixedClock(datetime.now(UTC))
        app = create_app(settings, session_factory=factory, clock=clock, engine=engine)
        server, thread, port = _serve(app)
        try:
            yield Stage(settings, factory, clock, f"http://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            db_engine.dispose()
