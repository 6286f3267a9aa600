"""assistant-request latency against a real server, vs a bare JSON endpoint in the same
server and run (both behind the same middleware and credential check).

    .venv/bin/python bench/vapi_assistant_request.py   # target: p99 <= 50 ms
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx
from _phone_server import VAPI_SECRET, caller_number, load, report, running_server

WORKERS = int(os.environ.get("BENCH_WORKERS", 8))
# Seconds between one call's requests (±50%): callers speak for seconds between turns;
# BENCH_PAUSE=0 measures closed loops (queueing) instead.
PAUSE = float(os.environ.get("BENCH_PAUSE", 0.5))
PER_WORKER = int(os.environ.get("BENCH_PER_WORKER", 40))
HEADERS = {"X-Vapi-Secret": VAPI_SECRET, "Content-Type": "application/json"}


def body(worker: int, i: int) -> bytes:
    number = caller_number(worker)
    message = {
        "type": "assistant-request",
        "phoneNumber": {"number": "+15005550006"},
        "customer": {"number": number},
        "call": {"id": f"call_ar_{worker}_{i}", "customer": {"number": number}},
    }
    return json.dumps({"message": message}).encode()


async def main(base: str) -> int:
    async def assistant(client: httpx.AsyncClient, worker: int, i: int) -> bool:
        response = await client.post(
            f"{base}/webhooks/vapi", content=body(worker, i), headers=HEADERS
        )
        return response.status_code == 200 and "assistant" in response.json()

    async def bare(client: httpx.AsyncClient, worker: int, i: int) -> bool:
        response = await client.post(
            f"{base}/_bench/json", content=body(worker, i), headers=HEADERS
        )
        return response.status_code == 200

    await load("warm-up", WORKERS, 10, bare)
    await load("warm-up", WORKERS, 5, lambda c, w, i: assistant(c, w, 10_000 + i))
    baseline = await load("bare JSON (/_bench/json)", WORKERS, PER_WORKER, bare, pause=PAUSE)
    subject = await load("assistant-request", WORKERS, PER_WORKER, assistant, pause=PAUSE)
    print(f"concurrency {WORKERS}, {WORKERS * PER_WORKER} requests each, pause {PAUSE} s")
    return report(subject, baseline, target_p99_ms=50)


if __name__ == "__main__":
    with running_server(agents=WORKERS) as base:
        code = asyncio.run(main(base))
    raise SystemExit(code)
