"""The server side of bench/stream_voice.py, run in its own process so its CPU and event
loop are measured alone: the real app (create_app) with an engine that answers at once,
wrapped to time Gather turns and collect each stream's turn latencies, plus an event-loop
lag sampler. GET /_bench/stream_stats reports (and with ?reset=1 restarts) the figures.

    python bench/_stream_server.py <port> <database url> <fake deepgram url>
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app.agent.engine import Reply, Turn  # noqa: E402
from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.voice import aura as voice_aura  # noqa: E402
from app.voice import call as voice_call  # noqa: E402
from app.voice import deepgram as voice_deepgram  # noqa: E402
from app.voice.fake_deepgram import FAKE_KEY, loopback_socket  # noqa: E402
from app.webhooks import twilio_media  # noqa: E402

TWILIO_TOKEN = "bench-twilio-token"
REPLY = "Sure. I have 3 PM on Tuesday, November 24th. Shall I book it?"
SAMPLE_SECONDS = 0.005


class InstantEngine:
    """Answers at once, so the figures are our own code's time."""

    def respond(self, turn: Turn) -> Reply:
        return Reply(REPLY, {**turn.state, "turns": int(turn.state.get("turns", 0)) + 1})


class Figures:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.turn_ms: list[float] = []
        self.turn_cpu_ms: list[float] = []
        self.gather_ms: list[float] = []
        self.lag_ms: list[float] = []
        self.lag_at: list[float] = []  # time.monotonic() of each sample: one clock per host
        self.gc_ms: list[float] = []  # each garbage collection's CPU (its thread's)
        self.gc_generations: list[int] = []  # and the generation it collected
        self.frames_out = 0
        self.streams = 0
        # One dict per streamed turn: perf_counter() of each phase's end (see Phases).
        self.phases: list[dict[str, float]] = []
        self.gc_spans: list[tuple[float, float]] = []  # perf_counter() start, end
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_start = usage.ru_utime + usage.ru_stime

    def report(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "turn_ms": self.turn_ms,
            "turn_cpu_ms": self.turn_cpu_ms,
            "gather_ms": self.gather_ms,
            "lag_ms": self.lag_ms,
            "lag_at": self.lag_at,
            "gc_ms": self.gc_ms,
            "gc_generations": self.gc_generations,
            "phases": self.phases,
            "gc_spans": self.gc_spans,
            "frames_out": self.frames_out,
            "streams": self.streams,
            "cpu_seconds": usage.ru_utime + usage.ru_stime - self.cpu_start,
        }


def measured(app: Any, figures: Figures) -> Any:
    sampler: list[asyncio.Task[None]] = []

    async def sample_lag() -> None:
        # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
        while True:
            expected = time.perf_counter() + SAMPLE_SECONDS
            await asyncio.sleep(SAMPLE_SECONDS)
            figures.lag_ms.append(max(0.0, time.perf_counter() - expected) * 1000)
            figures.lag_at.append(time.monotonic())

    async def wrapper(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan" and not sampler:
            sampler.append(asyncio.create_task(sample_lag()))
        started = time.perf_counter()
        await app(scope, receive, send)
        if scope["type"] == "http" and scope["path"].endswith("/voice/gather"):
            figures.gather_ms.append((time.perf_counter() - started) * 1000)
        call = (scope.get("state") or {}).get("stream_call")
        if scope["type"] == "websocket" and call is not None:
            figures.turn_ms.extend(seconds * 1000 for seconds in call.turn_latencies)
            cpu = getattr(call.dialogue, "turn_cpu_seconds", [])
            figures.turn_cpu_ms.extend(seconds * 1000 for seconds in cpu)
            figures.frames_out += call.frames_out
            figures.streams += 1

    return wrapper


def time_collections(figures: Figures) -> None:
    started: list[float] = []

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.thread_time(), time.perf_counter()]
        elif started:
            figures.gc_ms.append((time.thread_time() - started[0]) * 1000)
            figures.gc_generations.append(info["generation"])
            figures.gc_spans.append((started[1], time.perf_counter()))

    gc.callbacks.append(on_collection)


TURN: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "bench_turn", default=None
)


