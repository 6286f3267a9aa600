"""Reminders at scale on the production engine: procrastinate workers on PostgreSQL
sending through the real twilio client to the local fake Twilio (1 ms per request).

    .venv/bin/python bench/reminders.py [postgresql://postgres@127.0.0.1:5432/postgres]

Case 1: 10,000 reminders due in the same minute across 1,000 agents (each its own
sending number, SMS_SENDER_MPS=1), three `python -m app worker` processes: delivered
per second, lateness p50/p99 against the due time (negative: early), how early sending
started, and worker CPU per message. The reminders are written CASE_ONE_LEAD_SECONDS
ahead, as bookings write them hours ahead; the send planner spreads them back from the
due time at NOTIFY_THROUGHPUT_PER_SECOND (BENCH_THROUGHPUT).
Baseline (same run): the same twilio client sending to the same fake from three
threads with no database, no queue and no pacing.
Case 2: SMS_SENDER_MPS=1 on one sending number, 60 reminders due at the same moment:
how early sending starts, and whether any is late. BENCH_CASE=1 or 2 runs one case.
Every wait is bounded (DEADLINE_SECONDS); an unfinished case reports what was sent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import make_engine, upgrade_to_head
from app.fakes.twilio_rest import FakeTwilio
from app.models import Agent, Appointment, Notification, PhoneNumber, User, new_id
from app.notifications.outbound import Outbound, TwilioOutbound
from app.notifications.timing import EARLY_SHARE
from bench.stats import percentile

ROOT = Path(__file__).resolve().parent.parent
BASE = sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres"
ACCOUNT = "AC" + "b" * 32
TOKEN = "bench-token"
PORT = 18531
WORKERS = 3
DEADLINE_SECONDS = 420  # every wait in this benchmark is bounded
# What the send planner assumes the three workers send together (it plans with the
# measured rate instead when they fall behind). BENCH_THROUGHPUT overrides.
THROUGHPUT = float(os.environ.get("BENCH_THROUGHPUT", "100"))
# Reminders are written when the booking is made, long before they are due; the
# benchmark writes them this long ahead, enough for the planner to start early.
CASE_ONE_LEAD_SECONDS = 180


def scratch_database() -> tuple[str, object]:
    url = make_url(BASE.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"bench_reminders_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    return url.set(database=name).render_as_string(hide_password=False), admin


def drop_database(admin, name: str) -> None:  # type: ignore[no-untyped-def]
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def seed(engine, agents: int, per_agent: int, due: datetime, shared_sender: bool) -> None:  # type: ignore[no-untyped-def]
    users, agent_rows, lines, appointments, notes = [], [], [], [], []
    for a in range(agents):
        user_id, agent_id = new_id("usr"), new_id("agt")
        sender = "+15005550100" if shared_sender else f"+1500{a:07d}"
        users.append({"id": user_id, "name": f"Owner {a}", "created_at": due})
        agent_rows.append(
            {"id": agent_id, "user_id": user_id, "name": f"Agent {a}", "created_at": due}
        )
        if not shared_sender or a == 0:
            lines.append(
                {
                    "id": new_id("pn"),
                    "e164": sender,
                    "purpose": "agent_line",
                    "user_id": user_id,
                    "agent_id": agent_id,
                    "created_at": due,
                }
            )
        for r in range(per_agent):
            appointment_id = new_id("apt")
            start = due + timedelta(hours=2, minutes=30 * r)
            appointments.append(
                {
                    "id": appointment_id,
                    "agent_id": agent_id,
                    "appointment_type": "visit",
                    "start_at": start,
                    "end_at": start + timedelta(minutes=30),
                    "status": "confirmed",
                    "contact_e164": f"+1415{a:03d}{r:04d}",
                    "idempotency_key": appointment_id,
                    "channel": "sms",
                    "created_at": due,
                    "updated_at": due,
                    "sync_status": "not_applicable",
                    "sync_attempts": 0,
                }
            )
            notes.append(
                {
                    "id": new_id("ntf"),
                    "agent_id": agent_id,
                    "appointment_id": appointment_id,
                    "kind": "reminder",
                    "channel": "sms",
                    "to_e164": f"+1415{a:03d}{r:04d}",
                    "from_e164": sender,
                    "body": f"Reminder {a}/{r}",
                    "due_at": due,
                    # As the booking's planner writes it: at most 1/24 of the lead early.
                    "not_before": due - (start - due) * EARLY_SHARE,
                    "status": "scheduled",
                    "attempts": 0,
                    "dedupe_key": appointment_id,
                    "created_at": due,
                }
            )
    with engine.begin() as connection:
        connection.execute(insert(User), users)
        connection.execute(insert(Agent), agent_rows)
        connection.execute(insert(PhoneNumber), lines)
        for i in range(0, len(appointments), 2000):
            connection.execute(insert(Appointment), appointments[i : i + 2000])
            connection.execute(insert(Notification), notes[i : i + 2000])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_workers(database_url: str, fake: FakeTwilio, mps: float) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JOB_ENGINE": "procrastinate",
        "WORKER_CONCURRENCY": "3",
        "TWILIO_ACCOUNT_SID": ACCOUNT,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_API_BASE_URL": fake.url,
        "SMS_SENDER_MPS": str(mps),
        "NOTIFY_TICK_SECONDS": "1",
        "NOTIFY_THROUGHPUT_PER_SECOND": str(THROUGHPUT),
        "LOG_LEVEL": "WARNING",
    }
    return [
        subprocess.Popen(
            [sys.executable, "-m", "app", "worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
        )
        for _ in range(WORKERS)
    ]


def wait_done(engine, total: int, fake: FakeTwilio, workers) -> float:  # type: ignore[no-untyped-def]
    """Wait until every row is settled; the workers' CPU when the first message went
    out (so the CPU per message excludes the idle wait before a burst)."""
    stop = time.monotonic() + DEADLINE_SECONDS
    pause = threading.Event()
    cpu_at_first = None
    while time.monotonic() < stop:
        if cpu_at_first is None and fake.state.messages():
            cpu_at_first = sum(cpu_seconds(w.pid) for w in workers)
        with engine.connect() as connection:
            left = connection.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.status.in_(("scheduled", "sending")))
            )
        if left == 0:
            return cpu_at_first or 0.0
        if int(time.monotonic()) % 10 == 0:
            print(f"  ... {left} to go, {len(fake.state.messages())} sent", flush=True)
        pause.wait(0.5)
    print(f"  NOT DONE within {DEADLINE_SECONDS} s; figures below cover what was sent")
    return cpu_at_first or 0.0


def run_case(
    name: str,
    agents: int,
    per_agent: int,
    lead_s: float,
    mps: float,
    shared_sender: bool,
    fake: FakeTwilio,
) -> dict[str, float]:
    url, admin = scratch_database()
    database = make_url(url).database
    engine = make_engine(Settings(_env_file=None, database_url=url))
    try:
        upgrade_to_head(engine)
        from app.jobs.production import ensure_schema, libpq_url

        ensure_schema(libpq_url(url))
        fake.state.records.clear()
        workers = start_workers(url, fake, mps)
        try:
            due = datetime.now(UTC) + timedelta(seconds=lead_s)
            seed(engine, agents, per_agent, due, shared_sender)
            idle_cpu = wait_done(engine, agents * per_agent, fake, workers)
            cpu = sum(cpu_seconds(w.pid) for w in workers) - idle_cpu
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                try:
                    w.wait(10)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait(10)
        with engine.connect() as connection:
            statuses = dict(
                connection.execute(
                    select(Notification.status, func.count()).group_by(Notification.status)
                ).all()
            )
        records = fake.state.messages()
        lateness = [r.at - due.timestamp() for r in records]
        span = max(r.at for r in records) - min(r.at for r in records)
        result = {
            "sent": len(records),
            "per_second": len(records) / max(span, 1e-9),
            "late_p50": percentile(lateness, 0.5),
            "late_p99": percentile(lateness, 0.99),
            "late_max": max(lateness),
            "first_early": -min(lateness),
            "late_count": sum(1 for late in lateness if late > 0),
            "cpu_ms_per_message": 1000 * cpu / max(len(records), 1),
        }
        bodies = {r.get("Body") for r in records}
        print(f"\n{name}: statuses {statuses}; distinct messages {len(bodies)} of {len(records)}")
        return result
    finally:
        engine.dispose()
        drop_database(admin, database)


def baseline(fake: FakeTwilio, total: int) -> float:
    """Messages per second with the bare client, three threads, no database."""
    fake.state.records.clear()
    client = TwilioOutbound(ACCOUNT, TOKEN, base_url=fake.url, timeout=5)
    per_thread = total // 3

    def send(t: int) -> None:
        for i in range(per_thread):
            client.send_sms(Outbound(to=f"+1415{t:03d}{i:04d}", from_="+15005550100", body="b"))

    threads = [threading.Thread(target=send, args=(t,)) for t in range(3)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return per_thread * 3 / (time.perf_counter() - started)


def main() -> None:
    fake = FakeTwilio(ACCOUNT, TOKEN, PORT).start()
    fake.state.latency = 0.001
    only = os.environ.get("BENCH_CASE")  # "1" or "2" to run one case
    try:
        if only == "2":
            report_case_two(fake)
            return
        base_rate = baseline(fake, 3000)
        print(f"baseline: bare twilio client, 3 threads, no DB: {base_rate:8.1f} msg/s")
        one = run_case(
            "case 1: 10,000 reminders, 1,000 agents/numbers, 3 workers",
            1000,
            10,
            CASE_ONE_LEAD_SECONDS,
            1.0,
            False,
            fake,
        )
        print(
            f"  delivered/s {one['per_second']:8.1f}  (ratio to baseline "
            f"{one['per_second'] / base_rate:5.2f})"
        )
        print(
            f"  lateness vs due: p50 {one['late_p50']:+7.2f} s  p99 {one['late_p99']:+7.2f} s"
            f"  max {one['late_max']:+7.2f} s  (negative = early)"
        )
        print(
            f"  sending started {one['first_early']:.1f} s before the due time "
            f"(planner assumes {THROUGHPUT:.0f} msg/s); late messages: {one['late_count']}"
        )
        print(f"  worker CPU per message {one['cpu_ms_per_message']:.2f} ms")
        if only != "1":
            report_case_two(fake)
    finally:
        fake.stop()


def report_case_two(fake: FakeTwilio) -> None:
    two = run_case(
        "case 2: SMS_SENDER_MPS=1, one number, 60 due at once", 1, 60, 150, 1.0, True, fake
    )
    print(
        f"  sending started {two['first_early']:.1f} s before the due time; "
        f"last {-two['late_max']:+.1f} s before it; rate {two['per_second']:.2f} msg/s"
    )
    print(f"  late messages: {two['late_count'] or 'none'}")


if __name__ == "__main__":
    main()
