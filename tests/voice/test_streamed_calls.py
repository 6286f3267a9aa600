"""Streamed phone calls, end to end (see conftest.py for the parts)."""

from __future__ import annotations

import asyncio
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from app import commit_writes
from app.config import Settings
from app.demo import DemoData
from app.models import Agent, Appointment, AuditEntry, Conversation, InboundEvent, Message
from app.security.pins import hash_pin
from app.security.stream_token import StreamTokens
from app.stream_sim import StreamedCall, StreamRefused
from app.voice.fake_deepgram import FakeDeepgram
from app.webhooks import twilio_media
from tests.conftest import Reader, TwilioClient
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
        assert (
            "<Connect><Stream" in twiml and "wss://agent.example.com/webhooks/twilio/media" in twiml
        )
        await call.open_stream()
        await call.hear("How can I help")
        call.say("I'd like to book a consultation tomorrow at 3pm")
        await call.hear("Shall I go ahead")
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
    assert "Sam Rivera" in options["terms"]
    # The agent's appointment type names, as callers say them.
    assert {"consultation", "haircut"} <= set(options["terms"])
    assert call.frames_sent * 160 == fake.audio_bytes or fake.audio_bytes <= call.frames_sent * 160


def actions(db: Reader) -> list[str]:
    return [entry.action for entry in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def test_barge_in_clears_the_audio_and_keeps_only_what_was_heard(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram, db: Reader
) -> None:
    fake.bytes_per_char = 120  # long enough phrases to talk over
    call = new_call()

    async def scenario(http: httpx.AsyncClient) -> None:
        await call.dial(http)
        await call.open_stream()
        await call.hear("How can I help")
        call.say("book a consultation tomorrow at 3pm")
        # The proposal is three phrases; cut in once two have played.
        await call.hear("November 24th")
        call.say("wait, what about Wednesday")
        await call.hear("Wednesday")
        await call.hang_up()

    run(scenario)
    assert call.clears == 1
    said = transcript(db, call.sid)
    interrupted = [
        body for direction, body in said if direction == "out" and "[interrupted]" in body
    ]
    assert len(interrupted) == 1
    first = fake.spoken.index(next(text for text in fake.spoken if "3 PM" in text))
    heard = f"{fake.spoken[first]} {fake.spoken[first + 1]}"
    assert "November 24th" in heard
    assert interrupted[0] == f"{heard} [interrupted]"
    assert "Shall I go ahead" not in interrupted[0]
    assert ("in", "wait, what about Wednesday") in said
    conversation = db.scalar(select(Conversation).where(Conversation.external_id == call.sid))
    assert [b["heard"] for b in conversation.details["voice"]["barge_ins"]] == [heard]
    assert db.scalar(select(Appointment)) is None
    # Both sides carry their time, in order, and the barge-in its own.
    (barge_in,) = conversation.details["voice"]["barge_ins"]
    times = [
        m.created_at
        for m in db.scalars(
            select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
        )
    ]
    assert all(times) and times == sorted(times)
    assert datetime.fromisoformat(barge_in["at"]).tzinfo is not None


def test_a_yes_over_a_half_heard_proposal_books_nothing_and_the_agent_restates(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram, db: Reader
) -> None:
    fake.bytes_per_char = 120  # long enough phrases to talk over
    call = new_call()

    async def scenario(http: httpx.AsyncClient) -> None:
        await call.dial(http)
        await call.open_stream()
        await call.hear("How can I help")
        call.say("book a consultation tomorrow at 3pm")
        # "I can book a consultation at Tuesday," has played; the date and the question not.
        await call.hear("I can book")
        call.say("yes")
        await call.hear("say that again in full")
        assert db.scalar(select(Appointment)) is None
        await call.hear("Shall I go ahead")
        call.say("yes")
        await call.hear("booked")
        await call.hang_up()

    run(scenario)
    assert call.clears == 1
    conversation = db.scalar(select(Conversation).where(Conversation.external_id == call.sid))
    (barge_in,) = conversation.details["voice"]["barge_ins"]
    assert barge_in["question_heard"] is False and "November 24th" not in barge_in["heard"]
    said = transcript(db, call.sid)
    cut = [body for direction, body in said if direction == "out" and "[interrupted]" in body]
    assert len(cut) == 1 and "Shall I go ahead" not in cut[0]
    restated = next(body for direction, body in said if "say that again in full" in body)
    assert "November 24th" in restated and "Shall I go ahead" in restated
    # Booked once, after the second yes, which answered the question heard in full.
    (appointment,) = db.scalars(select(Appointment))
    assert appointment.start_at.isoformat() == "2026-11-24T23:00:00+00:00"


def test_silence_is_asked_about_then_the_call_ends(
    make_server: Callable[..., str],
    stream_settings: Settings,
    streaming_agent: DemoData,
    db: Reader,
) -> None:
    settings = stream_settings.model_copy(update={"stream_silence_seconds": 0.3})
    call = StreamedCall(
        settings, make_server(settings), streaming_agent.caller, settings.agent_number
    )

    async def scenario(http: httpx.AsyncClient) -> str:
        await call.dial(http)
        await call.open_stream()
        await call.hear("didn't catch that")
        await call.hear("hang up now")
        await call.wait_closed()
        return await call.follow_redirect(http)

    after = run(scenario)
    assert "<Hangup" in after and "<Gather" not in after
    conversation = db.scalar(select(Conversation).where(Conversation.external_id == call.sid))
    assert conversation.status == "ended"
    bodies = [body for _, body in transcript(db, call.sid)]
    assert "I haven't heard anything" in bodies[-1]


def test_pin_keyed_on_the_keypad_unlocks_existing_appointments(
    new_call: Callable[..., StreamedCall],
    streaming_agent: DemoData,
    session_factory: sessionmaker[Session],
    db: Reader,
) -> None:
    with session_factory() as session:
        agent = session.get(Agent, streaming_agent.agent_id)
        agent.caller_id_policy = "strict"
        agent.pin_hash = hash_pin("4321")
        session.add(
            Appointment(
                agent_id=streaming_agent.agent_id,
                appointment_type="consultation",
                start_at=datetime.fromisoformat("2026-11-25T18:00:00+00:00"),
                end_at=datetime.fromisoformat("2026-11-25T18:30:00+00:00"),
                contact_e164=streaming_agent.caller,
                idempotency_key="earlier-sms",
                channel="sms",
            )
        )
        session.commit()
    call = new_call(stir_verstat="TN-Validation-Passed-C")

    async def scenario(http: httpx.AsyncClient) -> None:
        await call.dial(http)
        await call.open_stream()
        await call.hear("How can I help")
        call.say("what appointments do I have")
        await call.hear("I need your PIN")
        await call.press("1111#")
        await call.hear("didn't match")
        await call.press("4321#")
        await call.hear("verified")
        await call.hear("Wednesday")
        await call.hang_up()

    run(scenario)
    said = transcript(db, call.sid)
    assert ("in", "[PIN]") in said
    assert all("4321" not in body and "1111" not in body for _, body in said)
    assert "pin.verified" in actions(db) or any("pin" in a for a in actions(db))


def test_deepgram_unreachable_at_start_continues_on_gather(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram, db: Reader
) -> None:
    fake.refuse = True
    call = new_call()

    async def scenario(http: httpx.AsyncClient) -> str:
        await call.dial(http)
        await call.open_stream()
        await call.wait_closed()
        return await call.follow_redirect(http)

    after = run(scenario)
    root = ET.fromstring(after)
    gather = root.find("Gather")
    assert gather is not None and "Sam's scheduling line" in (gather.findtext("Say") or "")
    assert call.heard == []
    assert "voice.stream_fallback" in actions(db)
    # The conversation goes on at the next Gather turn.
    assert gather.get("action", "").endswith("/webhooks/twilio/voice/gather?turn=1")


def test_deepgram_dropping_mid_call_continues_on_gather(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram, db: Reader
) -> None:
    fake.drop_after_utterances = 1
    call = new_call()

    async def scenario(http: httpx.AsyncClient) -> str:
        await call.dial(http)
        await call.open_stream()
        await call.hear("How can I help")
        call.say("book a consultation tomorrow at 3pm")
        await call.wait_closed()
        return await call.follow_redirect(http)

    after = run(scenario)
    gather = ET.fromstring(after).find("Gather")
    assert gather is not None and "line broke up" in (gather.findtext("Say") or "")
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "voice.stream_fallback"))
    assert entry is not None and entry.details["reason"] == "deepgram dropped mid-call"
    # The turn the stream started is numbered, so Gather's next turn does not collide.
    turn = int(gather.get("action", "").rsplit("=", 1)[1])
    conversation = db.scalar(select(Conversation).where(Conversation.external_id == call.sid))
    assert turn == int(conversation.details["voice"]["turn"]) + 1


