"""With CONVERSATION_ENGINE=openai no model request runs inside a write transaction
(issue 8): the turn is rolled back, the model asked with no transaction open, and the
turn re-run with the answer (app/agent/llm.py, app/webhooks/turns.py).

At every request the mocked model receives, `WriterProbe` checks that no database write
transaction is open (SQLite: another writer gets the write turn at once; PostgreSQL: no
session that has written sits in its transaction). Each request reaches the model once,
whatever the number of attempts, and is counted once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import AuditEntry, Conversation, User
from tests.agent.llm_support import BASE_URL, completion, sent
from tests.agent.test_llm_webhooks import (  # noqa: F401 - fixtures
    AFTERNOON,
    HAIRCUT_3PM,
    appointments,
    llm_client,
    model,
)
from tests.calendar.test_google_outage import WriterProbe
from tests.conftest import PUBLIC_BASE_URL, TwilioClient
from tests.webhooks.test_twilio_sms import INBOUND, inbound, messages
from tests.webhooks.test_twilio_voice import Phone


@pytest.fixture
def probe(session_factory: sessionmaker[Session], demo: DemoData) -> WriterProbe:
    """The probe writes the user's name "Sam": written first, so that its writes change
    nothing the prompt shows (a changed prompt is a new request, rightly)."""
    with session_factory() as s:
        s.execute(update(User).where(User.id == demo.user_id).values(name="Sam"))
        s.commit()
    return WriterProbe(session_factory, demo.user_id)


def probed(
    probe: WriterProbe, answers: list[httpx.Response | Exception]
) -> Callable[[httpx.Request], httpx.Response]:
    """The model's answers in order, each given after probing the database."""
    queue = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        probe("POST", request.url.path)
        reply = queue.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return answer


def llm_details(factory: sessionmaker[Session]) -> dict[str, Any]:
    with factory() as session:
        conversation = session.scalars(select(Conversation)).one()
        return dict((conversation.details or {})["llm"])


def test_sms_turn_asks_the_model_outside_any_write_transaction(
    llm_client: TestClient,  # noqa: F811
    model: Any,  # noqa: F811
    demo: DemoData,
    session_factory: sessionmaker[Session],
    probe: WriterProbe,
):
    model.side_effect = probed(
        probe,
        [
            completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})]),
            completion("Tomorrow: 1:00, 2:00 or 3:00 PM. Which works?"),
        ],
    )
    answer = TwilioClient(llm_client).post(
        INBOUND, inbound("haircut tomorrow afternoon?", "SM700", demo.caller)
    )
    assert messages(answer) == ["Tomorrow: 1:00, 2:00 or 3:00 PM. Which works?"]
    assert probe.blocked == []
    # Two model requests, each sent and counted once across the turn's attempts.
    assert model.call_count == 2
    recent = llm_details(session_factory)["recent"][-1]
    assert recent["rounds"] == 2 and recent["usage"] == {"prompt": 240, "completion": 60}
    assert recent["answered_by"] == "model" and recent["fallback"] is None


def test_gather_turn_asks_the_model_outside_any_write_transaction(
    llm_client: TestClient,  # noqa: F811
    model: Any,  # noqa: F811
    demo: DemoData,
    session: Session,
    session_factory: sessionmaker[Session],
    probe: WriterProbe,
):
    phone = Phone(TwilioClient(llm_client), demo.caller, session=session)
    phone.dial()
    model.side_effect = probed(
        probe,
        [
            completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})]),
            completion("Tomorrow I have 1, 2 or 3 in the afternoon. Which one?"),
        ],
    )
    heard = phone.say("a haircut tomorrow afternoon")
    assert heard.text == "Tomorrow I have 1, 2 or 3 in the afternoon. Which one?"
    assert probe.blocked == []
    assert model.call_count == 2


