"""The Microsoft 365 backend end to end: MSAL and httpx over TLS to a local fake
identity platform and Graph, driven through the scheduling tools."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.google import event_id_for
from app.calendar.local import LocalCalendar
from app.calendar.microsoft import MicrosoftCalendar, MicrosoftCalendarFactory
from app.calendar.sync import sweep_once
from app.clock import FixedClock
from app.demo import DemoData
from app.fakes.graph import FakeGraph
from app.models import Agent, Appointment, AuditEntry, CalendarConnection
from app.security.vault import TokenVault
from app.tools.registry import run_tool
from app.tools.service import SchedulingTools, ToolContext, stored_request_key
from tests.calendar.conftest import RecordingSender

PT = ZoneInfo("America/Los_Angeles")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=PT)


def tools(
    session: Session, demo: DemoData, factory: MicrosoftCalendarFactory, clock: FixedClock
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


def book(session, demo, factory, clock, start: datetime, key: str, **extra):  # type: ignore[no-untyped-def]
    result = run_tool(
        tools(session, demo, factory, clock),
        "book_appointment",
        {"start": start.isoformat(), "appointment_type": "consultation"} | extra,
        request_key=key,
    )
    session.commit()
    return result


def transaction_id(demo: DemoData, request_key: str) -> str:
    return event_id_for(demo.agent_id, stored_request_key(demo.agent_id, demo.caller, request_key))


def utc(event: dict) -> str:
    return event["start_utc"].strftime("%Y-%m-%dT%H:%M:%SZ")


def test_factory_picks_microsoft_only_for_connected_agents(
    session: Session, demo: DemoData, ms_factory: MicrosoftCalendarFactory, ms_connected
):
    agent = session.get(Agent, demo.agent_id)
    assert isinstance(ms_factory(session, agent), MicrosoftCalendar)
    session.get(CalendarConnection, ms_connected.id).status = "disconnected"
    session.flush()
    assert isinstance(ms_factory(session, agent), LocalCalendar)


def test_owner_events_block_times_in_utc_whatever_the_mailbox_zone(
    session: Session, demo, ms_factory, clock, graph: FakeGraph, ms_connected
):
    graph.mailbox_zone = "Pacific Standard Time"
    graph.add_owner_event(at(24, 10), at(24, 11))
    free = graph.add_owner_event(at(24, 11), at(24, 12))
    graph.events[free]["showAs"] = "free"  # a "free" event blocks nothing
    result = run_tool(
        tools(session, demo, ms_factory, clock),
        "check_availability",
        {"date": "2026-11-24", "appointment_type": "consultation", "part_of_day": "morning"},
    )
    assert result.ok
    starts = [datetime.fromisoformat(s) for s in result.data["slots"]]
    assert starts and not any(at(24, 9, 31) <= s < at(24, 11) for s in starts)
    assert any(at(24, 11) <= s < at(24, 12) for s in starts)
    calendar = ms_factory(session, session.get(Agent, demo.agent_id))
    assert calendar.mailbox_time_zone() == "Pacific Standard Time"


def test_a_booking_lands_once_with_its_transaction_id_and_moves_and_cancels(
    session: Session, demo, ms_factory, clock, graph: FakeGraph, ms_connected
):
    result = book(session, demo, ms_factory, clock, at(24, 15), "call-1:turn-3", name="Ana Diaz")
    assert result.ok, result.message
    appointment = session.scalar(select(Appointment))
    assert appointment.sync_status == "synced"
    event = graph.live_events()[appointment.external_event_id]
    assert event["transactionId"] == transaction_id(demo, "call-1:turn-3")
    assert utc(event) == "2026-11-24T23:00:00Z" and "Ana Diaz" in event["subject"]
    again = book(session, demo, ms_factory, clock, at(24, 15), "call-1:turn-3", name="Ana Diaz")
    assert again.ok and again.data["appointment"]["id"] == appointment.id
    assert graph.count("POST", "/events") == 1

    moved = run_tool(
        tools(session, demo, ms_factory, clock),
        "reschedule_appointment",
        {"appointment_id": appointment.id, "new_start": at(24, 15, 15).isoformat()},
    )
    session.commit()
    assert moved.ok, moved.message
    assert utc(graph.live_events()[appointment.external_event_id]) == "2026-11-24T23:15:00Z"
    session.expire_all()  # the next request reads what the sync wrote
    cancelled = run_tool(
        tools(session, demo, ms_factory, clock),
        "cancel_appointment",
        {"appointment_id": appointment.id},
    )
    session.commit()
    session.expire_all()
    row = session.get(Appointment, appointment.id)
    assert (row.sync_status, row.last_sync_error) == ("synced", None)
    assert cancelled.ok and graph.live_events() == {}


def test_lost_create_answer_is_retried_into_the_same_event(
    session: Session, demo, ms_factory, clock, graph: FakeGraph, ms_connected, sleeps
):
    graph.fault_plan = ["", "after500"]  # calendarView answers; the create lands, answer lost
    result = book(session, demo, ms_factory, clock, at(24, 13), "k-lost")
    assert result.ok
    appointment = session.scalar(select(Appointment))
    assert appointment.sync_status == "synced"
    assert graph.count("POST", "/events") == 2
    assert list(graph.live_events()) == [appointment.external_event_id]


def test_throttling_waits_retry_after_inside_the_budget_only(
    session: Session, demo, ms_factory, clock, graph: FakeGraph, ms_connected, sleeps
):
    graph.retry_after = "0.25"
    graph.fault_plan = ["429", "503"]
    result = run_tool(
        tools(session, demo, ms_factory, clock), "check_availability", {"date": "2026-11-25"}
    )
    assert result.ok and result.data["slots"]
    assert sleeps == [0.25, 0.25]

    # Graph asks for more time than the caller has: no sleep, a plain refusal.
    sleeps.clear()
    graph.retry_after = "30"
    graph.fault_plan = ["429"]
    later = run_tool(
        tools(session, demo, ms_factory, clock), "check_availability", {"date": "2026-11-30"}
    )
    assert not later.ok and later.data["error"] == "calendar_unavailable"
    assert sleeps == []


def test_outage_uses_a_recent_answer_then_refuses_to_guess(
    session: Session, demo, ms_factory, clock, graph: FakeGraph, ms_connected
):
    ms_factory.cache.ttl = 0.0  # every ask goes to Graph; only the outage fallback remains
    ok = run_tool(
        tools(session, demo, ms_factory, clock), "check_availability", {"date": "2026-11-25"}
    )
    assert ok.ok
    graph.fault_rate, graph.fault_kinds = 1.0, ("500",)
    again = run_tool(
        tools(session, demo, ms_factory, clock), "check_availability", {"date": "2026-11-25"}
    )
    assert again.ok and again.data["slots"] == ok.data["slots"]
    other = run_tool(
        tools(session, demo, ms_factory, clock), "check_availability", {"date": "2026-11-27"}
    )
    assert not other.ok and "can't check the calendar" in other.message


def test_revoked_grant_or_consent_flags_connection_and_texts_a_microsoft_link(
    session: Session,
    demo,
    ms_factory,
    clock,
    graph: FakeGraph,
    ms_connected,
    ms_refresh_token: str,
    sender: RecordingSender,
    caplog,
):
    graph.revoke(ms_refresh_token, "consent")
    first = run_tool(tools(session, demo, ms_factory, clock), "check_availability", {})
    session.commit()
    assert not first.ok and "renewed" in first.message
    assert session.get(CalendarConnection, ms_connected.id).status == "needs_reconsent"
    assert len(sender.sent) == 1
    to, body = sender.sent[0]
    assert to == demo.caller and "/calendar/microsoft/connect?t=" in body
    second = run_tool(tools(session, demo, ms_factory, clock), "check_availability", {})
    session.commit()
    assert not second.ok and len(sender.sent) == 1  # told once
    details = " ".join(str(d) for d in session.scalars(select(AuditEntry.details)))
    assert ms_refresh_token not in details and ms_refresh_token not in caplog.text


def test_rotated_refresh_tokens_are_stored_encrypted_after_commit(
    session: Session, demo, ms_factory, clock, graph: FakeGraph, ms_connected, vault: TokenVault
):
    result = book(session, demo, ms_factory, clock, at(24, 9), "k-rotate")
    assert result.ok
    session.expire_all()
    stored = vault.decrypt(session.get(CalendarConnection, ms_connected.id).encrypted_refresh_token)
    assert graph.refresh_tokens[stored] == "ok" and stored.startswith("0.rt.")
    # The token the connection started with is no longer the one kept.
    assert len(graph.refresh_tokens) == 2


def _weekday_starts(count: int) -> list[datetime]:
    times = [(9, 0), (9, 45), (10, 30), (11, 15), (13, 0), (13, 45), (14, 30), (15, 15), (16, 0)]
    starts: list[datetime] = []
    day = datetime(2026, 11, 24, tzinfo=PT)
    while len(starts) < count:
        if day.weekday() < 5:
            starts += [day.replace(hour=h, minute=m) for h, m in times]
        day += timedelta(days=1)
    return starts[:count]


def test_120_bookings_with_30_percent_of_graph_calls_failing_land_exactly_once(
    session_factory: sessionmaker[Session],
    demo: DemoData,
    ms_factory: MicrosoftCalendarFactory,
    clock: FixedClock,
    graph: FakeGraph,
    ms_connected,
):
    ms_factory.max_retries = 1
    ms_factory.http_timeout = 0.15
    graph.hang = 0.3
    graph.fault_rate = 0.3
    graph.fault_kinds = ("429", "500", "503", "after500", "after500", "after_timeout")
    confirmed: dict[str, str] = {}
    for number, start in enumerate(_weekday_starts(120)):
        key = f"vapi:call-{number}:tool-1"
        for _ in range(10):  # a caller told "try again" tries again
            with session_factory() as session:
                result = book(session, demo, ms_factory, clock, start, key)
            if result.ok:
                confirmed[key] = result.data["appointment"]["id"]
                break
            assert result.data["error"] == "calendar_unavailable", result.message
    assert len(confirmed) == 120
    with session_factory() as session:
        pending = session.scalar(select(func.count()).where(Appointment.sync_status == "pending"))
    assert pending > 0  # the faults left work for the sweeper
    for _ in range(40):
        clock.advance(hours=1)
        sweep_once(session_factory, ms_factory, clock)
        with session_factory() as session:
            left = session.scalar(select(func.count()).where(Appointment.sync_status == "pending"))
        if not left:
            break
    assert left == 0
    live = graph.live_events()
    assert len(live) == 120  # no duplicate, none lost
    assert {e["transactionId"] for e in live.values()} == {
        transaction_id(demo, key) for key in confirmed
    }
    with session_factory() as session:
        for appointment in session.scalars(select(Appointment)):
            event = live[appointment.external_event_id]
            assert utc(event) == appointment.start_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_times_in_a_windows_zone_are_refused_rather_than_guessed(
    session: Session, demo, ms_factory, clock, graph: FakeGraph, ms_connected
):
    graph.honour_prefer = False  # Graph answers in "Pacific Standard Time"
    graph.add_owner_event(at(24, 10), at(24, 11))
    result = run_tool(
        tools(session, demo, ms_factory, clock), "check_availability", {"date": "2026-11-24"}
    )
    assert not result.ok and result.data["error"] == "calendar_unavailable"