def test_unsigned_upgrade_is_refused(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram, db: Reader
) -> None:
    call = new_call()

    async def scenario(http: httpx.AsyncClient) -> None:
        await call.dial(http)
        with pytest.raises(StreamRefused, match="403"):
            await call.open_stream(sign=False)

    run(scenario)
    assert fake.connections == []
    assert "webhook.rejected" in actions(db)


@pytest.mark.parametrize("token", ["forged", "wrong-call", "expired"])
def test_bad_stream_token_is_closed_before_audio(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram, stream_settings: Settings, token: str
) -> None:
    call = new_call()
    minter = StreamTokens(stream_settings.app_secret_key.get_secret_value().encode(), 60)
    tokens = {
        "forged": "9999999999.AAAA",
        "wrong-call": minter.issue("CA" + "1" * 32, time.time()),
        "expired": minter.issue(call.sid, time.time() - 120),
    }

    async def scenario(http: httpx.AsyncClient) -> None:
        await call.dial(http)
        await call.open_stream(parameters={"token": tokens[token]})
        await call.wait_closed()

    run(scenario)
    assert call.heard == [] and call.frames_received == 0
    assert fake.connections == []


def test_replayed_stream_is_refused(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram
) -> None:
    call = new_call()

    async def scenario(http: httpx.AsyncClient) -> None:
        await call.dial(http)
        await call.open_stream()
        await call.hear("How can I help")
        replay = StreamedCall(
            call.settings, call.server_url, call.caller, call.to, sid=call.sid, twiml=call.twiml
        )
        await replay.open_stream()
        await replay.wait_closed()
        assert replay.heard == [] and replay.frames_received == 0
        # The real call is unaffected.
        call.say("book a consultation tomorrow at 3pm")
        await call.hear("Shall I go ahead")
        await call.hang_up()

    run(scenario)
    assert len(fake.connections) == 1


