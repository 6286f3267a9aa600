"""Streamed phone calls, end to end (see conftest.py for the parts)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from sqlalchemy import select

from app.models import Appointment, Conversation, Message
from app.stream_sim import StreamedCall
from app.voice.fake_deepgram import FakeDeepgram
from tests.conftest import Reader
from tests.voice.conftest import run


def transcript(db: Reader, sid: str) -> list[tuple[str, str]]:
    conversation = db.scalar(select(Conversation).where(Conversation.external_id == sid))
    assert conversation is not None
    messages = db.scalars(
        select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
    )
    return [(m.direction, m.body) for m in messages]


def test_full_booking_by_streamed_voice(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram, db: Reader
) -> None:
    call = new_call()

    async def scenario(http: httpx.AsyncClient) -> None:
        twiml = await call.dial(http)
        assert "<Connect><Stream" in twiml and "wss://agent.example.com/webhooks/twilio/media" in twiml
        await call.open_stream()
        await call.hear("How can I help")
        call.say("I'd like to book a consultation tomorrow at 3pm")
        await call.hear("Tuesday")
        call.say("yes")
        await call.hear("booked")
        await call.hang_up()

    run(scenario)
    appointment = db.scalar(select(Appointment))
    assert appointment is not None and appointment.channel == "voice"
    assert appointment.start_at.isoformat() == "2026-11-24T23:00:00+00:00"
    said = transcript(db, call.sid)
    assert said[0][0] == "out" and "Sam's scheduling line" in said[0][1]
    assert ("in", "I'd like to book a consultation tomorrow at 3pm") in said
    assert ("in", "yes") in said
    # Deepgram was asked for a phone-call model, μ-law 8 kHz, interim results, endpointing,
    # utterance ends and the agent's key terms.
    options = fake.connections[0]
    assert options["model"] == "nova-2-phonecall"
    assert options["encoding"] == "mulaw" and options["sample_rate"] == "8000"
    assert options["interim_results"] == "true" and options["utterance_end_ms"] == "1000"
    assert "Sam Rivera" in options["terms"] or any("Sam" in t for t in options["terms"])
    assert call.frames_sent * 160 == fake.audio_bytes or fake.audio_bytes <= call.frames_sent * 160
