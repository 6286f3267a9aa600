"""The LLM engine's words checked in code (app/agent/llm_guard.py), whatever the model
writes: each test has the model (respx) say something unsafe and fails if the guard that
stops it is removed. Real tools, real database, clock pinned to Mon 23 Nov 2026 08:00 PT.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx
from sqlalchemy.orm import Session, sessionmaker

from app.agent import llm_guard
from app.agent.llm_tools import slot_id
from app.demo import DemoData
from app.models import Appointment
from tests.agent.llm_support import (
    BASE_URL,
    COMPLETIONS,
    Caller,
    completion,
    slot_ids,
    tool_results,
)
from tests.agent.test_llm import AFTERNOON, HAIRCUT_3PM, PACIFIC, STRANGER, booked, offer_three


@pytest.fixture
def owner(session_factory: sessionmaker[Session], demo: DemoData) -> Caller:
    return Caller(session_factory, demo, demo.caller)


@pytest.fixture
def model() -> Any:
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        yield router.post(COMPLETIONS)


TUE_2PM = "2026-11-24T14:00:00-08:00"
QUESTION = "Shall I book a haircut on Tue Nov 24 at 3:00 PM? Reply YES to confirm."


def hold(
    factory: sessionmaker[Session], demo: DemoData, caller: str, kind: str, at: datetime
) -> str:
    with factory() as session:
        start = at.replace(tzinfo=PACIFIC).astimezone(UTC)
        appointment = Appointment(
            agent_id=demo.agent_id,
            appointment_type=kind,
            start_at=start,
            end_at=start + timedelta(minutes=45),
            status="confirmed",
            contact_e164=caller,
            channel="sms",
            idempotency_key=f"guard:{caller}:{at.isoformat()}",
        )
        session.add(appointment)
        session.commit()
        return appointment.id


def prepare_3pm(owner: Caller, model: Any, words: str = "Shall I book it? Reply YES.") -> str:
    offer_three(model)
    owner.say("haircut tomorrow afternoon?")
    model.side_effect = [
        completion(calls=[("book_appointment", {"slot_id": HAIRCUT_3PM})]),
        completion(words),
    ]
    return owner.say("3pm")


# --- the confirmation question is the engine's ----------------------------------------------


def test_the_question_names_what_will_run_whatever_the_model_wrote(owner: Caller, model):
    # The model paraphrases with another day and time, and asks its own question.
    reply = prepare_3pm(
        owner, model, "Great choice! Shall I book you Wednesday at 4 PM? Reply YES."
    )
    assert reply == f"Great choice! {QUESTION}"


def test_a_question_without_the_date_gets_the_full_date_and_time(owner: Caller, model):
    assert prepare_3pm(owner, model, "Book it for 3?") == QUESTION


def test_a_booking_beside_the_callers_own_that_day_asks_instead_or_in_addition(
    owner: Caller, model, session_factory, demo: DemoData
):
    hold(session_factory, demo, demo.caller, "consultation", datetime(2026, 11, 24, 10))
    hold(session_factory, demo, STRANGER, "consultation", datetime(2026, 11, 24, 11))
    assert prepare_3pm(owner, model) == (
        "You already have your consultation on Tue Nov 24 at 10:00 AM. Should the haircut on "
        "Tue Nov 24 at 3:00 PM replace it, or be in addition to it? Reply MOVE to move it "
        "there, or BOTH to keep both."
    )


# --- claims only for what committed ------------------------------------------------------


def test_a_claim_without_a_commit_is_replaced_by_the_true_state(
    owner: Caller, model, session_factory
):
    model.side_effect = [
        completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})]),
        completion("You're all set: haircut booked for Tue Nov 24 at 3:00 PM! See you then."),
    ]
    reply = owner.say("book me a haircut tomorrow at 3pm")
    assert booked(session_factory) == []
    assert reply == "See you then. Nothing has changed in your calendar yet."
    assert owner.last.meta["guards"] == ["claim_dropped"]


def test_a_yes_that_failed_is_told_as_it_is(owner: Caller, model, session_factory, demo):
    prepare_3pm(owner, model)
    # Someone else takes 3 PM before the person's yes arrives.
    hold(session_factory, demo, STRANGER, "haircut", datetime(2026, 11, 24, 15))
    model.side_effect = [completion("You're booked for Tue Nov 24 at 3:00 PM! Anything else?")]
    reply = owner.say("yes")
    assert ("haircut", datetime(2026, 11, 24, 15), "confirmed") in booked(session_factory)
    assert len(booked(session_factory)) == 1  # only the stranger's
    assert reply.startswith("That didn't go through: ")
    assert "booked for" not in reply and reply.endswith("Anything else?")


def test_a_commit_is_stated_and_a_different_claim_dropped(owner: Caller, model, session_factory):
    prepare_3pm(owner, model)
    model.side_effect = [completion("Your old appointment is cancelled. Anything else?")]
    reply = owner.say("yes")
    assert booked(session_factory) == [("haircut", datetime(2026, 11, 24, 15), "confirmed")]
    assert reply == "Booked: your haircut on Tue Nov 24 at 3:00 PM. Anything else?"


def test_an_earlier_commit_may_be_restated(owner: Caller, model):
    prepare_3pm(owner, model)
    model.side_effect = [completion("Booked! See you tomorrow.")]
    owner.say("yes")
    model.side_effect = [completion("Your haircut is booked for Tue Nov 24 at 3:00 PM.")]
    assert owner.say("when was it again?") == "Your haircut is booked for Tue Nov 24 at 3:00 PM."
    model.side_effect = [completion("Your haircut is booked for Wed Nov 25 at 9:00 AM.")]
    assert "booked" not in owner.say("and the other one?")


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("You're all set for Tuesday.", {"booked"}),
        ("Listo, tu cita quedó agendada.", {"booked", "any"}),
        ("I've moved it to 3 PM.", {"moved"}),
        ("Tu cita fue cancelada.", {"cancelled"}),
        ("I haven't booked anything yet.", set()),
        ("Shall I book it?", set()),
        ("No se ha cancelado nada.", set()),
    ],
)
def test_claims_are_read_in_english_and_spanish(text: str, kinds: set[str]) -> None:
    assert llm_guard.claims(text) == kinds


# --- no default day passes for the one asked ------------------------------------------------


def test_times_from_a_search_without_a_day_ask_for_the_day_and_are_not_prepared(
    owner: Caller, model, session_factory
):
    model.side_effect = [
        completion(calls=[("check_availability", {"appointment_type": "haircut", "limit": 3})]),
        completion("I have 9:00 AM, 9:15 AM or 9:30 AM. Which one?"),
    ]
    reply = owner.say("haircut on the thirty-second please")
    assert reply == (
        "I have 9:00 AM, 9:15 AM or 9:30 AM. "
        "Those are the earliest open times; which day would you like?"
    )
    soonest = slot_ids(model)[0]
    # Searching without a day and preparing one of its times in the same turn: refused.
    model.side_effect = [
        completion(calls=[("check_availability", {"appointment_type": "haircut"})]),
        completion(calls=[("book_appointment", {"slot_id": soonest})]),
        completion("Shall I book the first one?"),
    ]
    owner.say("just book the first thing you have")
    assert "without a day" in tool_results(model)[-1]["message"]
    model.side_effect = [completion("OK.")]
    owner.say("yes")
    assert booked(session_factory) == []


def test_a_yes_question_from_the_model_with_nothing_prepared_is_not_asked(
    owner: Caller, model, session_factory
):
    # The model asks for a yes itself (and without the date) instead of preparing it.
    model.side_effect = [
        completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})]),
        completion("3 PM is free. Shall I book it for you?"),
    ]
    reply = owner.say("haircut tomorrow at 3pm?")
    assert reply == "3 PM is free. Which day and time would you like?"
    assert owner.last.meta["guards"] == ["proposal_dropped"]
    model.side_effect = [completion("Anything else?")]
    owner.say("yes")
    assert booked(session_factory) == []


# --- a booking of a type the person holds: instead of it, or in addition? -------------------

CHOICE = (
    "You already have your haircut on Wed Nov 25 at 10:00 AM. Should the haircut on Tue Nov 24 "
    "at 3:00 PM replace it, or be in addition to it? Reply MOVE to move it there, or BOTH to "
    "keep both."
)


def test_a_yes_cannot_book_a_second_one_of_a_kind_and_move_moves_it(
    owner: Caller, model, session_factory, demo: DemoData
):
    hold(session_factory, demo, demo.caller, "haircut", datetime(2026, 11, 25, 10))
    # The model books where the person meant to move their haircut.
    assert prepare_3pm(owner, model) == CHOICE
    model.side_effect = [completion("Great, you're booked!")]
    assert owner.say("yes") == CHOICE  # a yes says neither: asked again, nothing done
    assert booked(session_factory) == [("haircut", datetime(2026, 11, 25, 10), "confirmed")]
    model.side_effect = [completion("Sure.")]
    assert owner.say("move it please") == (
        "Sure. Shall I move your haircut from Wed Nov 25 at 10:00 AM to Tue Nov 24 at 3:00 PM? "
        "Reply YES to confirm."
    )
    model.side_effect = [completion("Anything else?")]
    owner.say("yes")
    assert booked(session_factory) == [("haircut", datetime(2026, 11, 24, 15), "confirmed")]


def test_both_keeps_both_and_asking_for_another_is_a_plain_yes_question(
    owner: Caller, model, session_factory, demo: DemoData
):
    hold(session_factory, demo, demo.caller, "haircut", datetime(2026, 11, 25, 10))
    prepare_3pm(owner, model)
    model.side_effect = [completion("Anything else?")]
    assert owner.say("both").startswith("Booked: your haircut on Tue Nov 24 at 3:00 PM.")
    assert len([b for b in booked(session_factory) if b[2] == "confirmed"]) == 2

    other = Caller(session_factory, demo, demo.caller, external_id="conv-another")
    offer_three(model)
    other.say("another haircut tomorrow afternoon?")
    model.side_effect = [
        completion(calls=[("book_appointment", {"slot_id": slot_id("haircut", TUE_2PM)})]),
        completion("Please confirm."),
    ]
    reply = other.say("I'd like another one at 2pm as well")
    assert reply.endswith("Shall I book a haircut on Tue Nov 24 at 2:00 PM? Reply YES to confirm.")
    assert "in addition to it" in reply


# --- a day the person's words make doubtful is never settled by the model -------------------


@pytest.mark.parametrize(
    ("text", "doubt"),
    [
        ("can I book last monday at 2pm", "past day"),
        ("corte ayer a las 11", "past day"),
        ("haircut on november 31 at 10", "does not exist"),
        ("haircut thursday december 10... no wait, friday december 10 at 10am", "weekday"),
        ("haircut friday december 11 at 10", None),
        ("corte el jueves 10 de diciembre", None),
        ("haircut tomorrow at 3", None),
    ],
)
def test_doubtful_days_are_read_in_code(text: str, doubt: str | None) -> None:
    found = llm_guard.day_doubt(text, datetime(2026, 11, 23).date())
    assert (found is None) if doubt is None else (found is not None and doubt in found)


def test_a_change_on_a_doubtful_day_is_not_prepared(owner: Caller, model, session_factory):
    # The model reads "last tuesday" as the coming one and books it.
    model.side_effect = [
        completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})]),
        completion(calls=[("book_appointment", {"slot_id": HAIRCUT_3PM})]),
        completion("Which day do you mean?"),
    ]
    assert owner.say("haircut last tuesday at 3pm") == "Which day do you mean?"
    assert "past day" in tool_results(model)[-1]["message"]
    model.side_effect = [completion("OK.")]
    owner.say("yes")
    assert booked(session_factory) == []


def test_a_booking_when_the_person_spoke_of_moving_asks_instead_or_in_addition(
    owner: Caller, model, session_factory, demo: DemoData
):
    hold(session_factory, demo, demo.caller, "consultation", datetime(2026, 11, 24, 10))
    wednesday_3pm = slot_id("haircut", "2026-11-25T15:00:00-08:00")
    model.side_effect = [
        completion(
            calls=[("check_availability", {**AFTERNOON, "date": "2026-11-25", "limit": 20})]
        ),
        # The model books where the person asked to move.
        completion(calls=[("book_appointment", {"slot_id": wednesday_3pm})]),
        completion("Please confirm."),
    ]
    reply = owner.say("can you push my appointment to wednesday at 3pm?")
    assert reply.startswith("You already have your consultation on Tue Nov 24 at 10:00 AM.")
    assert "Reply MOVE to move it there, or BOTH to keep both." in reply
    model.side_effect = [completion("Done!")]
    owner.say("yes")
    assert booked(session_factory) == [("consultation", datetime(2026, 11, 24, 10), "confirmed")]


def test_a_booking_on_another_day_than_the_words_name_is_not_prepared(
    owner: Caller, model, session_factory
):
    # The person says Friday; the model books Tuesday's slot it found.
    model.side_effect = [
        completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})]),
        completion(calls=[("book_appointment", {"slot_id": HAIRCUT_3PM})]),
        completion("Which day would you like?"),
    ]
    assert owner.say("haircut on friday at 3pm") == "Which day would you like?"
    assert "another day" in tool_results(model)[-1]["message"]
    model.side_effect = [completion("OK.")]
    owner.say("yes")
    assert booked(session_factory) == []


def test_a_booking_after_a_move_asked_for_in_other_words_asks_instead_or_in_addition(
    owner: Caller, model, session_factory, demo: DemoData
):
    hold(session_factory, demo, demo.caller, "consultation", datetime(2026, 11, 23, 16))
    model.side_effect = [completion("Sure, which day and time?")]
    owner.say("something came up, could we do it another day?")
    # The next message names only a day and time: still the move asked for.
    model.side_effect = [
        completion(calls=[("check_availability", {**AFTERNOON, "limit": 20})]),
        completion(calls=[("book_appointment", {"slot_id": HAIRCUT_3PM})]),
        completion("Please confirm."),
    ]
    reply = owner.say("tuesday at 3pm")
    assert "Reply MOVE to move it there, or BOTH to keep both." in reply
    model.side_effect = [completion("Done!")]
    owner.say("yes")
    assert booked(session_factory) == [("consultation", datetime(2026, 11, 23, 16), "confirmed")]