def test_twenty_concurrent_streamed_calls_lose_no_frame(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram
) -> None:
    calls = [new_call() for _ in range(20)]

    async def one(http: httpx.AsyncClient, call: StreamedCall) -> None:
        await call.dial(http)
        await call.open_stream()
        await call.hear("How can I help", timeout=30)
        call.say("book a consultation tomorrow at 3pm")
        await call.hear("Shall I go ahead", timeout=30)
        await call.hang_up()

    async def scenario(http: httpx.AsyncClient) -> None:
        await asyncio.gather(*(one(http, call) for call in calls))
        # Deepgram has had every frame once each stream is closed.
        async with asyncio.timeout(10):
            while fake.closed_streams < len(calls):
                await asyncio.sleep(0.05)

    run(scenario)
    assert fake.audio_bytes == sum(call.frames_sent for call in calls) * 160
    # No barge-in: every byte Deepgram synthesised reached a caller, none twice.
    assert sum(call.audio_received for call in calls) == fake.spoken_bytes
    for call in calls:
        assert call.heard[0].startswith("Hi Sam")
        assert any("Shall I go ahead" in text for text in call.heard)


def test_without_a_deepgram_key_a_stream_agent_answers_with_gather(
    twilio: TwilioClient, streaming_agent: DemoData
) -> None:
    params = {"CallSid": "CA" + "c" * 32, "From": streaming_agent.caller, "To": "+15005550006"}
    answer = twilio.post("/webhooks/twilio/voice/inbound", params)
    assert answer.status_code == 200
    root = ET.fromstring(answer.text)
    assert root.find("Connect") is None and root.find("Gather") is not None


def test_stream_answer_carries_a_token_and_the_way_back(
    new_call: Callable[..., StreamedCall], stream_settings: Settings
) -> None:
    call = new_call()
    run(call.dial)
    root = ET.fromstring(call.twiml)
    stream = root.find("Connect/Stream")
    assert (
        stream is not None and stream.get("url") == "wss://agent.example.com/webhooks/twilio/media"
    )
    (parameter,) = stream.findall("Parameter")
    assert parameter.get("name") == "token" and call.caller not in call.twiml
    StreamTokens(stream_settings.app_secret_key.get_secret_value().encode(), 60).verify(
        parameter.get("value", ""), call.sid, time.time()
    )
    assert root.findtext("Redirect") == "https://agent.example.com/webhooks/twilio/media/resume"


