"""The Google backend end to end: the real google-api-python-client over HTTP to a
local fake Calendar, driven through the scheduling tools."""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.google import GoogleCalendar, GoogleCalendarFactory, event_id_for
from app.calendar.local import LocalCalendar
from app.calendar.sync import sweep_once
from app.clock import FixedClock
from app.demo import DemoData
from app.models import Agent, Appointment, AuditEntry, CalendarConnection
from app.tools.registry import run_tool
from app.tools.service import SchedulingTools, ToolContext, stored_request_key
from tests.calendar.conftest import RecordingSender
from tests.calendar.fake_google import FakeGoogle

PT = ZoneInfo("America/Los_Angeles")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=PT)


def tools(
    session: Session, demo: DemoData, factory: GoogleCalendarFactory, clock: FixedClock
) -> SchedulingTools:
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    return SchedulingTools(
        ToolContext(
            session=session,
            agent=agent,
            calendar=factory(session, agent),
            now=clock(),
            caller=demo.caller,
            channel="sms",
        )
    )


def google_id(demo: DemoData, request_key: str) -> str:
    """The Google event id of the booking made for `request_key` by the demo caller."""
    return event_id_for(demo.agent_id, stored_request_key(demo.agent_id, demo.caller, request_key))


def book(session, demo, factory, clock, start: datetime, key: str, **extra):  # type: ignore[no-untyped-def]
    result = run_tool(
        tools(session, demo, factory, clock),
        "book_appointment",
        {"start": start.isoformat(), "appointment_type": "consultation"} | extra,
        request_key=key,
    )
    session.commit()
    return result


def test_factory_picks_google_only_for_connected_agents(
    session: Session, demo: DemoData, factory: GoogleCalendarFactory, connected
):
    agent = session.get(Agent, demo.agent_id)
    assert isinstance(factory(session, agent), GoogleCalendar)
    connection = session.get(CalendarConnection, connected.id)
    connection.status = "disconnected"
    session.flush()
    assert isinstance(factory(session, agent), LocalCalendar)


def test_owner_events_block_times_and_a_booking_lands_once(
    session: Session, demo: DemoData, factory, clock, fake: FakeGoogle, connected
):
    fake.add_owner_event(at(24, 10), at(24, 11))
    availability = run_tool(
        tools(session, demo, factory, clock),
        "check_availability",
        {"date": "2026-11-24", "appointment_type": "consultation", "part_of_day": "morning"},
    )
    assert availability.ok
    starts = [datetime.fromisoformat(s) for s in availability.data["slots"]]
    assert starts and not any(at(24, 9, 31) <= s < at(24, 11) for s in starts)

    result = book(session, demo, factory, clock, at(24, 15), "call-1:turn-3", name="Ana Diaz")
    assert result.ok, result.message
    appointment = session.scalar(select(Appointment))
    expected_id = event_id_for(
        demo.agent_id, stored_request_key(demo.agent_id, demo.caller, "call-1:turn-3")
    )
    assert appointment.sync_status == "synced"
    assert appointment.external_event_id == expected_id
    event = fake.live_events()[expected_id]
    assert event["start"]["dateTime"] == "2026-11-24T23:00:00Z"
    assert "Ana Diaz" in event["summary"] and demo.caller in event["description"]

    inserts = fake.count("POST", "/events")
    again = book(session, demo, factory, clock, at(24, 15), "call-1:turn-3", name="Ana Diaz")
    assert again.ok and again.data["appointment"]["id"] == appointment.id
    assert fake.count("POST", "/events") == inserts  # a retried tool call writes nothing


def test_lost_insert_answer_is_retried_into_a_409_not_a_duplicate(
    session: Session, demo, factory, clock, fake: FakeGoogle, connected, sleeps
):
    # free/busy answers; the insert is stored but its answer lost (500).
    fake.fault_plan = ["", "after500"]
    result = book(session, demo, factory, clock, at(24, 13), "k-lost")
    assert result.ok
    appointment = session.scalar(select(Appointment))
    assert appointment.sync_status == "synced"
    assert fake.count("POST", "/events") == 2  # the retry met 409 and was reconciled
    assert list(fake.live_events()) == [google_id(demo, "k-lost")]
    assert len(sleeps) == 1