def test_model_timeout_falls_back_once_and_is_audited_once(
    llm_client: TestClient,  # noqa: F811
    model: Any,  # noqa: F811
    demo: DemoData,
    session_factory: sessionmaker[Session],
    probe: WriterProbe,
):
    model.side_effect = probed(probe, [httpx.ReadTimeout("model too slow")])
    answer = TwilioClient(llm_client).post(
        INBOUND, inbound("book a haircut tomorrow at 3pm", "SM710", demo.caller)
    )
    # The offline engine answered the turn, after exactly one model request.
    assert messages(answer) == ["Book a haircut on Tue Nov 24 at 3:00 PM? Reply YES to confirm."]
    assert model.call_count == 1 and probe.blocked == []
    with session_factory() as s:
        audits = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "llm.fallback")))
    assert [a.details["reason"] for a in audits] == ["timeout"]
    details = llm_details(session_factory)
    assert details["turns"] == 1 and details["fallbacks"] == 1
    assert details["recent"][-1]["rounds"] == 0


def test_three_round_tool_sequence_books_after_the_persons_yes(
    llm_client: TestClient,  # noqa: F811
    model: Any,  # noqa: F811
    demo: DemoData,
    session_factory: sessionmaker[Session],
    probe: WriterProbe,
):
    sms = TwilioClient(llm_client)
    model.side_effect = probed(
        probe,
        [
            completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})]),
            completion(calls=[("book_appointment", {"slot_id": HAIRCUT_3PM, "name": "Sam"})]),
            completion("Book a haircut Tue Nov 24 at 3:00 PM? Reply YES to confirm."),
        ],
    )
    asked = sms.post(INBOUND, inbound("a haircut tomorrow at 3pm please", "SM720", demo.caller))
    assert messages(asked)[0].endswith("Reply YES to confirm.")
    assert appointments(session_factory) == []
    assert model.call_count == 3
    assert llm_details(session_factory)["recent"][-1]["rounds"] == 3

    # The yes books in the turn's transaction; the model is told (with the new row's id)
    # after a rollback, so the booking is written again on the re-run under another id:
    # the request is still recognised, and sent once.
    model.side_effect = probed(probe, [completion("Booked: haircut Tue Nov 24 at 3:00 PM.")])
    done = sms.post(INBOUND, inbound("YES", "SM721", demo.caller))
    assert messages(done) == ["Booked: haircut Tue Nov 24 at 3:00 PM."]
    assert appointments(session_factory) == [("haircut", datetime(2026, 11, 24, 15))]
    assert model.call_count == 4 and probe.blocked == []
    assert "The person said yes" in sent(model)[0]["content"]
    details = llm_details(session_factory)
    assert details["turns"] == 2 and details["fallbacks"] == 0
    assert details["usage"] == {"prompt": 480, "completion": 120}


@pytest.fixture
def tight_client(
    settings: Settings, session_factory: sessionmaker[Session], clock: FixedClock
) -> Iterator[TestClient]:
    """The LLM engine with half a second of model budget for an SMS turn."""
    llm_settings = settings.model_copy(
        update={
            "conversation_engine": "openai",
            "openai_base_url": BASE_URL,
            "openai_api_key": SecretStr("sk-test-not-real"),
            "openai_sms_budget_seconds": 0.5,
        }
    )
    app = create_app(llm_settings, session_factory=session_factory, clock=clock)
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        yield client


def test_time_spent_in_earlier_attempts_counts_against_the_budget(
    tight_client: TestClient,
    model: Any,  # noqa: F811
    demo: DemoData,
    session_factory: sessionmaker[Session],
):
    def slow_search(request: httpx.Request) -> httpx.Response:
        time.sleep(0.5)  # the whole budget, spent while the turn was rolled back
        return completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})])

    model.side_effect = slow_search
    answer = TwilioClient(tight_client).post(
        INBOUND, inbound("book a haircut tomorrow at 3pm", "SM730", demo.caller)
    )
    # The re-run does not start a fresh budget: no second request, the offline engine answers.
    assert messages(answer) == ["Book a haircut on Tue Nov 24 at 3:00 PM? Reply YES to confirm."]
    assert model.call_count == 1
    recent = llm_details(session_factory)["recent"][-1]
    assert recent["fallback"] == "budget" and recent["answered_by"] == "offline"
    assert recent["model_ms"] >= 500 and recent["turn_ms"] >= 500
