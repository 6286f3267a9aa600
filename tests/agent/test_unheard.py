"""A proposal the caller cut off (a barge-in on a streamed call) cannot be confirmed by
their next yes, with either engine: app/agent/unheard.py on the stored dialogue state."""

from __future__ import annotations

from typing import Any

import pytest
import respx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.agent.unheard import withdraw_unheard
from app.demo import DemoData
from app.models import Appointment, Conversation
from tests.agent.llm_support import BASE_URL, COMPLETIONS, Caller, completion, sent
from tests.agent.test_llm import AFTERNOON, HAIRCUT_3PM
from tests.agent.test_offline import Phone


def cut_off(factory: sessionmaker[Session], phone: Phone) -> None:
    """What the stream does when the marks show the question was not played."""
    with factory() as session:
        conversation = session.scalar(
            select(Conversation).where(Conversation.external_id == phone.external_id)
        )
        assert conversation is not None
        conversation.state = withdraw_unheard(dict(conversation.state or {}))
        session.commit()


def bookings(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return len(session.scalars(select(Appointment)).all())


@pytest.fixture
def phone(session_factory: sessionmaker[Session], demo: DemoData) -> Phone:
    return Phone(session_factory, demo, demo.caller, channel="voice", external_id="CA-cut")


def test_offline_yes_to_a_cut_off_proposal_restates_it(
    phone: Phone, session_factory: sessionmaker[Session]
) -> None:
    question = phone.say("book a consultation tomorrow at 3pm")
    assert question.endswith("Shall I go ahead?")
    cut_off(session_factory, phone)

    again = phone.say("yes")
    assert bookings(session_factory) == 0
    assert again.startswith("Let me say that again in full") and question in again
    # The question heard in full can be answered.
    assert phone.say("yes").startswith("You're booked")
    assert bookings(session_factory) == 1


def test_offline_cut_off_cancellation_is_restated_too(
    phone: Phone, session_factory: sessionmaker[Session]
) -> None:
    phone.say("book a consultation tomorrow at 3pm")
    phone.say("yes")
    question = phone.say("cancel my consultation tomorrow")
    assert "cancel" in question and question.endswith("?")
    cut_off(session_factory, phone)
    assert "say that again in full" in phone.say("yes")
    with session_factory() as session:
        assert session.scalar(select(Appointment.status)) == "confirmed"


def test_offline_other_answers_to_a_cut_off_proposal_go_on_as_usual(
    phone: Phone, session_factory: sessionmaker[Session]
) -> None:
    phone.say("book a consultation tomorrow at 3pm")
    cut_off(session_factory, phone)
    reply = phone.say("what about Wednesday at 10am")
    assert "Wednesday" in reply and "say that again" not in reply
    assert bookings(session_factory) == 0


def test_a_state_with_nothing_asked_is_left_alone() -> None:
    state: dict[str, Any] = {"intent": "book", "awaiting": "choice", "llm": {"pending": None}}
    assert withdraw_unheard(state) == state


@pytest.fixture
def model() -> Any:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router.post(COMPLETIONS)


def test_llm_pending_change_is_withdrawn(
    session_factory: sessionmaker[Session], demo: DemoData, model: Any
) -> None:
    caller = Caller(session_factory, demo, demo.caller, channel="voice", external_id="CA-llm")
    model.side_effect = [
        completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})]),
        completion(calls=[("book_appointment", {"slot_id": HAIRCUT_3PM})]),
        completion("I can book a haircut tomorrow at 3 PM. Shall I go ahead?"),
    ]
    caller.say("haircut tomorrow at 3pm")
    assert caller.last.state["llm"]["pending"] is not None
    cut_off(session_factory, caller)

    model.side_effect = [completion("Sorry, you cut in: a haircut tomorrow at 3 PM?")]
    caller.say("yes")
    assert bookings(session_factory) == 0
    assert "the system ran" not in sent(model)[0]["content"]
