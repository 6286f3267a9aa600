"""Whole Twilio voice calls with signed requests, against a small scripted engine.

The engine follows a few fixed phrases and calls the real tools, so what is tested here
is the webhook: routing, the speech loop, turn idempotency, the caller-ID policy and PIN
check, silence, failures answered with TwiML, status callbacks.
"""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.agent.engine import Reply, Turn
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import Agent, Appointment, AuditEntry, Conversation, Message
from app.security.pins import hash_pin
from app.tools.registry import run_tool
from app.webhooks import twilio_voice
from tests.conftest import PUBLIC_BASE_URL, TwilioClient, load_fixture

CALL_SID = "CA0f1e2d3c4b5a69788796a5b4c3d2e1f0"
UNKNOWN = "+14155550999"
GATHER_URL = f"{PUBLIC_BASE_URL}/webhooks/twilio/voice/gather"


class ScriptedEngine:
    """'book <ISO start>', 'list', 'bye', 'boom' (raises), 'wait' (blocks on an event)."""

    def __init__(self) -> None:
        self.turns = 0
        self.release = threading.Event()

    def respond(self, turn: Turn) -> Reply:
        self.turns += 1
        text = turn.text.strip().lower()
        assert turn.channel == "voice"
        if text == "boom":
            raise RuntimeError("engine exploded")
        if text == "wait":
            self.release.wait(5)
            return Reply("Done waiting.", turn.state)
        if text in {"bye", "goodbye"}:
            return Reply("Goodbye!", turn.state, end_conversation=True)
        if text.startswith("book "):
            return self._tool(turn, "book_appointment", {"start": text.split()[1], "name": "Dana"})
        if text.startswith("list"):
            return self._tool(turn, "list_appointments", {})
        return Reply(f"You said {turn.text}.", {**turn.state, "last": turn.text})

    def _tool(self, turn: Turn, name: str, arguments: dict[str, Any]) -> Reply:
        result = run_tool(turn.tools, name, arguments)
        call = {"name": name, "arguments": arguments, "ok": result.ok, "result": result.message}
        return Reply(result.message, turn.state, tool_calls=[call])


@dataclass
class Heard:
    """What a caller hears from one TwiML answer, and where the call goes next."""

    says: list[str]
    gather: dict[str, str] | None
    hangup: bool
    redirect: str | None = None

    @property
    def text(self) -> str:
        return " ".join(self.says)


def heard(response: Any) -> Heard:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.text)
    assert root.tag == "Response"
    gather = root.find("Gather")
    redirect = root.find("Redirect")
    return Heard(
        says=[say.text or "" for say in root.iter("Say")],
        gather=dict(gather.attrib) if gather is not None else None,
        hangup=root.find("Hangup") is not None,
        redirect=redirect.text if redirect is not None else None,
    )


class Phone:
    """One caller on one call, speaking through signed Twilio webhooks."""

    def __init__(
        self, twilio: TwilioClient, caller: str, sid: str = CALL_SID, session: Session | None = None
    ) -> None:
        self.twilio = twilio
        self.caller = caller
        self.sid = sid
        self.turn = 0
        # The test's own session: its read transaction (BEGIN IMMEDIATE on SQLite) must
        # end before the server writes.
        self.session = session

    def post(self, path: str, params: dict[str, str]) -> Any:
        if self.session is not None:
            self.session.rollback()
        return self.twilio.post(path, params)

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.sid,
            "AccountSid": "AC0123456789abcdef0123456789abcdef",
            "From": self.caller,
            "To": "+15005550006",
            "Direction": "inbound",
            "CallStatus": "in-progress",
            **extra,
        }

    def dial(self, stir: str | None = "TN-Validation-Passed-A") -> Heard:
        params = {**load_fixture("twilio/inbound-voice.json"), "From": self.caller}
        params.update({"Caller": self.caller, "CallSid": self.sid})
        if stir is None:
            params.pop("StirVerstat")
        else:
            params["StirVerstat"] = stir
        answer = heard(self.post("/webhooks/twilio/voice/inbound", params))
        self.turn = 1
        return answer

    def post_turn(self, turn: int, **fields: str) -> Any:
        path = f"/webhooks/twilio/voice/gather?turn={turn}"
        return self.post(path, self.params(**fields))

    def say(self, speech: str = "", **fields: str) -> Heard:
        extra = {"SpeechResult": speech, "Confidence": "0.91"} if speech else {}
        answer = heard(self.post_turn(self.turn, **extra, **fields))
        if answer.gather is not None:
            assert answer.gather["action"] == f"{GATHER_URL}?turn={self.turn + 1}"
            self.turn += 1
        return answer


