"""The SMS webhook's TwiML, written as text, is byte for byte twilio's MessagingResponse
for any reply text: XML specials, quotes, line breaks, non-ASCII letters, emoji, control
characters and lone surrogates (which ElementTree writes as character references)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.twiml.messaging_response import MessagingResponse

from app.webhooks import messaging_twiml, twilio_sms
from tests.webhooks.test_voice_twiml import SPECIALS, TEXT


def package_reply(text: str | None) -> str:
    """How the webhook built its reply with the package."""
    document = MessagingResponse()
    if text:
        document.message(text)
    return str(document)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.none(), st.just(""), TEXT))
def test_reply_is_the_packages(text: str | None) -> None:
    assert messaging_twiml.reply(text) == package_reply(text)


def test_known_texts() -> None:
    for text in (
        None,
        "",
        " ",
        "0",
        SPECIALS,
        "Te envié por SMS un enlace 🙂",
        "lone \ud800 surrogate",
        twilio_sms.APOLOGY,
        twilio_sms.HELP_TEXT,
        twilio_sms.SLOW_DOWN,
    ):
        assert messaging_twiml.reply(text) == package_reply(text), text


def test_an_empty_reply_has_no_message() -> None:
    assert messaging_twiml.reply(None) == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert "<Message>" in messaging_twiml.reply("hi")
