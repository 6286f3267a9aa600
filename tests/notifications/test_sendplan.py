"""The send planner: a burst is placed as late as allowed, within each number's rate
and the workers' capacity, never after its due time when that is possible, and never
before a row may go."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.demo import DemoData
from app.models import Notification, new_id
from app.notifications.sendplan import Pending, PlanConfig, SendPlanner, place
from tests.conftest import PINNED_NOW, Reader

NOW = 1_000_000.0
CONFIG = PlanConfig(mps=1.0, capacity=10.0, max_early=timedelta(minutes=30))


def burst(senders: int, per_sender: int, due: float, early: float = 600) -> list[Pending]:
    return [
        Pending(f"n{s}-{r}", f"+1500{s:07d}", due, due - early, due)
        for s in range(senders)
        for r in range(per_sender)
    ]


def test_capacity_spreads_a_burst_across_numbers_before_its_due_time():
    rows = burst(senders=100, per_sender=1, due=NOW + 300)
    planned = place(rows, NOW, CONFIG, capacity=10.0)
    assert max(planned.values()) <= NOW + 300
    # 100 messages at 10 a second: the first goes 10 s early, no earlier.
    assert NOW + 300 - min(planned.values()) <= 10
    per_second = Counter(int(when) for when in planned.values())
    assert max(per_second.values()) <= 10


def test_each_number_keeps_its_rate():
    rows = burst(senders=3, per_sender=10, due=NOW + 300)
    planned = place(rows, NOW, CONFIG, capacity=1000.0)
    for sender in {row.sender for row in rows}:
        times = sorted(planned[row.id] for row in rows if row.sender == sender)
        assert all(b - a >= 1.0 - 1e-6 for a, b in itertools.pairwise(times))
        assert times[-1] <= NOW + 300 and NOW + 300 - times[0] <= 10


def test_nothing_goes_before_it_may_even_if_that_makes_it_late():
    rows = burst(senders=1, per_sender=5, due=NOW + 300, early=2)
    planned = sorted(place(rows, NOW, CONFIG, capacity=10.0).values())
    assert planned[0] == NOW + 298
    assert all(when >= NOW + 298 for when in planned)


def test_nothing_is_planned_in_the_past():
    rows = burst(senders=1, per_sender=5, due=NOW + 1)
    assert min(place(rows, NOW, CONFIG, capacity=10.0).values()) >= NOW


def test_planner_writes_send_times_and_leaves_rows_being_claimed(
    session_factory: sessionmaker[Session], demo: DemoData, db: Reader
):
    due = PINNED_NOW + timedelta(minutes=10)
    with session_factory() as session:
        for i in range(30):
            session.add(
                Notification(
                    id=new_id("ntf"),
                    agent_id=demo.agent_id,
                    kind="reminder",
                    to_e164="+14155550177",
                    from_e164="+15005550007",
                    body=f"r{i}",
                    due_at=due,
                    not_before=due - timedelta(minutes=5),
                    dedupe_key=new_id("k"),
                )
            )
        session.commit()
    clock = FixedClock(PINNED_NOW)
    report = SendPlanner(session_factory, clock, PlanConfig(mps=1.0, capacity=50)).run()
    assert report.planned == 30 and report.late == 0
    assert 29 <= report.first_early_seconds <= 30
    send_at = sorted(db.scalars(select(Notification.send_at)))
    assert send_at[0] == due - timedelta(seconds=29) and send_at[-1] == due
    # A second run changes nothing.
    assert SendPlanner(session_factory, clock, PlanConfig(mps=1.0, capacity=50)).run().moved == 0


def test_the_margin_keeps_the_last_message_clear_of_its_due_time():
    rows = burst(senders=2, per_sender=3, due=NOW + 300)
    config = PlanConfig(mps=1.0, capacity=10.0, margin=timedelta(seconds=1))
    planned = place(rows, NOW, config, capacity=10.0)
    assert max(planned.values()) == NOW + 299


def add(factory: sessionmaker[Session], demo: DemoData, count: int, **values: object) -> None:
    with factory() as session:
        for i in range(count):
            fields: dict[str, object] = {
                "kind": "reminder",
                "to_e164": "+14155550177",
                "from_e164": f"+1500555{i:04d}",
                "body": "r",
                "due_at": PINNED_NOW + timedelta(minutes=10),
                **values,
            }
            session.add(
                Notification(
                    id=new_id("ntf"), agent_id=demo.agent_id, dedupe_key=new_id("k"), **fields
                )
            )
        session.commit()


def test_behind_workers_are_planned_at_the_rate_they_achieved(
    session_factory: sessionmaker[Session], demo: DemoData
):
    config = PlanConfig(mps=1.0, capacity=50)
    clock = FixedClock(PINNED_NOW)
    add(session_factory, demo, 30, status="sent", sent_at=PINNED_NOW - timedelta(seconds=10))
    add(session_factory, demo, 1, due_at=PINNED_NOW - timedelta(seconds=20))
    assert SendPlanner(session_factory, clock, config).run().capacity == 1.0  # 30 in 30 s
    with session_factory() as session:
        session.query(Notification).filter(Notification.status == "scheduled").delete()
        session.commit()
    assert SendPlanner(session_factory, clock, config).run().capacity == 50
