"""The per-frame cost of streamed calls alone: BENCH_CALLS (50) callers dial, hear the
greeting and then send 20 ms frames of silence (no turns) for BENCH_SECONDS (15), against
the server of bench/stream_voice.py (bench/_stream_server.py, its own process) and the
fake Deepgram (another). Over the part where every call streams it prints the server's
CPU per inbound frame (the figure to compare: it holds under load), the event-loop lag
and the garbage collections; turns are left out, so what remains is the loop's work of
moving frames from Twilio to Deepgram. One call is talked to its end first, as on a
server that has served calls. BENCH_HEAP=1 also prints what full collections walk.

    .venv/bin/python bench/stream_frames.py
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _phone_server import prepare_database  # noqa: E402
from stats import percentile  # noqa: E402
from stream_voice import (  # noqa: E402
    Bench,
    free_port,
    line,
    load,
    process,
    streaming_agents,
)

from app.stream_sim import StreamedCall, wait_for_reply  # noqa: E402

CALLS = int(os.environ.get("BENCH_CALLS", 50))
SECONDS = float(os.environ.get("BENCH_SECONDS", 15))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", 4))
SETTLE_SECONDS = 3.0  # after the last greeting, before the window opens
FRAME_BYTES = 160


def silent_calls(server: str, fake: str, indices: list[int], seconds: float) -> int:
    """One client process: its calls dial, hear the greeting, stay silent, hang up."""

    async def main() -> int:
        bench = Bench(server, fake)
        calls = [bench.call(index) for index in indices]
        limits = httpx.Limits(max_connections=len(calls) + 10)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:

            async def silent(call: StreamedCall) -> None:
                await call.dial(http)
                await call.open_stream()
                await wait_for_reply(call, 0)
                await asyncio.sleep(seconds)
                await call.hang_up()

            await asyncio.gather(*(silent(call) for call in calls))
        return sum(call.late_ticks for call in calls)

    return asyncio.run(main())


async def run(server: str, fake: str) -> None:
    bench = Bench(server, fake)
    async with httpx.AsyncClient(timeout=30) as http:
        # One call first, talked to end, as a server that has already served calls is.
        await bench.converse(http, bench.call(199), 1, (0.1, 0.1), 10)
        before = await bench.fake_stats(http)
        shares = [list(range(200 + i, 200 + CALLS, CLIENTS)) for i in range(CLIENTS)]
        # Long enough for every dial and greeting, then the measured window.
        window_from = SETTLE_SECONDS + CALLS * 0.1 + 3
        seconds = window_from + SECONDS + 2
        with ProcessPoolExecutor(CLIENTS, mp_context=mp.get_context("spawn")) as pool:
            jobs = [
                asyncio.wrap_future(pool.submit(silent_calls, server, fake, share, seconds))
                for share in shares
            ]
            with contextlib.suppress(TimeoutError):  # (a call that fell back never does)
                async with asyncio.timeout(60 + CALLS):
                    while (await bench.fake_stats(http))["connections"] - before[
                        "connections"
                    ] < CALLS:
                        await asyncio.sleep(0.1)
            await asyncio.sleep(SETTLE_SECONDS)
            start = await bench.fake_stats(http)
            await bench.stats(http, reset=True)
            print("window open", flush=True)  # (a profiler may start now)
            await asyncio.sleep(SECONDS)
            figures = await bench.stats(http)
            if os.environ.get("BENCH_HEAP"):
                print((await http.get(f"{server}/_bench/heap")).json())
            end = await bench.fake_stats(http)
            late = sum(await asyncio.gather(*jobs))
    frames = (end["audio_bytes"] - start["audio_bytes"]) // FRAME_BYTES
    cpu = figures["cpu_seconds"]
    print(f"{CALLS} silent streamed calls, {SECONDS:.0f} s window, load average {load()}")
    print(f"  server CPU per inbound frame: {cpu / max(1, frames) * 1e6:.1f} us ({frames} frames)")
    print(f"  server CPU per call-second: {cpu / (CALLS * SECONDS) * 1000:.2f} ms")
    print(line("  server event-loop lag", figures["lag_ms"] or [0.0]))
    print(f"    share of lag samples over 5 ms: {over(figures['lag_ms'], 5.0):.2%}")
    for generation in range(3):
        ms = [
            cpu
            for cpu, of in zip(figures["gc_ms"], figures["gc_generations"], strict=True)
            if of == generation
        ]
        if ms:
            print(line(f"  gc generation {generation} (CPU each)", ms))
    print(f"  caller-side late 20 ms ticks: {late}")
    p99 = percentile(figures["lag_ms"] or [0.0], 0.99)
    print(f"  target lag p99 <= 5 ms: {'met' if p99 <= 5 else 'MISSED'}")


def over(samples: list[float], limit: float) -> float:
    return sum(sample > limit for sample in samples) / max(1, len(samples))


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        prepare_database(url, 200 + CALLS)
        streaming_agents(url)
        fake_port, server_port = free_port(), free_port()
        fake = f"http://127.0.0.1:{fake_port}"
        server = f"http://127.0.0.1:{server_port}"
        python = sys.executable
        fake_cmd = [python, "-m", "app", "voice", "fake-deepgram", "--port", str(fake_port)]
        server_cmd = [python, "bench/_stream_server.py", str(server_port), url, fake]
        started = time.monotonic()
        with process(fake_cmd, f"{fake}/_stats"), process(server_cmd, f"{server}/healthz"):
            asyncio.run(run(server, fake))
        print(f"  ({time.monotonic() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
