"""The safety invariants of the offline engine, on SMS and on voice: act only on a
confirmed proposal that states the full date and time; never default a day it could not
read; tell the truth about what committed; know the caller's own appointments; handle
two requests in order. Real tools on the real database, clock pinned to Mon 23 Nov 2026
08:00 in Los Angeles (demo hours: weekdays 9-12 and 13-17, Saturday 10-14)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.demo import DemoData
from tests.agent.test_offline import Phone, confirmed, factory, local

__all__ = ["factory"]  # the fixture, shared with test_offline

CHANNELS = ["sms", "voice"]


@pytest.fixture(params=CHANNELS)
def phone(request, session_factory: sessionmaker[Session], demo: DemoData) -> Phone:
    """The demo owner (name known), texting or calling."""
    return Phone(session_factory, demo, demo.caller, channel=request.param)


def book(phone: Phone, text: str) -> None:
    phone.say(text)
    reply = phone.say("yes")
    assert "booked" in reply.lower(), reply


# --- 1. act only on a confirmed proposal stating the full date and time ----------------


def test_proposal_states_full_date_and_time_and_nothing_before_yes(phone: Phone, factory) -> None:
    reply = phone.say("haircut tomorrow @ 1030")
    full = (
        "Tue Nov 24 at 10:30 AM" if phone.channel == "sms" else "10:30 AM on Tuesday, November 24th"
    )
    assert full in reply
    assert confirmed(factory) == []
    phone.say("yes")
    assert confirmed(factory) == [("haircut", local(24, 10, 30))]


# --- 2. nothing silently dropped or replaced ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "haircut mittwoch at 3",
        "haircut on the 35th at 3",
        "haircut on the thirty-fifth at 3",
        "haircut 3 sleeps from now at 3",
    ],
)
def test_unreadable_day_is_asked_about_never_defaulted(phone: Phone, factory, text: str) -> None:
    reply = phone.say(text)
    assert "Which day did you mean?" in reply
    assert "Nov 24" not in reply and "November 24" not in reply  # no tomorrow guessed
    assert phone.say("yes").count("Reply YES") == 0 or "Which day" in phone.last.text
    # The time read is kept: the day alone completes the request.
    reply = phone.say("thursday")
    assert ("Thu Nov 26 at 3:00 PM" in reply) or ("3 PM on Thursday, November 26th" in reply)
    assert confirmed(factory) == []


@pytest.mark.parametrize(
    "text",
    [
        "book a haircut yesterday at 10",
        "haircut last monday at 10",
        "quiero un corte antier a las 10",
    ],
)
def test_past_day_is_refused_as_past(phone: Phone, factory, text: str) -> None:
    reply = phone.say(text)
    assert "has already passed" in reply or "ya pasó" in reply
    assert "Nov 24" not in reply and "November 24" not in reply
    assert confirmed(factory) == []


def test_day_beyond_horizon_is_named_as_such(phone: Phone, factory) -> None:
    reply = phone.say("haircut on march 3rd at 10")
    assert "beyond our booking horizon" in reply and "60 days" in reply
    assert confirmed(factory) == []


def test_weekday_and_day_of_month_must_agree(phone: Phone, factory) -> None:
    reply = phone.say("haircut wednesday the 9th at 10")
    assert "Dec 9" in reply or "December 9th" in reply  # the 9th is a Wednesday
    reply = Phone(phone.factory, phone.demo, phone.caller, phone.channel, "c2").say(
        "haircut wednesday the 10th at 10"
    )
    assert "Which day did you mean?" in reply and "Wednesday the 10th" in reply


# --- 3. replies tell the truth -----------------------------------------------------------


def test_never_mind_after_a_booking_says_it_still_stands(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 3pm")
    reply = phone.say("never mind")
    assert "still booked" in reply and "dropped" not in reply
    assert confirmed(factory) == [("haircut", local(24, 15))]


def test_no_to_a_cancellation_keeps_it_and_says_so(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 3pm")
    phone.say("cancel it")
    reply = phone.say("no")
    assert "nothing cancelled" in reply and "still have" in reply
    assert "day and time" not in reply
    assert confirmed(factory) == [("haircut", local(24, 15))]


def test_a_claim_the_tools_did_not_commit_is_never_sent(
    phone: Phone, factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last safety net: a rule that words "Booked" without booking (a defect
    simulated here) does not reach the person; they are told it did not finish."""
    from app.agent import offline

    def books_nothing(self: offline._Dialogue) -> str:
        return self.t("booked", kind="haircut", a_kind="a haircut", when="Tue Nov 24 at 3:00 PM")

    monkeypatch.setattr(offline._Dialogue, "do_book", books_nothing)
    phone.say("haircut tomorrow at 3pm")
    reply = phone.say("yes")
    assert "booked" not in reply.lower() and "couldn't finish" in reply
    assert confirmed(factory) == []


