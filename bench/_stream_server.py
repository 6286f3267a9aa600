"""The server side of bench/stream_voice.py, run in its own process so its CPU and event
loop are measured alone: the real app (create_app) with an engine that answers at once,
wrapped to time Gather turns and collect each stream's turn latencies, plus an event-loop
lag sampler. GET /_bench/stream_stats reports (and with ?reset=1 restarts) the figures.

    python bench/_stream_server.py <port> <database url> <fake deepgram url>
"""

from __future__ import annotations

import asyncio
import gc
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from app.agent.engine import Reply, Turn  # noqa: E402
from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.voice.fake_deepgram import FAKE_KEY, loopback_socket  # noqa: E402

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
        self.frames_out = 0
        self.streams = 0
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

    def on_collection(phase: str, _: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.thread_time()]
        elif started:
            figures.gc_ms.append((time.thread_time() - started[0]) * 1000)

    gc.callbacks.append(on_collection)


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
    app = create_app(settings, engine=InstantEngine())
    figures = Figures()
    time_collections(figures)

    async def stream_stats(reset: int = 0) -> JSONResponse:
        report = figures.report()
        if reset:
            figures.reset()
        return JSONResponse(report)

    app.add_api_route("/_bench/stream_stats", stream_stats, methods=["GET"])
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
