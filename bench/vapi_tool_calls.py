"""book_appointment through VAPI tool-calls on the built-in calendar, 32 calls at once,
vs a bare JSON endpoint in the same server and run.

Each concurrent call books its own agent's calendar (one verified caller per agent), a
new free slot every time, so every request is a real booking.

    .venv/bin/python bench/vapi_tool_calls.py   # target: p99 <= 50 ms
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta

import httpx
from _phone_server import VAPI_SECRET, caller_number, load, report, running_server

WORKERS = int(os.environ.get("BENCH_WORKERS", 32))
# Seconds between one call's requests (±50%): callers speak for seconds between turns;
# BENCH_PAUSE=0 measures closed loops (queueing) instead.
PAUSE = float(os.environ.get("BENCH_PAUSE", 0.5))
PER_WORKER = int(os.environ.get("BENCH_PER_WORKER", 40))
HEADERS = {"X-Vapi-Secret": VAPI_SECRET, "Content-Type": "application/json"}
SLOTS_PER_DAY = 31  # 45-minute spacing from 00:00: a 30-minute booking plus its buffer
FIRST_DAY = (datetime.now(UTC) + timedelta(days=2)).replace(
    hour=0, minute=0, second=0, microsecond=0
)


def start_of(i: int) -> str:
    day, slot = divmod(i, SLOTS_PER_DAY)
    return (FIRST_DAY + timedelta(days=day, minutes=45 * slot)).isoformat()


def body(worker: int, i: int, prefix: str) -> bytes:
    number = caller_number(worker)
    call = {
        "id": f"{prefix}_{worker}_{i}",
        "type": "function",
        "function": {
            "name": "book_appointment",
            "arguments": json.dumps({"start": start_of(i), "name": f"Caller {worker}"}),
        },
    }
    message = {
        "type": "tool-calls",
        "call": {"id": f"call_tc_{worker}", "customer": {"number": number}},
        "customer": {"number": number},
        "toolCallList": [call],
    }
    return json.dumps({"message": message}).encode()


async def main(base: str) -> int:
    async def book(client: httpx.AsyncClient, worker: int, i: int) -> bool:
        response = await client.post(
            f"{base}/webhooks/vapi", content=body(worker, i, "tc"), headers=HEADERS
        )
        results = response.json().get("results", []) if response.status_code == 200 else []
        return len(results) == 1 and "result" in results[0]

    async def bare(client: httpx.AsyncClient, worker: int, i: int) -> bool:
        response = await client.post(
            f"{base}/_bench/json", content=body(worker, i, "bare"), headers=HEADERS
        )
        return response.status_code == 200

    await load("warm-up", WORKERS, 5, bare)
    await load("warm-up", WORKERS, 2, lambda c, w, i: book(c, w, 1000 + i))
    baseline = await load("bare JSON (/_bench/json)", WORKERS, PER_WORKER, bare, pause=PAUSE)
    subject = await load("tool-calls book_appointment", WORKERS, PER_WORKER, book, pause=PAUSE)
    print(f"concurrency {WORKERS}, {WORKERS * PER_WORKER} requests each, pause {PAUSE} s")
    return report(subject, baseline, target_p99_ms=50)


if __name__ == "__main__":
    with running_server(agents=WORKERS) as base:
        code = asyncio.run(main(base))
    raise SystemExit(code)
