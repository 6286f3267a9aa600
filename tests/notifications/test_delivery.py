"""Delivery through the real twilio client to the local fake Twilio: sent once, faults
classified, nothing lost or duplicated with concurrent workers, bursts paced."""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.demo import DemoData
from app.fakes.twilio_rest import FakeTwilio
from app.models import Notification, new_id
from app.notifications.sendplan import PlanConfig, SendPlanner
from app.security import consent
from app.tools.schemas import BookAppointmentArgs
from tests.conftest import PINNED_NOW, Reader
from tests.notifications.conftest import AGENT_LINE, PERSON, SleepingClock, deliverer, tools


def add_rows(
    factory: sessionmaker[Session],
    demo: DemoData,
    count: int,
    due: datetime = PINNED_NOW,
    sender: str = AGENT_LINE,
    not_before: datetime | None = None,
) -> list[str]:
    with factory() as session:
        rows = [
            Notification(
                id=new_id("ntf"),
                agent_id=demo.agent_id,
                kind="owner_booked",
                channel="sms",
                to_e164=PERSON,
                from_e164=sender,
                body=f"message {i}",
                due_at=due,
                not_before=not_before,
                status="scheduled",
                attempts=0,
                dedupe_key=new_id("k"),
            )
            for i in range(count)
        ]
        session.add_all(rows)
        session.commit()
        return [row.id for row in rows]


def statuses(db: Reader) -> Counter[str]:
    return Counter(n.status for n in db.scalars(select(Notification)))


def test_phone_booking_confirmation_goes_out_through_twilio(
    session_factory, demo: DemoData, db: Reader, fake_twilio: FakeTwilio, outbound, clock
):
    with session_factory() as session:
        tools(session, demo, PINNED_NOW).book_appointment(
            BookAppointmentArgs(start=datetime.fromisoformat("2026-11-25T15:00:00-08:00"))
        )
        session.commit()
    report = deliverer(session_factory, outbound, clock).drain()
    assert report.sent == 1  # the confirmation; the reminders are not due yet
    [message] = fake_twilio.state.messages()
    assert (message.get("To"), message.get("From")) == (PERSON, AGENT_LINE)
    assert message.get("Body").startswith("Confirmed: your consultation")
    assert message.get("StatusCallback") == (
        "https://agent.example.com/webhooks/twilio/notifications/status"
    )
    sent = db.scalar(select(Notification).where(Notification.kind == "confirmation"))
    assert (sent.status, sent.provider_sid, sent.sent_at) == ("sent", message.sid, PINNED_NOW)
    assert statuses(db) == {"sent": 1, "scheduled": 2}


def test_opted_out_person_gets_nothing(
    session_factory, demo, db: Reader, fake_twilio: FakeTwilio, outbound, clock
):
    add_rows(session_factory, demo, 1)
    with session_factory() as session:
        consent.opt_out(session, PERSON)
        session.commit()
    assert deliverer(session_factory, outbound, clock).drain().skipped == 1
    assert fake_twilio.state.messages() == []
    row = db.scalar(select(Notification))
    assert (row.status, row.reason) == ("skipped", "opted out (STOP)")


def test_429_is_retried_later_and_sent_once(
    session_factory, demo, db: Reader, fake_twilio: FakeTwilio, outbound
):
    clock = FixedClock(PINNED_NOW)
    add_rows(session_factory, demo, 1)
    fake_twilio.state.inject("429")
    worker = deliverer(session_factory, outbound, clock)
    assert worker.drain().retried == 1
    row = db.scalar(select(Notification))
    assert (row.status, row.due_at) == ("scheduled", PINNED_NOW + timedelta(seconds=30))
    assert worker.drain().handled == 0  # not due yet
    clock.advance(seconds=30)
    assert worker.drain().sent == 1
    assert len(fake_twilio.state.messages()) == 1


def test_a_send_whose_outcome_is_unknown_is_never_resent(
    session_factory, demo, db: Reader, fake_twilio: FakeTwilio, outbound, clock
):
    add_rows(session_factory, demo, 3)
    # 500: maybe taken; "lost": taken, answer never arrives; "timeout": no answer at all.
    fake_twilio.state.inject("500", "lost", "timeout")
    worker = deliverer(session_factory, outbound, clock)
    assert worker.drain().unknown == 3
    clock.advance(hours=1)
    assert worker.drain().handled == 0
    assert statuses(db) == {"unknown": 3}
    assert len(fake_twilio.state.messages()) == 1  # the lost one, recorded once


def test_permanent_refusal_is_failed_with_the_reason(
    session_factory, demo, db: Reader, fake_twilio: FakeTwilio, outbound, clock
):
    [row_id] = add_rows(session_factory, demo, 1)
    with session_factory() as session:
        session.get(Notification, row_id).to_e164 = "not-a-number"  # type: ignore[union-attr]
        session.commit()
    assert deliverer(session_factory, outbound, clock).drain().failed == 1
    assert db.get(Notification, row_id).reason == "twilio 400 code 21211"