def test_rate_limits_and_server_errors_are_retried_with_backoff(
    session: Session, demo, factory, clock, fake: FakeGoogle, connected, sleeps
):
    fake.fault_plan = ["429", "403rate", "503"]
    result = run_tool(
        tools(session, demo, factory, clock), "check_availability", {"date": "2026-11-25"}
    )
    assert result.ok and result.data["slots"]
    assert len(sleeps) == 3 and sleeps[0] < sleeps[2]


def test_forbidden_is_not_retried_and_is_reported_plainly(
    session: Session, demo, factory, clock, fake: FakeGoogle, connected, sleeps
):
    fake.calendars.clear()  # a per-calendar error inside a 200 answer
    result = run_tool(
        tools(session, demo, factory, clock), "check_availability", {"date": "2026-11-25"}
    )
    assert not result.ok and result.data["error"] == "calendar_unavailable"
    assert "notFound" in result.message
    assert sleeps == []


def test_free_busy_is_cached_but_rechecked_before_booking(
    session: Session, demo, factory, clock, fake: FakeGoogle, connected
):
    for _ in range(3):
        run_tool(tools(session, demo, factory, clock), "check_availability", {"date": "2026-11-25"})
    assert fake.count("POST", "/freeBusy") == 1
    # Someone adds an event in Google after the cached answer: the booking re-checks.
    fake.add_owner_event(at(25, 9), at(25, 10))
    result = book(session, demo, factory, clock, at(25, 9), "k-recheck")
    assert not result.ok and result.data["error"] == "busy"
    # One fresh re-check for the slot, one for the alternatives offered instead.
    assert fake.count("POST", "/freeBusy") == 3


def test_move_patches_and_cancel_deletes_the_event(
    session: Session, demo, factory, clock, fake: FakeGoogle, connected
):
    result = book(session, demo, factory, clock, at(24, 9), "k-move")
    appointment_id = result.data["appointment"]["id"]
    event_id = google_id(demo, "k-move")
    # 15 minutes later overlaps its own old time: our own event must not block it.
    moved = run_tool(
        tools(session, demo, factory, clock),
        "reschedule_appointment",
        {"appointment_id": appointment_id, "new_start": at(24, 9, 15).isoformat()},
    )
    session.commit()
    assert moved.ok, moved.message
    assert fake.live_events()[event_id]["start"]["dateTime"] == "2026-11-24T17:15:00Z"

    cancelled = run_tool(
        tools(session, demo, factory, clock),
        "cancel_appointment",
        {"appointment_id": appointment_id},
    )
    session.commit()
    assert cancelled.ok
    assert fake.live_events() == {}
    # Deleting again (410 from Google) is what we wanted, not an error.
    appointment = session.get(Appointment, appointment_id)
    agent = session.get(Agent, demo.agent_id)
    factory(session, agent).delete_event(agent, appointment)


def test_timeouts_stay_inside_the_request_budget_and_keep_the_booking(
    session: Session,
    session_factory: sessionmaker[Session],
    demo,
    factory: GoogleCalendarFactory,
    clock,
    fake: FakeGoogle,
    connected,
):
    factory.options = dataclasses.replace(factory.options, http_timeout=0.1, budget=0.45)
    fake.hang = 0.6
    fake.fault_plan = ["", "timeout", "after_timeout", "timeout", "timeout", "timeout"]
    started = time.monotonic()
    result = book(session, demo, factory, clock, at(24, 10), "k-slow")
    elapsed = time.monotonic() - started
    assert result.ok  # confirmed to the caller; Google catches up later
    assert elapsed < 0.45 + 0.3
    appointment = session.scalar(select(Appointment))
    assert appointment.sync_status == "pending"
    assert appointment.last_sync_error
    session.commit()

    fake.fault_plan = []
    clock.advance(minutes=1)
    report = sweep_once(session_factory, factory, clock)
    assert report.synced == 1
    session.expire_all()
    assert session.get(Appointment, appointment.id).sync_status == "synced"
    assert list(fake.live_events()) == [google_id(demo, "k-slow")]


