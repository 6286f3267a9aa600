"""Signed SMS turns through the whole path (signature, idempotency, routing, offline
engine, database, TwiML) against a real server, vs a bare endpoint returning static TwiML
in the same server, same run.

32 concurrent conversations (one caller and agent each) on SQLite. Throughput in closed
loops (ratio of turns/s, target >= 0.35); latency with each conversation texting about
every half second, still far faster than people do (target p99 <= 50 ms).

    .venv/bin/python bench/sms_webhook.py
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

import httpx
from _phone_server import TWILIO_TOKEN, Latencies, caller_number, load, running_server
from twilio.request_validator import RequestValidator

WORKERS = int(os.environ.get("BENCH_WORKERS", 32))
PER_WORKER = int(os.environ.get("BENCH_PER_WORKER", 45))
ROUNDS = 3
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


def merged(parts: list[Latencies]) -> Latencies:
    return Latencies(
        parts[0].label,
        [x for part in parts for x in part.seconds],
        sum(part.failures for part in parts),
    )


async def main(base: str) -> int:
    url = base + PATH

    async def turn(client: httpx.AsyncClient, worker: int, i: int) -> bool:
        params = form(worker, DIALOGUE[i % len(DIALOGUE)])
        signature = validator.compute_signature(url, params)
        response = await client.post(url, data=params, headers={"X-Twilio-Signature": signature})
        return response.status_code == 200 and "<Message>" in response.text

    async def bare(client: httpx.AsyncClient, worker: int, i: int) -> bool:
        response = await client.post(base + "/_bench/twiml", data=form(worker, "hi"))
        return response.status_code == 200 and "<Message>" in response.text

    # Warm up both paths (imports, caches, the SQLite file) before measuring.
    await load("warm-up", WORKERS, 2, turn)
    await load("warm-up", WORKERS, 2, bare)

    # Throughput: closed loops, no pause; the ratio of turns/s in the same server and run.
    # Rounds alternate the two paths so drift on a shared machine hits both alike; the
    # median round's ratio is reported.
    rounds: list[tuple[float, float]] = []
    fulls, bases = [], []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        fulls.append(await load("SMS turn, closed loop", WORKERS, PER_WORKER // ROUNDS, turn))
        full_rate = len(fulls[-1].seconds) / (time.perf_counter() - began)
        began = time.perf_counter()
        bases.append(await load("static TwiML, closed loop", WORKERS, PER_WORKER // ROUNDS, bare))
        rounds.append((full_rate, len(bases[-1].seconds) / (time.perf_counter() - began)))
    full, baseline = merged(fulls), merged(bases)
    full_rate, bare_rate = sorted(rounds, key=lambda r: r[0] / r[1])[len(rounds) // 2]
    # Latency: the same 32 conversations texting like people, a message every ~PAUSE s.
    paced = await load("SMS turn, paced", WORKERS, PACED_TURNS, turn, pause=PAUSE)
    paced_bare = await load("static TwiML, paced", WORKERS, PACED_TURNS, bare, pause=PAUSE)

    print(f"{WORKERS} concurrent conversations on SQLite")
    for result in (full, baseline, paced, paced_bare):
        print(result.line())
    ratio = full_rate / bare_rate
    print(
        f"turns/s (closed loop, median of {ROUNDS} alternating rounds): whole path "
        f"{full_rate:.0f}, baseline {bare_rate:.0f}, ratio {ratio:.2f} (target >= 0.35)"
    )
    print(
        f"paced p99 {paced.p99:.1f} ms vs baseline {paced_bare.p99:.1f} ms "
        f"(ratio p50 x{paced.p50 / paced_bare.p50:.2f}; target p99 <= 50 ms)"
    )
    ok = ratio >= 0.35 and paced.p99 <= 50 and not (full.failures or paced.failures)
    print(f"targets: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    with running_server(agents=WORKERS) as server:
        raise SystemExit(asyncio.run(main(server)))