def books(session: Session) -> bool:
    """Whether this commit is a turn's that answers "you're booked" (the answer is stored
    on the turn's event with the last writes: seen by a before_commit listener inserted
    ahead of theirs)."""
    return any(
        "booked" in (values.get("response") or "")
        for values in commit_writes.waiting_values(session, InboundEvent.__table__)
    )


def test_a_reply_synthesised_during_a_failed_commit_is_never_played(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram, db: Reader
) -> None:
    """A turn's first phrase is synthesised while the turn commits; when the commit fails
    the caller hears the apology, never the booking that was not made."""
    call = new_call()
    failing = threading.Event()

    def fail_once_synthesised(session: Session) -> None:
        if not failing.is_set() or not books(session):
            return
        failing.clear()
        # Hold the commit until the booked reply's synthesis has reached Deepgram, so the
        # audio exists when the commit fails.
        deadline = time.monotonic() + 5
        while not any("booked" in text for text in fake.spoken):
            assert time.monotonic() < deadline, fake.spoken
            time.sleep(0.01)
        raise RuntimeError("the database went away at commit")

    async def scenario(http: httpx.AsyncClient) -> None:
        await call.dial(http)
        await call.open_stream()
        await call.hear("How can I help")
        call.say("I'd like to book a consultation tomorrow at 3pm")
        await call.hear("Shall I go ahead")
        failing.set()
        call.say("yes")
        await call.hear("say that again")
        await asyncio.sleep(0.3)  # time enough for any stray audio to arrive
        await call.hang_up()

    # insert=True: before the last writes go out (they leave the session as they do).
    event.listen(Session, "before_commit", fail_once_synthesised, insert=True)
    try:
        run(scenario)
    finally:
        event.remove(Session, "before_commit", fail_once_synthesised)
    assert any("booked" in text for text in fake.spoken)  # synthesised ahead...
    assert not any("booked" in text for text in call.heard)  # ...but never played
    assert db.scalar(select(Appointment)) is None
    assert not any("booked" in body for _, body in transcript(db, call.sid))


def test_a_reply_is_spoken_from_the_synthesis_started_during_its_commit(
    new_call: Callable[..., StreamedCall], fake: FakeDeepgram, db: Reader
) -> None:
    """The first phrase is asked for before the commit ends, once: no second request."""
    call = new_call()
    asked_before_commit: list[bool] = []

    def note(_: Session) -> None:
        if any("booked" in text for text in fake.spoken) and not asked_before_commit:
            asked_before_commit.append(True)

    def hold_booking_commit(session: Session) -> None:
        # The booking's commit waits until its reply's synthesis was asked for.
        if books(session):
            deadline = time.monotonic() + 5
            while not any("booked" in text for text in fake.spoken):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
            note(session)

    async def scenario(http: httpx.AsyncClient) -> None:
        await call.dial(http)
        await call.open_stream()
        await call.hear("How can I help")
        call.say("I'd like to book a consultation tomorrow at 3pm")
        await call.hear("Shall I go ahead")
        call.say("yes")
        await call.hear("booked")
        await call.hang_up()

    event.listen(Session, "before_commit", hold_booking_commit, insert=True)
    try:
        run(scenario)
    finally:
        event.remove(Session, "before_commit", hold_booking_commit)
    assert asked_before_commit == [True]
    booked = [text for text in fake.spoken if "booked" in text]
    assert len(booked) == 1  # the audio asked for ahead is the audio played
    assert db.scalar(select(Appointment)) is not None


def test_a_turns_answer_reaches_the_loop_and_a_wait_given_up_leaves_the_turn_running() -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def turn() -> str:
        started.set()
        release.wait(5)
        finished.append("committed")
        return "<Response/>"

    async def main() -> None:
        job = twilio_media._turn_threads.submit(turn)
        waiting = twilio_media._answer_of(job)
        assert await asyncio.to_thread(started.wait, 5)
        waiting.cancel()  # the call ended, or the turn's budget ran out
        release.set()
        # What settle() does: wait for the same turn, which went on to its end.
        assert await twilio_media._answer_of(job) == "<Response/>"
        assert finished == ["committed"]
        # An answer already there, and a failure, are handed over as well.
        assert await twilio_media._answer_of(job) == "<Response/>"
        failed = twilio_media._turn_threads.submit(lambda: 1 // 0)
        with pytest.raises(ZeroDivisionError):
            await twilio_media._answer_of(failed)

    asyncio.run(main())
