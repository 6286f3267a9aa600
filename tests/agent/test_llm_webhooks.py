"""End to end with CONVERSATION_ENGINE=openai: signed Twilio SMS and voice webhooks, the
engine built from settings, the model an OpenAI-compatible endpoint mocked with respx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import respx
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.admin.errors import ADMIN_PREFIX
from app.agent.llm import LlmEngine
from app.agent.llm_tools import slot_id
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import Appointment, Conversation
from app.security.api_keys import Role
from tests.admin.conftest import make_key
from tests.agent.llm_support import BASE_URL, COMPLETIONS, completion, sent, tool_results
from tests.conftest import PUBLIC_BASE_URL, TwilioClient
from tests.webhooks.test_twilio_sms import INBOUND, inbound, messages
from tests.webhooks.test_twilio_voice import Phone, book_for, set_pin

PACIFIC = ZoneInfo("America/Los_Angeles")
HAIRCUT_3PM = slot_id("haircut", "2026-11-24T15:00:00-08:00")
AFTERNOON = {"date": "2026-11-24", "appointment_type": "haircut", "part_of_day": "afternoon"}


@pytest.fixture
def llm_client(
    settings: Settings, session_factory: sessionmaker[Session], clock: FixedClock
) -> Iterator[TestClient]:
    llm_settings = settings.model_copy(
        update={
            "conversation_engine": "openai",
            "openai_base_url": BASE_URL,
            "openai_api_key": SecretStr("sk-test-not-real"),
        }
    )
    app = create_app(llm_settings, session_factory=session_factory, clock=clock)
    assert isinstance(app.state.services.engine, LlmEngine)
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        yield client


@pytest.fixture
def model() -> Any:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router.post(COMPLETIONS)


def appointments(factory: sessionmaker[Session]) -> list[tuple[str, datetime]]:
    with factory() as session:
        rows = session.scalars(select(Appointment).where(Appointment.status == "confirmed"))
        return [
            (a.appointment_type, a.start_at.astimezone(PACIFIC).replace(tzinfo=None)) for a in rows
        ]


def test_sms_conversation_held_by_the_model_books_through_the_tools(
    llm_client: TestClient, model, demo: DemoData, session_factory
):
    sms = TwilioClient(llm_client)
    model.side_effect = [
        completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})]),
        completion("Tomorrow: 1:00, 2:00 or 3:00 PM. Which works?"),
    ]
    first = sms.post(INBOUND, inbound("haircut tomorrow afternoon?", "SM100", demo.caller))
    assert messages(first) == ["Tomorrow: 1:00, 2:00 or 3:00 PM. Which works?"]
    # The request carried the key as a bearer token and the agent's SMS prompt.
    request = model.calls[0].request
    assert request.headers["Authorization"] == "Bearer sk-test-not-real"
    assert "at most 320 characters" in sent(model, 0)[0]["content"]

    model.side_effect = [
        completion(calls=[("book_appointment", {"slot_id": HAIRCUT_3PM, "name": "Sam"})]),
        completion("Book a haircut Tue Nov 24 at 3:00 PM? Reply YES to confirm."),
    ]
    sms.post(INBOUND, inbound("3pm", "SM101", demo.caller))
    assert appointments(session_factory) == []

    model.side_effect = [completion("Booked: haircut Tue Nov 24 at 3:00 PM. See you then!")]
    done = sms.post(INBOUND, inbound("YES", "SM102", demo.caller))
    assert messages(done) == ["Booked: haircut Tue Nov 24 at 3:00 PM. See you then!"]
    assert appointments(session_factory) == [("haircut", datetime(2026, 11, 24, 15))]

    # Twilio retries the last webhook: same answer, no model request, no second booking.
    calls = model.call_count
    again = sms.post(INBOUND, inbound("YES", "SM102", demo.caller))
    assert messages(again) == messages(done) and model.call_count == calls
    assert len(appointments(session_factory)) == 1

    # The admin conversation view shows what the model cost, turn by turn.
    key = make_key(session_factory, Role.ADMIN)
    with session_factory() as session:
        conversation_id = session.scalar(select(Conversation.id))
    view = llm_client.get(
        f"{ADMIN_PREFIX}/conversations/{conversation_id}",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert view.status_code == 200, view.text
    llm = view.json()["details"]["llm"]
    assert llm["turns"] == 3 and llm["fallbacks"] == 0
    assert llm["usage"] == {"prompt": 600, "completion": 150}
    assert llm["recent"][-1]["answered_by"] == "model"
    assert "sk-test" not in view.text
    transcript = view.json()["messages"]
    assert transcript[-1]["tool_calls"][0]["name"] == "book_appointment"


def test_sms_model_outage_is_answered_by_the_offline_engine(
    llm_client: TestClient, model, demo: DemoData
):
    model.side_effect = [completion(refusal="no")]
    answer = TwilioClient(llm_client).post(
        INBOUND, inbound("book a haircut tomorrow at 3pm", "SM200", demo.caller)
    )
    assert messages(answer) == ["Book a haircut on Tue Nov 24 at 3:00 PM? Reply YES to confirm."]


def test_voice_gather_turns_with_the_model_and_the_pin_check(
    llm_client: TestClient, model, demo: DemoData, session: Session, session_factory
):
    set_pin(session, demo, "4321")
    book_for(session, demo)  # a consultation Wed Nov 25, 10:00 AM
    phone = Phone(TwilioClient(llm_client), demo.caller, session=session)
    phone.dial(stir="TN-Validation-Passed-C")  # caller ID not attested: PIN before changes

    model.side_effect = [completion(calls=[("list_appointments", {})])]
    heard = phone.say("cancel my appointment on Wednesday")
    assert "PIN" in heard.text and heard.gather is not None and "dtmf" in heard.gather["input"]
    assert model.call_count == 1

    # After the PIN the request runs again: list, prepare, ask.
    with session_factory() as s:
        appointment_id = s.scalar(select(Appointment.id))
    model.side_effect = [
        completion(calls=[("list_appointments", {})]),
        completion(calls=[("cancel_appointment", {"appointment_id": appointment_id})]),
        completion(f"You have a consultation Wednesday at 10 AM ({appointment_id}). Cancel it?"),
    ]
    heard = phone.say("", Digits="4321")
    # The engine words the question from the prepared change, for the ear.
    assert heard.text.endswith(
        "Shall I cancel your consultation at 10 AM on Wednesday, November 25th?"
    )
    assert "apt_" not in heard.text
    assert tool_results(model)[0]["appointments"][0]["appointment_id"] == appointment_id
    assert "for the ear" in sent(model)[0]["content"]

    model.side_effect = [completion("Done, it's cancelled. Anything else?")]
    heard = phone.say("yes")
    assert heard.text == "Done, it's cancelled. Anything else?"
    with session_factory() as s:
        assert s.get(Appointment, appointment_id).status == "cancelled"
    body = json.loads(model.calls[-1].request.content)
    assert body["model"] == "gpt-4o-mini" and body["tools"]
