"""Streamed calls (Twilio Media Streams + Deepgram), against a real server process, the
fake Deepgram in another process, and callers played by app/stream_sim.StreamedCall.

1. Our own time per turn: from the final transcript event reaching the server to the
   first reply audio frame sent to Twilio, with the engine and Deepgram answering at once
   (target p99 <= 15 ms), side by side with the Gather turn's server time in the same run,
   and the worker thread's CPU per turn. BENCH_TURN_CALLS (8) calls talk at once, each
   pausing 0.1-0.6 s (seeded) between turns as callers do, not in lockstep. Each turn's
   phases are stamped in the server (thread hops, the commit, the synthesis round trip,
   garbage collection) and reported at p50, p99 and over the slowest 5% of turns, so the
   tail can be told apart from the machine's load. BENCH_CALLS=0 runs only this part.
2. BENCH_CALLS (50) concurrent streamed calls for BENCH_SECONDS (15) each: the server's
   event-loop lag p99 (target <= 5 ms) over the whole run and over the steady part (all
   calls streaming, the 50 dials and greetings done), server CPU per call-second, frames
   dropped (target 0) in both directions. The callers run in BENCH_CLIENTS (4) processes.

The server, the fake Deepgram and the callers are separate processes, so the server's
CPU and loop lag are its own. Wall figures depend on the machine's load: the load
average is printed with them; the CPU figures hold under load.

    .venv/bin/python bench/stream_voice.py
    BENCH_DB=postgres .venv/bin/python bench/stream_voice.py   # a scratch PostgreSQL database
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _phone_server import caller_number, prepare_database  # noqa: E402
from _proc import postgres_database  # noqa: E402
from _stream_server import TWILIO_TOKEN  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from stats import percentile  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from app.config import Settings  # noqa: E402
from app.stream_sim import StreamedCall, wait_for_reply  # noqa: E402
from app.voice.fake_deepgram import loopback_socket  # noqa: E402

CALLS = int(os.environ.get("BENCH_CALLS", 50))
SECONDS = float(os.environ.get("BENCH_SECONDS", 15))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", 4))
TURN_CALLS = int(os.environ.get("BENCH_TURN_CALLS", 8))
TURNS = int(os.environ.get("BENCH_TURNS", 50))
DATABASE = os.environ.get("BENCH_DB", "sqlite")
PHRASES = ["what do you have tomorrow afternoon", "is friday morning free", "next week then"]
AGENT_NUMBER = "+15005550006"
FRAME_SECONDS = 0.02  # each inbound media frame: 20 ms of the caller's audio
GREETING_SECONDS = 2.0  # the greeting's audio, played at 20 ms a frame


def load() -> str:
    return " ".join(f"{figure:.2f}" for figure in os.getloadavg())


def free_port() -> int:
    sock = loopback_socket()
    port = sock.getsockname()[1]
    sock.close()
    return port


@contextmanager
def process(command: list[str], ready: str) -> Iterator[None]:
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            if child.poll() is not None:
                raise SystemExit(f"{command[1:3]} exited with {child.returncode}")
            try:
                if httpx.get(ready, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{ready} did not come up")
            time.sleep(0.1)
        yield
    finally:
        child.terminate()
        child.wait(timeout=10)


def line(label: str, samples: list[float], unit: str = "ms") -> str:
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    return f"{label:<40} n={len(samples):<6} p50={p50:7.2f} {unit}  p99={p99:7.2f} {unit}"


class Bench:
    def __init__(self, server: str, fake: str) -> None:
        self.server = server
        self.fake = fake
        self.settings = Settings(
            _env_file=None, public_base_url=server, twilio_auth_token=TWILIO_TOKEN
        )

    def call(self, index: int) -> StreamedCall:
        return StreamedCall(self.settings, self.server, caller_number(index), AGENT_NUMBER)

    async def converse(
        self,
        http: httpx.AsyncClient,
        call: StreamedCall,
        turns: int,
        gaps: tuple[float, float],
        seconds: float,
    ) -> None:
        """Dial, hear the greeting, then talk for `seconds` (or `turns`) and hang up."""
        pause = random.Random(call.caller)  # seeded: the same pauses in every run
        await call.dial(http)
        await call.open_stream()
        await wait_for_reply(call, 0)
        until = time.monotonic() + seconds
        done = 0
        while done < turns and time.monotonic() < until and not call.closed.is_set():
            before = call.heard_whole
            call.say(PHRASES[done % len(PHRASES)])
            await wait_for_reply(call, before)
            done += 1
            await asyncio.sleep(pause.uniform(*gaps))
        await call.hang_up()

    async def gather_turns(self, http: httpx.AsyncClient, index: int, turns: int) -> None:
        call = self.call(index)
        await call.dial(http)  # opens the conversation; the stream itself is not used
        validator = RequestValidator(TWILIO_TOKEN)
        for turn in range(1, turns + 1):
            public = f"{self.server}/webhooks/twilio/voice/gather?turn={turn}"
            params = call.form(SpeechResult=PHRASES[turn % len(PHRASES)], Confidence="0.9")
            headers = {"X-Twilio-Signature": validator.compute_signature(public, params)}
            response = await http.post(public, data=params, headers=headers)
            assert "Shall I book it" in response.text, response.text[:200]

    async def stats(self, http: httpx.AsyncClient, reset: bool = False) -> dict:
        response = await http.get(
            f"{self.server}/_bench/stream_stats", params={"reset": int(reset)}
        )
        return response.json()

    async def fake_stats(self, http: httpx.AsyncClient) -> dict:
        return (await http.get(f"{self.fake}/_stats")).json()

    async def turn_latency(self, http: httpx.AsyncClient) -> None:
        await self.stats(http, reset=True)
        calls = [self.call(i) for i in range(TURN_CALLS)]
        await asyncio.gather(*(self.converse(http, c, TURNS, (0.1, 0.6), 600) for c in calls))
        await asyncio.gather(*(self.gather_turns(http, 100 + i, TURNS) for i in range(TURN_CALLS)))
        figures = await self.stats(http, reset=True)
        stream, gather = figures["turn_ms"], figures["gather_ms"]
        above = len(stream) - 1 - round(0.99 * (len(stream) - 1))
        print(f"load average {load()}; {len(stream)} turns, {above} of them above p99")
        print(line("streamed turn (final transcript -> 1st frame)", stream))
        print(line("gather turn (server time, baseline)", gather))
        print(line("  streamed turn CPU (its worker thread)", figures["turn_cpu_ms"] or [0.0]))
        for q in (0.5, 0.99):
            ratio = percentile(stream, q) / percentile(gather, q)
            print(f"  ratio streamed/gather at p{int(q * 100)}: {ratio:.2f}")
        print(f"  target p99 <= 15 ms: {'met' if percentile(stream, 0.99) <= 15 else 'MISSED'}")
        phases(figures["phases"], figures["gc_spans"])

    async def concurrent(self, http: httpx.AsyncClient) -> None:
        before = await self.fake_stats(http)
        await self.stats(http, reset=True)
        # The callers run in CLIENTS processes, so the load generator is not the bottleneck.
        shares = [list(range(200 + i, 200 + CALLS, CLIENTS)) for i in range(CLIENTS)]
        started = time.monotonic()
        with ProcessPoolExecutor(CLIENTS, mp_context=mp.get_context("spawn")) as pool:
            jobs = [
                asyncio.wrap_future(pool.submit(play_calls, self.server, self.fake, share))
                for share in shares
            ]
            steady_from = await self.all_streaming(http, before)
            cpu_from = (await self.stats(http))["cpu_seconds"]
            steady_until = await self.first_hang_up(http, before)
            cpu_until = (await self.stats(http))["cpu_seconds"]
            parts = await asyncio.gather(*jobs)
        elapsed = time.monotonic() - started
        # Deepgram has had every frame once each stream it opened is closed (a call whose
        # stream fell back to <Gather> under load opened none, or dropped it).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                while not await self.all_closed(http, before):
                    await asyncio.sleep(0.1)
        after = await self.fake_stats(http)
        fallbacks = CALLS - (after["connections"] - before["connections"])
        figures = await self.stats(http)
        sent_in = sum(part["frames_sent"] for part in parts)
        lost_in = sent_in - (after["audio_bytes"] - before["audio_bytes"]) // 160
        lost_out = figures["frames_out"] - sum(part["frames_received"] for part in parts)
        call_seconds = sum(part["call_seconds"] for part in parts)
        lag = figures["lag_ms"]
        steady = [
            ms
            for ms, at in zip(lag, figures["lag_at"], strict=True)
            if steady_from <= at <= steady_until
        ]
        print(f"{CALLS} concurrent streamed calls, {CLIENTS} client processes, {elapsed:.1f} s")
        print(f"  load average {load()}")
        print(line("  server event-loop lag, whole run", lag))
        print(line("  server event-loop lag, all calls streaming", steady or [0.0]))
        met = steady and percentile(steady, 0.99) <= 5
        print(f"  target lag p99 <= 5 ms (all calls streaming): {'met' if met else 'MISSED'}")
        cpu = figures["cpu_seconds"]
        print(f"  server CPU {cpu:.2f} s = {cpu / call_seconds * 1000:.2f} ms per call-second")
        audio_seconds = sent_in * FRAME_SECONDS
        turns = len(figures["turn_ms"])
        print(
            f"  server CPU per second of caller audio: {cpu / audio_seconds * 1000:.2f} ms"
            f" ({audio_seconds:.0f} s of audio, {turns} turns)"
        )
        print(line("  garbage collections (CPU each)", figures["gc_ms"] or [0.0]))
        steady_cpu = (cpu_until - cpu_from) / (CALLS * max(0.001, steady_until - steady_from))
        print(f"  server CPU per call-second, all calls streaming: {steady_cpu * 1000:.2f} ms")
        print(f"  frames in (caller->Deepgram) sent {sent_in}, lost {lost_in}")
        print(f"  calls that fell back to <Gather> (no Deepgram stream): {fallbacks}")
        print(f"  calls that failed: {sum(part['failed'] for part in parts)}")
        print(f"  frames out (server->caller) sent {figures['frames_out']}, lost {lost_out}")
        late = sum(part["late_ticks"] for part in parts)
        print(f"  caller-side late 20 ms ticks (the load generator's own lag): {late}")

    async def all_streaming(self, http: httpx.AsyncClient, before: dict) -> float:
        """When every call has its Deepgram stream and has heard its greeting."""
        # (A call that fell back to <Gather> never opens one: then after a minute.)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                while (await self.fake_stats(http))["connections"] - before["connections"] < CALLS:
                    await asyncio.sleep(0.1)
        return time.monotonic() + GREETING_SECONDS

    async def first_hang_up(self, http: httpx.AsyncClient, before: dict) -> float:
        """When the first call's Deepgram stream closes: the end of the steady part."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SECONDS + 60):
                while (await self.fake_stats(http))["closed_streams"] == before["closed_streams"]:
                    await asyncio.sleep(0.1)
        return time.monotonic()

    async def all_closed(self, http: httpx.AsyncClient, before: dict) -> bool:
        now = await self.fake_stats(http)
        opened = now["connections"] - before["connections"]
        return now["closed_streams"] - before["closed_streams"] >= opened


