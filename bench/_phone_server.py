"""Shared by the phone benchmarks: a real server (uvicorn, app.main:create_default_app) on
127.0.0.1 over a temporary SQLite database with N agents, each reached by its own
verified caller number, open round the clock so a run never runs out of free slots;
plus load generation and percentiles.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db import make_engine, make_session_factory, upgrade_to_head  # noqa: E402
from app.models import Agent, PhoneNumber, User, utcnow  # noqa: E402
from bench._proc import wait_until_up  # noqa: E402

VAPI_SECRET = "bench-vapi-secret"
TWILIO_TOKEN = "bench-twilio-token"
ALL_DAY = [["00:00", "23:59"]]
TYPES = [
    {
        "key": "consultation",
        "name": "consultation",
        "duration_minutes": 30,
        "buffer_before_minutes": 0,
        "buffer_after_minutes": 10,
    }
]


def caller_number(index: int) -> str:
    return f"+1415555{index:04d}"


def prepare_database(url: str, agents: int) -> None:
    engine = make_engine(Settings(_env_file=None, database_url=url))
    upgrade_to_head(engine)
    with make_session_factory(engine)() as session:
        for index in range(agents):
            user = User(name=f"Bench Owner {index}")
            session.add(user)
            session.flush()
            agent = Agent(
                user_id=user.id,
                name=f"Bench line {index}",
                timezone="UTC",
                weekly_hours={
                    day: ALL_DAY for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                },
                appointment_types=TYPES,
                greeting="Hi, this is the bench line.",
                horizon_days=365,
                caller_id_policy="open",
            )
            session.add(agent)
            session.flush()
            session.add(
                PhoneNumber(
                    e164=caller_number(index),
                    purpose="caller",
                    user_id=user.id,
                    agent_id=agent.id,
                    verified_at=utcnow(),
                )
            )
        session.commit()
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(agents: int = 32) -> Iterator[str]:
    """Yield the base URL of a fresh server; stop it (and drop its database) at the end."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        prepare_database(url, agents)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "PUBLIC_BASE_URL": base,
            "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "VAPI_SECRET": VAPI_SECRET,
            "BENCH_ENDPOINTS": "true",
            "RATE_LIMIT_WEBHOOK": "1000000/minute",
            "RATE_LIMIT_DEFAULT": "1000000/minute",
            "RATE_LIMIT_PIN": "1000000/minute",
            "LOG_LEVEL": "WARNING",
        }
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "app.main:create_default_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        server = subprocess.Popen(command, cwd=ROOT, env=env)
        try:
            wait_until_up(base, server, seconds=30)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


@dataclass
class Latencies:
    label: str
    seconds: list[float]
    failures: int = 0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    @property
    def p50(self) -> float:
        return self.percentile(0.50)

    @property
    def p99(self) -> float:
        return self.percentile(0.99)

    def line(self) -> str:
        mean = statistics.fmean(self.seconds) * 1000
        return (
            f"{self.label:<28} n={len(self.seconds):<5} p50={self.p50:7.2f} ms  "
            f"p99={self.p99:7.2f} ms  mean={mean:7.2f} ms  failures={self.failures}"
        )


async def load(
    label: str,
    workers: int,
    per_worker: int,
    request: Callable[[httpx.AsyncClient, int, int], Awaitable[bool]],
    pause: float = 0.0,
) -> Latencies:
    """`workers` concurrent loops of `per_worker` requests; request(client, worker, i)
    returns whether the answer was right. With `pause`, each loop waits that long (±50%)
    between its requests, as a person between two messages: latency at a realistic load
    rather than the queue of a closed loop."""
    result = Latencies(label, [])
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def worker(index: int) -> None:
            jitter = random.Random(index)
            if pause:
                await asyncio.sleep(jitter.uniform(0, pause))
            for i in range(per_worker):
                started = time.perf_counter()
                ok = await request(client, index, i)
                result.seconds.append(time.perf_counter() - started)
                if not ok:
                    result.failures += 1
                if pause:
                    await asyncio.sleep(jitter.uniform(0.5 * pause, 1.5 * pause))

        await asyncio.gather(*(worker(w) for w in range(workers)))
    return result


def report(subject: Latencies, baseline: Latencies, target_p99_ms: float) -> int:
    print(subject.line())
    print(baseline.line())
    print(
        f"ratio vs baseline: p50 x{subject.p50 / baseline.p50:.2f}  "
        f"p99 x{subject.p99 / baseline.p99:.2f}"
    )
    verdict = "PASS" if subject.p99 <= target_p99_ms and not subject.failures else "FAIL"
    print(f"target p99 <= {target_p99_ms:.0f} ms: {verdict}")
    return 0 if verdict == "PASS" else 1
