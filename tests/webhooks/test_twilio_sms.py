"""The SMS webhook with signed requests, a real database and real TwiML.

The engine here is a small scripted test engine (the Engine interface's test plugin), so
these tests pin down the webhook's own duties; tests/agent/ covers real dialogues.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.agent.engine import Reply, Turn
from app.clock import FixedClock
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.demo import DemoData
from app.main import create_app
from app.models import Appointment, AuditEntry, InboundEvent, Message, SmsOptOut
from app.tools.registry import run_tool
from app.webhooks.twilio_sms import APOLOGY, HELP_TEXT, SLOW_DOWN
from tests.conftest import PUBLIC_BASE_URL, Reader, TwilioClient, load_fixture, twilio_signature

INBOUND = "/webhooks/twilio/sms/inbound"
STATUS = "/webhooks/twilio/sms/status"


class ScriptedEngine:
    """`book <ISO start>` books; anything else is echoed. Counts its turns."""

    def __init__(self) -> None:
        self.turns = 0

    def respond(self, turn: Turn) -> Reply:
        self.turns += 1
        if turn.text.lower().startswith("book "):
            result = run_tool(turn.tools, "book_appointment", {"start": turn.text[5:].strip()})
            return Reply(result.message, turn.state)
        seen = int(turn.state.get("seen", 0)) + 1
        return Reply(f"echo {seen}: {turn.text}", {**turn.state, "seen": seen})


class BrokenEngine:
    def respond(self, turn: Turn) -> Reply:
        raise RuntimeError("engine fell over")


def make_client(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    engine: Any,
) -> TestClient:
    app = create_app(settings, session_factory=session_factory, clock=clock, engine=engine)
    return TestClient(app, base_url=PUBLIC_BASE_URL)


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def sms(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    engine: ScriptedEngine,
    demo: DemoData,
) -> Iterator[TwilioClient]:
    with make_client(settings, session_factory, clock, engine) as client:
        yield TwilioClient(client)


def inbound(body: str, sid: str, sender: str = "+14155550123", to: str = "+15005550006"):
    form = {k: str(v) for k, v in load_fixture("twilio/inbound-sms.json").items()}
    form.update(Body=body, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, From=sender, To=to)
    return form


def messages(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    return [m.text or "" for m in ET.fromstring(response.text).iter("Message")]


def test_fixture_message_signed_like_twilio_reaches_the_agent(sms: TwilioClient):
    form = {k: str(v) for k, v in load_fixture("twilio/inbound-sms.json").items()}
    # The fixture has blank values (ToCity, MessagingServiceSid): they are part of the signature.
    assert form["ToCity"] == ""
    assert messages(sms.post(INBOUND, form)) == [f"echo 1: {form['Body']}"]


def test_unsigned_request_is_refused_and_audited(sms: TwilioClient, db: Reader):
    response = sms.client.post(INBOUND, data=inbound("hi", "SM1"))
    assert response.status_code == 403
    (entry,) = db.scalars(select(AuditEntry))
    assert entry.action == "webhook.rejected"
    assert entry.details["reason"] == "missing signature"
    assert db.count(InboundEvent) == 0


def test_tampered_body_is_refused(sms: TwilioClient):
    form = inbound("hi", "SM2")
    signature = twilio_signature(PUBLIC_BASE_URL + INBOUND, form)
    form["Body"] = "book 2026-11-24T10:00:00"
    response = sms.client.post(INBOUND, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def test_signature_over_another_url_is_refused(sms: TwilioClient):
    form = inbound("hi", "SM3")
    signature = twilio_signature("https://attacker.example" + INBOUND, form)
    response = sms.client.post(INBOUND, data=form, headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def test_forwarded_host_header_does_not_change_the_signed_url(sms: TwilioClient):
    form = inbound("hi", "SM4")
    signature = twilio_signature("https://evil.example" + INBOUND, form)
    response = sms.client.post(
        INBOUND,
        data=form,
        headers={"X-Twilio-Signature": signature, "X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 403


def test_query_string_is_part_of_the_signed_url(sms: TwilioClient):
    path = INBOUND + "?tenant=a&x=1"
    form = inbound("hello", "SM5")
    assert messages(sms.post(path, form)) == ["echo 1: hello"]
    signature = twilio_signature(PUBLIC_BASE_URL + INBOUND, form)
    refused = sms.client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert refused.status_code == 403


def test_retried_message_sid_gets_same_reply_and_books_once(
    sms: TwilioClient, engine: ScriptedEngine, db: Reader
):
    form = inbound("book 2026-11-24T10:00:00", "SMretry")
    first = messages(sms.post(INBOUND, form))
    second = messages(sms.post(INBOUND, form))
    assert first == second
    assert first[0].startswith("Booked: your consultation on Tue Nov 24, 10:00 AM")
    assert engine.turns == 1
    assert db.count(Appointment) == 1
    assert db.count(InboundEvent) == 1


def test_dialogue_state_carries_across_messages(sms: TwilioClient, db: Reader):
    assert messages(sms.post(INBOUND, inbound("one", "SMa"))) == ["echo 1: one"]
    assert messages(sms.post(INBOUND, inbound("two", "SMb"))) == ["echo 2: two"]
    bodies = db.scalars(select(Message.body).order_by(Message.id))
    assert bodies == ["one", "echo 1: one", "two", "echo 2: two"]


def test_unknown_caller_on_shared_number_is_told_how_to_register(
    sms: TwilioClient, engine: ScriptedEngine, db: Reader
):
    reply = messages(sms.post(INBOUND, inbound("hi", "SMu", sender="+14155550999")))
    assert "isn't registered" in reply[0]
    assert "operator" in reply[0]
    assert engine.turns == 0
    (failure,) = db.scalars(select(AuditEntry).where(AuditEntry.action == "routing.failed"))
    assert failure.details["reason"] == "unknown_caller"
    assert "+14155550999" not in str(failure.subject) + str(failure.details)


def test_any_caller_reaches_the_agent_on_its_dedicated_line(
    sms: TwilioClient, demo: DemoData, db: Reader
):
    form = inbound("book 2026-11-24T11:00:00", "SMd", sender="+14155550999", to=demo.dedicated_line)
    assert messages(sms.post(INBOUND, form))[0].startswith("Booked:")
    (booked,) = db.scalars(select(Appointment))
    assert booked.contact_e164 == "+14155550999"
    assert booked.agent_id == demo.agent_id


def test_stop_then_silence_until_start(sms: TwilioClient, engine: ScriptedEngine, db: Reader):
    stop = {k: str(v) for k, v in load_fixture("twilio/inbound-sms-stop.json").items()}
    assert messages(sms.post(INBOUND, stop)) == []
    assert db.get(SmsOptOut, "+14155550123") is not None
    assert messages(sms.post(INBOUND, inbound("book 2026-11-24T10:00:00", "SMs2"))) == []
    assert engine.turns == 0
    assert db.count(Appointment) == 0
    assert messages(sms.post(INBOUND, inbound("START", "SMs3")))[0].startswith("You're subscribed")
    assert messages(sms.post(INBOUND, inbound("hello", "SMs4"))) == ["echo 1: hello"]


def test_yes_is_dialogue_unless_opted_out(sms: TwilioClient, db: Reader):
    assert messages(sms.post(INBOUND, inbound("YES", "SMy1"))) == ["echo 1: YES"]
    assert db.count(SmsOptOut) == 0


def test_help_keyword_and_multiword_cancel_is_not_an_opt_out(sms: TwilioClient, db: Reader):
    assert messages(sms.post(INBOUND, inbound("help", "SMh"))) == [HELP_TEXT]
    assert messages(sms.post(INBOUND, inbound("cancel my appointment", "SMc"))) == [
        "echo 1: cancel my appointment"
    ]
    assert db.count(SmsOptOut) == 0


def test_engine_failure_answers_apology_twiml_and_keeps_no_half_event(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    demo: DemoData,
    db: Reader,
):
    with make_client(settings, session_factory, clock, BrokenEngine()) as client:
        response = TwilioClient(client).post(INBOUND, inbound("hi", "SMboom"))
    assert messages(response) == [APOLOGY]
    # Nothing recorded, so Twilio's or the texter's retry runs the message again.
    assert db.count(InboundEvent) == 0


class StuckEngine:
    """Holds the turn until released, like a calendar that stopped answering."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def respond(self, turn: Turn) -> Reply:
        self.release.wait(timeout=10)
        return Reply("too late", turn.state)


