"""What one message asks for, read without state: intents by the structure of the
sentence rather than a list of whole phrases; texting shorthand; FAQ entries by topic."""

from __future__ import annotations

import pytest

from app.agent.profile import faq_answer
from app.agent.understanding import read
from app.calendar.availability import AppointmentType, Schedule
from app.demo import DEMO_HOURS
from tests.agent.test_dates import NOW

HOURS = Schedule.from_settings(timezone="America/Los_Angeles", weekly_hours=DEMO_HOURS).hours
TYPES = [
    AppointmentType(key="haircut", name="haircut", duration_minutes=45),
    AppointmentType(key="consultation", name="consultation", duration_minutes=30),
]


def intent(text: str) -> str | None:
    return read(text, NOW, HOURS, TYPES).intent


@pytest.mark.parametrize(
    "text",
    [
        "did the booking work?",
        "which days am I coming in?",
        "is my thing on friday still happening?",
        "sorry I forgot what time my appointment was, can you tell me",
        "¿para cuándo quedó mi cita?",
        "¿mi cita del jueves sigue en pie?",
    ],
)
def test_questions_about_own_bookings_are_lists(text: str) -> None:
    assert intent(text) == "list"


@pytest.mark.parametrize(
    "text", ["do I need an appointment?", "when can I come in?", "can I book my appointment?"]
)
def test_requests_worded_as_questions_are_not_lists(text: str) -> None:
    assert intent(text) != "list"


@pytest.mark.parametrize(
    "text",
    [
        "I won't be able to come on friday",
        "scratch my thursday appointment",
        "ditch my wednesday one",
        "no voy a poder ir el martes",
        "cancel my appt pls",
    ],
)
def test_cancel_phrasings(text: str) -> None:
    assert intent(text) == "cancel"


@pytest.mark.parametrize(
    "text",
    [
        "can't make it friday, can I do monday at 10 instead?",
        "I can't make it tuesday, could it be thursday at 2?",
        "no puedo ir el martes, ¿puede ser el jueves?",
    ],
)
def test_a_cancel_asking_for_another_time_is_a_move(text: str) -> None:
    assert intent(text) == "move"


def test_texting_shorthand_and_abbreviations() -> None:
    message = read("quick q - what time do u close today", NOW, HOURS, TYPES)
    assert (message.intent, message.topic) == ("info", "hours")
    message = read("book me for sat. 10:30am", NOW, HOURS, TYPES)
    assert message.rest is None and message.when.at is not None


def test_instead_of_is_flagged_for_the_flow_to_decide() -> None:
    message = read("can we do thursday instead of friday", NOW, HOURS, TYPES)
    assert message.instead_of and message.intent is None


FAQ = [
    {"question": "How much is a haircut?", "answer": "A haircut is $45."},
    {"question": "Is there parking?", "answer": "Free parking behind the building."},
]


def test_faq_by_topic_and_word_stems() -> None:
    assert faq_answer("what does a cut cost", FAQ, "prices") == "A haircut is $45."
    assert faq_answer("can i park there", FAQ) == "Free parking behind the building."
    # An entry on another topic does not answer ("hours" is not a price).
    assert faq_answer("what are your hours for a haircut", FAQ, "hours") is None
