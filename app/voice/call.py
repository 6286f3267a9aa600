"""Turn-taking on one streamed call: what the caller says in, what the agent says out.

Audio from Twilio goes to Deepgram as it arrives. Deepgram's final transcripts build
the caller's utterance; its end (speech_final or UtteranceEnd) runs one engine turn. The
reply is synthesised phrase by phrase and streamed back as it arrives, each phrase
followed by a `mark`: Twilio echoes a mark once the audio before it has played, so the
marks say what the caller actually heard. The reply's first phrase is requested while its
turn commits, but sent only once the turn has returned that same reply, committed. Words
from the caller while the agent talks are a barge-in: `clear` empties Twilio's buffer,
synthesis stops, and the transcript keeps only the phrases that were played.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import gc
import json
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from app.voice.deepgram import DeepgramUnavailable, Listener, Transcript, UtteranceEnd

log = logging.getLogger(__name__)

FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
GIL_SWITCH_SECONDS = 0.001
SILENCE = object()  # a turn in which the caller said nothing


@contextmanager
def loop_ready_for_streams() -> Iterator[None]:
    """While streamed calls may run, nothing may hold up the event loop that moves every
    call's 20 ms frames for long:

    - engine turns and database writes run in worker threads, and a thread busy in Python
      keeps the GIL until the switch interval asks for it back, so the loop could wait
      5 ms (Python's default) each time it wakes: a 1 ms interval bounds that wait;
    - the garbage collector's full passes walked every object built at start-up (the
      app, its models, the SDKs: tens of milliseconds, on whichever thread allocated
      last, the loop's included): they are frozen out of its reach once started."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, GIL_SWITCH_SECONDS))
    gc.collect()
    gc.freeze()
    _heap.streaming, _heap.warm = True, False
    try:
        yield
    finally:
        _heap.streaming = False
        gc.unfreeze()
        sys.setswitchinterval(previous)


class _Heap:
    """The collector's side of loop_ready_for_streams (one per process, as gc is)."""

    streaming = False  # within loop_ready_for_streams
    warm = False  # the first streamed call's lasting objects are frozen too


_heap = _Heap()


def freeze_when_warm() -> None:
    """Called as a streamed call ends; the first time only, freeze what is left.

    A process's first call builds, lazily, objects that then last as long as it does
    (caches, compiled SQL, the SDKs' lazily built parts: ~8k objects; with 50 calls up,
    bench/stream_frames.py saw the oldest generation go from 40k objects to 31k).
    Frozen like start-up's, full passes no longer walk them. One full collection first
    (a pause of tens of milliseconds, once per process), so no garbage is frozen; what
    the calls then in progress keep is frozen with the rest, once (those of their
    objects that end in reference cycles stay until shutdown: bounded, and only once)."""
    if not _heap.streaming or _heap.warm:
        return
    _heap.warm = True
    gc.collect()
    gc.freeze()


class Outcome(StrEnum):
    CALLER_HUNG_UP = "caller_hung_up"
    AGENT_HUNG_UP = "agent_hung_up"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class Said:
    """What the dialogue wants spoken, and whether the call ends after it."""

    text: str
    hang_up: bool = False


# Told, on the event loop, what a turn is about to commit as its answer.
Foresee = Callable[[Said], None]


class Dialogue(Protocol):
    async def turn(self, heard: str, foreseen: Foresee) -> Said: ...
    async def interrupted(self, heard: str, question_heard: bool) -> None: ...


Speaker = Callable[[str], AsyncIterator[bytes]]
Send = Callable[[str], Awaitable[None]]  # one JSON text message to Twilio


def phrases(text: str) -> list[str]:
    """Sentences and clauses: the unit of synthesis, and of what counts as heard."""
    parts = re.split(r"(?<=[.!?;:,])\s+", text.strip())
    return [part for part in parts if part]


@dataclass
class Playback:
    """The agent's current reply: phrases sent, and those Twilio says were played."""

    phrases: list[str]
    sent_marks: dict[str, int] = field(default_factory=dict)
    played: set[int] = field(default_factory=set)
    synthesis_done: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def heard(self) -> str:
        return " ".join(self.phrases[i] for i in sorted(self.played))

    def question_heard(self) -> bool:
        """Whether every phrase up to the reply's last question was played (all of it,
        if it asks nothing): a proposal is only as heard as its date and its question."""
        asks = [i for i, phrase in enumerate(self.phrases) if "?" in phrase]
        last = asks[-1] if asks else len(self.phrases) - 1
        return all(i in self.played for i in range(last + 1))

    def check_finished(self) -> None:
        if self.synthesis_done and len(self.played) == len(self.sent_marks):
            self.finished.set()


class Prefetch:
    """One phrase's synthesis, started at once and read later, in order."""

    def __init__(self, speaker: Speaker, phrase: str) -> None:
        self._chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._fetch(speaker, phrase))

    async def _fetch(self, speaker: Speaker, phrase: str) -> None:
        try:
            async for chunk in speaker(phrase):
                self._chunks.put_nowait(chunk)
        except Exception as exc:  # handed to the reader, which knows what to do
            self._chunks.put_nowait(exc)
            return
        self._chunks.put_nowait(None)

    def cancel(self) -> None:
        self._task.cancel()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while (item := await self._chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self._task.cancel()


class StreamCall:
    def __init__(
        self,
        stream_sid: str,
        send: Send,
        listener: Listener,
        speaker: Speaker,
        dialogue: Dialogue,
        silence_seconds: float,
    ) -> None:
        self.stream_sid = stream_sid
        self._send = send
        self.listener = listener
        self.speaker = speaker
        self.dialogue = dialogue
        self.silence_seconds = silence_seconds
        self.finals: list[str] = []
        self.digits = ""
        self.utterances: asyncio.Queue[object] = asyncio.Queue()
        self.playback: Playback | None = None
        self.speaking_task: asyncio.Task[None] | None = None
        self.silence_task: asyncio.Task[None] | None = None
        self.outcome: asyncio.Future[Outcome] | None = None
        # The answer a running turn is committing, and its first phrase's synthesis.
        self._foreseeing = False
        self._ahead: tuple[str, Prefetch] | None = None
        self.marks = 0
        self.frames_out = 0
        self.barge_ins = 0
        # Seconds from the end of an utterance to the first reply frame sent (benchmarks).
        self.turn_latencies: list[float] = []
        self._utterance_ended_at: float | None = None
        sid = json.dumps(stream_sid).replace("%", "%%")  # quoted and escaped once
        self._media_template = f'{{"event":"media","streamSid":{sid},"media":{{"payload":"%s"}}}}'
        self._mark_template = f'{{"event":"mark","streamSid":{sid},"mark":{{"name":"%s"}}}}'

    # --- the call's life --------------------------------------------------------------

    async def run(self, greeting: Said, twilio: AsyncIterator[dict[str, Any]]) -> Outcome:
        self.outcome = asyncio.get_running_loop().create_future()
        tasks = [
            asyncio.create_task(self._from_twilio(twilio)),
            asyncio.create_task(self._from_deepgram()),
            asyncio.create_task(self._turns(greeting)),
        ]
        try:
            return await self.outcome
        finally:
            for task in [*tasks, self.speaking_task, self.silence_task]:
                if task is not None:
                    task.cancel()
            await asyncio.gather(*[t for t in tasks if t is not None], return_exceptions=True)
            self._drop_ahead()  # the turn task is done: nothing more is foreseen

    def _finish(self, outcome: Outcome) -> None:
        if self.outcome is not None and not self.outcome.done():
            self.outcome.set_result(outcome)

    async def _from_twilio(self, messages: AsyncIterator[dict[str, Any]]) -> None:
        send_audio = self.listener.send
        try:
            async for message in messages:
                event = message.get("event")
                if event == "media":
                    # 50 times a second per call: binascii's decoder itself, without
                    # base64.b64decode's wrapper (which does the same, non-strict).
                    await send_audio(binascii.a2b_base64(message["media"]["payload"]))
                elif event == "mark":
                    self._on_mark(str(message.get("mark", {}).get("name", "")))
                elif event == "dtmf":
                    await self._on_digit(str(message.get("dtmf", {}).get("digit", "")))
                elif event == "stop":
                    break
        except DeepgramUnavailable as exc:
            log.warning("stream %s: %s", self.stream_sid, exc)
            self._finish(Outcome.FALLBACK)
            return
        self._finish(Outcome.CALLER_HUNG_UP)

    async def _from_deepgram(self) -> None:
        try:
            async for event in self.listener.events():
                if isinstance(event, Transcript):
                    await self._on_transcript(event)
                elif isinstance(event, UtteranceEnd):
                    self._end_utterance()
        except DeepgramUnavailable as exc:
            log.warning("stream %s: %s", self.stream_sid, exc)
        # Deepgram never ends a socket we keep open: this is a drop.
        self._finish(Outcome.FALLBACK)

    # --- the caller's side ------------------------------------------------------------

    async def _on_transcript(self, event: Transcript) -> None:
        if not event.text:
            if event.speech_final:
                self._end_utterance()
            return
        self._stop_silence_timer()
        if self.is_speaking():
            await self._barge_in()
        if event.is_final:
            self.finals.append(event.text)
        if event.speech_final:
            self._end_utterance()

    def _end_utterance(self) -> None:
        if not self.finals:
            return
        text = " ".join(self.finals)
        self.finals = []
        self._utterance_ended_at = time.perf_counter()
        self.utterances.put_nowait(text)

    async def _on_digit(self, digit: str) -> None:
        self._stop_silence_timer()
        if self.is_speaking():
            await self._barge_in()
        if digit == "#":
            if self.digits:
                self._utterance_ended_at = time.perf_counter()
                self.utterances.put_nowait(self.digits)
            self.digits = ""
        elif digit.isdigit() or digit == "*":
            self.digits += digit

    # --- the agent's side -------------------------------------------------------------

    async def _turns(self, greeting: Said) -> None:
        said = greeting
        while True:
            if not await self._say(said):
                self._start_silence_timer()
            elif said.hang_up:
                self._finish(Outcome.AGENT_HUNG_UP)
                return
            else:
                self._start_silence_timer()
            heard = await self.utterances.get()
            self._stop_silence_timer()
            self._foreseeing = True
            try:
                said = await self.dialogue.turn(
                    "" if heard is SILENCE else str(heard), self._foresee
                )
            finally:
                self._foreseeing = False

    def _foresee(self, said: Said) -> None:
        """The running turn is about to commit `said`: synthesise its first phrase now,
        alongside the commit, rather than after it. Nothing of it is sent unless the turn
        returns this same reply (a failed commit answers with an apology instead, and a
        turn run again may answer differently: then this audio is dropped)."""
        if not self._foreseeing:
            return
        self._drop_ahead()
        first = phrases(said.text)[:1]
        if first:
            self._ahead = (said.text, Prefetch(self.speaker, first[0]))

    def _take_ahead(self, text: str) -> Prefetch | None:
        """The first phrase's synthesis started while the turn committed, if it is of
        `text`, the reply the turn returned."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        foreseen, synthesis = ahead
        if foreseen == text:
            return synthesis
        synthesis.cancel()
        return None

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None

    async def _say(self, said: Said) -> bool:
        """Speak `said`; True once all of it was played, False if the caller cut in."""
        playback = Playback(phrases(said.text))
        self.playback = playback
        first = self._take_ahead(said.text)
        self.speaking_task = asyncio.create_task(self._synthesise(playback, first))
        if first is not None:  # also when the task is cancelled before it ever runs
            self.speaking_task.add_done_callback(lambda _: first.cancel())
        try:
            await playback.finished.wait()
        except asyncio.CancelledError:
            self.speaking_task.cancel()
            raise
        return self.playback is playback and len(playback.played) == len(playback.phrases)

    async def _synthesise(self, playback: Playback, first: Prefetch | None) -> None:
        try:
            await self._stream_phrases(playback, first)
        except DeepgramUnavailable as exc:
            log.warning("stream %s: %s", self.stream_sid, exc)
            self._finish(Outcome.FALLBACK)

    async def _stream_phrases(self, playback: Playback, first: Prefetch | None = None) -> None:
        # The next phrase is requested as soon as this one's audio begins, so there is no
        # gap between phrases however long Deepgram takes, and the first phrase's request
        # is not slowed by the second's on the way to the reply's first frame.
        current: Prefetch | None = None
        ahead = first  # the first phrase's, if already requested
        try:
            for index, phrase in enumerate(playback.phrases):
                current = ahead or Prefetch(self.speaker, phrase)
                ahead = None
                following = playback.phrases[index + 1 : index + 2]
                async for frames in self._frames_of(current):
                    if following and ahead is None:
                        ahead = Prefetch(self.speaker, following[0])
                    for frame in frames:
                        await self._media(frame)
                if following and ahead is None:  # a phrase with no audio at all
                    ahead = Prefetch(self.speaker, following[0])
                self.marks += 1
                name = f"m{self.marks}"
                playback.sent_marks[name] = index
                await self._send(self._mark_template % name)
        finally:
            for synthesis in (current, ahead):  # cut off by a barge-in or a failure
                if synthesis is not None:
                    synthesis.cancel()
        playback.synthesis_done = True
        playback.check_finished()

    @staticmethod
    async def _frames_of(audio: Prefetch) -> AsyncIterator[list[bytes]]:
        """One phrase's audio in 20 ms frames as it arrives (its tail padded by Twilio)."""
        buffer = b""
        async for chunk in audio:
            buffer += chunk
            whole = len(buffer) - len(buffer) % FRAME_BYTES
            if whole:
                yield [
                    buffer[start : start + FRAME_BYTES] for start in range(0, whole, FRAME_BYTES)
                ]
            buffer = buffer[whole:]
        if buffer:
            yield [buffer]

    async def _media(self, frame: bytes) -> None:
        if self._utterance_ended_at is not None:
            self.turn_latencies.append(time.perf_counter() - self._utterance_ended_at)
            self._utterance_ended_at = None
        self.frames_out += 1
        # A prepared template, not a dict through json.dumps: this runs 50 times a second
        # per call while the agent speaks, on the event loop every call shares.
        await self._send(self._media_template % base64.b64encode(frame).decode("ascii"))

    def _on_mark(self, name: str) -> None:
        playback = self.playback
        if playback is None or name not in playback.sent_marks:
            return  # a mark of a reply already cleared, or not ours
        playback.played.add(playback.sent_marks[name])
        playback.check_finished()

    def is_speaking(self) -> bool:
        return self.playback is not None and not self.playback.finished.is_set()

    async def _barge_in(self) -> None:
        playback = self.playback
        if playback is None:
            return
        # Marks Twilio echoes after `clear` are of audio it dropped, not played.
        self.playback = None
        if self.speaking_task is not None:
            self.speaking_task.cancel()
        await self._send(json.dumps({"event": "clear", "streamSid": self.stream_sid}))
        self.barge_ins += 1
        playback.finished.set()
        await self.dialogue.interrupted(playback.heard(), playback.question_heard())

    # --- silence ----------------------------------------------------------------------

    def _start_silence_timer(self) -> None:
        self._stop_silence_timer()
        self.silence_task = asyncio.create_task(self._silence())

    def _stop_silence_timer(self) -> None:
        if self.silence_task is not None:
            self.silence_task.cancel()
            self.silence_task = None

    async def _silence(self) -> None:
        await asyncio.sleep(self.silence_seconds)
        if not self.finals and not self.digits:
            self.utterances.put_nowait(SILENCE)
