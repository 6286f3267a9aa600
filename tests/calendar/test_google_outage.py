"""Google outages and slow calendars (items 8 and 9).

- Free/busy that does not answer: a recent answer covering the time stands in (bounded
  by GOOGLE_FREEBUSY_STALE_SECONDS); without one the agent says it can't check the
  calendar and books nothing.
- An event insert that fails after a good check keeps the booking confirmed and
  pending; the sweeper writes it later.
- No Google call runs inside a database write transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.google import GoogleCalendarFactory
from app.calendar.sync import sweep_once
from app.config import Settings
from app.main import create_app
from app.models import Appointment, User
from tests.calendar.conftest import RecordingSender
from tests.calendar.fake_google import FakeGoogle
from tests.calendar.test_google_e2e import at, book, tools
from tests.conftest import PUBLIC_BASE_URL
from tests.webhooks.test_vapi import NoEngine, Vapi, call, tool_message


def freebusy_down(fake: FakeGoogle) -> None:
    fake.fault_filter = lambda method, path: "freeBusy" in path
    fake.fault_kinds = ("503",)
    fake.fault_rate = 1.0


def check_day(session: Session, demo, factory, clock) -> Any:  # type: ignore[no-untyped-def]
    from app.tools.registry import run_tool

    result = run_tool(
        tools(session, demo, factory, clock), "check_availability", {"date": "2026-11-24"}
    )
    session.commit()
    return result


def test_outage_after_a_recent_answer_books_against_it(
    session: Session, demo, factory: GoogleCalendarFactory, clock, fake: FakeGoogle, connected
):
    fake.add_owner_event(at(24, 11), at(24, 12))
    assert check_day(session, demo, factory, clock).ok
    freebusy_down(fake)
    taken = book(session, demo, factory, clock, at(24, 11), "k-owner-busy")
    assert not taken.ok and taken.data["error"] == "busy"  # the cached answer still counts
    booked = book(session, demo, factory, clock, at(24, 14), "k-during-outage")
    assert booked.ok, booked.message
    assert session.scalar(select(Appointment)).status == "confirmed"


def test_outage_without_a_recent_answer_refuses_honestly(
    session: Session, demo, factory: GoogleCalendarFactory, clock, fake: FakeGoogle, connected
):
    assert check_day(session, demo, factory, clock).ok
    factory.stale_seconds = 0  # the earlier answer is too old to trust
    freebusy_down(fake)
    refused = book(session, demo, factory, clock, at(24, 14), "k-refused")
    assert not refused.ok and refused.data["error"] == "calendar_unavailable"
    assert "can't check the calendar" in refused.message
    assert session.scalar(select(Appointment)) is None


def test_insert_failing_after_a_good_check_keeps_the_booking_pending(
    session: Session,
    session_factory: sessionmaker[Session],
    demo,
    factory: GoogleCalendarFactory,
    clock,
    fake: FakeGoogle,
    connected,
):
    fake.fault_filter = lambda method, path: method == "POST" and path.endswith("/events")
    fake.fault_kinds = ("503",)
    fake.fault_rate = 1.0
    booked = book(session, demo, factory, clock, at(24, 14), "k-insert-down")
    assert booked.ok and booked.message.startswith("Booked")
    session.expire_all()
    appointment = session.scalar(select(Appointment))
    assert appointment.status == "confirmed" and appointment.sync_status == "pending"
    session.commit()
    fake.fault_rate = 0.0
    clock.advance(minutes=5)
    assert sweep_once(session_factory, factory, clock).synced == 1
    assert len(fake.live_events()) == 1


# --- no Google call inside a write transaction ---------------------------------------------


@pytest.fixture
def google_vapi(
    google_settings: Settings,
    session_factory: sessionmaker[Session],
    clock,
    sender: RecordingSender,
    session: Session,
    connected,
) -> Iterator[Vapi]:
    app = create_app(
        google_settings,
        session_factory=session_factory,
        clock=clock,
        engine=NoEngine(),
        sms_sender=sender,
    )
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        yield Vapi(client, clock, session)


class WriterProbe:
    """At each Google request, checks that no database write transaction is open:
    SQLite: another writer gets the write turn at once; PostgreSQL: no session that has
    written is sitting idle in its transaction."""

    def __init__(self, factory: sessionmaker[Session], user_id: str) -> None:
        self.factory = factory
        self.user_id = user_id
        self.blocked: list[str] = []

    def __call__(self, method: str, path: str) -> None:
        if not self._free():
            self.blocked.append(f"{method} {path}")

    def _free(self) -> bool:
        with self.factory() as session:
            if session.get_bind().dialect.name == "postgresql":
                writers = session.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state = 'idle in transaction' AND backend_xid IS NOT NULL"
                    )
                )
                return writers == 0
        done = threading.Event()

        def write() -> None:
            with self.factory() as session:
                session.execute(update(User).where(User.id == self.user_id).values(name="Sam"))
                session.commit()
            done.set()

        threading.Thread(target=write, daemon=True).start()
        return done.wait(2.0)


def test_vapi_booking_calls_google_outside_any_write_transaction(
    google_vapi: Vapi, fake: FakeGoogle, session_factory: sessionmaker[Session], demo, db
):
    probe = WriterProbe(session_factory, demo.user_id)
    fake.on_request = probe
    message = tool_message(
        [
            call("tc-a", "book_appointment", start="2026-11-24T14:00:00-08:00"),
            call("tc-b", "book_appointment", start="2026-11-24T15:00:00-08:00"),
        ]
    )
    results = google_vapi.results(message)
    fake.on_request = None
    assert all("result" in r and r["result"].startswith("Booked") for r in results), results
    assert fake.count("POST", "freeBusy") >= 1 and len(fake.live_events()) == 2
    assert probe.blocked == []
    rows = db.scalars(select(Appointment))
    assert [r.sync_status for r in rows] == ["synced", "synced"]


def test_vapi_availability_and_alternatives_call_google_outside_any_write_transaction(
    google_vapi: Vapi, fake: FakeGoogle, session_factory: sessionmaker[Session], demo, db
):
    """Not only the booking's own window: a day checked and the alternatives to a taken
    time are fetched between attempts of the call, never inside its transaction."""
    fake.add_owner_event(at(24, 14), at(24, 15))
    probe = WriterProbe(session_factory, demo.user_id)
    fake.on_request = probe
    message = tool_message(
        [
            call("tc-day", "check_availability", date="2026-11-25"),
            call("tc-taken", "book_appointment", start="2026-11-24T14:00:00-08:00"),
        ]
    )
    day, taken = google_vapi.results(message)
    fake.on_request = None
    assert day["result"].startswith("Free"), day
    assert "Nearby free times" in taken["error"], taken
    assert probe.blocked == []
    assert db.scalars(select(Appointment)) == []
