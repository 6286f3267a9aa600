"""Does any turn wait on another's transaction? Two server processes on PostgreSQL.

Starts `python -m app serve --workers N` (default 2) on a private PostgreSQL database,
sends distinct signed SMS turns with wrk (each from a new caller, so no two turns share
a conversation or a slot: no real conflict exists), and samples pg_stat_activity and
pg_locks every few milliseconds from another connection. Prints throughput, server CPU
per turn, how often a backend of the service was waiting on a lock (and on what: the
lock type, the relation or advisory lock, the waiting query), and the transactions
waited on. The goal is zero lock waits: audit entries no longer take a chain lock.

    .venv/bin/python bench/pg_contention.py
    BENCH_SERVER_WORKERS=4 BENCH_SECONDS=10 .venv/bin/python bench/pg_contention.py
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from _proc import postgres_database, serve
from sqlalchemy import create_engine, text
from turn_cost import (
    REQUESTS,
    SECONDS,
    TWILIO_TOKEN,
    VAPI_SECRET,
    Bench,
    Signer,
    seed,
    sms_lines,
)

WORKERS = int(os.environ.get("BENCH_SERVER_WORKERS", 2))
INTERVAL = float(os.environ.get("BENCH_SAMPLE_SECONDS", 0.005))

WAITING = text(
    """
    SELECT a.pid, a.wait_event_type, a.wait_event, left(a.query, 80) AS query,
           l.locktype, l.mode, l.relation::regclass::text AS relation, l.objid,
           pg_blocking_pids(a.pid) AS blockers
    FROM pg_stat_activity a
    LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
      AND a.state <> 'idle'
    """
)


class Sampler(threading.Thread):
    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
        self.stop = threading.Event()
        self.samples = 0
        self.busy = 0
        self.waits: Counter[str] = Counter()

    def run(self) -> None:
        with self.engine.connect() as connection:
            while not self.stop.is_set():
                rows = connection.execute(WAITING).all()
                connection.rollback()
                self.samples += 1
                self.busy += len(rows)
                for row in rows:
                    if row.wait_event_type == "Lock":
                        what = row.relation or (f"advisory {row.objid}" if row.objid else "")
                        self.waits[f"{row.locktype} {row.mode} {what} :: {row.query}"] += 1
                time.sleep(INTERVAL)
        self.engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, postgres_database() as url:
        line = seed(url)
        env = {"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "VAPI_SECRET": VAPI_SECRET}
        with serve(url, env, workers=WORKERS) as (base, pid):
            bench = Bench(base, pid, Path(tmp), WORKERS)
            signer = Signer(base)
            bench.run("warm-up", sms_lines(signer, line, 10**6, 400), "<Message>", seconds=2)
            sampler = Sampler(url)
            sampler.start()
            run = bench.run("SMS turn", sms_lines(signer, line, 0, REQUESTS), "<Message>")
            sampler.stop.set()
            sampler.join()
    print(f"PostgreSQL, {WORKERS} server processes, {SECONDS} s of distinct SMS turns")
    print(run.line(None))
    waiting = sum(sampler.waits.values())
    print(
        f"{sampler.samples} samples of pg_stat_activity/pg_locks: "
        f"{sampler.busy / max(sampler.samples, 1):.2f} busy backends on average, "
        f"{waiting} backend-samples waiting on a lock"
    )
    for what, count in sampler.waits.most_common(10):
        print(f"  {count:6d}  {what}")
    print("no turn waited on another's transaction" if not waiting else "lock waits seen above")


if __name__ == "__main__":
    main()
