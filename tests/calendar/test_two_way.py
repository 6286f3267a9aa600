"""Two-way sync: the owner moves or deletes one of our events in Google Calendar or
Outlook, the provider pushes (or the poll reads) the change, and the appointment and
the caller follow. Forged and replayed notifications change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.google import GoogleCalendarFactory
from app.calendar.two_way import TwoWaySync, stop_push
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.fakes.graph import FakeGraph
from app.main import create_app
from app.models import (
    Agent,
    Appointment,
    AuditEntry,
    CalendarConnection,
    CalendarWatch,
    Notification,
)
from app.tools.registry import run_tool
from app.tools.service import SchedulingTools, ToolContext
from tests.calendar.fake_google import FakeGoogle
from tests.conftest import PUBLIC_BASE_URL

PT = ZoneInfo("America/Los_Angeles")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=PT)


def book(session: Session, demo: DemoData, factory, clock: FixedClock, start: datetime) -> str:  # type: ignore[no-untyped-def]
    agent = session.get(Agent, demo.agent_id)
    tools = SchedulingTools(
        ToolContext(
            session=session,
            agent=agent,
            calendar=factory(session, agent),
            now=clock(),
            caller=demo.caller,
            channel="sms",
        )
    )
    result = run_tool(
        tools,
        "book_appointment",
        {"start": start.isoformat(), "appointment_type": "consultation", "name": "Ana"},
        request_key=f"k-{start.isoformat()}",
    )
    session.commit()
    assert result.ok, result.message
    return str(result.data["appointment"]["id"])


def app_client(settings: Settings, session_factory, clock, factory) -> TestClient:  # type: ignore[no-untyped-def]
    app = create_app(
        settings, session_factory=session_factory, clock=clock, calendar_factory=factory
    )
    return TestClient(app, base_url=PUBLIC_BASE_URL)


def caller_texts(db, appointment_id: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        n.body
        for n in db.scalars(
            select(Notification).where(Notification.appointment_id == appointment_id)
        )
        if n.kind == "confirmation"
    ]


# --- Microsoft Graph ----------------------------------------------------------------------


@pytest.fixture
def ms_sync(
    ms_settings: Settings, session_factory: sessionmaker[Session], ms_factory, clock
) -> TwoWaySync:
    return TwoWaySync(ms_settings, session_factory, ms_factory, clock)


@pytest.fixture
def ms_push(ms_settings, session_factory, clock, ms_factory) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with app_client(ms_settings, session_factory, clock, ms_factory) as client:
        yield client


def subscribed(ms_sync: TwoWaySync, graph: FakeGraph, connection_id: str) -> dict:
    assert ms_sync.ensure_watches() == 1
    ms_sync.sync(connection_id)  # the first read sets the delta cursor
    (subscription,) = graph.subscriptions.values()
    return subscription


def note(subscription: dict, event_id: str, **extra: str) -> dict:
    return {
        "value": [
            {
                "subscriptionId": subscription["id"],
                "clientState": subscription["clientState"],
                "changeType": "updated",
                "resource": f"Users/x/Events/{event_id}",
                **extra,
            }
        ]
    }


def test_owner_moves_our_outlook_event_and_the_appointment_and_caller_follow(
    session: Session, db, demo, ms_factory, clock, graph: FakeGraph, ms_connected, ms_sync, ms_push
):
    appointment_id = book(session, demo, ms_factory, clock, at(24, 10))
    event_id = db.get(Appointment, appointment_id).external_event_id
    subscription = subscribed(ms_sync, graph, ms_connected.id)
    assert subscription["notificationUrl"] == f"{PUBLIC_BASE_URL}/webhooks/calendar/microsoft"
    assert subscription["resource"] == "me/events"
    # A free/busy answer is cached; the push must drop it at once.
    ms_factory.cache.put((ms_connected.id, "primary", at(25, 0), at(26, 0)), [])

    graph.owner_move(event_id, at(25, 14), at(25, 14, 30))
    answer = ms_push.post("/webhooks/calendar/microsoft", json=note(subscription, event_id))
    assert answer.status_code == 202
    moved = db.get(Appointment, appointment_id)
    assert moved.status == "confirmed" and moved.start_at == at(25, 14)
    assert moved.sync_status == "synced"
    assert any(t.startswith("Moved:") and "Nov 25" in t for t in caller_texts(db, appointment_id))
    assert (
        db.scalar(select(AuditEntry).where(AuditEntry.action == "appointment.moved_by_owner"))
        is not None
    )
    assert ms_factory.cache.get((ms_connected.id, "primary", at(25, 0), at(26, 0))) is None
    assert graph.live_events()[event_id]["start_utc"] == at(25, 14)  # nothing written back
    # Reminders follow the appointment: the old ones skipped, new ones for the new time.
    reminders = list(
        db.scalars(
            select(Notification).where(
                Notification.appointment_id == appointment_id, Notification.kind == "reminder"
            )
        )
    )
    assert {r.status for r in reminders if "Nov 24" in r.body} == {"skipped"}
    assert any(r.status == "scheduled" and "Nov 25" in r.body for r in reminders)


def test_owner_deletes_our_outlook_event_and_the_caller_is_told(
    session: Session, db, demo, ms_factory, clock, graph: FakeGraph, ms_connected, ms_sync, ms_push
):
    appointment_id = book(session, demo, ms_factory, clock, at(24, 11))
    event_id = db.get(Appointment, appointment_id).external_event_id
    subscription = subscribed(ms_sync, graph, ms_connected.id)
    graph.owner_delete(event_id)
    ms_push.post(
        "/webhooks/calendar/microsoft", json=note(subscription, event_id, changeType="deleted")
    )
    cancelled = db.get(Appointment, appointment_id)
    assert cancelled.status == "cancelled"
    assert any(t.startswith("Cancelled:") for t in caller_texts(db, appointment_id))


def owner_texts(db, appointment_id: str, kind: str) -> list[Notification]:  # type: ignore[no-untyped-def]
    return list(
        db.scalars(
            select(Notification).where(
                Notification.appointment_id == appointment_id, Notification.kind == kind
            )
        )
    )


def test_owner_move_onto_another_booking_is_put_back_and_the_owner_told(
    session: Session, db, demo, ms_factory, clock, graph: FakeGraph, ms_connected, ms_sync, ms_push
):
    appointment_id = book(session, demo, ms_factory, clock, at(24, 10))
    book(session, demo, ms_factory, clock, at(24, 14))  # another confirmed booking
    event_id = db.get(Appointment, appointment_id).external_event_id
    subscription = subscribed(ms_sync, graph, ms_connected.id)

    graph.owner_move(event_id, at(24, 14), at(24, 14, 30))
    assert (
        ms_push.post("/webhooks/calendar/microsoft", json=note(subscription, event_id)).status_code
        == 202
    )
    kept = db.get(Appointment, appointment_id)
    assert kept.status == "confirmed" and kept.start_at == at(24, 10)
    assert kept.sync_status == "synced"
    # Ours wins: the event is back at the booked time in the owner's Outlook.
    assert graph.live_events()[event_id]["start_utc"] == at(24, 10)
    assert not any(t.startswith("Moved:") for t in caller_texts(db, appointment_id))
    (told,) = owner_texts(db, appointment_id, "owner_move_refused")
    assert told.to_e164 == demo.caller  # the owner's verified phone in the demo
    assert "Nov 24 at 2:00 PM" in told.body and "stays on Tue Nov 24 at 10:00 AM" in told.body
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "calendar.owner_move_refused"))
    assert entry is not None and entry.details["wanted"] == at(24, 14).astimezone(UTC).isoformat()

    # The write-back comes round as a change at the booked time: nothing more happens,
    # and a poll reading the same refused move again texts nobody twice.
    assert (
        ms_push.post(
            "/webhooks/calendar/microsoft", json=note(subscription, event_id, sequence="2")
        ).status_code
        == 202
    )
    ms_sync.sync(ms_connected.id)
    assert len(owner_texts(db, appointment_id, "owner_move_refused")) == 1
    assert db.get(Appointment, appointment_id).start_at == at(24, 10)


def test_owner_move_outside_hours_stands_and_both_are_told(
    session: Session, db, demo, ms_factory, clock, graph: FakeGraph, ms_connected, ms_sync, ms_push
):
    appointment_id = book(session, demo, ms_factory, clock, at(24, 10))
    event_id = db.get(Appointment, appointment_id).external_event_id
    subscription = subscribed(ms_sync, graph, ms_connected.id)

    graph.owner_move(event_id, at(24, 20), at(24, 20, 30))  # 8 PM: after hours
    ms_push.post("/webhooks/calendar/microsoft", json=note(subscription, event_id))
    moved = db.get(Appointment, appointment_id)
    assert moved.start_at == at(24, 20) and moved.status == "confirmed"
    assert graph.live_events()[event_id]["start_utc"] == at(24, 20)  # the owner's choice
    assert any(t.startswith("Moved:") and "8:00 PM" in t for t in caller_texts(db, appointment_id))
    (told,) = owner_texts(db, appointment_id, "owner_outside_hours")
    assert "outside your agent's hours" in told.body and "Nov 24 at 8:00 PM" in told.body
    entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "appointment.moved_by_owner"))
    assert entry is not None and entry.details["outside_hours"] is True


def test_owner_move_within_hours_texts_only_the_caller(
    session: Session, db, demo, ms_factory, clock, graph: FakeGraph, ms_connected, ms_sync
):
    appointment_id = book(session, demo, ms_factory, clock, at(24, 10))
    event_id = db.get(Appointment, appointment_id).external_event_id
    ms_sync.sync(ms_connected.id)
    graph.owner_move(event_id, at(25, 11), at(25, 11, 30))
    assert ms_sync.sync(ms_connected.id).moved == 1
    for kind in ("owner_outside_hours", "owner_move_refused"):
        assert owner_texts(db, appointment_id, kind) == []


def test_foreign_outlook_events_only_change_availability(
    session: Session, db, demo, ms_factory, clock, graph: FakeGraph, ms_connected, ms_sync
):
    appointment_id = book(session, demo, ms_factory, clock, at(24, 9))
    ms_sync.sync(ms_connected.id)
    graph.add_owner_event(at(24, 9), at(24, 10))  # the owner double-books themselves
    report = ms_sync.sync(ms_connected.id)
    assert (report.moved, report.cancelled, report.foreign) == (0, 0, 1)
    assert db.get(Appointment, appointment_id).start_at == at(24, 9)


def test_forged_and_replayed_graph_notifications_change_nothing(
    session: Session, db, demo, ms_factory, clock, graph: FakeGraph, ms_connected, ms_sync, ms_push
):
    appointment_id = book(session, demo, ms_factory, clock, at(24, 10))
    event_id = db.get(Appointment, appointment_id).external_event_id
    subscription = subscribed(ms_sync, graph, ms_connected.id)
    graph.owner_move(event_id, at(26, 10), at(26, 10, 30))

    forged = note(subscription, event_id)
    forged["value"][0]["clientState"] = "guessed"
    assert ms_push.post("/webhooks/calendar/microsoft", json=forged).status_code == 403
    unknown = note({"id": "nope", "clientState": subscription["clientState"]}, event_id)
    assert ms_push.post("/webhooks/calendar/microsoft", json=unknown).status_code == 403
    assert db.get(Appointment, appointment_id).start_at == at(24, 10)
    assert ms_push.post("/webhooks/calendar/microsoft", content=b"{not json").status_code == 400

    genuine = note(subscription, event_id)
    assert ms_push.post("/webhooks/calendar/microsoft", json=genuine).status_code == 202
    reads = graph.count("GET", "/calendarView/delta")
    assert ms_push.post("/webhooks/calendar/microsoft", json=genuine).status_code == 202
    assert graph.count("GET", "/calendarView/delta") == reads  # the replay did nothing
    assert len([t for t in caller_texts(db, appointment_id) if t.startswith("Moved:")]) == 1


def test_graph_validation_handshake_is_echoed_as_plain_text(ms_push: TestClient):
    for path in ("/webhooks/calendar/microsoft", "/webhooks/calendar/microsoft/lifecycle"):
        answer = ms_push.post(path, params={"validationToken": "Validation: <token> 42"})
        assert answer.status_code == 200 and answer.text == "Validation: <token> 42"
        assert answer.headers["content-type"].startswith("text/plain")


def test_hostile_graph_bodies_get_a_400_never_a_500(ms_push: TestClient):
    nested = '{"value":' + "[" * 5000 + "]" * 5000 + "}"
    for path in ("/webhooks/calendar/microsoft", "/webhooks/calendar/microsoft/lifecycle"):
        for body in (nested, "{not json", '{"value": "x"}'):
            answer = ms_push.post(path, content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 400, (path, body[:20])


def test_subscription_renewal_before_expiry_and_lifecycle_removal(
    db, ms_factory, clock, graph: FakeGraph, ms_connected, ms_sync, ms_push, ms_settings
):
    subscription = subscribed(ms_sync, graph, ms_connected.id)
    first_expiry = db.scalar(select(CalendarWatch)).expires_at
    assert first_expiry == clock() + timedelta(hours=ms_settings.calendar_watch_hours)
    assert ms_sync.ensure_watches() == 0  # far from expiry: nothing to do
    clock.advance(hours=ms_settings.calendar_watch_hours - ms_settings.calendar_watch_renew_hours)
    assert ms_sync.ensure_watches() == 1
    assert list(graph.subscriptions) == [subscription["id"]]  # renewed, not replaced
    assert db.scalar(select(CalendarWatch)).expires_at > first_expiry

    # Graph dropped it: the lifecycle notification makes a new one.
    graph.subscriptions.clear()
    removed = note(subscription, "x", lifecycleEvent="subscriptionRemoved")
    assert ms_push.post("/webhooks/calendar/microsoft/lifecycle", json=removed).status_code == 202
    (renewed,) = graph.subscriptions.values()
    assert renewed["id"] != subscription["id"]
    assert db.scalar(select(CalendarWatch)).channel_id == renewed["id"]


def test_expired_delta_link_means_a_full_resync(
    session: Session, db, demo, ms_factory, clock, graph: FakeGraph, ms_connected, ms_sync
):
    appointment_id = book(session, demo, ms_factory, clock, at(24, 10))
    event_id = db.get(Appointment, appointment_id).external_event_id
    ms_sync.sync(ms_connected.id)
    with ms_sync.session_factory() as s:
        s.scalar(select(CalendarWatch)).sync_token = graph.graph_base_url + (
            "/me/calendarView/delta?$deltatoken=999999"
        )
        s.commit()
    graph.owner_move(event_id, at(27, 10), at(27, 10, 30))
    report = ms_sync.sync(ms_connected.id)
    assert report.moved == 1 and db.get(Appointment, appointment_id).start_at == at(27, 10)
    assert "deltatoken=" in db.scalar(select(CalendarWatch)).sync_token


def test_disconnect_stops_the_subscription(
    session: Session, demo, ms_factory, graph: FakeGraph, ms_connected, ms_sync
):
    subscribed(ms_sync, graph, ms_connected.id)
    stop_push(session, ms_factory, session.get(Agent, demo.agent_id))
    session.commit()
    assert graph.subscriptions == {}
    assert session.scalar(select(CalendarWatch)) is None


def test_without_a_public_https_url_sync_polls(
    session: Session,
    session_factory,
    db,
    demo,
    ms_factory,
    clock,
    graph: FakeGraph,
    ms_connected,
    ms_settings,
):
    local = ms_settings.model_copy(update={"public_base_url": "http://127.0.0.1:8000"})
    poller = TwoWaySync(local, session_factory, ms_factory, clock)
    appointment_id = book(session, demo, ms_factory, clock, at(24, 10))
    assert poller.ensure_watches() == 0 and graph.subscriptions == {}
    poller.poll_all()
    graph.owner_move(
        db.get(Appointment, appointment_id).external_event_id, at(24, 16), at(24, 16, 30)
    )
    assert poller.poll_all() == 1
    assert db.get(Appointment, appointment_id).start_at == at(24, 16)


# --- Google ---------------------------------------------------------------------------------


@pytest.fixture
def g_sync(google_settings: Settings, session_factory, factory: GoogleCalendarFactory, clock, fake):  # type: ignore[no-untyped-def]
    fake.now = lambda: clock().timestamp()
    return TwoWaySync(google_settings, session_factory, factory, clock)


def test_owner_moves_and_deletes_google_events_through_the_channel(
    session: Session, db, demo, factory, clock, fake: FakeGoogle, connected, g_sync, google_settings
):
    moved_id = book(session, demo, factory, clock, at(24, 10))
    deleted_id = book(session, demo, factory, clock, at(24, 13))
    assert g_sync.ensure_watches() == 1
    g_sync.sync(connected.id)
    (channel,) = fake.channels.values()
    assert channel["address"] == f"{PUBLIC_BASE_URL}/webhooks/calendar/google"
    headers = {
        "X-Goog-Channel-ID": channel["id"],
        "X-Goog-Channel-Token": channel["token"],
        "X-Goog-Resource-ID": channel["resourceId"],
        "X-Goog-Resource-State": "exists",
        "X-Goog-Message-Number": "2",
    }
    with app_client(google_settings, g_sync.session_factory, clock, factory) as client:
        fake.owner_move(db.get(Appointment, moved_id).external_event_id, at(25, 9), at(25, 9, 30))
        fake.owner_delete(db.get(Appointment, deleted_id).external_event_id)
        forged = headers | {"X-Goog-Channel-Token": "guess"}
        assert client.post("/webhooks/calendar/google", headers=forged).status_code == 403
        assert db.get(Appointment, moved_id).start_at == at(24, 10)
        assert client.post("/webhooks/calendar/google", headers=headers).status_code == 200
        lists = fake.count("GET", "/events")
        assert client.post("/webhooks/calendar/google", headers=headers).status_code == 200
        assert fake.count("GET", "/events") == lists  # replayed message number: nothing
    assert db.get(Appointment, moved_id).start_at == at(25, 9)
    assert db.get(Appointment, deleted_id).status == "cancelled"
    assert any(t.startswith("Moved:") for t in caller_texts(db, moved_id))
    assert any(t.startswith("Cancelled:") for t in caller_texts(db, deleted_id))
    refused = db.scalar(select(AuditEntry).where(AuditEntry.action == "calendar.push_refused"))
    assert refused is not None and "guess" not in json.dumps(refused.details)


def test_google_channel_is_replaced_before_expiry_and_stopped_on_disconnect(
    session: Session, demo, factory, clock, fake: FakeGoogle, connected, g_sync, google_settings
):
    assert g_sync.ensure_watches() == 1
    (first,) = fake.channels
    clock.advance(hours=google_settings.calendar_watch_hours - 23)
    assert g_sync.ensure_watches() == 1
    (second,) = fake.channels  # the old channel was stopped once the new one was live
    assert second != first
    stop_push(session, factory, session.get(Agent, demo.agent_id))
    session.commit()
    assert fake.channels == {}


def test_expired_google_sync_token_means_a_full_resync(
    session: Session, db, demo, factory, clock, fake: FakeGoogle, connected, g_sync
):
    appointment_id = book(session, demo, factory, clock, at(24, 10))
    g_sync.sync(connected.id)
    with g_sync.session_factory() as s:
        s.scalar(select(CalendarWatch)).sync_token = "999999"
        s.commit()
    fake.owner_move(db.get(Appointment, appointment_id).external_event_id, at(26, 9), at(26, 9, 30))
    assert g_sync.sync(connected.id).moved == 1
    assert db.get(Appointment, appointment_id).start_at == at(26, 9)


def test_a_flood_of_notifications_on_one_channel_is_rate_limited(
    session_factory,
    db,
    demo,
    ms_factory,
    clock,
    graph: FakeGraph,
    ms_connected,
    ms_sync,
    ms_settings,
):
    subscription = subscribed(ms_sync, graph, ms_connected.id)
    limited = ms_settings.model_copy(update={"rate_limit_calendar_push": "3/minute"})
    with app_client(limited, session_factory, clock, ms_factory) as client:
        answers = [
            client.post(
                "/webhooks/calendar/microsoft", json=note(subscription, f"e{n}")
            ).status_code
            for n in range(5)
        ]
    assert answers == [202, 202, 202, 429, 429]


def test_revoked_consent_found_by_the_poll_is_kept_and_texted_once(
    db, demo, graph: FakeGraph, ms_connected, ms_sync, ms_refresh_token, sender
):
    graph.revoke(ms_refresh_token)
    assert ms_sync.poll_all() == 1
    assert ms_sync.poll_all() == 0  # no longer active: not polled again
    assert db.get(CalendarConnection, ms_connected.id).status == "needs_reconsent"
    assert len(sender.sent) == 1 and "/calendar/microsoft/connect?t=" in sender.sent[0][1]


def test_google_owner_move_onto_another_booking_is_put_back(
    session: Session, db, demo, factory, clock, fake: FakeGoogle, connected, g_sync
):
    appointment_id = book(session, demo, factory, clock, at(24, 10))
    book(session, demo, factory, clock, at(24, 15))
    event_id = db.get(Appointment, appointment_id).external_event_id
    g_sync.sync(connected.id)
    fake.owner_move(event_id, at(24, 15, 15), at(24, 15, 45))
    report = g_sync.sync(connected.id)
    assert report.refused == [appointment_id] and report.moved == 0
    assert db.get(Appointment, appointment_id).start_at == at(24, 10)
    assert fake.live_events()[event_id]["start"]["dateTime"] == "2026-11-24T18:00:00Z"
    assert len(owner_texts(db, appointment_id, "owner_move_refused")) == 1
