"""CPU of a webhook turn in process: the whole ASGI app, no network, no load generator.

The same app, data and signed requests as bench/turn_cost.py, called straight through
ASGI one request at a time on SQLite, so the figure is the server's own CPU per request
(time.process_time) without wrk, sockets or other processes' noise: steadier than the
wrk figures on a shared machine, and the place to profile from (BENCH_PROFILE=sms|gather|
vapi|static writes cProfile stats of that path to bench/out/<path>.prof and prints the top).

    .venv/bin/python bench/turn_cpu.py
    BENCH_DB=postgres .venv/bin/python bench/turn_cpu.py     # a scratch PostgreSQL database
    BENCH_TURNS=300 BENCH_PROFILE=sms .venv/bin/python bench/turn_cpu.py
"""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pydantic import SecretStr
from turn_cost import (
    TWILIO_TOKEN,
    VAPI_SECRET,
    Signer,
    database,
    gather_lines,
    seed,
    sms_lines,
    static_lines,
    vapi_lines,
    voice_lines,
)

from app.config import Settings
from app.main import create_app, settle_heap
from app.webhooks import budget

TURNS = int(os.environ.get("BENCH_TURNS", 400))
# Under `valgrind --tool=callgrind --instr-atstart=no`: instrument only that path's batch
# (callgrind_control toggles it and dumps one file per path), so each dump's Ir count is
# that path's own instructions: steady where CPU time on a busy machine is not.
#   BENCH_TURNS=30 BENCH_CALLGRIND=sms,vapi,gather valgrind --tool=callgrind \
#     --instr-atstart=no .venv/bin/python bench/turn_cpu.py
CALLGRIND = os.environ.get("BENCH_CALLGRIND", "")
BUDGETS = ("sms_turn_budget_seconds", "voice_turn_budget_seconds", "vapi_budget_seconds")
PATHS = os.environ.get("BENCH_PATHS", "sms,vapi,voice").split(",")  # e.g. one under py-spy
PROFILE = os.environ.get("BENCH_PROFILE", "")
OUT = Path(__file__).resolve().parent / "out"
BASE = "http://127.0.0.1:19799"


async def call(app: Any, line: str) -> bytes:
    """One request from a turn_cost line (path, header name, header value, type, body)."""
    path, header, value, content_type, body = line.split("\t", 4)
    raw_path, _, query = path.partition("?")
    headers = [(b"host", b"127.0.0.1:19799"), (b"content-type", content_type.encode())]
    headers.append((b"content-length", str(len(body)).encode()))
    if header:
        headers.append((header.lower().encode(), value.encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 19799),
    }
    sent = False
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return b"".join(chunks)


def _callgrind(*action: str) -> None:
    subprocess.run(
        ["callgrind_control", *action, str(os.getpid())], check=True, capture_output=True
    )


_worker_profiler: list[cProfile.Profile] = []
_run_job = budget._run


def _profiled_run(context: Any, work: Callable[[], Any], *rest: Any) -> Any:
    """The turn's worker thread (app/webhooks/budget.py), profiling its work when asked
    (cProfile sees one thread only; requests run one at a time here)."""
    if _worker_profiler:
        profiler = _worker_profiler[0]
        return _run_job(context, lambda: profiler.runcall(work), *rest)
    return _run_job(context, work, *rest)


budget._run = _profiled_run


async def measure(app: Any, label: str, lines: Iterator[str], expect: str) -> float:
    batch = list(lines)
    profiler = cProfile.Profile() if PROFILE and PROFILE in label.lower() else None
    if profiler:
        _worker_profiler.append(cProfile.Profile())
    if profiler:
        profiler.enable()
    counted = any(part and label.lower().startswith(part) for part in CALLGRIND.split(","))
    if counted:
        _callgrind("-z")  # one action per call: callgrind_control keeps only the last
        _callgrind("-i", "on")
    # CPU per request of each fifth of the batch: the lowest is the least disturbed by
    # other processes (they only ever add: cache misses, frequency, scheduler).
    chunks = []
    size = max(1, len(batch) // 5)
    for first in range(0, len(batch), size):
        start = time.process_time()
        for line in batch[first : first + size]:
            answer = await call(app, line)
            assert expect.encode() in answer, (label, answer[:300])
        chunks.append((time.process_time() - start) / len(batch[first : first + size]) * 1000)
    if counted:
        _callgrind("-i", "off")
        _callgrind(f"--dump={label}")
    if profiler:
        profiler.disable()
        worker = _worker_profiler.pop()
    cpu = min(chunks)
    middle = sorted(chunks)[len(chunks) // 2]
    print(
        f"{label:<24} {len(batch):>5} requests  CPU {cpu:6.2f} ms/req "
        f"(lowest fifth; median {middle:6.2f})"
    )
    if profiler:
        OUT.mkdir(exist_ok=True)
        target = OUT / f"{PROFILE}.prof"
        stats = pstats.Stats(profiler)
        if worker.getstats():  # a path that never leaves the loop has no worker stats
            stats.add(worker)
        stats.dump_stats(target)
        stats.sort_stats("cumulative").print_stats(45)
    return cpu


async def run(url: str, line: str) -> None:
    settings = Settings(
        _env_file=None,
        database_url=url,
        public_base_url=BASE,
        bench_endpoints=True,
        rate_limit_webhook="1000000/minute",
        rate_limit_default="1000000/minute",
        rate_limit_pin="1000000/minute",
        log_level="WARNING",
        # Under valgrind a turn takes ~50x longer: no turn may fall back to its apology.
        **(dict.fromkeys(BUDGETS, 600.0) if CALLGRIND else {}),
        twilio_auth_token=SecretStr(TWILIO_TOKEN),
        vapi_secret=SecretStr(VAPI_SECRET),
    )
    app = create_app(settings)
    if os.environ.get("BENCH_NO_FREEZE") != "1":
        settle_heap()  # as create_default_app does for the server
    signer = Signer(BASE)
    async with app.router.lifespan_context(app):
        # Warm-up: imports, caches, first queries.
        await measure(app, "warm-up sms", sms_lines(signer, line, 10**6, 40), "<Message>")
        # FastAPI builds an included router's routes on the first request that walks them.
        await measure(app, "warm-up static", static_lines(40), "<Message>")
        await measure(app, "static TwiML", static_lines(TURNS), "<Message>")
        if "sms" in PATHS:
            await measure(app, "SMS turn", sms_lines(signer, line, 0, TURNS), "<Message>")
        if "vapi" in PATHS:
            await measure(app, "VAPI book_appointment", vapi_lines(TURNS), '"results"')
        if "voice" in PATHS:
            await measure(app, "voice call answered", voice_lines(signer, line, TURNS), "<Say")
            await measure(app, "Gather turn", gather_lines(signer, line, TURNS), "<Say")


def main() -> None:
    kind = os.environ.get("BENCH_DB", "sqlite")
    with tempfile.TemporaryDirectory() as folder, database(kind, Path(folder)) as url:
        print(f"{kind}: {TURNS} requests a path, in process")
        line = seed(url)
        asyncio.run(run(url, line))


if __name__ == "__main__":
    main()