def time_phases(figures: Figures) -> None:
    """Stamp each streamed turn's phases (perf_counter) by wrapping the code on its path;
    the turn's dict rides a context variable into its worker thread and synthesis tasks:

    ended       the final transcript event ended the utterance (the code's own stamp)
    turn_in     the call's turn task took the utterance and called the dialogue
    thread_in   the worker thread began the turn
    commit_in   the turn's last commit began (engine, claims and writes done)
    commit_out  it returned
    thread_out  the worker thread ended
    turn_out    the loop had the turn's answer
    tts_call    the first phrase's synthesis was asked for (speak())
    tts_sent    its HTTP request went out
    tts_head    the response's headers arrived
    tts_byte    its first audio bytes
    frame       the first frame was sent to Twilio"""
    turn = twilio_media.CallDialogue.turn
    take_turn = twilio_media.CallDialogue._take_turn
    commit = Session.commit
    speak = voice_deepgram.Deepgram.speak
    media = voice_call.StreamCall._media

    async def timed_turn(self: twilio_media.CallDialogue, *args: Any) -> Any:
        call = self.websocket.state.stream_call
        stamps = {"ended": call._utterance_ended_at or 0.0, "turn_in": time.perf_counter()}
        TURN.set(stamps)
        said = await turn(self, *args)
        stamps["turn_out"] = time.perf_counter()
        return said

    def timed_take_turn(self: twilio_media.CallDialogue, session: Session, *args: Any) -> str:
        stamps = TURN.get()
        if stamps is not None:
            stamps["thread_in"] = time.perf_counter()
        try:
            return take_turn(self, session, *args)
        finally:
            if stamps is not None:
                stamps["thread_out"] = time.perf_counter()

    def timed_commit(self: Session) -> None:
        stamps = TURN.get()
        started = time.perf_counter()
        commit(self)
        if stamps is not None and "thread_in" in stamps and "thread_out" not in stamps:
            stamps["commit_in"], stamps["commit_out"] = started, time.perf_counter()

    async def timed_speak(self: voice_deepgram.Deepgram, text: str) -> Any:
        stamps = TURN.get()
        first = stamps is not None and "tts_call" not in stamps
        if first:
            stamps["tts_call"] = time.perf_counter()
        async for chunk in speak(self, text):
            if first and "tts_byte" not in stamps:
                stamps["tts_byte"] = time.perf_counter()
            yield chunk

    async def timed_media(self: voice_call.StreamCall, frame: bytes) -> None:
        stamps = TURN.get()
        if self._utterance_ended_at is not None and stamps is not None:
            stamps["frame"] = time.perf_counter()
            figures.phases.append(stamps)
        await media(self, frame)

    send = voice_aura._Connection.send
    next_event = voice_aura._Connection.next_event

    def timed_send(self: voice_aura._Connection, *args: Any) -> None:
        send(self, *args)
        stamps = TURN.get()
        if stamps is not None and "tts_sent" not in stamps:
            stamps["tts_sent"] = time.perf_counter()

    async def timed_next_event(self: voice_aura._Connection, *args: Any) -> Any:
        event = await next_event(self, *args)
        stamps = TURN.get()
        if stamps is not None and "tts_head" not in stamps:
            stamps["tts_head"] = time.perf_counter()
        return event

    twilio_media.CallDialogue.turn = timed_turn  # type: ignore[method-assign]
    twilio_media.CallDialogue._take_turn = timed_take_turn  # type: ignore[method-assign]
    Session.commit = timed_commit  # type: ignore[method-assign]
    voice_deepgram.Deepgram.speak = timed_speak  # type: ignore[method-assign]
    voice_call.StreamCall._media = timed_media  # type: ignore[method-assign]
    voice_aura._Connection.send = timed_send  # type: ignore[method-assign]
    voice_aura._Connection.next_event = timed_next_event  # type: ignore[method-assign]


async def heap() -> JSONResponse:
    """What a full garbage collection walks (the oldest generation, frozen objects
    aside), by type, and how long one takes now: after a run, to see what lasts."""
    oldest = gc.get_objects(generation=2)
    kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in oldest)
    started = time.perf_counter()
    gc.collect()
    return JSONResponse(
        {
            "oldest_generation": len(oldest),
            "frozen": gc.get_freeze_count(),
            "full_collection_ms": (time.perf_counter() - started) * 1000,
            "kinds": kinds.most_common(30),
        }
    )


def main(port: int, database_url: str, fake_url: str) -> None:
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        public_base_url=f"http://127.0.0.1:{port}",
        twilio_auth_token=TWILIO_TOKEN,
        deepgram_api_key=FAKE_KEY,
        deepgram_api_url=fake_url,
        deepgram_ws_url=fake_url.replace("http://", "ws://"),
        stream_silence_seconds=120.0,
        rate_limit_webhook="1000000/minute",
        rate_limit_default="1000000/minute",
        log_level="WARNING",
    )
    figures = Figures()
    time_phases(figures)
    app = create_app(settings, engine=InstantEngine())
    time_collections(figures)

    async def stream_stats(reset: int = 0) -> JSONResponse:
        report = figures.report()
        if reset:
            figures.reset()
        return JSONResponse(report)

    app.add_api_route("/_bench/stream_stats", stream_stats, methods=["GET"])

    app.add_api_route("/_bench/heap", heap, methods=["GET"])
    config = uvicorn.Config(
        measured(app, figures),
        log_level="warning",
        access_log=False,
        ws="websockets-sansio",
        ws_per_message_deflate=False,  # as `serve` runs it
    )
    uvicorn.Server(config).run(sockets=[loopback_socket(port)])


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
