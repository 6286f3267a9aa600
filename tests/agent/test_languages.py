"""Spanish end to end (understanding and replies, SMS and voice), the agent's profile
language as the default, and a short line in a language we recognise but do not speak."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.agent.catalog import EN, ES, detect_language
from app.agent.dates import fold
from app.demo import DemoData
from app.models import Agent
from tests.agent.test_offline import Phone, confirmed, factory, local

__all__ = ["factory"]


@pytest.fixture(params=["sms", "voice"])
def phone(request, session_factory: sessionmaker[Session], demo: DemoData) -> Phone:
    return Phone(session_factory, demo, demo.caller, channel=request.param)


def spanish_profile(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        session.execute(update(Agent).values(language="es-MX"))
        session.commit()


def test_spanish_book_list_move_cancel(phone: Phone, factory) -> None:
    reply = phone.say("hola, quiero una cita de haircut mañana a las 3")
    assert "24" in reply and "nov" in reply and ("15:00" in reply or "3 de la tarde" in reply)
    assert confirmed(factory) == []
    assert "reservada" in phone.say("sí")
    assert confirmed(factory) == [("haircut", local(24, 15))]
    assert "Tiene una cita de haircut" in phone.say("¿qué citas tengo?")
    reply = phone.say("cambiar mi cita al jueves a las 10")
    assert "jue" in reply and ("10:00" in reply or "10 de la mañana" in reply)
    phone.say("si")
    assert confirmed(factory) == [("haircut", local(26, 10))]
    reply = phone.say("cancelar mi cita")
    assert "Cancelo" in reply or "cancele" in reply
    assert confirmed(factory) == [("haircut", local(26, 10))]  # not before the yes
    assert phone.say("sí").startswith("He cancelado")
    assert confirmed(factory) == []


def test_spanish_unreadable_day_is_asked_in_spanish(phone: Phone, factory) -> None:
    reply = phone.say("quiero una cita de haircut el 35 de diciembre")
    assert "¿Qué día quería decir?" in reply
    assert confirmed(factory) == []


def test_profile_language_is_the_default(phone: Phone, factory) -> None:
    spanish_profile(factory)
    reply = phone.say("hmm")
    assert "Puedo reservar" in reply


def test_english_message_to_a_spanish_agent_is_answered_in_english(phone: Phone, factory) -> None:
    spanish_profile(factory)
    reply = phone.say("can I book a haircut tomorrow at 3?")
    assert "haircut" in reply and ("Tue Nov 24" in reply or "Tuesday, November 24th" in reply)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("bonjour, je voudrais un rendez-vous demain", "Désolé"),
        ("hallo, ich möchte einen Termin morgen", "Entschuldigung"),
    ],
)
def test_other_languages_get_one_line_in_their_language(
    phone: Phone, factory, text: str, words: str
) -> None:
    reply = phone.say(text)
    assert reply.startswith(words)
    assert confirmed(factory) == []


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    assert set(EN) == set(ES)
    for key, entry in EN.items():
        other = ES[key]
        assert type(entry) is type(other), key
        for channel in ("sms", "voice"):
            en = entry if isinstance(entry, str) else entry[channel]
            es = other if isinstance(other, str) else other[channel]
            placeholders = {p for p in en.split("{")[1:]}
            assert {p.split("}")[0] for p in placeholders} == {
                p.split("}")[0] for p in es.split("{")[1:]
            }, key


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("hola quiero una cita para mañana", "es"),
        ("can I get a haircut tomorrow", None),
        ("ok", None),
        ("bonjour je voudrais un rendez-vous", "fr"),
    ],
)
def test_language_detection(text: str, language: str | None) -> None:
    assert detect_language(fold(text)) == language


def test_spanish_any_appointment_question_is_a_list(phone: Phone, factory) -> None:
    reply = phone.say("¿tengo alguna cita?")
    assert "No tiene citas" in reply, reply
    assert confirmed(factory) == []


def test_spanish_reagendar_moves_from_the_day_named_to_the_day_after_para(
    phone: Phone, factory
) -> None:
    phone.say("quiero una cita de haircut el viernes a las 4 de la tarde")
    phone.say("sí")
    assert confirmed(factory) == [("haircut", local(27, 16))]
    reply = phone.say("quiero reagendar lo del viernes para el sábado a las 10")
    assert "sáb" in reply and ("10:00" in reply or "10 de la mañana" in reply), reply
    assert confirmed(factory) == [("haircut", local(27, 16))]  # nothing before the yes
    phone.say("sí")
    assert confirmed(factory) == [("haircut", local(28, 10))]


def test_spanish_cancel_and_book_are_two_requests_in_order(phone: Phone, factory) -> None:
    phone.say("quiero una cita de haircut mañana a las 11")
    phone.say("sí")
    reply = phone.say("cancela lo de mañana y agéndame el viernes a las 11")
    assert "viernes a las 11" in reply  # the second request is acknowledged, not dropped
    reply = phone.say("sí")
    assert confirmed(factory) == []
    assert "vie" in reply and ("11:00" in reply or "11 de la mañana" in reply), reply
    phone.say("sí")
    assert confirmed(factory) == [("haircut", local(27, 11))]
