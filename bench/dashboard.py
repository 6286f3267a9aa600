"""Owner dashboard pages with 1,000 upcoming appointments on the agenda (one an hour,
so a week's page holds 168): p50/p99 per
page as the browser sees it over loopback, the ratio against a static file served by the
same server in the same run, and the server process's CPU per request.

    .venv/bin/python bench/dashboard.py [DATABASE_URL]

Default: a scratch SQLite file. With a postgresql:// URL a scratch database is created
there and dropped afterwards. The server runs as its own uvicorn process on 127.0.0.1
(port 18861), so its CPU is read from /proc without the client's. Target: p99 <= 50 ms.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.dashboard import auth
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.demo import load_demo
from app.models import Appointment, Conversation, Message, OwnerSession, new_id
from bench.stats import report

PORT = 18861
UPCOMING = 1000
PAST = 5000
REQUESTS = 300
TARGET_P99_MS = 50.0
TICKS = os.sysconf("SC_CLK_TCK")


def scratch(base: str | None) -> tuple[str, str | None]:
    if not base:
        return f"sqlite:///{tempfile.mkdtemp(prefix='bench-dash-')}/bench.db", None
    url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"bench_dash_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False), name


def drop(base: str, name: str) -> None:
    url = make_url(base.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _appointment(agent_id: str, n: int, start: datetime, now: datetime) -> dict[str, object]:
    return {
        "id": new_id("apt"),
        "agent_id": agent_id,
        "appointment_type": ("consultation", "haircut")[n % 2],
        "start_at": start,
        "end_at": start + timedelta(minutes=30),
        "status": "confirmed",
        "contact_e164": f"+1415555{n % 10000:04d}",
        "contact_name": f"Client {n}" if n % 3 else None,
        "idempotency_key": f"bench-{start.isoformat()}",
        "channel": ("sms", "voice", "vapi")[n % 3],
        "sync_status": "not_applicable",
        "sync_attempts": 0,
        "created_at": now - timedelta(days=n % 30, hours=n % 5),
        "updated_at": now,
    }


def fill(settings: Settings) -> tuple[str, str, str]:
    """Demo owner + agent, 1,000 upcoming and 5,000 past appointments, one conversation
    with 40 turns; returns (agent id, conversation id, session cookie)."""
    engine = make_engine(settings)
    upgrade_to_head(engine)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with make_session_factory(engine)() as session:
        demo = load_demo(session)
        upcoming = [
            _appointment(demo.agent_id, n, now + timedelta(hours=2 + n), now)
            for n in range(UPCOMING)
        ]
        past = [
            _appointment(demo.agent_id, n, now - timedelta(hours=2 + n), now) for n in range(PAST)
        ]
        session.execute(insert(Appointment), upcoming + past)
        chat = Conversation(
            channel="sms", external_id="bench", caller_e164="+14155550177", agent_id=demo.agent_id
        )
        session.add(chat)
        session.flush()
        session.execute(
            insert(Message),
            [
                {
                    "conversation_id": chat.id,
                    "direction": "in" if i % 2 else "out",
                    "body": "x" * 80,
                }
                for i in range(40)
            ],
        )
        token = secrets.token_urlsafe(32)
        session.add(
            OwnerSession(
                token_hash=auth.token_hash(token),
                user_id=demo.user_id,
                expires_at=now + timedelta(hours=2),
                created_at=now,
            )
        )
        session.commit()
        if engine.dialect.name == "postgresql":
            session.execute(text("ANALYZE"))
            session.commit()
        chat_id = chat.id
    engine.dispose()
    return demo.agent_id, chat_id, token


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def measure(client: httpx.Client, pid: int, name: str, path: str) -> dict[str, float]:
    for _ in range(20):  # warm-up: connections, template and plan caches
        assert client.get(path).status_code == 200
    samples = []
    cpu0 = cpu_seconds(pid)
    for _ in range(REQUESTS):
        begin = time.perf_counter()
        response = client.get(path)
        samples.append((time.perf_counter() - begin) * 1000)
        assert response.status_code == 200, response.text[:300]
    cpu = (cpu_seconds(pid) - cpu0) / REQUESTS * 1000
    result = report(name, samples)
    result["cpu_ms"] = cpu
    print(f"{'':<44} server CPU {cpu:6.2f} ms/request")
    return result


def start_server(url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "RATE_LIMIT_DEFAULT": "1000000/minute",
        "LOG_LEVEL": "WARNING",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{PORT}",
    }
    command = [
        sys.executable, "-m", "uvicorn", "app.main:create_default_app", "--factory",
        "--host", "127.0.0.1", "--port", str(PORT), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=Path(__file__).resolve().parent.parent)
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{PORT}/healthz", timeout=0.5)
            return server
        except httpx.HTTPError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("server did not start")


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else None
    url, scratch_name = scratch(base)
    server = None
    try:
        settings = Settings(_env_file=None, database_url=url, redis_url=None)
        t0 = time.perf_counter()
        agent_id, chat_id, token = fill(settings)
        print(f"{make_url(url).get_backend_name()}: {UPCOMING} upcoming + {PAST} past "
              f"appointments in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        server = start_server(url)
        cookies = {auth.SESSION_COOKIE: token}
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", cookies=cookies) as client:
            baseline = measure(
                client,
                server.pid,
                "static dashboard.css (baseline)",
                "/dashboard/static/dashboard.css",
            )
            ahead = (datetime.now(UTC) + timedelta(days=35)).date().isoformat()
            pages = {
                "agenda, this week (of 1,000 upcoming)": f"/dashboard/a/{agent_id}/agenda",
                "agenda, 5 weeks ahead": f"/dashboard/a/{agent_id}/agenda?start={ahead}",
                "insights (30 days)": f"/dashboard/a/{agent_id}/insights",
                "settings": f"/dashboard/a/{agent_id}/settings",
                "conversations": f"/dashboard/a/{agent_id}/conversations",
                "conversation (40 turns)": f"/dashboard/a/{agent_id}/conversations/{chat_id}",
            }
            worst = 0.0
            for name, path in pages.items():
                result = measure(client, server.pid, name, path)
                print(f"{'':<44} ratio p50 {result['p50'] / baseline['p50']:5.1f}x baseline")
                worst = max(worst, result["p99"])
        verdict = "meets" if worst <= TARGET_P99_MS else "MISSES"
        print(f"worst page p99 {worst:.1f} ms: {verdict} the {TARGET_P99_MS:.0f} ms target")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if base and scratch_name:
            drop(base, scratch_name)


if __name__ == "__main__":
    main()
