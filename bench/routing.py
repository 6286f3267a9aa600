"""Caller-ID routing with 1,000,000 registered numbers on PostgreSQL (target p99 ≤ 1 ms).

Loads a scratch database with COPY, then times app.routing.route() for random known and
unknown callers, against a baseline `SELECT 1` round trip on the same connection.

    .venv/bin/python bench/routing.py [--numbers 1000000] [--url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import random
import secrets
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.config import Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.routing import Route, route
from bench.stats import report

AGENTS = 1_000
LOOKUPS = 5_000


def number(index: int) -> str:
    return f"+1{2_000_000_000 + index * 7}"


def load(url: str, numbers: int) -> None:
    engine = make_engine(Settings(_env_file=None, database_url=url))
    upgrade_to_head(engine)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy("COPY users (id, name, created_at) FROM STDIN") as copy:
            for i in range(AGENTS):
                copy.write_row((f"usr_b{i}", f"user {i}", "2026-01-01T00:00:00Z"))
        agent_columns = (
            "id, user_id, name, timezone, weekly_hours, appointment_types, slot_step_minutes, "
            "min_notice_minutes, horizon_days, greeting, instructions, caller_id_policy, "
            "language, calendar_provider, active, created_at"
        )
        with cursor.copy(f"COPY agents ({agent_columns}) FROM STDIN") as copy:
            for i in range(AGENTS):
                copy.write_row(
                    (
                        f"agt_b{i}",
                        f"usr_b{i}",
                        "agent",
                        "UTC",
                        "{}",
                        "[]",
                        15,
                        60,
                        60,
                        "",
                        "",
                        "open",
                        "en-US",
                        "local",
                        True,
                        "2026-01-01T00:00:00Z",
                    )
                )
        with cursor.copy(
            "COPY phone_numbers (id, e164, purpose, user_id, verified_at, created_at) FROM STDIN"
        ) as copy:
            for i in range(numbers):
                copy.write_row(
                    (
                        f"pn_b{i}",
                        number(i),
                        "caller",
                        f"usr_b{i % AGENTS}",
                        "2026-01-01T00:00:00Z",
                        "2026-01-01T00:00:00Z",
                    )
                )
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def measure(url: str, numbers: int) -> None:
    engine = make_engine(Settings(_env_file=None, database_url=url))
    factory = make_session_factory(engine)
    rng = random.Random(1)
    baseline, known, unknown = [], [], []
    with factory() as session:
        for _ in range(200):  # warm the pool, caches and plans
            route(session, number(rng.randrange(numbers)), "+15005550006")
        for _ in range(LOOKUPS):
            began = time.perf_counter()
            session.execute(text("SELECT 1"))
            baseline.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            result = route(session, number(rng.randrange(numbers)), "+15005550006")
            known.append((time.perf_counter() - began) * 1000)
            assert isinstance(result, Route)
            began = time.perf_counter()
            route(session, "+13105550000", "+15005550006")
            unknown.append((time.perf_counter() - began) * 1000)
            session.expunge_all()
    engine.dispose()
    base = report("SELECT 1 round trip (baseline)", baseline)
    hit = report(f"route() known caller, {numbers:,} numbers", known)
    miss = report("route() unknown caller", unknown)
    print(
        f"ratio route/baseline p50: {hit['p50'] / base['p50']:.2f}x   "
        f"target p99 <= 1 ms: {'met' if hit['p99'] <= 1 and miss['p99'] <= 1 else 'MISSED'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    base = make_url(args.url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"bench_routing_{secrets.token_hex(3)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        began = time.perf_counter()
        load(url, args.numbers)
        print(f"loaded {args.numbers:,} numbers in {time.perf_counter() - began:.1f} s")
        measure(url, args.numbers)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
