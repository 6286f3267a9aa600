"""The voice webhooks' TwiML, written as text, is byte for byte twilio's VoiceResponse.

Each reference below is how the webhook built its TwiML with the package; the webhook's
own functions must render exactly the same bytes for any text, agent and settings:
XML specials, quotes, line breaks and tabs, SSML-looking text, non-ASCII letters, emoji,
control characters and lone surrogates (which ElementTree writes as character
references).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.twiml import GenericNode
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from app.config import Settings
from app.webhooks import twilio_sms as sms
from app.webhooks import twilio_voice as voice
from app.webhooks import voice_twiml

SPECIALS = '&<>"\'\r\n\t\x00\x0b\x1f\x7f]]><!-- <speak><break time="1s"/></speak> &amp; &#10;'
NON_ASCII = ["é", "ß", "中", "🙂", "\ud800", "\udfff", "\ud83d", "\ude00", "\u2028", "\ufeff"]
# Any code point, lone surrogates included, and the specials above often.
# (Lists joined, not st.text: its alphabet all but leaves out lone surrogates.)
TEXT = st.lists(
    st.one_of(
        st.sampled_from(SPECIALS), st.characters(exclude_categories=()), st.sampled_from(NON_ASCII)
    ),
    max_size=40,
).map("".join)
OPTIONAL_TEXT = st.one_of(st.none(), st.just(""), TEXT)
VALUE = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.floats(0, 30), TEXT)


@dataclass
class StandInAgent:
    """The attributes of an agent that the TwiML reads."""

    language: str | None
    voice: str | None
    appointment_types: list[dict[str, Any]] | None


APPOINTMENT_TYPE = st.fixed_dictionaries(
    {"key": OPTIONAL_TEXT}, optional={"name": OPTIONAL_TEXT, "minutes": st.integers(5, 90)}
)
AGENTS = st.builds(
    StandInAgent,
    language=st.one_of(st.none(), st.sampled_from(["en-US", "es-MX", "fr-CA"]), TEXT),
    voice=st.one_of(st.none(), st.just(""), st.sampled_from(["Polly.Joanna-Neural"]), TEXT),
    appointment_types=st.one_of(st.none(), st.lists(APPOINTMENT_TYPE, max_size=4)),
)
BASE_URLS = st.sampled_from(
    ["https://voice.example.com", "http://127.0.0.1:8000", 'https://x.test/a?b=1&c="d"']
)
SETTINGS = st.builds(
    lambda base, model, speech_timeout, timeout: Settings(
        _env_file=None,
        public_base_url=base,
        twilio_speech_model=model,
        twilio_speech_timeout_seconds=speech_timeout,
        twilio_gather_timeout_seconds=timeout,
    ),
    BASE_URLS,
    st.sampled_from(["", "phone_call", "experimental_conversations"]),
    st.integers(1, 9),
    st.integers(1, 30),
)
TURNS = st.integers(1, 10_000)
EXAMPLES = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])


# --- how the package rendered them --------------------------------------------------------


def package_voice_of(agent: StandInAgent | None) -> dict[str, Any]:
    if agent is None:
        return {}
    return {"language": agent.language, **({"voice": agent.voice} if agent.voice else {})}


def package_say_and_hang_up(text: str, agent: StandInAgent | None) -> str:
    document = VoiceResponse()
    document.say(text, **package_voice_of(agent))
    document.hangup()
    return str(document)


def package_prompt(
    settings: Settings, agent: StandInAgent, text: str, turn: int, *, pin: bool
) -> str:
    document = VoiceResponse()
    speech: dict[str, Any] = {"speech_timeout": "auto"}
    if settings.twilio_speech_model:
        speech = {
            "speech_model": settings.twilio_speech_model,
            "speech_timeout": settings.twilio_speech_timeout_seconds,
        }
    names = [str(t.get("name") or t.get("key")) for t in agent.appointment_types or []]
    gather = document.gather(
        input="dtmf speech" if pin else "speech",
        action=f"{settings.public_base_url}{voice.GATHER_PATH}?turn={turn}",
        method="POST",
        action_on_empty_result=True,
        timeout=settings.twilio_gather_timeout_seconds,
        language=agent.language,
        hints=None if pin else ", ".join([*names, voice.GENERIC_HINTS]),
        finish_on_key="#" if pin else None,
        **speech,
    )
    gather.say(text, **package_voice_of(agent))
    return str(document)


def package_retry_prompt(settings: Settings, turn: int) -> str:
    document = VoiceResponse()
    gather = document.gather(
        input="speech",
        action=f"{settings.public_base_url}{voice.GATHER_PATH}?turn={turn + 1}",
        method="POST",
        action_on_empty_result=True,
        timeout=settings.twilio_gather_timeout_seconds,
    )
    gather.say(voice.APOLOGY_RETRY)
    return str(document)


def package_hold(settings: Settings, turn: int) -> str:
    document = VoiceResponse()
    document.pause(length=1)
    document.redirect(f"{settings.public_base_url}{voice.GATHER_PATH}?turn={turn}", method="POST")
    return str(document)


# --- the same bytes ------------------------------------------------------------------------


@EXAMPLES
@given(text=TEXT, agent=st.one_of(st.none(), AGENTS))
def test_say_and_hang_up_is_the_packages(text: str, agent: StandInAgent | None) -> None:
    assert voice.say_and_hang_up(text, agent) == package_say_and_hang_up(text, agent)  # type: ignore[arg-type]


@EXAMPLES
@given(settings=SETTINGS, agent=AGENTS, text=TEXT, turn=TURNS, pin=st.booleans())
def test_prompt_is_the_packages(
    settings: Settings, agent: StandInAgent, text: str, turn: int, pin: bool
) -> None:
    ours = voice.prompt(settings, agent, text, turn, pin=pin)  # type: ignore[arg-type]
    assert ours == package_prompt(settings, agent, text, turn, pin=pin)


@EXAMPLES
@given(settings=SETTINGS, turn=TURNS)
def test_retry_prompt_and_hold_are_the_packages(settings: Settings, turn: int) -> None:
    assert voice.retry_prompt(settings, turn) == package_retry_prompt(settings, turn)
    assert voice._hold(settings, turn) == package_hold(settings, turn)


def test_the_empty_answer_is_the_packages() -> None:
    assert str(VoiceResponse()) == voice.EMPTY


@EXAMPLES
@given(
    tag=st.sampled_from(["Say", "Gather", "Redirect", "Pause", "Hangup"]),
    attributes=st.dictionaries(
        st.sampled_from(["action", "finishOnKey", "hints", "input", "language", "voice", "loop"]),
        VALUE,
        max_size=7,
    ),
    text=OPTIONAL_TEXT,
    children=st.lists(st.tuples(st.sampled_from(["Say", "Pause"]), OPTIONAL_TEXT), max_size=3),
)
def test_any_element_is_the_packages(
    tag: str,
    attributes: dict[str, object],
    text: str | None,
    children: list[tuple[str, str | None]],
) -> None:
    node = GenericNode(tag, text, **attributes)
    for child_tag, child_text in children:
        node.nest(GenericNode(child_tag, child_text))
    document = VoiceResponse()
    document.nest(node)
    inner = "".join(voice_twiml.element(name, text=value or "") for name, value in children)
    ours = voice_twiml.response(voice_twiml.element(tag, attributes, text or "", inner))
    assert ours == str(document)


def test_what_the_escaping_looks_like() -> None:
    """One example spelled out, so a reader sees the rules without the package."""
    say = voice_twiml.element("Say", {"voice": 'a"b\n', "loop": None, "x": True}, "<b>&🙂\ud800")
    assert voice_twiml.response(say) == (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        '<Say voice="a&quot;b&#10;" x="true">&lt;b&gt;&amp;🙂&#55296;</Say></Response>'
    )


@EXAMPLES
@given(text=OPTIONAL_TEXT)
def test_an_sms_reply_is_the_packages(text: str | None) -> None:
    """The SMS webhook's answer (app/webhooks/twilio_sms.py) is written the same way."""
    document = MessagingResponse()
    if text:
        document.message(text)
    assert sms.reply(text) == str(document)