@pytest.fixture
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture
def voice_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture
def voice_client(
    voice_settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    engine: ScriptedEngine,
) -> Iterator[TestClient]:
    app = create_app(voice_settings, session_factory=session_factory, clock=clock, engine=engine)
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        yield client
    engine.release.set()


@pytest.fixture
def phone(voice_client: TestClient, demo: DemoData, session: Session) -> Phone:
    return Phone(TwilioClient(voice_client), demo.caller, session=session)


def set_pin(session: Session, demo: DemoData, pin: str | None = "4321") -> None:
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    agent.pin_hash = hash_pin(pin) if pin else None
    session.commit()


def book_for(session: Session, demo: DemoData) -> None:
    """An appointment the demo caller already holds (booked earlier by SMS)."""
    session.add(
        Appointment(
            agent_id=demo.agent_id,
            appointment_type="consultation",
            start_at=datetime.fromisoformat("2026-11-25T18:00:00+00:00"),
            end_at=datetime.fromisoformat("2026-11-25T18:30:00+00:00"),
            contact_e164=demo.caller,
            idempotency_key="earlier-sms",
            channel="sms",
        )
    )
    session.commit()


def actions(session: Session) -> list[str]:
    session.expire_all()
    return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# --- the greeting and the speech loop -------------------------------------------------------


def test_known_caller_is_greeted_by_name_and_asked_in_a_speech_gather(
    phone: Phone, session: Session
):
    answer = phone.dial()
    assert answer.text.startswith("Hi Sam! This is Sam's scheduling line.")
    assert not answer.hangup
    gather = answer.gather
    assert gather is not None
    assert gather["input"] == "speech"
    assert gather["action"] == f"{GATHER_URL}?turn=1"
    assert gather["actionOnEmptyResult"] == "true"
    assert gather["speechModel"] == "phone_call"
    assert gather["speechTimeout"] == "2"  # numeric with a model, never "auto"
    assert "consultation" in gather["hints"] and "haircut" in gather["hints"]
    conversation = session.scalar(select(Conversation).where(Conversation.external_id == CALL_SID))
    assert conversation is not None and conversation.channel == "voice"
    assert conversation.details["voice"]["attested"] is True
    assert "webhook.accepted" in actions(session)


@pytest.mark.parametrize("model", [""])
def test_without_speech_model_the_timeout_is_auto(
    voice_client: TestClient, settings: Settings, demo: DemoData, model: str
):
    app = voice_client.app
    app.state.services.settings = settings.model_copy(update={"twilio_speech_model": model})
    answer = Phone(TwilioClient(voice_client), demo.caller).dial()
    assert answer.gather is not None
    assert answer.gather["speechTimeout"] == "auto"
    assert "speechModel" not in answer.gather


def test_book_by_voice(phone: Phone, session: Session, engine: ScriptedEngine):
    phone.dial()
    answer = phone.say("book 2026-11-24T15:00:00")
    assert "Booked" in answer.text or "booked" in answer.text
    assert answer.gather is not None and not answer.hangup
    appointment = session.scalar(select(Appointment))
    assert appointment is not None
    assert appointment.channel == "voice"
    assert appointment.start_at.isoformat() == "2026-11-24T23:00:00+00:00"
    conversation = session.scalar(select(Conversation).where(Conversation.external_id == CALL_SID))
    assert conversation is not None and appointment.conversation_id == conversation.id
    bye = phone.say("bye")
    assert bye.text == "Goodbye!" and bye.hangup and bye.gather is None
    session.expire_all()
    assert session.get(Conversation, conversation.id).status == "ended"


def test_retried_gather_callback_runs_the_engine_once(
    phone: Phone, session: Session, engine: ScriptedEngine
):
    phone.dial()
    first = phone.post_turn(1, SpeechResult="book 2026-11-24T15:00:00")
    again = phone.post_turn(1, SpeechResult="book 2026-11-24T15:00:00")
    assert first.text == again.text
    assert engine.turns == 1
    assert session.scalar(select(func.count()).select_from(Appointment)) == 1
    inbound = session.scalar(
        select(func.count()).select_from(Message).where(Message.direction == "in")
    )
    assert inbound == 1


