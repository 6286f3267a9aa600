"""Admin list endpoints over 100,000 appointments on PostgreSQL: p50/p99 per page, and the
ratio against a bare endpoint (/healthz) through the same app and middleware, same run.

    .venv/bin/python bench/admin_list.py [postgresql://postgres@127.0.0.1:5432/postgres]

Creates a scratch database, fills it, measures, drops it. Target: p99 <= 30 ms per page.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, select, text
from sqlalchemy.engine import make_url

from app.admin.pagination import Order, paginate
from app.config import Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.main import create_app
from app.models import Agent, Appointment, Conversation, User, new_id
from app.security import api_keys
from app.security.api_keys import Role
from bench.stats import report

BASE = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres"
APPOINTMENTS = 100_000
AGENTS = 10
REQUESTS = 400
TARGET_P99_MS = 30.0


def scratch_database() -> tuple[str, str]:
    url = make_url(BASE.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"bench_admin_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, url.set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    url = make_url(BASE.replace("postgresql://", "postgresql+psycopg://", 1))
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def fill(settings: Settings) -> tuple[str, list[str]]:
    engine = make_engine(settings)
    upgrade_to_head(engine)
    factory = make_session_factory(engine)
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with factory() as session:
        user = User(name="Bench Owner")
        session.add(user)
        session.flush()
        agent_ids = []
        for i in range(AGENTS):
            agent = Agent(user_id=user.id, name=f"agent {i}", timezone="UTC")
            session.add(agent)
            session.flush()
            agent_ids.append(agent.id)
        rows = []
        for n in range(APPOINTMENTS):
            agent_id = agent_ids[n % AGENTS]
            slot = start + timedelta(minutes=30 * (n // AGENTS))
            rows.append(
                {
                    "id": new_id("apt"),
                    "agent_id": agent_id,
                    "appointment_type": "consultation",
                    "start_at": slot,
                    "end_at": slot + timedelta(minutes=30),
                    "status": "cancelled" if n % 7 == 0 else "confirmed",
                    "contact_e164": f"+1415555{n % 10000:04d}",
                    "idempotency_key": f"bench-{n}",
                    "channel": ("sms", "voice", "vapi")[n % 3],
                    "sync_status": "not_applicable",
                    "sync_attempts": 0,
                    "created_at": slot - timedelta(days=3),
                    "updated_at": slot - timedelta(days=3),
                }
            )
        for chunk in range(0, len(rows), 10_000):
            session.execute(insert(Appointment), rows[chunk : chunk + 10_000])
        session.execute(
            insert(Conversation),
            [
                {
                    "id": new_id("cnv"),
                    "channel": "sms",
                    "external_id": f"bench-{n}",
                    "caller_e164": f"+1415555{n:04d}",
                    "agent_id": agent_ids[n % AGENTS],
                    "state": {},
                    "details": {},
                    "status": "active",
                    "created_at": start + timedelta(minutes=n),
                    "updated_at": start + timedelta(minutes=n),
                }
                for n in range(5000)
            ],
        )
        key = api_keys.create_key(session, name="bench", role=Role.ADMIN).plaintext
        session.commit()
        session.execute(text("ANALYZE"))
        session.commit()
    engine.dispose()
    return key, agent_ids


def measure(client: TestClient, name: str, paths: list[str], headers: dict[str, str]) -> dict:
    for path in paths[:20]:  # warm-up: pool connections, plan caches
        client.get(path, headers=headers)
    samples = []
    for i in range(REQUESTS):
        path = paths[i % len(paths)]
        begin = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append((time.perf_counter() - begin) * 1000)
        assert response.status_code == 200, response.text
    return report(name, samples)


def measure_sql(settings: Settings, agent_id: str, cursors: list[str | None]) -> dict:
    """The page query alone (same paginate() the endpoint uses), to separate database
    time from HTTP and process scheduling on a shared machine."""
    engine = make_engine(settings)
    factory = make_session_factory(engine)
    order = Order(Appointment.start_at, Appointment.id)
    query = select(Appointment).where(Appointment.agent_id == agent_id)
    samples = []
    with factory() as session:
        for i in range(REQUESTS + 20):
            begin = time.perf_counter()
            paginate(session, query, order, cursors[i % len(cursors)], 50)
            session.rollback()
            if i >= 20:
                samples.append((time.perf_counter() - begin) * 1000)
    engine.dispose()
    return report("  SQL only: appointments by agent page", samples)


def cursor_walk(client: TestClient, first: str, headers: dict[str, str], pages: int) -> list[str]:
    """Page URLs deep into the list (every 5th page kept), following next_cursor."""
    paths, path = [], first
    for page in range(pages):
        if page % 5 == 0:
            paths.append(path)
        cursor = client.get(path, headers=headers).json()["next_cursor"]
        path = f"{first}&cursor={cursor}"
    return paths


def main() -> None:
    name, url = scratch_database()
    try:
        settings = Settings(
            _env_file=None,
            database_url=url,
            rate_limit_default="1000000/minute",
            rate_limit_admin="1000000/minute",
            redis_url=None,
        )
        t0 = time.perf_counter()
        key, agent_ids = fill(settings)
        print(f"filled {APPOINTMENTS} appointments in {time.perf_counter() - t0:.1f} s")
        headers = {"Authorization": f"Bearer {key}"}
        app = create_app(settings)
        with TestClient(app) as client:
            bare = measure(client, "bare GET /healthz (baseline)", ["/healthz"], {})
            agent = agent_ids[3]
            lists = {
                "appointments by agent, deep pages": cursor_walk(
                    client, f"/admin/v1/appointments?agent_id={agent}&limit=50", headers, 100
                ),
                "appointments confirmed, deep pages": cursor_walk(
                    client, "/admin/v1/appointments?status=confirmed&limit=50", headers, 100
                ),
                "appointments by date range": [
                    f"/admin/v1/appointments?date_from=2026-03-0{d}&date_to=2026-03-0{d}&limit=50"
                    for d in range(1, 8)
                ],
                "conversations, deep pages": cursor_walk(
                    client, "/admin/v1/conversations?limit=50", headers, 60
                ),
            }
            by_agent = lists["appointments by agent, deep pages"]
            cursors = [parse_qs(urlparse(p).query).get("cursor", [None])[0] for p in by_agent]
            worst = 0.0
            for label, paths in lists.items():
                result = measure(client, label, paths, headers)
                worst = max(worst, result["p99"])
                print(
                    f"{'':<44} ratio vs bare: p50 x{result['p50'] / bare['p50']:.1f}"
                    f"  p99 x{result['p99'] / bare['p99']:.1f}"
                )
        measure_sql(settings, agent, cursors)
        verdict = "OK" if worst <= TARGET_P99_MS else "OVER TARGET"
        print(f"worst p99 per page: {worst:.2f} ms (target <= {TARGET_P99_MS} ms): {verdict}")
    finally:
        drop_database(name)


if __name__ == "__main__":
    main()