# --- 4. the caller's own appointments are known ---------------------------------------------


def test_asking_about_own_slot_is_a_list_not_a_conflict(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 3pm")
    fresh = Phone(phone.factory, phone.demo, phone.caller, phone.channel, "c2")
    for text in ("am I still on for tomorrow at 3?", "haircut tomorrow at 3"):
        reply = fresh.say(text)
        lowered = reply.lower()
        assert "you already have" in lowered or "yes, you have" in lowered
        assert "taken" not in reply
    assert len(confirmed(factory)) == 1


@pytest.mark.parametrize(
    "text",
    [
        "what time am I coming in?",
        "did my booking go through?",
        "am I still on?",
        "did the booking work?",
        "which days am I coming in?",
        "what was it I booked with you again?",
    ],
)
def test_list_phrasings(phone: Phone, factory, text: str) -> None:
    book(phone, "haircut tomorrow at 3pm")
    reply = Phone(phone.factory, phone.demo, phone.caller, phone.channel, "c2").say(text)
    assert "haircut" in reply and ("Nov 24" in reply or "November 24th" in reply)
    assert "Reply YES" not in reply and "Shall I" not in reply


def test_second_booking_on_a_held_day_asks_instead_or_in_addition(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 3pm")
    reply = phone.say("can I book a consultation tomorrow at 10?")
    assert "instead of it, or in addition" in reply
    assert len(confirmed(factory)) == 1
    reply = phone.say("in addition")
    assert "10" in reply
    phone.say("yes")
    assert confirmed(factory) == [("consultation", local(24, 10)), ("haircut", local(24, 15))]


def test_earlier_that_day_moves_instead_of_doubling(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 3pm")
    reply = phone.say("could I come in an hour earlier?")
    assert "instead of it, or in addition" in reply
    reply = phone.say("instead")
    assert "Move your haircut" in reply or "move your haircut" in reply
    assert "2:00 PM" in reply or "2 PM" in reply
    phone.say("yes")
    assert confirmed(factory) == [("haircut", local(24, 14))]


# --- 5. several requests in one message ------------------------------------------------------


def test_cancel_and_book_in_one_message_does_both_in_order(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 3pm")
    reply = phone.say("cancel my haircut and book a consultation on wednesday at 10")
    assert "cancel" in reply.lower() and "book a consultation on wednesday" in reply.lower()
    reply = phone.say("yes")
    assert "Cancelled" in reply and "consultation" in reply
    assert "Wed Nov 25 at 10:00 AM" in reply or "10 AM on Wednesday, November 25th" in reply
    phone.say("yes")
    assert confirmed(factory) == [("consultation", local(25, 10))]


def test_cancel_all_and_both(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 3pm")
    book(phone, "consultation thursday at 10")
    reply = Phone(phone.factory, phone.demo, phone.caller, phone.channel, "c2").say(
        "cancel all my appointments"
    )
    assert "all 2" in reply
    # A yes/no question, not a list that ends like "which one?": it asks for the yes.
    assert ("Reply YES" in reply) or reply.rstrip().endswith("Say yes to confirm.")
    assert confirmed(factory) != []
    reply = Phone(phone.factory, phone.demo, phone.caller, phone.channel, "c2").say("yes")
    assert "Cancelled" in reply and "haircut" in reply and "consultation" in reply
    assert confirmed(factory) == []


def test_cancel_both_after_which_one(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 3pm")
    book(phone, "consultation thursday at 10")
    other = Phone(phone.factory, phone.demo, phone.caller, phone.channel, "c2")
    assert "Which one do you mean" in other.say("I need to cancel my appointment")
    assert "all 2" in other.say("both")
    other.say("yes")
    assert confirmed(factory) == []


# --- corrections relative to the last proposal ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "hour", "minute"),
    [("an hour earlier", 14, 0), ("30 minutes later", 15, 30), ("4 not 3", 16, 0)],
)
def test_corrections(phone: Phone, factory, text: str, hour: int, minute: int) -> None:
    phone.say("consultation tomorrow at 3pm")
    phone.say(text)
    phone.say("yes")
    assert confirmed(factory) == [("consultation", local(24, hour, minute))]


def test_after_three_this_week_is_a_range(phone: Phone, factory) -> None:
    reply = phone.say("any consultation after 3 this week?")
    assert "3:00 PM" in reply or "3 PM" in reply
    assert "9:00 AM" not in reply and "9 AM" not in reply


def test_cancel_and_book_instead_keeps_the_kind(phone: Phone, factory) -> None:
    book(phone, "haircut friday at 10")
    phone.say("cancel friday and book wednesday at 11 instead")
    reply = phone.say("yes")
    assert "Cancelled" in reply and "haircut" in reply.split("Cancelled", 1)[1]
    assert "Wed Nov 25 at 11:00 AM" in reply or "11 AM on Wednesday, November 25th" in reply
    phone.say("yes")
    assert confirmed(factory) == [("haircut", local(25, 11))]


# --- the business's own answers -------------------------------------------------------------


@pytest.fixture
def profile(factory, demo: DemoData) -> None:
    from sqlalchemy import update

    from app.models import Agent

    with factory() as session:
        session.execute(
            update(Agent).values(
                address="12 Main St, Springfield",
                services_description="Cuts and consultations for all hair types.",
                faq=[
                    {"question": "How much is a haircut?", "answer": "A haircut is $40."},
                    {"question": "Do you take walk-ins?", "answer": "Appointments only."},
                ],
            )
        )
        session.commit()


@pytest.mark.usefixtures("profile")
@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("what are your hours?", "Mon-Fri 9 AM-12 PM, 1 PM-5 PM; Sat 10 AM-2 PM"),
        ("where are you located?", "12 Main St, Springfield"),
        ("how much for a haircut?", "A haircut is $40."),
        ("do you take walk ins", "Appointments only."),
        ("what services do you offer", "Cuts and consultations"),
    ],
)
def test_profile_questions_are_answered_from_the_profile(
    phone: Phone, factory, text: str, answer: str
) -> None:
    assert answer in phone.say(text)
    assert confirmed(factory) == []


@pytest.mark.usefixtures("profile")
def test_a_question_mid_booking_keeps_the_proposal(phone: Phone, factory) -> None:
    phone.say("haircut tomorrow at 3pm")
    reply = phone.say("what's your address?")
    assert "12 Main St" in reply and ("Reply YES" in reply or "Shall I go ahead" in reply)
    phone.say("yes")
    assert confirmed(factory) == [("haircut", local(24, 15))]


def test_unknown_question_is_not_answered_by_a_guess(phone: Phone, factory) -> None:
    reply = phone.say("what are your prices?")
    assert "don't have prices" in reply and "$" not in reply


# --- unknown day words, in any language, and several people at once --------------------


@pytest.mark.parametrize(
    "text", ["corte el juernes a las 11", "haircut on mundy at 11", "corte el miernes a las 10"]
)
def test_unknown_day_word_in_a_day_slot_is_asked_about(phone: Phone, factory, text: str) -> None:
    reply = phone.say(text)
    assert "Which day did you mean?" in reply or "¿Qué día quería decir?" in reply, reply
    assert "Nov 23" not in reply and "November 23" not in reply  # no day defaulted
    assert "Reply YES" not in reply and "SÍ para confirmar" not in reply
    assert confirmed(factory) == []


def test_two_people_two_times_one_day_each_confirmed_on_that_day(phone: Phone, factory) -> None:
    reply = phone.say("I need haircuts for me and my son, saturday 10 and 11")
    assert ("Sat Nov 28 at 10:00 AM" in reply) or ("10 AM on Saturday, November 28th" in reply)
    assert "11" in reply  # the second time is acknowledged, not dropped
    assert confirmed(factory) == []
    reply = phone.say("yes")
    assert confirmed(factory) == [("haircut", local(28, 10))]
    # The rest keeps the day said first and is a second booking, confirmed on its own.
    assert ("Sat Nov 28 at 11:00 AM" in reply) or ("11 AM on Saturday, November 28th" in reply)
    assert "instead" not in reply.lower()
    phone.say("yes")
    assert sorted(confirmed(factory)) == [("haircut", local(28, 10)), ("haircut", local(28, 11))]


def test_two_bookings_in_one_breath_acknowledge_the_second_then_book_it(
    phone: Phone, factory
) -> None:
    reply = phone.say("book me tuesday at 2 and thursday at 3")
    # The second is named before the question about the first, so neither is dropped
    # and the reply still ends asking something.
    assert '"thursday at 3" comes next' in reply, reply
    assert reply.rstrip().endswith("?"), reply
    reply = phone.say("haircut")
    assert ("Tue Nov 24 at 2:00 PM" in reply) or ("2 PM on Tuesday, November 24th" in reply)
    reply = phone.say("yes")
    assert confirmed(factory) == [("haircut", local(24, 14))]
    assert ("Thu Nov 26 at 3:00 PM" in reply) or ("3 PM on Thursday, November 26th" in reply)
    phone.say("yes")
    assert sorted(confirmed(factory)) == [("haircut", local(24, 14)), ("haircut", local(26, 15))]


@pytest.mark.parametrize("text", ["hi", "hello?", "hmm", "asdfgh"])
def test_a_greeting_or_an_unclear_message_is_answered_with_a_question(
    phone: Phone, text: str
) -> None:
    reply = phone.say(text)
    assert reply.rstrip().endswith("?"), reply


def test_which_one_lists_the_appointments_and_ends_with_the_question(phone: Phone) -> None:
    book(phone, "haircut tomorrow at 3pm")
    book(phone, "consultation thursday at 10")
    other = Phone(phone.factory, phone.demo, phone.caller, phone.channel, "c3")
    reply = other.say("I need to move one of my appointments")
    assert "haircut" in reply and "consultation" in reply
    assert reply.rstrip().endswith("?"), reply


def test_never_mind_while_choosing_what_to_cancel_says_nothing_changed(phone: Phone) -> None:
    book(phone, "haircut tomorrow at 3pm")
    book(phone, "consultation thursday at 10")
    other = Phone(phone.factory, phone.demo, phone.caller, phone.channel, "c4")
    other.say("cancel one of my appointments")
    reply = other.say("never mind")
    assert "Nothing was changed" in reply and "booked" not in reply.lower(), reply


def test_a_name_alone_is_thanked_with_a_question(phone: Phone) -> None:
    reply = phone.say("my name is Dana Reyes")
    assert reply.rstrip().endswith("?"), reply
