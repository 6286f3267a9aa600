"""Token vault: encrypt+decrypt latency, and `keys rotate` throughput on PostgreSQL.

Baseline in the same run: a plain single Fernet doing the same encrypt+decrypt. The vault
is measured with three keys, decrypting tokens written under the oldest one (the worst
case during a rotation). Rotation: 100,000 tokens in a scratch PostgreSQL database
(created and dropped here; BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432/test).

    .venv/bin/python bench/vault.py
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.models import Agent, CalendarConnection, User
from app.security.vault import TokenVault, generate_key, rotate_all
from bench.stats import report

ROUNDS = 20_000
TOKENS = 100_000
TOKEN = "1//0g" + secrets.token_urlsafe(75)  # the shape of a Google refresh token


def crypto() -> None:
    keys = [generate_key() for _ in range(3)]
    plain = Fernet(keys[0].encode())
    vault = TokenVault(keys)
    oldest = Fernet(keys[-1].encode())
    base: list[float] = []
    ours: list[float] = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        plain.decrypt(plain.encrypt(TOKEN.encode()))
        base.append((time.perf_counter() - started) * 1000)
        old_ciphertext = oldest.encrypt(TOKEN.encode()).decode()
        started = time.perf_counter()
        vault.encrypt(TOKEN)
        vault.decrypt(old_ciphertext)
        ours.append((time.perf_counter() - started) * 1000)
    b = report("baseline: single Fernet encrypt+decrypt", base)
    o = report("vault (3 keys, oldest-key token) enc+dec", ours)
    print(f"ratio vault/baseline: p50 {o['p50'] / b['p50']:.2f}x  p99 {o['p99'] / b['p99']:.2f}x")


def rotation() -> None:
    base_url = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    url = make_url(base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"bench_vault_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        scratch = url.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(Settings(_env_file=None, database_url=scratch))
        upgrade_to_head(engine)
        session_factory = make_session_factory(engine)
        old, new = generate_key(), generate_key()
        old_vault = TokenVault([old])
        ciphertext = [old_vault.encrypt(f"{TOKEN}{n}") for n in range(TOKENS)]
        with session_factory() as session:
            session.add(User(id="usr_bench", name="bench"))
            session.flush()
            session.execute(
                insert(Agent),
                [
                    {"id": f"agt_{n:08d}", "user_id": "usr_bench", "name": "a"}
                    for n in range(TOKENS)
                ],
            )
            session.execute(
                insert(CalendarConnection),
                [
                    {"id": f"cal_{n:08d}", "agent_id": f"agt_{n:08d}", "encrypted_refresh_token": c}
                    for n, c in enumerate(ciphertext)
                ],
            )
            session.commit()
        batches: list[float] = []
        last = [time.perf_counter()]

        def tick(_: object) -> None:
            now = time.perf_counter()
            batches.append((now - last[0]) * 1000)
            last[0] = now

        started = time.perf_counter()
        result = rotate_all(session_factory, TokenVault([new, old]), batch_size=1000, progress=tick)
        elapsed = time.perf_counter() - started
        print(
            f"keys rotate: {result.rotated} tokens in {elapsed:.2f} s = "
            f"{result.rotated / elapsed:,.0f} tokens/s (PostgreSQL, batches of 1000)"
        )
        report("rotate: one batch of 1000 (commit included)", batches)
        started = time.perf_counter()
        again = rotate_all(session_factory, TokenVault([new, old]), batch_size=1000)
        print(
            f"re-run (nothing to do): {again.already_current} checked in "
            f"{time.perf_counter() - started:.2f} s"
        )
        engine.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    crypto()
    rotation()