def test_turn_over_its_time_budget_gets_an_apology(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    demo: DemoData,
):
    impatient = settings.model_copy(update={"sms_turn_budget_seconds": 0.2})
    engine = StuckEngine()
    with make_client(impatient, session_factory, clock, engine) as client:
        try:
            response = TwilioClient(client).post(INBOUND, inbound("hi", "SMslow"))
        finally:
            engine.release.set()
    assert messages(response) == [APOLOGY]


def test_texter_over_the_limit_gets_a_polite_twiml_reply(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    demo: DemoData,
    engine: ScriptedEngine,
):
    limited = settings.model_copy(update={"rate_limit_webhook": "2/minute"})
    with make_client(limited, session_factory, clock, engine) as client:
        twilio = TwilioClient(client)
        replies = [messages(twilio.post(INBOUND, inbound(f"m{i}", f"SMl{i}")))[0] for i in range(3)]
        other = messages(twilio.post(INBOUND, inbound("hi", "SMo", sender="+14155550999")))
    assert replies[:2] == ["echo 1: m0", "echo 2: m1"]
    assert replies[2] == SLOW_DOWN
    assert engine.turns == 2
    assert "isn't registered" in other[0]  # another caller has a budget of their own


def test_status_callback_is_recorded_once(sms: TwilioClient, db: Reader):
    form = {k: str(v) for k, v in load_fixture("twilio/message-status-delivered.json").items()}
    assert sms.post(STATUS, form).status_code == 200
    assert sms.post(STATUS, form).status_code == 200
    (event,) = db.scalars(select(InboundEvent))
    assert event.kind == "message-status"
    assert event.payload["status"] == "delivered"
    assert "+14155550123" not in str(event.payload)