def test_retried_inbound_webhook_answers_the_same_and_opens_one_conversation(
    phone: Phone, session: Session
):
    first = phone.dial()
    second = phone.dial()
    assert first == second
    assert session.scalar(select(func.count()).select_from(Conversation)) == 1


def test_a_call_that_fails_to_answer_still_gets_twiml(
    phone: Phone, session: Session, monkeypatch: pytest.MonkeyPatch
):
    def broken(call: twilio_voice.Call) -> str:
        raise RuntimeError("greeting exploded")

    monkeypatch.setattr(twilio_voice, "_greet", broken)
    answer = phone.dial()  # parsed as TwiML: Twilio would play its error for plain text
    assert answer.text == twilio_voice.APOLOGY_HANGUP
    assert answer.hangup and answer.gather is None
    assert session.scalar(select(func.count()).select_from(Conversation)) == 0


def test_unknown_caller_hears_how_to_register_and_the_call_ends(
    voice_client: TestClient, session: Session, demo: DemoData
):
    answer = Phone(TwilioClient(voice_client), UNKNOWN, session=session).dial()
    assert "isn't registered" in answer.text
    assert "operator" in answer.text  # the registration instructions
    assert answer.hangup and answer.gather is None
    assert "routing.failed" in actions(session)
    assert session.scalar(select(func.count()).select_from(Conversation)) == 0
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "routing.failed"))
    assert entry is not None and UNKNOWN not in str(entry.details)


def test_silence_twice_ends_the_call_politely(phone: Phone, session: Session):
    phone.dial()
    first = phone.say("")
    assert "didn't catch" in first.text and first.gather is not None
    second = phone.say("")
    assert "Goodbye" in second.text and second.hangup and second.gather is None
    conversation = session.scalar(select(Conversation))
    assert conversation is not None and conversation.status == "ended"


def test_speech_between_silences_resets_the_count(phone: Phone):
    phone.dial()
    phone.say("")
    phone.say("hello there")
    answer = phone.say("")
    assert not answer.hangup


def test_engine_failure_is_answered_with_twiml_and_a_retry(
    phone: Phone, session: Session, engine: ScriptedEngine
):
    phone.dial()
    answer = phone.say("boom")
    assert "Sorry" in answer.text and answer.gather is not None
    assert not answer.hangup
    # The failed turn left nothing behind, and the call goes on.
    assert session.scalar(select(func.count()).select_from(Message)) == 1  # the greeting
    assert phone.say("hello").text == "You said hello."


def test_slow_turn_is_answered_within_the_budget(
    voice_client: TestClient, settings: Settings, demo: DemoData, engine: ScriptedEngine
):
    voice_client.app.state.services.settings = settings.model_copy(
        update={"voice_turn_budget_seconds": 0.2}
    )
    phone = Phone(TwilioClient(voice_client), demo.caller)
    phone.dial()
    answer = phone.say("wait")
    engine.release.set()
    assert "Sorry" in answer.text and answer.gather is not None
    # The abandoned turn still commits on its own; let it, before the next test empties
    # the tables under it.
    _wait_for_reply(voice_client, "Done waiting.")


def _wait_for_reply(client: TestClient, text: str) -> None:
    factory = client.app.state.services.session_factory
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with factory() as session:
            if session.scalar(select(Message.id).where(Message.body == text)) is not None:
                return
        time.sleep(0.02)
    raise AssertionError(f"the abandoned turn never committed {text!r}")


def test_bad_signature_is_refused(voice_client: TestClient, demo: DemoData, session: Session):
    session.rollback()
    params = load_fixture("twilio/inbound-voice.json")
    response = voice_client.post(
        "/webhooks/twilio/voice/inbound", data=params, headers={"X-Twilio-Signature": "bad"}
    )
    assert response.status_code == 403
    assert "webhook.rejected" in actions(session)


# --- caller ID and the PIN ---------------------------------------------------------------