# A streamed turn's stamps (bench/_stream_server.py), each as time since the utterance
# ended, and the spans that can make the tail.
STAMPS = [
    ("turn_in", "turn task runs"),
    ("thread_in", "worker thread begins"),
    ("commit_in", "commit begins (engine, writes done)"),
    ("tts_call", "synthesis asked for"),
    ("tts_sent", "synthesis request out"),
    ("commit_out", "commit returned"),
    ("thread_out", "worker thread ends"),
    ("turn_out", "loop has the turn's answer"),
    ("tts_head", "synthesis response headers"),
    ("tts_byte", "first audio bytes"),
    ("frame", "first frame sent to Twilio"),
]
SPANS = [
    ("thread_in", "turn_in", "hop to the worker thread"),
    ("commit_in", "thread_in", "turn before its commit"),
    ("commit_out", "commit_in", "commit (flush + COMMIT)"),
    ("turn_out", "thread_out", "hop back to the loop"),
    ("tts_byte", "tts_call", "synthesis round trip (ask -> 1st byte)"),
    ("frame", "turn_out", "answer on the loop -> 1st frame"),
]


def phases(turns: list[dict[str, float]], gc_spans: list[list[float]]) -> None:
    """Where a streamed turn's time goes, and what the slowest twentieth spend it on."""
    complete = [t for t in turns if all(name in t for name, _ in STAMPS)]
    if not complete:
        print("  (no phase stamps)")
        return

    def gc_in(turn: dict[str, float]) -> float:
        start, end = turn["ended"], turn["frame"]
        return sum(max(0.0, min(end, e) - max(start, s)) for s, e in gc_spans)

    slow = sorted(complete, key=lambda t: t["frame"] - t["ended"])[-max(1, len(complete) // 20) :]

    def row(label: str, of: Callable[[dict[str, float]], float]) -> None:
        column = [of(t) * 1000 for t in complete]
        mean_slow = sum(of(t) * 1000 for t in slow) / len(slow)
        p50, p99 = percentile(column, 0.5), percentile(column, 0.99)
        print(f"    {label:<42} {p50:7.2f} {p99:7.2f} {mean_slow:7.2f}")

    print(f"  {len(complete)} streamed turns (ms): p50, p99, mean of the slowest 5%")
    print("   since the utterance ended:")
    for name, label in STAMPS:
        row(label, lambda t, name=name: t[name] - t["ended"])
    print("   spans:")
    for end, start, label in SPANS:
        row(label, lambda t, end=end, start=start: t[end] - t[start])
    row("garbage collection within the turn", gc_in)


def play_calls(server: str, fake: str, indices: list[int]) -> dict[str, float]:
    """One client process: its share of the concurrent calls, for SECONDS."""

    async def main() -> dict[str, float]:
        bench = Bench(server, fake)
        calls = [bench.call(index) for index in indices]
        limits = httpx.Limits(max_connections=len(calls) + 10)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(bench.converse(http, c, 10_000, (1.5, 1.5), SECONDS) for c in calls),
                return_exceptions=True,
            )
            elapsed = time.monotonic() - started
            for call in calls:
                await call.close()
        return {
            "frames_sent": sum(c.frames_sent for c in calls),
            "frames_received": sum(c.frames_received for c in calls),
            "late_ticks": sum(c.late_ticks for c in calls),
            "call_seconds": len(calls) * elapsed,
            # A call the overloaded server did not answer with a stream, or that broke.
            "failed": sum(isinstance(outcome, Exception) for outcome in outcomes),
        }

    return asyncio.run(main())


def streaming_agents(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(text("UPDATE agents SET voice_mode = 'stream'"))
    engine.dispose()


async def run(server: str, fake: str) -> None:
    bench = Bench(server, fake)
    limits = httpx.Limits(max_connections=CALLS + 20)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await bench.turn_latency(http)
        if CALLS:
            await bench.concurrent(http)


@contextmanager
def database() -> Iterator[str]:
    """A scratch database: a SQLite file, or with BENCH_DB=postgres a PostgreSQL one."""
    if DATABASE.startswith("postgres"):
        with postgres_database() as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as folder:
        yield f"sqlite:///{folder}/bench.db"


def main() -> None:
    print(f"database: {DATABASE}")
    with database() as url:
        prepare_database(url, 200 + CALLS)
        streaming_agents(url)
        fake_port, server_port = free_port(), free_port()
        fake = f"http://127.0.0.1:{fake_port}"
        server = f"http://127.0.0.1:{server_port}"
        python = sys.executable
        fake_cmd = [
            python,
            "-m",
            "app",
            "voice",
            "fake-deepgram",
            "--port",
            str(fake_port),
            "--bytes-per-char",
            "16",
        ]
        server_cmd = [python, "bench/_stream_server.py", str(server_port), url, fake]
        with process(fake_cmd, f"{fake}/_stats"), process(server_cmd, f"{server}/healthz"):
            asyncio.run(run(server, fake))


if __name__ == "__main__":
    main()