def test_turn_on_a_connection_the_database_dropped_runs_again_on_a_fresh_one(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    engine: ScriptedEngine,
    demo: DemoData,
    db: Reader,
    caplog: pytest.LogCaptureFixture,
):
    """No ping before each checkout: a pooled connection the server dropped (a restart)
    fails at the turn's first statement; the turn runs again, once, and answers."""
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite has no server to drop connections")
    own = make_engine(settings)  # its own pool, so only its connections are dropped
    pids: list[int] = []  # every connection it made: pooled, or kept for turns
    event.listen(own, "connect", lambda dbapi, _record: pids.append(dbapi.info.backend_pid))
    try:
        with make_client(settings, make_session_factory(own), clock, engine) as client:
            sms = TwilioClient(client)
            assert messages(sms.post(INBOUND, inbound("one", "SMbefore"))) == ["echo 1: one"]
            with session_factory() as other:
                for pid in pids:
                    other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                other.commit()
            assert messages(sms.post(INBOUND, inbound("two", "SMafter"))) == ["echo 2: two"]
    finally:
        own.dispose()
    assert "connection was dead; running it again" in caplog.text
    assert db.count(InboundEvent) == 2


def _sample(name: str, labels: dict[str, str]) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_committed_turns_count_in_metrics_and_a_rolled_back_one_does_not(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    demo: DemoData,
    sms: TwilioClient,
):
    accepted = {"provider": "twilio", "outcome": "accepted"}
    booked = {"channel": "sms", "action": "booked"}
    before = (
        _sample("sched_webhook_outcomes_total", accepted),
        _sample("sched_bookings_total", booked),
    )
    messages(sms.post(INBOUND, inbound("book 2026-11-24T10:00:00", "SMcounted")))
    messages(sms.post(INBOUND, inbound("book 2026-11-24T10:00:00", "SMcounted")))  # a retry
    assert _sample("sched_webhook_outcomes_total", accepted) == before[0] + 1
    assert _sample("sched_bookings_total", booked) == before[1] + 1

    with make_client(settings, session_factory, clock, BrokenEngine()) as client:
        assert messages(TwilioClient(client).post(INBOUND, inbound("hi", "SMbroken"))) == [APOLOGY]
    assert _sample("sched_webhook_outcomes_total", accepted) == before[0] + 1
