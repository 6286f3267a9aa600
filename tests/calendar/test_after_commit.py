"""Post-commit calendar writes: queued by a transaction, run once it has committed
(never on rollback), on the committing thread or on the background pool; with the pool
a booking answers before the calendar's round trip, and the event still lands once."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from app.calendar.after_commit import BackgroundWrites, after_commit
from app.calendar.google import GoogleCalendarFactory, event_id_for
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.models import Agent, Appointment
from app.security.vault import TokenVault
from app.tools.registry import run_tool
from app.tools.service import SchedulingTools, ToolContext
from tests.calendar.conftest import RecordingSender
from tests.calendar.fake_google import FakeGoogle

PT = ZoneInfo("America/Los_Angeles")


def test_actions_run_after_commit_on_the_pool_and_never_after_rollback(
    session_factory: sessionmaker[Session],
):
    writes = BackgroundWrites(workers=1)
    ran: list[tuple[str, str]] = []
    with session_factory() as session:
        after_commit(session, lambda: ran.append(("kept", threading.current_thread().name)), writes)
        session.commit()
        after_commit(session, lambda: ran.append(("dropped", "")), writes)
        session.rollback()
    writes.drain()
    writes.close()
    assert [what for what, _ in ran] == ["kept"]
    assert ran[0][1].startswith("calendar-write")


def test_a_failing_background_write_is_logged_not_raised(
    session_factory: sessionmaker[Session], caplog
):  # type: ignore[no-untyped-def]
    writes = BackgroundWrites(workers=1)

    def fail() -> None:
        raise RuntimeError("calendar down")

    with session_factory() as session:
        after_commit(session, fail, writes)
        session.commit()
    writes.drain()
    writes.close()
    assert "left for the sweeper" in caplog.text


def test_a_booking_answers_before_the_event_write_and_the_event_lands_once(
    session_factory: sessionmaker[Session],
    google_settings: Settings,
    vault: TokenVault,
    sender: RecordingSender,
    clock: FixedClock,
    fake: FakeGoogle,
    demo: DemoData,
    connected,  # type: ignore[no-untyped-def]
):
    gate = threading.Event()

    def hold_inserts(method: str, path: str) -> None:
        if method == "POST" and path.endswith("/events"):
            assert gate.wait(10), "the test never released the insert"

    fake.on_request = hold_inserts
    writes = BackgroundWrites()
    config = json.loads(google_settings.google_client_secrets_file.read_text())  # type: ignore[union-attr]
    factory = GoogleCalendarFactory(
        google_settings, config, vault, sender, clock=clock, writes=writes
    )
    start = datetime(2026, 11, 24, 10, tzinfo=PT)
    with session_factory() as session:
        agent = session.get(Agent, demo.agent_id)
        assert agent is not None
        tools = SchedulingTools(
            ToolContext(session, agent, factory(session, agent), clock(), demo.caller, "vapi")
        )
        result = run_tool(tools, "book_appointment", {"start": start.isoformat()}, request_key="k1")
        session.commit()
    # The insert is held inside the fake, yet the booking has answered.
    assert result.ok, result.message
    appointment_id = str(result.data["appointment"]["id"])
    with session_factory() as session:
        assert session.get(Appointment, appointment_id).sync_status == "pending"  # type: ignore[union-attr]
    gate.set()
    writes.drain()
    writes.close()
    with session_factory() as session:
        row = session.get(Appointment, appointment_id)
        assert row is not None and row.sync_status == "synced"
        assert row.external_event_id == event_id_for(demo.agent_id, row.idempotency_key)
    assert list(fake.live_events()) == [row.external_event_id]
