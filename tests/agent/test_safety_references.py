"""Safety when a message refers to something instead of naming it, on SMS and on voice:
"same time on another day" moves the appointment held (never a second one); a day told by
an event we cannot know is asked about (never today); "that afternoon" is the day of the
appointment kept in the same message; a list that needs an answer ends with a question.
Clock pinned to Mon 23 Nov 2026 08:00 in Los Angeles (demo hours: weekdays 9-12 and
13-17, Saturday 10-14)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from app.agent.dates import parse_when
from tests.agent.test_offline import Phone, confirmed, factory, local
from tests.agent.test_safety import book, phone

__all__ = ["factory", "phone"]  # the fixtures, shared with test_offline and test_safety


def other_conversation(phone: Phone) -> Phone:
    """The same caller days later: nothing from the booking conversation in context."""
    return Phone(phone.factory, phone.demo, phone.caller, phone.channel, "c2")


# --- U1. the same time on another day is a move -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("same time but thursday please", 26),
        ("could we do it at the same time on friday instead?", 27),
        ("same hour on wednesday would suit me better", 25),
        ("mejor a la misma hora pero el jueves", 26),
    ],
)
def test_same_time_on_another_day_moves_the_held_one(
    phone: Phone, factory, text: str, day: int
) -> None:
    book(phone, "haircut tomorrow at 3pm")
    later = other_conversation(phone)
    reply = later.say(text)
    assert "move" in reply.lower() or "cambi" in reply.lower(), reply
    later.say("yes")
    assert confirmed(factory) == [("haircut", local(day, 15))]


def test_same_time_next_week_is_a_week_after_the_appointment(phone: Phone, factory) -> None:
    book(phone, "haircut wednesday at 2pm")
    later = other_conversation(phone)
    later.say("can I do the same time next week instead?")
    later.say("yes")
    assert confirmed(factory) == [("haircut", local(2, 14, month=12))]


def test_same_time_too_is_a_second_booking_not_a_move(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 3pm")
    reply = phone.say("and another one the same time on thursday too")
    assert "Move your" not in reply and "move your" not in reply


# --- U2. a day told by an event is asked about ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "haircut the day after the holiday at 3",
        "can I come in for a haircut the day after my birthday around 3",
        "book me a haircut after the long weekend at 3pm",
        "haircut on payday at 3",
        "quiero una cita de haircut el día después del puente a las 3",
        "any haircut openings the day after I get back from vacation at 3?",
    ],
)
def test_a_day_told_by_an_event_is_asked_about_never_today(
    phone: Phone, factory, text: str
) -> None:
    reply = phone.say(text)
    assert "Which day did you mean?" in reply or "¿Qué día quería decir?" in reply, reply
    assert "Nov 23" not in reply and "November 23" not in reply and "23 nov" not in reply
    # The time read is kept: the day alone completes the request.
    reply = phone.say("thursday")
    assert any(t in reply for t in ("3:00 PM", "3 PM", "15:00", "3 de la tarde")), reply
    assert confirmed(factory) == []


NOW = datetime(2026, 11, 23, 8, 0, tzinfo=ZoneInfo("America/Los_Angeles"))


@pytest.mark.parametrize(
    "text",
    [
        "the week after my trip, 2pm",
        "haircut on thanksgiving weekend at 11",
        "once school is out at 3pm",
        "right after exams at 2pm",
        "un corte saliendo del puente, a las 11",
        "en mi cumpleaños a las 12",
    ],
)
def test_event_days_are_unreadable_and_never_a_date(text: str) -> None:
    when = parse_when(text, NOW)
    assert when.day is None and when.unreadable, when


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("after my class tomorrow at 5", date(2026, 11, 24)),
        ("friday after the lunch rush", date(2026, 11, 27)),
        ("the day after tomorrow at 3", date(2026, 11, 25)),
    ],
)
def test_an_event_beside_a_named_day_keeps_that_day(text: str, day: date) -> None:
    when = parse_when(text, NOW)
    assert when.day == day and when.unreadable is None


def test_a_day_told_by_an_event_in_a_move_is_asked_about(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 3pm")
    reply = other_conversation(phone).say("move my haircut to the day after the party at 11")
    assert "Which day did you mean?" in reply
    assert "Reply YES" not in reply and "Shall I" not in reply


def test_an_event_beside_a_day_keeps_the_day(phone: Phone, factory) -> None:
    reply = phone.say("haircut after my class tomorrow at 3")
    assert "Tue Nov 24 at 3:00 PM" in reply or "3 PM on Tuesday, November 24th" in reply


# --- U3. "that afternoon" is the day of the appointment kept -----------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "keep my haircut friday morning but also book a consultation that afternoon at 2",
        "leave my friday haircut as it is, and add a consultation the same day at 2pm",
        "don't touch my friday haircut; I'd like a consultation that afternoon too, 2 o'clock",
    ],
)
def test_that_afternoon_is_the_kept_appointments_day(phone: Phone, factory, text: str) -> None:
    book(phone, "haircut friday at 10am")
    reply = other_conversation(phone).say(text)
    assert "Fri Nov 27 at 2:00 PM" in reply or "2 PM on Friday, November 27th" in reply, reply
    assert "10:00 AM" in reply or "10 AM" in reply  # the one kept is named as staying
    assert "Move your" not in reply and "move your" not in reply


def test_that_afternoon_with_no_day_said_is_asked_about(phone: Phone, factory) -> None:
    reply = phone.say("can I book a consultation that afternoon at 2")
    assert "Which day did you mean?" in reply
    assert "Nov 23" not in reply and "November 23" not in reply


# --- F1. a list that needs an answer ends with a question --------------------------------------


@pytest.mark.parametrize(
    "text", ["I need to cancel my appointment", "i need to move my appointment"]
)
def test_which_one_lists_then_asks(phone: Phone, factory, text: str) -> None:
    book(phone, "haircut tomorrow at 3pm")
    book(phone, "consultation thursday at 10")
    reply = other_conversation(phone).say(text)
    assert reply.rstrip().endswith("?"), reply
    assert "haircut" in reply and "consultation" in reply


# --- F2-F5. time-only moves, shared times, all-except, a weekday among one's own --------------


def test_a_time_only_change_moves_the_one_held(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 9am")
    later = other_conversation(phone)
    later.say("can we make it ten instead")
    later.say("yes")
    assert confirmed(factory) == [("haircut", local(24, 10))]


def test_two_days_one_time_books_both_at_that_time(phone: Phone, factory) -> None:
    reply = phone.say("haircuts on tuesday the 24th and thursday the 26th, both at 10")
    assert "10:00 AM" in reply or "10 AM" in reply
    phone.say("yes")
    phone.say("yes")
    assert confirmed(factory) == [("haircut", local(24, 10)), ("haircut", local(26, 10))]


def test_cancel_all_except_one_spares_that_one(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 10am")
    book(phone, "haircut thursday at 10am")
    book(phone, "consultation monday the 30th at 1pm")
    later = other_conversation(phone)
    later.say("cancel all my appointments except the one on the 26th")
    later.say("yes")
    assert confirmed(factory) == [("haircut", local(26, 10))]


def test_if_its_wednesday_means_the_wednesday_just_listed(phone: Phone, factory) -> None:
    book(phone, "haircut wednesday december 2 at 10am")
    later = other_conversation(phone)
    reply = later.say("when am I booked? if it's wednesday please cancel it")
    assert "Dec 2" in reply or "December 2nd" in reply
    later.say("yes")
    assert confirmed(factory) == []


def test_changing_a_new_booking_to_a_held_day_asks_instead_or_in_addition(
    phone: Phone, factory
) -> None:
    book(phone, "haircut tomorrow at 3pm")
    later = other_conversation(phone)
    later.say("haircut wednesday at 10")
    reply = later.say("no, tuesday at 11 instead of 3")
    assert "Book a" not in reply and "book a" not in reply, reply
    later.say("yes")
    assert len(confirmed(factory)) == 1  # moved or asked, never a second one that day


def test_a_time_alone_from_someone_holding_one_is_a_move(phone: Phone, factory) -> None:
    book(phone, "haircut tomorrow at 9am")
    later = other_conversation(phone)
    reply = later.say("9 is too early for me, can it be 11?")
    assert "Move your haircut" in reply or "move your haircut" in reply, reply
    later.say("yes")
    assert confirmed(factory) == [("haircut", local(24, 11))]
