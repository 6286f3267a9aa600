"""Whole SMS conversations through the real webhook and the offline engine: signed
requests, pinned clock, and the calendar state a texter would expect at the end."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import Appointment
from tests.conftest import PUBLIC_BASE_URL, Reader, TwilioClient, load_fixture

INBOUND = "/webhooks/twilio/sms/inbound"


class Texter:
    def __init__(
        self, client: TestClient, sender: str = "+14155550123", to: str = "+15005550006"
    ) -> None:
        self.twilio = TwilioClient(client)
        self.sender = sender
        self.to = to
        self.sent = 0

    def text(self, body: str, sid: str | None = None) -> str:
        self.sent += 1
        form = {k: str(v) for k, v in load_fixture("twilio/inbound-sms.json").items()}
        sid = sid or f"SMdialogue{self.sender[-4:]}{self.sent:04d}"
        form.update(Body=body, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, From=self.sender)
        form["To"] = self.to
        response = self.twilio.post(INBOUND, form)
        assert response.status_code == 200
        return " ".join(m.text or "" for m in ET.fromstring(response.text).iter("Message"))


def fresh_app(settings: Settings, factory: sessionmaker[Session], clock: FixedClock) -> TestClient:
    return TestClient(
        create_app(settings, session_factory=factory, clock=clock), base_url=PUBLIC_BASE_URL
    )


def confirmed(db: Reader) -> list[Appointment]:
    return db.scalars(
        select(Appointment).where(Appointment.status == "confirmed").order_by(Appointment.start_at)
    )


def test_book_from_the_fixture_message_then_restart_list_move_and_cancel(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    demo: DemoData,
    db: Reader,
):
    with fresh_app(settings, session_factory, clock) as client:
        texter = Texter(client)
        offer = texter.text("Hi, can I book a haircut tomorrow at 3pm?")
        assert "haircut" in offer and "Tue Nov 24" in offer and "3:00 PM" in offer
        assert confirmed(db) == []  # nothing before the texter confirms
        assert "Booked" in texter.text("yes")
    (booked,) = confirmed(db)
    assert booked.appointment_type == "haircut"
    assert booked.start_at.isoformat() == "2026-11-24T23:00:00+00:00"

    # The service restarts between two messages: a new app, a new engine.
    with fresh_app(settings, session_factory, clock) as client:
        texter = Texter(client)
        texter.sent = 100
        assert "Tue Nov 24" in texter.text("what appointments do I have?")
        offer = texter.text("move it to thursday at 10am")
        assert "Thu Nov 26" in offer and "10:00 AM" in offer
        texter.text("yes")
        (moved,) = confirmed(db)
        assert moved.id == booked.id
        assert moved.start_at.isoformat() == "2026-11-26T18:00:00+00:00"
        assert "Cancel" in texter.text("cancel it")
        texter.text("yes")
    assert confirmed(db) == []
    assert db.get(Appointment, booked.id).status == "cancelled"


def test_restart_between_offer_and_yes_still_books(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    demo: DemoData,
    db: Reader,
):
    with fresh_app(settings, session_factory, clock) as client:
        assert "consultation or a haircut" in Texter(client).text("can I come in tomorrow at 3?")
    with fresh_app(settings, session_factory, clock) as client:
        texter = Texter(client)
        texter.sent = 20
        assert "Tue Nov 24" in texter.text("a haircut")
    with fresh_app(settings, session_factory, clock) as client:
        texter = Texter(client)
        texter.sent = 50
        assert "Booked" in texter.text("yes")
    (booked,) = confirmed(db)
    assert booked.start_at.isoformat() == "2026-11-24T23:00:00+00:00"


def test_twilio_retry_of_the_confirming_message_books_once(
    client: TestClient, demo: DemoData, db: Reader
):
    texter = Texter(client)
    texter.text("book a consultation tomorrow at 10am")
    first = texter.text("yes", sid="SMconfirm")
    again = texter.text("yes", sid="SMconfirm")
    assert first == again and "Booked" in first
    assert len(confirmed(db)) == 1


def test_change_of_mind_and_nonsense(client: TestClient, demo: DemoData, db: Reader):
    texter = Texter(client)
    texter.text("book a consultation tomorrow at 10am")
    assert "Wed Nov 25" in texter.text("actually make it Wednesday")
    hint = texter.text("purple monkey dishwasher")
    assert "book" in hint.lower()
    texter.text("book a consultation on wednesday at 10am")
    texter.text("yes")
    (booked,) = confirmed(db)
    assert booked.start_at.isoformat() == "2026-11-25T18:00:00+00:00"


def test_second_texter_is_offered_other_times_for_a_taken_slot(
    client: TestClient, demo: DemoData, db: Reader
):
    owner = Texter(client)
    # Any caller reaches the agent on its dedicated line.
    stranger = Texter(client, sender="+14155550999", to=demo.dedicated_line)
    owner.text("book a consultation tomorrow at 10am")
    owner.text("yes")
    reply = stranger.text("can I book a consultation tomorrow at 10am?")
    assert "10:00 AM" in reply and ("taken" in reply or "not free" in reply or "booked" in reply)
    assert len(confirmed(db)) == 1
    assert "no upcoming" in stranger.text("what appointments do I have?").lower()


def test_a_text_hours_later_starts_afresh(client: TestClient, demo: DemoData, clock: FixedClock):
    texter = Texter(client)
    assert "Reply YES" in texter.text("book a consultation tomorrow at 10am")
    clock.advance(hours=3)
    assert "Booked" not in texter.text("yes")
