"""The check before a booking's write reads only the rows that may reach the slot
(`SchedulingTools._busy_near`), with the verdict of the whole checked window's read."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from app.calendar.availability import check_slot
from app.calendar.local import LocalCalendar
from app.demo import DemoData
from app.models import Agent, Appointment, BusyBlock
from app.tools.schemas import BookAppointmentArgs
from app.tools.service import SchedulingTools, ToolContext
from tests.conftest import PINNED_NOW

DAY = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)  # a Tuesday, 00:00 in Los Angeles
TYPES = [
    {"key": "short", "duration_minutes": 15, "buffer_before_minutes": 5},
    {"key": "long", "duration_minutes": 90, "buffer_after_minutes": 30},
    {"key": "plain", "duration_minutes": 30},
]


def _tools(session: Session, demo: DemoData) -> SchedulingTools:
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    agent.appointment_types = TYPES
    agent.weekly_hours = {day: [["00:00", "23:59"]] for day in ("mon", "tue", "wed", "thu")}
    session.flush()
    context = ToolContext(
        session=session,
        agent=agent,
        calendar=LocalCalendar(session),
        now=PINNED_NOW,
        caller=demo.caller,
        channel="vapi",
    )
    return SchedulingTools(context)


def _appointment(demo: DemoData, kind: str, start: datetime, minutes: int) -> Appointment:
    return Appointment(
        agent_id=demo.agent_id,
        appointment_type=kind,
        start_at=start,
        end_at=start + timedelta(minutes=minutes),
        idempotency_key=f"k{start.isoformat()}",
    )


def test_the_near_read_gives_the_whole_windows_verdict(session: Session, demo: DemoData) -> None:
    rng = random.Random(16)
    at = DAY - timedelta(hours=30)
    rows: list[Appointment | BusyBlock] = []
    while at < DAY + timedelta(days=2, hours=6):
        # Known types, one no longer known, stored lengths that differ from the type's.
        kind = rng.choice(["short", "long", "plain", "gone"])
        minutes = rng.choice([10, 15, 30, 60, 90, 240])
        rows.append(_appointment(demo, kind, at, minutes))
        at += timedelta(minutes=minutes + rng.choice([0, 5, 20, 45, 120]))
    for _ in range(6):
        start = DAY + timedelta(minutes=rng.randrange(0, 48 * 60))
        rows.append(
            BusyBlock(agent_id=demo.agent_id, start_at=start, end_at=start + timedelta(minutes=25))
        )
    session.add_all(rows)
    session.flush()
    tools = _tools(session, demo)
    moved = next(r for r in rows if isinstance(r, Appointment))
    verdicts = set()
    for minute in range(0, 36 * 60, 5):
        start = DAY + timedelta(minutes=minute, seconds=rng.choice([0, 0, 30]))
        kind = tools.schedule.types[minute % 3]
        for exclude in (None, moved.id):
            near = tools._busy_near(kind, start, exclude)
            whole, _ = tools._busy_and_counts(
                start, start + kind.duration, exclude_id=exclude, fresh=True
            )
            checked = [
                check_slot(tools.schedule, kind, busy, now=PINNED_NOW, start=start)
                for busy in (near, whole)
            ]
            assert checked[0] == checked[1], (start, kind, exclude)
            verdicts.add(checked[0])
    assert len(verdicts) > 1  # both free and taken slots were checked


def test_a_booking_reads_the_rows_near_its_slot_not_its_days(
    session: Session, demo: DemoData
) -> None:
    session.add_all(_appointment(demo, "plain", DAY + timedelta(hours=i), 30) for i in range(30))
    session.flush()
    tools = _tools(session, demo)
    read: list[int] = []
    whole_read = tools._read

    def counted(statement, params):  # type: ignore[no-untyped-def]
        rows = whole_read(statement, params)
        read.append(len(rows))
        return rows

    tools._read = counted  # type: ignore[method-assign]
    taken = tools.book_appointment(BookAppointmentArgs(start=DAY + timedelta(hours=10)))
    assert not taken.ok and taken.data["error"] == "busy"
    # The slot's neighbours (the longest type keeps two hours): the window holds 30.
    assert read[0] <= 5
    read.clear()
    free = DAY + timedelta(minutes=10 * 60 + 40)  # 10 minutes after one, 5 before the next
    assert tools.book_appointment(BookAppointmentArgs(start=free, appointment_type="short")).ok
    assert read[0] <= 5