def test_revoked_grant_flags_connection_texts_owner_and_refuses_politely(
    session: Session,
    demo,
    factory,
    clock,
    fake: FakeGoogle,
    connected,
    refresh_token: str,
    sender: RecordingSender,
    caplog,
):
    fake.revoke(refresh_token)
    first = run_tool(tools(session, demo, factory, clock), "check_availability", {})
    session.commit()
    assert not first.ok and first.data["error"] == "calendar_unavailable"
    assert "renewed" in first.message
    connection = session.get(CalendarConnection, connected.id)
    assert connection.status == "needs_reconsent"
    assert len(sender.sent) == 1
    to, body = sender.sent[0]
    assert to == demo.caller and "/calendar/google/connect?t=" in body

    second = run_tool(tools(session, demo, factory, clock), "check_availability", {})
    session.commit()
    assert not second.ok and len(sender.sent) == 1  # told once, not on every message
    details = " ".join(str(d) for d in session.scalars(select(AuditEntry.details)))
    assert refresh_token not in details and refresh_token not in caplog.text
    assert demo.caller not in caplog.text


def test_pending_cancel_removes_an_event_whose_insert_answer_was_lost(
    session: Session, demo, factory: GoogleCalendarFactory, clock, fake: FakeGoogle, connected
):
    factory.options = dataclasses.replace(factory.options, max_retries=0)
    fake.fault_plan = ["", "after500"]
    result = book(session, demo, factory, clock, at(26, 13), "k-ghost")
    appointment = session.scalar(select(Appointment))
    assert result.ok and appointment.sync_status == "pending"
    assert appointment.external_event_id is None and len(fake.live_events()) == 1
    run_tool(
        tools(session, demo, factory, clock),
        "cancel_appointment",
        {"appointment_id": appointment.id},
    )
    session.commit()
    assert fake.live_events() == {}


def _weekday_starts(count: int) -> list[datetime]:
    times = [(9, 0), (9, 45), (10, 30), (11, 15), (13, 0), (13, 45), (14, 30), (15, 15), (16, 0)]
    starts: list[datetime] = []
    day = datetime(2026, 11, 24, tzinfo=PT)
    while len(starts) < count:
        if day.weekday() < 5:
            starts += [day.replace(hour=h, minute=m) for h, m in times]
        day += timedelta(days=1)
    return starts[:count]


def test_200_bookings_with_30_percent_faults_land_exactly_once(
    session_factory: sessionmaker[Session],
    demo: DemoData,
    factory: GoogleCalendarFactory,
    clock: FixedClock,
    fake: FakeGoogle,
    connected,
):
    factory.options = dataclasses.replace(
        factory.options, http_timeout=0.1, budget=1.0, max_retries=1
    )
    fake.hang = 0.3
    fake.fault_rate = 0.3
    fake.fault_kinds = ("429", "500", "503", "403rate", "after500", "after500", "after_timeout")
    confirmed: dict[str, str] = {}
    for number, start in enumerate(_weekday_starts(200)):
        key = f"vapi:call-{number}:tool-1"
        for _ in range(10):  # a caller told "try again" tries again
            with session_factory() as session:
                result = book(session, demo, factory, clock, start, key)
            if result.ok:
                confirmed[key] = result.data["appointment"]["id"]
                break
            assert result.data["error"] == "calendar_unavailable", result.message
    assert len(confirmed) == 200

    with session_factory() as session:
        pending = session.scalar(select(func.count()).where(Appointment.sync_status == "pending"))
    assert pending > 0  # the faults did leave work for the sweeper
    for _ in range(40):
        clock.advance(hours=1)
        sweep_once(session_factory, factory, clock)
        with session_factory() as session:
            left = session.scalar(select(func.count()).where(Appointment.sync_status == "pending"))
        if not left:
            break
    assert left == 0

    live = fake.live_events()
    assert set(live) == {google_id(demo, key) for key in confirmed}
    with session_factory() as session:
        for appointment in session.scalars(select(Appointment)):
            event = live[appointment.external_event_id]
            assert event["start"]["dateTime"] == appointment.start_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(live) == 200
