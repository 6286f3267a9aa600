"""Slot search over a 90-day horizon with 5,000 busy blocks (target: ≤ 10 ms a query).

Baseline in the same run: the same search on an empty calendar. Also the whole
check_availability tool for one day, reading 5,000 blocks' neighbourhood from SQLite.

    .venv/bin/python bench/availability.py
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.calendar.availability import BusyIndex, Interval, Schedule, find_slots
from app.calendar.local import LocalCalendar
from app.config import Settings
from app.db import make_engine, make_session_factory, upgrade_to_head
from app.demo import load_demo
from app.models import Agent, BusyBlock
from app.tools.schemas import CheckAvailabilityArgs
from app.tools.service import SchedulingTools, ToolContext, schedule_for
from bench.stats import report

NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
BLOCKS = 5_000
HORIZON = timedelta(days=90)
ROUNDS = 200


def busy_blocks(rng: random.Random) -> list[Interval]:
    blocks = []
    for _ in range(BLOCKS):
        start = NOW + timedelta(minutes=15 * rng.randrange(int(HORIZON.total_seconds() // 900)))
        blocks.append(Interval(start, start + timedelta(minutes=rng.choice((15, 30, 45, 60)))))
    return blocks


def time_search(schedule: Schedule, busy: list[Interval]) -> list[float]:
    kind = schedule.types[0]
    samples = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        index = BusyIndex(busy)
        find_slots(schedule, kind, index, now=NOW, window_start=NOW, window_end=NOW + HORIZON)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def time_tool(blocks: list[Interval]) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(Settings(_env_file=None, database_url=f"sqlite:///{folder}/b.db"))
        upgrade_to_head(engine)
        factory = make_session_factory(engine)
        with factory() as session:
            demo = load_demo(session)
            session.add_all(
                BusyBlock(agent_id=demo.agent_id, start_at=b.start, end_at=b.end) for b in blocks
            )
            session.commit()
        samples = []
        rng = random.Random(7)
        with factory() as session:
            agent = session.get(Agent, demo.agent_id)
            assert agent is not None
            tools = SchedulingTools(
                ToolContext(session, agent, LocalCalendar(session), NOW, demo.caller, "sms")
            )
            for _ in range(ROUNDS):
                day = (NOW + timedelta(days=rng.randrange(1, 85))).date()
                began = time.perf_counter()
                tools.check_availability(CheckAvailabilityArgs(date=day))
                samples.append((time.perf_counter() - began) * 1000)
        engine.dispose()
        return samples


def main() -> None:
    rng = random.Random(42)
    blocks = busy_blocks(rng)
    demo_agent = Agent(
        timezone="America/Los_Angeles",
        weekly_hours={
            d: [["09:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")
        },
        appointment_types=[
            {"key": "c", "name": "c", "duration_minutes": 30, "buffer_after_minutes": 10}
        ],
        slot_step_minutes=15,
        min_notice_minutes=60,
        horizon_days=90,
        daily_cap=None,
    )
    schedule = schedule_for(demo_agent)
    print(f"90-day horizon, {BLOCKS} busy blocks, {ROUNDS} rounds each")
    empty = report("search, empty calendar (baseline)", time_search(schedule, []))
    full = report(f"search, {BLOCKS} busy blocks", time_search(schedule, blocks))
    print(
        f"ratio busy/empty p50: {full['p50'] / empty['p50']:.2f}x   "
        f"target p99 <= 10 ms: {'met' if full['p99'] <= 10 else 'MISSED'}"
    )
    tool = report("check_availability tool, one day, SQLite", time_tool(blocks))
    print(f"tool p99 <= 10 ms: {'met' if tool['p99'] <= 10 else 'MISSED'}")


if __name__ == "__main__":
    main()
