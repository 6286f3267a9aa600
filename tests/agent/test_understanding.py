"""What one message asks for, read without state: intents by the structure of the
sentence rather than a list of whole phrases; texting shorthand; FAQ entries by topic."""

from __future__ import annotations

from datetime import date, time

import pytest

from app.agent.profile import faq_answer, field_asked
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


@pytest.mark.parametrize(
    "text",
    [
        "can you remind me what time my haircut is",
        "what day was my consultation again",
        "did I book something for monday?",
        "i forgot when i booked for, can u check",
        "just checking I'm confirmed for tomorrow morning",
    ],
)
def test_own_booking_questions_by_type_name_or_past_tense_are_lists(text: str) -> None:
    assert intent(text) == "list"


@pytest.mark.parametrize(
    "text",
    [
        "can I get a haircut on friday?",
        "do you have a haircut free on friday for me?",
        "I'd like to book a consultation",
    ],
)
def test_requests_naming_a_type_stay_bookings(text: str) -> None:
    assert intent(text) == "book"


@pytest.mark.parametrize(
    "text",
    [
        "we'll have to skip thursday's lesson",
        "I don't need the consultation after all",
        "can i cancle my apointment",
    ],
)
def test_more_cancel_phrasings(text: str) -> None:
    assert intent(text) == "cancel"


def test_a_misspelt_request_word_two_edits_away_is_corrected() -> None:
    assert intent("can i resceduel to thursday at 2") == "move"


def test_fillers_and_stutters_do_not_hide_the_time() -> None:
    message = read("a haircut on on tuesday at um eleven uh", NOW, HOURS, TYPES)
    assert (message.when.day, message.when.at) == (date(2026, 11, 24), time(11))


@pytest.mark.parametrize(
    ("text", "day", "at"),
    [
        ("haircut on wednesday at 4, no sorry, 3", date(2026, 11, 25), time(15)),
        ("haircut friday at 10, I mean saturday", date(2026, 11, 28), time(10)),
        ("haircut tuesday I mean wednesday at 11", date(2026, 11, 25), time(11)),
    ],
)
def test_a_self_correction_replaces_only_what_it_restates(text: str, day: date, at: time) -> None:
    when = read(text, NOW, HOURS, TYPES).when
    assert (when.day, when.at) == (day, at)


def test_a_kept_appointment_is_no_request_of_its_own() -> None:
    message = read("drop the wednesday haircut but keep my consultation", NOW, HOURS, TYPES)
    assert (message.intent, message.type_key, message.rest) == ("cancel", "haircut", None)


def test_a_bare_modal_before_also_is_not_a_request_of_its_own() -> None:
    text = "can I also get a consultation on thursday at 2, on top of my haircut"
    message = read(text, NOW, HOURS, TYPES)
    # One request, for the type asked for rather than the one already held.
    assert (message.rest, message.type_key) == (None, "consultation")


def test_a_question_then_a_request_is_two_requests() -> None:
    message = read(
        "what time do you open saturday? I'd like a haircut first thing", NOW, HOURS, TYPES
    )
    assert (message.intent, message.rest) == ("info", "I'd like a haircut first thing")


def test_spanish_texting_shorthand() -> None:
    message = read("un corte el jueves a las 11 d la mañana", NOW, HOURS, TYPES)
    assert (message.when.day, message.when.at) == (date(2026, 11, 26), time(11))


FAQ_WITH_ANSWERS = [
    {"question": "Do you take cards?", "answer": "We take all major cards and cash."},
    {"question": "Do you take insurance?", "answer": "We accept Delta Dental and Cigna."},
]


def test_faq_entries_match_by_their_answers_too() -> None:
    assert faq_answer("do you accept cash", FAQ_WITH_ANSWERS) == "We take all major cards and cash."
    assert faq_answer("is cigna accepted", FAQ_WITH_ANSWERS) == "We accept Delta Dental and Cigna."
    assert faq_answer("do you do tattoos", FAQ_WITH_ANSWERS) is None


def test_a_word_in_one_question_wins_over_the_same_word_in_another_answer() -> None:
    faq = [
        *FAQ_WITH_ANSWERS,
        {"question": "How much is a cleaning?", "answer": "A cleaning is $120 without insurance."},
    ]
    assert faq_answer("do you accept cigna insurance", faq) == "We accept Delta Dental and Cigna."


def test_a_yes_no_question_about_one_profile_field() -> None:
    fields = {"address": "Online, or 12 Elm Court, Austin", "services": "Math tutoring."}
    asked = "are lessons online or in person"
    assert field_asked(asked, asked + "?", fields, {"lesson"}) == "address"
    emergencies = "do you handle emergencies"
    described = {"address": "77 Harbor Road", "services": "Cleanings and emergency care."}
    assert field_asked(emergencies, emergencies, described, set()) == "services"
    # Booking words and type names are no evidence: "is a lesson free" is no field question.
    assert field_asked("is a lesson free", "is a lesson free?", fields, {"lesson", "free"}) is None
    # A statement is no question.
    assert field_asked("lessons online", "lessons online", fields, {"lesson"}) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("are you guys open tomorrow", "info"),
        ("any chance you're open on sunday", "info"),
        ("where do I park", "info"),
        ("when do I come in", "list"),
        ("when can I come in", "book"),
        ("take my name off friday", "cancel"),
        ("could we do it another day", "move"),
    ],
)
def test_second_round_phrasings(text: str, expected: str) -> None:
    assert intent(text) == expected


def test_two_types_in_one_breath_are_two_bookings() -> None:
    message = read("I need a haircut friday at 10 and a consultation at 1", NOW, HOURS, TYPES)
    assert (message.type_key, message.rest) == ("haircut", "a consultation at 1")


SPANISH_TYPES = [
    AppointmentType(key="corte", name="corte", duration_minutes=30),
    AppointmentType(key="barba", name="barba", duration_minutes=20),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("¿cuándo me toca?", "list"),
        ("¿a qué hora es mi corte?", "list"),
        ("¿abren los domingos?", "info"),
        ("¿dónde los encuentro?", "info"),
        ("se me complicó el martes, ¿la podemos pasar al jueves?", "move"),
        ("¿me agendas un corte el viernes a las 5 de la tarde?", "book"),
    ],
)
def test_spanish_phrasings(text: str, expected: str) -> None:
    assert read(text, NOW, HOURS, SPANISH_TYPES).intent == expected


def test_a_cancel_verb_holds_for_a_second_day_named() -> None:
    message = read("cancel the one on thursday and the one on tuesday", NOW, HOURS, TYPES)
    assert (message.intent, message.rest) == ("cancel", "cancel the one on tuesday")


def test_running_late_is_a_move() -> None:
    assert intent("I'm running late for my appointment") == "move"


def test_a_tail_referring_back_is_the_same_request() -> None:
    message = read("forget my appointment on thursday, cancel it", NOW, HOURS, TYPES)
    assert (message.intent, message.rest) == ("cancel", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("need to bail on tmrw", "cancel"),
        ("count me out for friday", "cancel"),
        ("do I still have the 10am?", "list"),
        ("can you check if im booked", "list"),
        ("can you check if you have anything friday", "book"),
        ("do you open early on saturday", "info"),
    ],
)
def test_third_round_phrasings(text: str, expected: str) -> None:
    assert intent(text) == expected