def test_three_concurrent_workers_with_faults_lose_and_duplicate_nothing(
    session_factory, demo, db: Reader, fake_twilio: FakeTwilio, outbound
):
    clock = FixedClock(PINNED_NOW)
    add_rows(session_factory, demo, 60)
    fake_twilio.state.inject("429", "503", "500", "lost", "429", "timeout", "429")
    workers = [deliverer(session_factory, outbound, clock, batch=5) for _ in range(3)]
    for _ in range(6):  # rounds: retries come due as the clock moves
        threads = [threading.Thread(target=w.drain) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        clock.advance(minutes=5)
    bodies = Counter(m.get("Body") for m in fake_twilio.state.messages())
    assert max(bodies.values()) == 1, "a notification was sent twice"
    final = statuses(db)
    # 500, lost and timeout are unknown; the 429s and the 503 were retried and sent.
    assert final == {"sent": 57, "unknown": 3}
    assert len(bodies) == 57 + 1  # every sent one, plus the "lost" one (unknown)
    sids = [n.provider_sid for n in db.scalars(select(Notification)) if n.status == "sent"]
    assert len(set(sids)) == 57


def test_worker_killed_mid_batch_leaves_claims_unknown_not_resent(
    session_factory, demo, db: Reader, fake_twilio: FakeTwilio, outbound
):
    clock = FixedClock(PINNED_NOW)
    add_rows(session_factory, demo, 6)
    killed = deliverer(session_factory, outbound, clock, batch=4)
    claimed = killed.claim()
    killed.deliver(claimed[0])  # one went out, then the process died with three claimed
    survivor = deliverer(session_factory, outbound, clock)
    assert survivor.drain().sent == 2  # only the unclaimed rows
    assert survivor.reap() == 0  # within the lease: the dead worker might still answer
    clock.advance(seconds=61)
    assert survivor.reap() == 3
    assert survivor.drain().handled == 0
    assert statuses(db) == {"sent": 3, "unknown": 3}
    assert len(fake_twilio.state.messages()) == 3


def run_until(clock: SleepingClock, end: datetime, planner: SendPlanner, worker) -> None:  # type: ignore[no-untyped-def]
    """The planner and a drain on every tick, as the job engine runs them."""
    while clock() < end:
        planner.run()
        if not worker.drain().handled:
            clock.advance(seconds=1)


def test_a_burst_on_one_sender_starts_early_and_none_is_late(
    session_factory, demo, db: Reader, fake_twilio: FakeTwilio, outbound
):
    due = PINNED_NOW + timedelta(minutes=10)
    add_rows(session_factory, demo, 20, due=due, not_before=due - timedelta(minutes=5))
    clock = SleepingClock(PINNED_NOW)
    worker = deliverer(session_factory, outbound, clock, mps=1.0)
    planner = SendPlanner(session_factory, clock, PlanConfig(mps=1.0, capacity=50))
    run_until(clock, due + timedelta(minutes=1), planner, worker)
    sent_at = sorted(n.sent_at for n in db.scalars(select(Notification)))
    assert len(sent_at) == 20 and statuses(db) == {"sent": 20}
    assert max(sent_at) <= due, "a message went out after its due time"
    assert due - min(sent_at) >= timedelta(seconds=19), "sending did not start early enough"
    assert due - min(sent_at) <= timedelta(seconds=25), "sending started needlessly early"
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert min(gaps) >= timedelta(seconds=1), "the sender's rate was exceeded"


def test_a_burst_never_starts_before_its_rows_may_go(
    session_factory, demo, db: Reader, fake_twilio: FakeTwilio, outbound
):
    """not_before (quiet hours, or a message that may not go early) beats lateness."""
    due = PINNED_NOW + timedelta(minutes=10)
    add_rows(session_factory, demo, 5, due=due, not_before=due - timedelta(seconds=2))
    clock = SleepingClock(PINNED_NOW)
    worker = deliverer(session_factory, outbound, clock, mps=1.0)
    planner = SendPlanner(session_factory, clock, PlanConfig(mps=1.0, capacity=50))
    run_until(clock, due + timedelta(minutes=1), planner, worker)
    sent_at = sorted(n.sent_at for n in db.scalars(select(Notification)))
    assert min(sent_at) == due - timedelta(seconds=2)
    assert max(sent_at) == due + timedelta(seconds=2)  # two late: nothing better allowed


def test_pacing_is_per_sender(session_factory, demo, fake_twilio, outbound):
    clock = FixedClock(PINNED_NOW)
    add_rows(session_factory, demo, 3, sender="+15005550008")
    add_rows(session_factory, demo, 3, sender="+15005550009")
    worker = deliverer(session_factory, outbound, clock, mps=1.0)
    first = worker.claim()
    # One message per number at once; both numbers are then busy for a second.
    assert sorted(item.from_ for item in first) == ["+15005550008", "+15005550009"]
    assert {item.send_at for item in first} == {PINNED_NOW}
    assert worker.claim() == []
    clock.advance(seconds=1)
    assert len(worker.claim()) == 2


def test_outbound_sender_refuses_without_twilio_account(session_factory, demo, db, clock):
    from app.notifications.outbound import LogOutbound

    add_rows(session_factory, demo, 1)
    assert deliverer(session_factory, LogOutbound(), clock).drain().failed == 1  # type: ignore[arg-type]
    assert db.scalar(select(Notification)).reason == "no Twilio account configured"
