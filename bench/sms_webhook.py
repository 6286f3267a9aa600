"""Signed SMS turns through the whole path (signature, idempotency, routing, offline
engine, database, TwiML) against a real server, vs a bare endpoint returning static TwiML
in the same server, same run.

32 concurrent conversations (one caller and agent each) on SQLite. Throughput from wrk
with pre-signed requests (ratio of turns/s to static TwiML in the same run; the old
Python-client loop could not load the static endpoint past ~300 req/s, so its ratio
measured the client); latency with each conversation texting about every half second,
still far faster than people do (target p99 <= 50 ms). bench/turn_cost.py has the full
report (CPU per turn, round trips, PostgreSQL).

    .venv/bin/python bench/sms_webhook.py
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import httpx
from _phone_server import TWILIO_TOKEN, Latencies, caller_number, load, prepare_database
from _proc import serve
from turn_cost import SECONDS, Bench, Run, static_lines
from twilio.request_validator import RequestValidator

WORKERS = int(os.environ.get("BENCH_WORKERS", 32))
PACED_TURNS = int(os.environ.get("BENCH_PACED_TURNS", 20))
# Seconds between a conversation's messages in the paced phase (people text slower).
PAUSE = float(os.environ.get("BENCH_PAUSE", 0.5))
PATH = "/webhooks/twilio/sms/inbound"
DIALOGUE = [
    "hi, can I book a consultation tomorrow at 3pm?",
    "yes",
    "what appointments do I have?",
    "what do you have on friday morning?",
    "asdf",
    "never mind",
]
validator = RequestValidator(TWILIO_TOKEN)


def form(worker: int, body: str) -> dict[str, str]:
    sid = "SM" + secrets.token_hex(16)
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": caller_number(worker),
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }


def signed_lines(public: str, count: int) -> list[str]:
    """Distinct pre-signed turns for wrk: request i is conversation i % WORKERS texting
    the next line of the dialogue, so every request is a real turn."""
    url = public + PATH
    lines = []
    for i in range(count):
        params = form(i % WORKERS, DIALOGUE[(i // WORKERS) % len(DIALOGUE)])
        signature = validator.compute_signature(url, params)
        body = urlencode(params)
        lines.append(
            f"{PATH}\tX-Twilio-Signature\t{signature}\tapplication/x-www-form-urlencoded\t{body}"
        )
    return lines


def throughput(bench: Bench, base: str) -> tuple[Run, Run]:
    """Closed loops from wrk (the Python client topped out near 300 req/s, so the old
    baseline measured the client); the same server and run for both paths."""
    bench.run("warm-up static", static_lines(1000), "<Message>", seconds=2)
    bench.run("warm-up turns", iter(signed_lines(base, 500)), "<Message>", seconds=2)
    static = bench.run("static TwiML", static_lines(20_000), "<Message>", seconds=SECONDS)
    turns = bench.run("SMS turn", iter(signed_lines(base, 20_000)), "<Message>", seconds=SECONDS)
    return static, turns


async def paced(base: str) -> tuple[Latencies, Latencies]:
    """Latency with each conversation texting about every PAUSE s (people are slower):
    ~64 requests/s, well within what the Python client can send."""
    url = base + PATH

    async def turn(client: httpx.AsyncClient, worker: int, i: int) -> bool:
        params = form(worker, DIALOGUE[i % len(DIALOGUE)])
        signature = validator.compute_signature(url, params)
        response = await client.post(url, data=params, headers={"X-Twilio-Signature": signature})
        return response.status_code == 200 and "<Message>" in response.text

    async def bare(client: httpx.AsyncClient, worker: int, i: int) -> bool:
        response = await client.post(base + "/_bench/twiml", data=form(worker, "hi"))
        return response.status_code == 200 and "<Message>" in response.text

    subject = await load("SMS turn, paced", WORKERS, PACED_TURNS, turn, pause=PAUSE)
    baseline = await load("static TwiML, paced", WORKERS, PACED_TURNS, bare, pause=PAUSE)
    return subject, baseline


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        prepare_database(url, WORKERS)
        with serve(url, {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN}) as (base, pid):
            bench = Bench(base, pid, Path(folder))
            static, turns = throughput(bench, base)
            subject, baseline = asyncio.run(paced(base))
    print(f"{WORKERS} concurrent conversations on SQLite; wrk for throughput")
    print(static.line(None))
    print(turns.line(static))
    for result in (subject, baseline):
        print(result.line())
    ratio = turns.rate / static.rate
    print(f"turns/s ratio {ratio:.3f} vs static TwiML in the same run (target >= 0.05)")
    print(
        f"paced p99 {subject.p99:.1f} ms vs baseline {baseline.p99:.1f} ms "
        f"(ratio p50 x{subject.p50 / baseline.p50:.2f}; target p99 <= 50 ms)"
    )
    ok = ratio >= 0.05 and subject.p99 <= 50 and not (turns.bad or subject.failures)
    print(f"targets: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
