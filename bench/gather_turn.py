"""One speech turn of a Twilio voice call (<Gather> action callback: signature check,
routing, one engine turn, TwiML) against a real server, vs a bare endpoint in the same
server and run (/_bench/twiml when present, else /_bench/json).

    .venv/bin/python bench/gather_turn.py   # target: p99 <= 50 ms
"""

from __future__ import annotations

import asyncio
import os

import httpx
from _phone_server import TWILIO_TOKEN, caller_number, load, report, running_server
from twilio.request_validator import RequestValidator

WORKERS = int(os.environ.get("BENCH_WORKERS", 8))
# Seconds between one call's requests (±50%): callers speak for seconds between turns;
# BENCH_PAUSE=0 measures closed loops (queueing) instead.
PAUSE = float(os.environ.get("BENCH_PAUSE", 0.5))
PER_WORKER = int(os.environ.get("BENCH_PER_WORKER", 40))
PHRASES = [
    "what times do you have tomorrow afternoon",
    "is there anything on friday morning",
    "what about next week",
]
validator = RequestValidator(TWILIO_TOKEN)


def call_sid(worker: int) -> str:
    return f"CA{worker:032d}"


def params(worker: int, **extra: str) -> dict[str, str]:
    return {
        "CallSid": call_sid(worker),
        "AccountSid": "AC" + "0" * 32,
        "From": caller_number(worker),
        "To": "+15005550006",
        "Direction": "inbound",
        "CallStatus": "in-progress",
        **extra,
    }


async def signed_post(client: httpx.AsyncClient, url: str, form: dict[str, str]) -> httpx.Response:
    signature = validator.compute_signature(url, form)
    return await client.post(url, data=form, headers={"X-Twilio-Signature": signature})


async def main(base: str) -> int:
    async with httpx.AsyncClient(timeout=30) as client:
        for worker in range(WORKERS):
            form = params(worker, StirVerstat="TN-Validation-Passed-A", CallStatus="ringing")
            answer = await signed_post(client, f"{base}/webhooks/twilio/voice/inbound", form)
            assert answer.status_code == 200 and "<Gather" in answer.text, answer.text
        probe = await client.post(f"{base}/_bench/twiml", data={"x": "1"})
    bare_path = "/_bench/twiml" if probe.status_code == 200 else "/_bench/json"

    async def turn(client: httpx.AsyncClient, worker: int, i: int) -> bool:
        url = f"{base}/webhooks/twilio/voice/gather?turn={i + 1}"
        form = params(worker, SpeechResult=PHRASES[i % len(PHRASES)], Confidence="0.92")
        response = await signed_post(client, url, form)
        return (
            response.status_code == 200
            and "<Say" in response.text
            and "Sorry, something" not in response.text
        )

    async def bare(client: httpx.AsyncClient, worker: int, i: int) -> bool:
        form = params(worker, SpeechResult=PHRASES[i % len(PHRASES)])
        response = await signed_post(client, f"{base}{bare_path}", form)
        return response.status_code == 200

    await load("warm-up", WORKERS, 10, bare)
    baseline = await load(f"bare ({bare_path})", WORKERS, PER_WORKER, bare, pause=PAUSE)
    subject = await load("gather turn", WORKERS, PER_WORKER, turn, pause=PAUSE)
    print(f"concurrency {WORKERS}, {WORKERS * PER_WORKER} requests each, pause {PAUSE} s")
    return report(subject, baseline, target_p99_ms=50)


if __name__ == "__main__":
    with running_server(agents=WORKERS) as base:
        code = asyncio.run(main(base))
    raise SystemExit(code)