@pytest.mark.parametrize("stir", ["TN-Validation-Passed-A", "TN-Validation-Passed-A-Diverted"])
def test_attested_caller_lists_without_pin(phone: Phone, session: Session, demo, stir: str):
    book_for(session, demo)
    phone.dial(stir)
    answer = phone.say("list my appointments")
    assert "Your appointments" in answer.text


@pytest.mark.parametrize("stir", ["TN-Validation-Passed-B", "No-TN-Validation", None])
def test_unattested_caller_is_refused_listing_without_pin(
    phone: Phone, session: Session, demo: DemoData, stir: str | None
):
    set_pin(session, demo)
    book_for(session, demo)
    phone.dial(stir)
    answer = phone.say("list my appointments")
    assert "PIN" in answer.text
    assert "Your appointments" not in answer.text
    assert answer.gather is not None and answer.gather["input"] == "dtmf speech"
    assert answer.gather["finishOnKey"] == "#"


def test_list_after_pin_by_keypad(phone: Phone, session: Session, demo: DemoData):
    set_pin(session, demo)
    book_for(session, demo)
    phone.dial("TN-Validation-Passed-C")
    phone.say("list my appointments")
    answer = phone.say(Digits="4321")
    assert answer.text.startswith("Thank you, you're verified.")
    assert "Your appointments" in answer.text
    assert "pin.verified" in actions(session)
    # Verified for the rest of the call.
    assert "Your appointments" in phone.say("list again").text
    transcript = " ".join(session.scalars(select(Message.body)))
    assert "4321" not in transcript


def test_spoken_pin_is_understood(phone: Phone, session: Session, demo: DemoData):
    set_pin(session, demo)
    book_for(session, demo)
    phone.dial("No-TN-Validation")
    phone.say("list")
    assert "Your appointments" in phone.say("four three two one").text


def test_wrong_pins_are_audited_and_end_in_refusal(phone: Phone, session: Session, demo: DemoData):
    set_pin(session, demo)
    book_for(session, demo)
    phone.dial("TN-Validation-Failed-A")
    phone.say("list")
    assert "didn't match" in phone.say(Digits="1111").text
    assert "didn't match" in phone.say(Digits="2222").text
    locked = phone.say(Digits="3333")
    assert "couldn't verify" in locked.text and locked.gather["input"] == "speech"
    assert actions(session).count("pin.failed") == 3
    # Booking a new appointment stays open.
    assert "ooked" in phone.say("book 2026-11-24T15:00:00").text
    # And listing asks for the PIN again, which the call may no longer try.
    phone.say("list")
    assert "couldn't verify" in phone.say(Digits="4321").text
    assert "pin.verified" not in actions(session)


def test_pin_attempts_are_limited_per_caller_across_calls(
    voice_client: TestClient, settings: Settings, session: Session, demo: DemoData
):
    voice_client.app.state.services.settings = settings.model_copy(
        update={"rate_limit_pin": "2/hour"}
    )
    set_pin(session, demo)
    book_for(session, demo)
    for sid in ("CA" + "1" * 32, "CA" + "2" * 32):
        phone = Phone(TwilioClient(voice_client), demo.caller, sid, session)
        phone.dial(None)
        phone.say("list")
        phone.say(Digits="1111")
    phone = Phone(TwilioClient(voice_client), demo.caller, "CA" + "3" * 32, session)
    phone.dial(None)
    phone.say("list")
    assert "couldn't verify" in phone.say(Digits="4321").text
    assert "pin.locked" in actions(session)


def test_strict_agent_without_pin_explains_and_keeps_booking_open(
    phone: Phone, session: Session, demo: DemoData
):
    book_for(session, demo)
    phone.dial(None)
    answer = phone.say("list")
    assert "none is set up" in answer.text
    assert "ooked" in phone.say("book 2026-11-24T15:00:00").text


def test_open_policy_trusts_caller_id(phone: Phone, session: Session, demo: DemoData):
    agent = session.get(Agent, demo.agent_id)
    agent.caller_id_policy = "open"
    session.commit()
    book_for(session, demo)
    phone.dial(None)
    assert "Your appointments" in phone.say("list").text


def test_something_else_than_a_pin_leaves_the_pin_prompt(
    phone: Phone, session: Session, demo: DemoData
):
    set_pin(session, demo)
    phone.dial(None)
    phone.say("list")
    assert phone.say("never mind").text == "You said never mind."


