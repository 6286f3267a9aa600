"""Admin API for notifications: list and filter, reminder settings, attendance, analytics."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.demo import DemoData
from app.models import Notification, ReminderSettings
from app.security.api_keys import Role
from app.tools.schemas import BookAppointmentArgs
from tests.admin.conftest import Api, make_key
from tests.conftest import Reader
from tests.notifications.conftest import PERSON, tools

WED_3PM = datetime.fromisoformat("2026-11-25T15:00:00-08:00")


def book(factory: sessionmaker[Session], demo: DemoData, clock: FixedClock, start=WED_3PM) -> str:  # type: ignore[no-untyped-def]
    with factory() as session:
        result = tools(session, demo, clock(), "voice").book_appointment(
            BookAppointmentArgs(start=start, name="Dana")
        )
        session.commit()
    return str(result.data["appointment"]["id"])


def test_list_and_filter_notifications(api: Api, session_factory, demo, clock):
    appointment_id = book(session_factory, demo, clock)
    page = api.get("/notifications").json()
    assert len(page["items"]) == 3
    assert [i["kind"] for i in page["items"]] == ["reminder", "reminder", "confirmation"]
    item = page["items"][-1]
    assert item["to"] == "+1••••••0177" and PERSON not in str(page)
    assert item["status"] == "scheduled" and item["appointment_id"] == appointment_id
    assert all(i["send_at"] == i["due_at"] for i in page["items"])  # not planned yet
    only = api.get("/notifications", params={"kind": "confirmation", "status": "scheduled"})
    assert [i["kind"] for i in only.json()["items"]] == ["confirmation"]
    first = api.get("/notifications", params={"limit": 2}).json()
    rest = api.get("/notifications", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(first["items"]) + len(rest["items"]) == 3 and rest["next_cursor"] is None
    assert api.get("/notifications", params={"status": "bogus"}).status_code == 422


def test_scoped_key_sees_only_its_users_notifications(api: Api, session_factory, demo, clock):
    book(session_factory, demo, clock)
    other = api.post("/users", json={"name": "Other", "email": "o@example.com"}).json()
    scoped = api.as_key(make_key(session_factory, Role.READONLY, other["id"]))
    assert scoped.get("/notifications").json()["items"] == []
    assert scoped.get(f"/agents/{demo.agent_id}/reminder-settings").status_code == 404


def test_reminder_settings_round_trip_and_validation(
    api: Api, session_factory, demo, clock, db: Reader
):
    url = f"/agents/{demo.agent_id}/reminder-settings"
    assert api.get(url).json()["offsets_minutes"] == [1440, 120]
    body = {
        "offsets_minutes": [60, 2880, 60],
        "quiet_start": "22:00",
        "quiet_end": "07:00",
        "owner_notifications": True,
        "daily_agenda_time": "07:30",
    }
    saved = api.put(url, json=body)
    assert saved.status_code == 200, saved.text
    assert saved.json()["offsets_minutes"] == [2880, 60]
    assert db.get(ReminderSettings, demo.agent_id).daily_agenda_time == "07:30"
    bad = api.put(url, json={**body, "quiet_start": "25:00"})
    assert bad.status_code == 422 and "HH:MM" in bad.text
    assert api.put(url, json={"offsets_minutes": [1]}).status_code == 422
    assert api.put("/agents/agt_missing/reminder-settings", json=body).status_code == 404
    # The new settings apply to the next booking: 2 days and 1 hour before.
    appointment_id = book(session_factory, demo, clock)
    reminders = db.scalars(
        select(Notification).where(
            Notification.appointment_id == appointment_id, Notification.kind == "reminder"
        )
    )
    assert len(reminders) == 2


def test_attendance_and_reminder_analytics(api: Api, session_factory, demo, clock, db: Reader):
    first = book(session_factory, demo, clock)
    second = book(session_factory, demo, clock, datetime.fromisoformat("2026-11-26T10:00:00-08:00"))
    with session_factory() as session:  # the 24 h reminders went out
        for row in session.scalars(select(Notification).where(Notification.kind == "reminder")):
            if row.dedupe_key.endswith(":1440"):
                row.status = "delivered"
        session.commit()
    url = f"/appointments/{first}/attendance"
    too_early = api.put(url, json={"outcome": "no_show"})
    assert too_early.status_code == 409
    clock.advance(days=4)
    assert api.put(url, json={"outcome": "no_show"}).status_code == 200
    assert (
        api.put(f"/appointments/{second}/attendance", json={"outcome": "attended"}).json()[
            "outcome"
        ]
        == "attended"
    )
    assert api.put(url, json={"outcome": "maybe"}).status_code == 422
    stats = api.get("/analytics/reminders", params={"since": "2026-11-20", "until": "2026-11-30"})
    assert stats.status_code == 200, stats.text
    assert stats.json() == {
        "since": "2026-11-20",
        "until": "2026-11-30",
        "reminders_sent": 2,
        "reminders_delivered": 2,
        "confirmations": 0,
        "attendance_marked": 2,
        "no_shows": 1,
        "no_show_rate": 0.5,
    }
    backwards = api.get(
        "/analytics/reminders", params={"since": "2026-11-30", "until": "2026-11-01"}
    )
    assert backwards.status_code == 400
