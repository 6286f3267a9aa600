"""What counts as heard of the agent's reply, from the marks Twilio echoed."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import sys
from collections.abc import AsyncIterator
from typing import Any, cast

from app.voice.call import (
    GIL_SWITCH_SECONDS,
    Foresee,
    Playback,
    Said,
    StreamCall,
    freeze_when_warm,
    loop_ready_for_streams,
    phrases,
)


def played(text: str, count: int) -> Playback:
    playback = Playback(phrases(text))
    playback.played = set(range(count))
    return playback


PROPOSAL = "I can book a consultation at 3 PM on Tuesday, November 24th. Shall I go ahead?"
CANCEL_ALL = "You have 2 appointments: Tuesday and Wednesday. Shall I cancel all 2? Say yes."


def test_a_proposal_is_heard_only_with_its_date_and_its_question() -> None:
    assert [played(PROPOSAL, n).question_heard() for n in range(4)] == [
        False,
        False,
        False,
        True,
    ]
    assert (
        played(PROPOSAL, 2).heard()
        == "I can book a consultation at 3 PM on Tuesday, November 24th."
    )


def test_words_after_the_question_are_not_needed() -> None:
    assert len(phrases(CANCEL_ALL)) == 4
    assert played(CANCEL_ALL, 3).question_heard()
    assert not played(CANCEL_ALL, 2).question_heard()


def test_a_reply_without_a_question_must_be_heard_whole() -> None:
    text = "You're booked for a consultation at 3 PM on Tuesday, November 24th."
    assert not played(text, 1).question_heard()
    assert played(text, 2).question_heard()


# --- what goes out to Twilio -----------------------------------------------------------


def spoken_reply(audio_bytes: dict[str, int], stream_sid: str) -> tuple[list[str], dict[str, int]]:
    """Stream a reply's phrases through StreamCall with a local speaker: the messages
    Twilio would get, and how many had been sent when each phrase was asked for."""
    asked: dict[str, int] = {}
    sent: list[str] = []

    async def speaker(phrase: str) -> AsyncIterator[bytes]:
        asked[phrase] = len(sent)
        audio = bytes(range(256)) * (audio_bytes[phrase] // 256 + 1)
        for start in range(0, audio_bytes[phrase], 500):  # Aura's chunks: not frame sized
            await asyncio.sleep(0)
            yield audio[start : min(start + 500, audio_bytes[phrase])]

    async def send(message: str) -> None:
        sent.append(message)

    async def scenario() -> None:
        call = StreamCall(stream_sid, send, cast(Any, None), speaker, cast(Any, None), 8.0)
        await call._stream_phrases(Playback(list(audio_bytes)))

    asyncio.run(scenario())
    return sent, asked


def test_a_reply_goes_out_as_20_ms_frames_then_a_mark_per_phrase() -> None:
    odd_sid = 'MZ"%s\\'  # escaped once into the prepared messages, whatever it holds
    sent, asked = spoken_reply({"Sure.": 1000, "Shall I book it?": 330}, odd_sid)
    assert list(asked) == ["Sure.", "Shall I book it?"]
    messages = [json.loads(text) for text in sent]
    assert {message["streamSid"] for message in messages} == {odd_sid}
    kinds = [message["event"] for message in messages]
    assert kinds == ["media"] * 7 + ["mark"] + ["media"] * 3 + ["mark"]
    sizes = [
        len(base64.b64decode(message["media"]["payload"]))
        for message in messages
        if message["event"] == "media"
    ]
    assert sizes == [160] * 6 + [40] + [160, 160, 10]
    assert [m["mark"]["name"] for m in messages if m["event"] == "mark"] == ["m1", "m2"]


def test_the_next_phrase_is_asked_for_while_the_current_one_streams() -> None:
    sent, asked = spoken_reply({"One.": 2000, "Two.": 160, "Three?": 160}, "MZ1")
    first_mark = next(i for i, text in enumerate(sent) if '"mark"' in text)
    assert first_mark == 2000 // 160 + 1  # every frame of "One." went out before its mark
    # "Two." is asked for once "One." began to go out (not before: the reply's first
    # frame waits for one request only), and long before "One." ends.
    assert asked["One."] == 0
    assert 0 < asked["Two."] < first_mark
    assert first_mark < asked["Three?"]


def test_streams_get_a_short_gil_switch_and_a_frozen_start_up_heap() -> None:
    before = sys.getswitchinterval()
    with loop_ready_for_streams():
        assert sys.getswitchinterval() == GIL_SWITCH_SECONDS < before
        assert gc.get_freeze_count() > 0
    assert sys.getswitchinterval() == before
    assert gc.get_freeze_count() == 0


class Lasting:
    """An object a first call leaves behind for good (a validator, a compiled query)."""


def test_the_first_call_to_end_freezes_what_it_left_and_later_calls_do_not() -> None:
    freeze_when_warm()  # no streams (tests, a deployment without Deepgram): nothing
    assert gc.get_freeze_count() == 0
    with loop_ready_for_streams():
        at_start = gc.get_freeze_count()
        left = [Lasting() for _ in range(100)]
        freeze_when_warm()
        warm = gc.get_freeze_count()
        assert warm >= at_start + len(left)
        assert not any(isinstance(o, Lasting) for o in gc.get_objects())  # out of reach
        more = [Lasting() for _ in range(100)]
        freeze_when_warm()
        assert gc.get_freeze_count() == warm  # once only
        assert sum(isinstance(o, Lasting) for o in gc.get_objects()) == len(more)
    assert gc.get_freeze_count() == 0


# --- a reply synthesised while its turn commits -------------------------------------------


class Committing:
    """A dialogue whose turn foresees `foreseen`, then commits until `committed` is set,
    then answers `answer`."""

    def __init__(self, foreseen: str, answer: str) -> None:
        self.foreseen = foreseen
        self.answer = answer
        self.committing = asyncio.Event()
        self.committed = asyncio.Event()

    async def turn(self, heard: str, foreseen: Foresee) -> Said:
        foreseen(Said(self.foreseen))
        self.committing.set()
        await self.committed.wait()
        return Said(self.answer)

    async def interrupted(self, heard: str, question_heard: bool) -> None:
        pass


def foreseen_turn(foreseen: str, answer: str) -> tuple[list[str], list[str], list[str], int]:
    """One turn through StreamCall: the phrases asked for (all, and while the turn was
    still committing), the audio sent (decoded), and how many media messages went out
    while the turn was still committing."""
    asked: list[str] = []
    sent: list[str] = []

    async def speaker(phrase: str) -> AsyncIterator[bytes]:
        asked.append(phrase)
        yield phrase.encode().ljust(160, b"\xff")

    async def send(message: str) -> None:
        sent.append(message)

    async def scenario() -> tuple[list[str], int]:
        dialogue = Committing(foreseen, answer)
        call = StreamCall("MZ1", send, cast(Any, None), speaker, dialogue, 8.0)
        call.outcome = asyncio.get_running_loop().create_future()
        call.utterances.put_nowait("yes")
        turns = asyncio.create_task(call._turns(Said("")))
        await dialogue.committing.wait()
        for _ in range(20):  # let the synthesis asked for ahead run its course
            await asyncio.sleep(0)
        during_commit = list(asked), sum('"media"' in message for message in sent)
        dialogue.committed.set()
        while not any('"mark"' in message for message in sent):
            await asyncio.sleep(0)
        turns.cancel()
        call._drop_ahead()
        return during_commit

    asked_ahead, sent_ahead = asyncio.run(scenario())
    audio = [
        base64.b64decode(json.loads(message)["media"]["payload"]).rstrip(b"\xff").decode()
        for message in sent
        if '"media"' in message
    ]
    return asked, asked_ahead, audio, sent_ahead


def test_the_first_phrase_is_synthesised_during_the_commit_and_sent_after_it() -> None:
    booked = "You're booked for 3 PM on Tuesday, November 24th."
    asked, asked_ahead, audio, sent_ahead = foreseen_turn(booked, booked)
    assert asked_ahead == ["You're booked for 3 PM on Tuesday,"]  # while committing
    assert sent_ahead == 0  # but nothing went out before the turn returned
    assert audio[0] == "You're booked for 3 PM on Tuesday,"
    assert asked.count(asked[0]) == 1  # the audio asked for ahead is the audio sent


def test_audio_foreseen_for_a_reply_the_turn_did_not_return_is_never_sent() -> None:
    apology = "Sorry, something went wrong on my side."
    asked, asked_ahead, audio, _ = foreseen_turn("You're booked for 3 PM on Tuesday.", apology)
    assert asked_ahead == ["You're booked for 3 PM on Tuesday."]
    assert asked[1] == "Sorry,"  # the reply returned is synthesised on its own
    assert audio[0] == "Sorry," and not any("booked" in text for text in audio)