# --- status callbacks and fallback --------------------------------------------------------


def status(phone: Phone, status: str, sequence: int, **extra: str) -> None:
    params = {
        **load_fixture("twilio/call-status-completed.json"),
        "CallStatus": status,
        "SequenceNumber": str(sequence),
        **extra,
    }
    response = phone.post("/webhooks/twilio/voice/status", params)
    assert response.status_code == 200
    ET.fromstring(response.text)


def test_status_callbacks_out_of_order_keep_the_newest(phone: Phone, session: Session):
    phone.dial()
    status(phone, "completed", 3, CallDuration="187")
    status(phone, "in-progress", 1)
    status(phone, "completed", 3, CallDuration="187")  # a retry
    conversation = session.scalar(select(Conversation))
    assert conversation is not None
    assert conversation.details["call_status"]["status"] == "completed"
    assert conversation.details["call_status"]["duration_seconds"] == 187
    assert conversation.details["call_status"]["sequence"] == 3
    assert conversation.status == "ended"
    assert conversation.details["voice"]["attested"] is True  # the call's state kept


def test_status_in_order_moves_forward(phone: Phone, session: Session):
    phone.dial()
    status(phone, "ringing", 0)
    status(phone, "in-progress", 1)
    conversation = session.scalar(select(Conversation))
    assert conversation.details["call_status"]["status"] == "in-progress"
    assert conversation.status == "active"


@pytest.mark.parametrize(("last", "ended"), [("ringing", False), ("no-answer", True)])
def test_status_of_a_call_never_answered_is_kept(
    phone: Phone, session: Session, last: str, ended: bool
):
    status(phone, last, 2, CallDuration="0")
    conversation = session.scalar(select(Conversation))
    assert conversation is not None
    assert conversation.details == {
        "call_status": {
            "status": last,
            "sequence": 2,
            "duration_seconds": 0,
            "timestamp": "Sun, 22 Nov 2026 18:04:58 +0000",
        }
    }
    assert conversation.status == ("ended" if ended else "active")
    assert conversation.caller_e164 == "+14155550123" and conversation.agent_id is None


def test_a_status_callback_that_fails_still_answers_twiml(
    phone: Phone, session: Session, monkeypatch: pytest.MonkeyPatch
):
    def broken(*_: object) -> None:
        raise RuntimeError("status exploded")

    monkeypatch.setattr(twilio_voice, "_record_status", broken)
    status(phone, "completed", 3)
    assert session.scalar(select(func.count()).select_from(Conversation)) == 0


def test_a_final_status_after_an_ended_call_keeps_it_ended(phone: Phone, session: Session):
    phone.dial()
    status(phone, "completed", 3)
    status(phone, "completed", 4, CallDuration="200")
    conversation = session.scalar(select(Conversation))
    assert conversation is not None and conversation.status == "ended"
    assert conversation.details["call_status"]["duration_seconds"] == 200


def test_a_call_whose_status_came_first_is_greeted_by_name(phone: Phone, session: Session):
    # The status callback made the conversation, without the name a new one is opened with.
    status(phone, "ringing", 0)
    answer = phone.dial()
    assert answer.text.startswith("Hi Sam! This is Sam's scheduling line.")
    conversation = session.scalar(select(Conversation))
    assert conversation is not None
    assert conversation.details["call_status"]["status"] == "ringing"
    assert conversation.details["voice"]["attested"] is True


def test_fallback_always_answers_twiml(voice_client: TestClient):
    response = voice_client.post(
        "/webhooks/twilio/voice/fallback", data={"ErrorCode": "11200", "CallSid": CALL_SID}
    )
    answer = heard(response)
    assert "Sorry" in answer.text and answer.hangup
    assert heard(voice_client.post("/webhooks/twilio/voice/fallback", content=b"\xff")).hangup


def test_gather_for_a_call_never_answered_hangs_up(phone: Phone):
    answer = heard(phone.post_turn(1, SpeechResult="hello"))
    assert answer.hangup and answer.gather is None


def test_garbage_turn_number_still_gets_twiml(phone: Phone):
    phone.dial()
    path = "/webhooks/twilio/voice/gather?turn=abc"
    answer = heard(phone.post(path, phone.params(SpeechResult="hello")))
    assert answer.text == "You said hello."
