"""Booking through the Google backend against the local fake Calendar with 20 ms injected
latency per HTTP call: our overhead above the fake's latency (target ≤ 10 ms p50).

Baseline in the same run: the same booking on the built-in calendar (no Google).
overhead = booking time - (HTTP calls made x 20 ms); it includes the fake server's own
handling, so it is an upper bound of ours. "Ours alone" subtracts the time each request
spent inside the fake (measured by the fake), latency included. Both include the
booking's database and tool work, which the baseline does too; the Google-specific part
subtracts that.

    .venv/bin/python bench/google_booking.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.calendar.google import GoogleCalendarFactory
from app.calendar.local import LocalCalendar
from app.clock import FixedClock
from app.config import Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.demo import load_demo
from app.models import Agent, Appointment, CalendarConnection
from app.notify import LogSender
from app.security.vault import TokenVault, generate_key
from app.tools.registry import run_tool
from app.tools.service import SchedulingTools, ToolContext
from bench.stats import report
from tests.calendar.fake_google import FakeGoogle
from tests.conftest import PINNED_NOW

LATENCY = 0.020
BOOKINGS = 150
PT = ZoneInfo("America/Los_Angeles")


def starts(count: int) -> list[datetime]:
    times = [(9, 0), (9, 45), (10, 30), (11, 15), (13, 0), (13, 45), (14, 30), (15, 15), (16, 0)]
    out: list[datetime] = []
    day = datetime(2026, 11, 24, tzinfo=PT)
    while len(out) < count:
        if day.weekday() < 5:
            out += [day.replace(hour=h, minute=m) for h, m in times]
        day += timedelta(days=1)
    return out[:count]


def run(session_factory, agent_id: str, calendar_for, prefix: str, fake=None):  # type: ignore[no-untyped-def]
    totals: list[float] = []
    overheads: list[float] = []
    client_side: list[float] = []
    for number, start in enumerate(starts(BOOKINGS)):
        before = len(fake.requests) if fake else 0
        handled_before = len(fake.handled) if fake else 0
        began = time.perf_counter()
        with session_factory() as session:
            agent = session.get(Agent, agent_id)
            tools = SchedulingTools(
                ToolContext(
                    session,
                    agent,
                    calendar_for(session, agent),
                    PINNED_NOW,
                    "+14155550123",
                    "voice",
                )
            )
            result = run_tool(
                tools,
                "book_appointment",
                {"start": start.isoformat()},
                request_key=f"{prefix}-{number}",
            )
            session.commit()
        elapsed = (time.perf_counter() - began) * 1000
        assert result.ok, result.message
        totals.append(elapsed)
        calls = (len(fake.requests) - before) if fake else 0
        overheads.append(elapsed - calls * LATENCY * 1000)
        inside_fake = sum(fake.handled[handled_before:]) * 1000 if fake else 0.0
        client_side.append(elapsed - inside_fake)
    return totals, overheads, client_side


def main() -> None:
    fake = FakeGoogle(latency=LATENCY).start()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite:///{tmp}/bench.db",
            google_calendar_api_endpoint=fake.api_endpoint,
            token_encryption_keys=generate_key(),
        )
        engine = make_engine(settings)
        upgrade_to_head(engine)
        session_factory = make_session_factory(engine)
        vault = TokenVault([generate_key()])
        with session_factory() as session:
            demo = load_demo(session)
            # A second agent for the baseline, so both book the same slots.
            base_agent = Agent(
                user_id=demo.user_id,
                name="baseline",
                timezone="America/Los_Angeles",
                weekly_hours=session.get(Agent, demo.agent_id).weekly_hours,
                appointment_types=session.get(Agent, demo.agent_id).appointment_types,
            )
            session.add(base_agent)
            google_agent = session.get(Agent, demo.agent_id)
            google_agent.calendar_provider = "google"
            session.add(
                CalendarConnection(
                    agent_id=demo.agent_id,
                    encrypted_refresh_token=vault.encrypt(fake.add_refresh_token()),
                )
            )
            session.commit()
            base_id = base_agent.id
        factory = GoogleCalendarFactory(
            settings,
            fake.client_secrets(settings.public_base_url + "/calendar/google/callback"),
            vault,
            LogSender(),
            clock=FixedClock(PINNED_NOW),
        )
        base_total, _, _ = run(session_factory, base_id, lambda s, a: LocalCalendar(s), "base")
        google_total, overhead, client_side = run(
            session_factory, demo.agent_id, factory, "g", fake
        )
        with session_factory() as session:
            synced = session.query(Appointment).filter_by(sync_status="synced").count()
        engine.dispose()
    fake.stop()
    calls = sum(1 for m, p in fake.requests if "/calendar/" in p) / BOOKINGS
    print(f"fake latency {LATENCY * 1000:.0f} ms per HTTP call; {calls:.1f} Calendar calls/booking")
    b = report("baseline: booking on the built-in calendar", base_total)
    g = report("booking through Google (fake, 20 ms/call)", google_total)
    o = report("our overhead above the fake's latency", overhead)
    # The part the Google backend adds: minus the booking work the baseline does too.
    report("  of which Google-specific (- baseline p50)", [x - b["p50"] for x in overhead])
    ours = report("ours: booking time minus time inside the fake", client_side)
    print(
        f"ratio google/baseline: p50 {g['p50'] / b['p50']:.2f}x  p99 {g['p99'] / b['p99']:.2f}x; "
        f"overhead p50 {o['p50']:.2f} ms incl. the fake's own handling, "
        f"{ours['p50']:.2f} ms ours alone (target <= 10 ms); {synced}/{BOOKINGS} events synced"
    )


if __name__ == "__main__":
    main()
