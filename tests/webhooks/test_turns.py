"""A turn never calls Google while its write transaction is open (issue 8, item 8).

SMS and Gather turns are run by the real offline engine against the local fake Google;
at every request the fake receives, `WriterProbe` checks that no database write
transaction is open (SQLite: another writer gets the write turn at once; PostgreSQL: no
session that has written sits in its transaction). Before the fix the engine read
free/busy inside the turn's transaction and the probe saw it held.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.calendar import turn_reads
from app.calendar.backend import CalendarError
from app.calendar.turn_reads import ReadNeeded
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import Appointment, InboundEvent, Message
from app.webhooks import turns
from tests.calendar.conftest import (  # noqa: F401 - fixtures
    RecordingSender,
    connected,
    fake,
    google_settings,
    refresh_token,
    sender,
    token_key,
    vault,
)
from tests.calendar.fake_google import FakeGoogle
from tests.calendar.test_google_outage import WriterProbe
from tests.conftest import PUBLIC_BASE_URL, Reader, TwilioClient, load_fixture
from tests.webhooks.test_twilio_voice import Phone

INBOUND = "/webhooks/twilio/sms/inbound"


@pytest.fixture
def google_client(
    google_settings: Settings,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    sender: RecordingSender,  # noqa: F811
    demo: DemoData,
    connected: Any,  # noqa: F811
) -> Iterator[TestClient]:
    # The real offline engine: it decides which days to read, as in production.
    app = create_app(
        google_settings, session_factory=session_factory, clock=clock, sms_sender=sender
    )
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        yield client


@pytest.fixture
def probe(fake: FakeGoogle, session_factory: sessionmaker[Session], demo: DemoData):  # noqa: F811
    watcher = WriterProbe(session_factory, demo.user_id)
    fake.on_request = watcher
    yield watcher
    fake.on_request = None


def text_in(client: TestClient, body: str, sid: str, caller: str) -> str:
    form = {k: str(v) for k, v in load_fixture("twilio/inbound-sms.json").items()}
    form.update(Body=body, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid, From=caller)
    form["To"] = "+15005550006"
    response = TwilioClient(client).post(INBOUND, form)
    assert response.status_code == 200
    return " ".join(m.text or "" for m in ET.fromstring(response.text).iter("Message"))


def test_sms_booking_reads_google_outside_the_write_transaction(
    google_client: TestClient,
    probe: WriterProbe,
    fake: FakeGoogle,  # noqa: F811
    demo: DemoData,
    db: Reader,
):
    fake.add_owner_event(_at(24, 15), _at(24, 16))  # busy at 3: only Google knows
    asked = text_in(google_client, "book a consultation tomorrow at 3pm", "SMturn1", demo.caller)
    assert "3:00 PM is taken" in asked, asked
    asked = text_in(google_client, "book a consultation tomorrow at 10am", "SMturn2", demo.caller)
    assert "10:00" in asked, asked
    done = text_in(google_client, "yes", "SMturn3", demo.caller)
    assert "10:00" in done and "book" in done.lower(), done
    assert fake.count("POST", "freeBusy") >= 1
    assert probe.blocked == []
    booked = db.scalars(select(Appointment))
    assert [(a.start_at, a.status) for a in booked] == [(_at(24, 10), "confirmed")]
    assert booked[0].sync_status == "synced" and len(fake.live_events()) == 2  # owner's + ours


def test_gather_booking_reads_google_outside_the_write_transaction(
    google_client: TestClient,
    probe: WriterProbe,
    fake: FakeGoogle,  # noqa: F811
    demo: DemoData,
    db: Reader,
):
    phone = Phone(TwilioClient(google_client), demo.caller, sid="CAturnpath")
    phone.dial()
    proposal = phone.say("book a consultation tomorrow at 10am").text
    assert "10 AM" in proposal, proposal
    done = phone.say("yes").text
    assert "book" in done.lower(), done
    assert fake.count("POST", "freeBusy") >= 1
    assert probe.blocked == []
    booked = db.scalars(select(Appointment))
    assert [(a.start_at, a.status) for a in booked] == [(_at(24, 10), "confirmed")]


def test_a_turn_run_again_after_a_fetch_counts_the_caller_once(
    google_settings: Settings,  # noqa: F811
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    sender: RecordingSender,  # noqa: F811
    demo: DemoData,
    connected: Any,  # noqa: F811
):
    limited = google_settings.model_copy(update={"rate_limit_webhook": "2/minute"})
    app = create_app(limited, session_factory=session_factory, clock=clock, sms_sender=sender)
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        # Each turn reads a new day from Google, so each runs twice: still two hits.
        first = text_in(client, "book a consultation tomorrow at 10am", "SMlim1", demo.caller)
        second = text_in(client, "what about wednesday at 10am", "SMlim2", demo.caller)
    assert "faster than I can keep up" not in first + second, (first, second)


def test_a_retried_sms_racing_its_first_delivery_runs_once(
    google_client: TestClient,
    fake: FakeGoogle,  # noqa: F811
    demo: DemoData,
    db: Reader,
):
    fake.latency = 0.3  # both deliveries are between attempts at once
    answers: list[str] = []

    def deliver() -> None:
        answers.append(
            text_in(google_client, "book a consultation tomorrow at 10am", "SMrace", demo.caller)
        )

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 2 and answers[0] == answers[1], answers
    assert db.count(InboundEvent) == 1
    assert len(db.scalars(select(Message).where(Message.external_id == "SMrace"))) == 1


# --- the runner itself -------------------------------------------------------------------


def test_fetches_run_with_no_transaction_and_the_turn_gives_up_honestly(
    session_factory: sessionmaker[Session],
):
    fetched: list[bool] = []
    attempts: list[str] = []

    def work(session: Session) -> str:
        session.connection()  # the turn's transaction is open
        reads = turn_reads.turn_reads(session)
        assert reads is not None and reads.offline
        if reads.exhausted:
            attempts.append("exhausted")
            return "answered without the calendar"
        attempts.append("offline")
        raise ReadNeeded("a window", lambda: fetched.append(session.in_transaction()))

    with session_factory() as session:
        assert turns.run_turn(session, work) == "answered without the calendar"
        assert turn_reads.turn_reads(session) is None  # nothing leaks into the next request
    assert fetched == [False] * turns.FETCH_ROUNDS
    assert attempts == ["offline"] * turns.FETCH_ROUNDS + ["exhausted"]


def test_a_failed_fetch_is_left_for_the_next_attempt_to_report(
    session_factory: sessionmaker[Session],
):
    def fail() -> None:
        raise CalendarError("The calendar isn't answering right now.")

    seen: list[int] = []

    def work(session: Session) -> str:
        seen.append(1)
        if len(seen) == 1:
            raise ReadNeeded("a window", fail)
        return "second attempt"

    with session_factory() as session:
        assert turns.run_turn(session, work) == "second attempt"


def _at(day: int, hour: int) -> Any:
    from tests.calendar.test_google_e2e import at

    return at(day, hour)


def _limited(session_factory: sessionmaker[Session], size: int) -> sessionmaker[Session]:
    factory = sessionmaker(session_factory.kw["bind"], expire_on_commit=False)
    turns.limit_turns(factory, size)
    return factory


def _run_turns_at_once(factory: sessionmaker[Session], works: list[Any]) -> list[Any]:
    answers: list[Any] = [None] * len(works)

    def run(index: int) -> None:
        with factory() as session:
            answers[index] = turns.run_turn(session, works[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(works))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    return answers


def test_only_the_configured_number_of_turns_run_at_once(
    session_factory: sessionmaker[Session],
):
    running = 0
    most = 0
    lock = threading.Lock()

    def work(session: Session) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        threading.Event().wait(0.05)
        with lock:
            running -= 1
        return "done"

    answers = _run_turns_at_once(_limited(session_factory, 2), [work] * 6)
    assert answers == ["done"] * 6
    assert most == 2


def test_a_turn_waiting_on_a_calendar_gives_its_slot_back(
    session_factory: sessionmaker[Session],
):
    """One slot: the first turn's fetch waits for a second turn, which can only run if
    the first gave the slot back while fetching."""
    factory = _limited(session_factory, 1)
    second_done = threading.Event()
    outcomes: list[str] = []

    def second(session: Session) -> str:
        second_done.set()
        return "second"

    def fetch() -> None:
        outcomes.append("second ran" if second_done.wait(5) else "second still waiting")

    def first(session: Session) -> str:
        if outcomes:
            return "first, with the window"
        threading.Thread(target=_run_turns_at_once, args=(factory, [second])).start()
        raise ReadNeeded("a window", fetch)

    with factory() as session:
        assert turns.run_turn(session, first) == "first, with the window"
    assert outcomes == ["second ran"]


def test_the_app_limits_its_turns_as_configured(settings: Settings):
    app = create_app(settings.model_copy(update={"turn_concurrency": 3}))
    with app.state.services.session_factory() as session:
        slots = session.info[turns._SLOTS]
    assert isinstance(slots, turns.TurnSlots) and slots.size == 3


def test_turns_waiting_for_a_slot_get_it_in_the_order_they_came():
    slots = turns.TurnSlots(1)
    order: list[int] = []
    first_in = threading.Event()
    let_go = threading.Event()

    def hold() -> None:
        with slots.held():
            first_in.set()
            let_go.wait(5)

    def wait_then_run(number: int) -> None:
        with slots.held():
            order.append(number)

    holder = threading.Thread(target=hold)
    holder.start()
    first_in.wait(5)
    waiters = []
    for number in range(4):
        waiter = threading.Thread(target=wait_then_run, args=(number,))
        waiter.start()
        while len(slots._waiting) < number + 1:  # this one queues before the next starts
            threading.Event().wait(0.001)
        waiters.append(waiter)
    let_go.set()
    for thread in [holder, *waiters]:
        thread.join(5)
    assert order == [0, 1, 2, 3]


def test_a_turn_inside_a_turn_uses_its_slot_and_gives_it_back_once():
    slots = turns.TurnSlots(1)
    with slots.held():
        with slots.held():  # the same thread: no second slot (it would wait forever)
            assert slots._free == 0
        assert slots._free == 0  # the outer turn still holds it
    assert slots._free == 1
    with pytest.raises(RuntimeError), slots.held():
        raise RuntimeError("the attempt failed")
    assert slots._free == 1  # given back on failure too


class _FailingLender:
    def lend(self, session: Session) -> None:
        raise RuntimeError("no connection to lend")


def test_an_attempt_whose_connection_cannot_be_lent_gives_its_slot_back(
    session_factory: sessionmaker[Session],
):
    slots = turns.TurnSlots(1, _FailingLender())  # type: ignore[arg-type]
    session_factory.configure(info={turns._SLOTS: slots})
    with session_factory() as session, pytest.raises(RuntimeError):
        turns.run_turn(session, lambda s: "never runs")
    assert slots._free == 1
