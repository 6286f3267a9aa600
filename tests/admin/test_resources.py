"""Agents, appointments (through the tools), conversations, pagination edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.local import LocalCalendar
from app.demo import DemoData
from app.models import Agent, Appointment, AuditEntry, Conversation, Message
from app.security.pins import verify_pin
from app.tools.schemas import BookAppointmentArgs
from app.tools.service import SchedulingTools, ToolContext
from tests.admin.conftest import Api, create_agent, create_user
from tests.conftest import PINNED_NOW

TUESDAY_3PM_PT = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)


def book(session: Session, demo: DemoData, start: datetime, caller: str | None = None) -> str:
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    tools = SchedulingTools(
        ToolContext(
            session, agent, LocalCalendar(session), PINNED_NOW, caller or demo.caller, "sms"
        )
    )
    result = tools.book_appointment(
        BookAppointmentArgs(start=start, appointment_type="consultation")
    )
    assert result.ok, result.message
    session.commit()
    return result.data["appointment"]["id"]


# --- agents ---------------------------------------------------------------------------------


def test_agent_settings_round_trip_and_pin_is_hashed(api: Api, session: Session) -> None:
    user = create_user(api)
    agent = create_agent(api, user["id"], pin="2468", daily_cap=8, caller_id_policy="strict")
    assert agent["has_pin"] is True and "pin" not in agent and "pin_hash" not in agent
    stored = session.get(Agent, agent["id"])
    assert stored is not None and stored.pin_hash and "2468" not in stored.pin_hash
    assert verify_pin("2468", stored.pin_hash)
    session.rollback()
    changed = api.patch(
        f"/agents/{agent['id']}",
        json={"greeting": "Hello!", "min_notice_minutes": 120, "clear_daily_cap": True},
    ).json()
    assert changed["greeting"] == "Hello!" and changed["min_notice_minutes"] == 120
    assert changed["daily_cap"] is None and changed["weekly_hours"]["mon"] == [["09:00", "17:00"]]
    assert api.patch(f"/agents/{agent['id']}", json={"clear_pin": True}).json()["has_pin"] is False
    audit_details = str(session.scalars(select(AuditEntry.details)).all())
    assert "2468" not in audit_details


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("timezone", "Mars/Olympus", "unknown IANA time zone"),
        ("timezone", "../../etc/passwd", "not an IANA time zone"),
        ("weekly_hours", {"mon": [["17:00", "09:00"]]}, "closes before it opens"),
        ("weekly_hours", {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}, "overlap"),
        ("weekly_hours", {"funday": [["09:00", "12:00"]]}, "unknown day"),
        ("weekly_hours", {"mon": [["9am", "12:00"]]}, "HH:MM"),
        ("pin", "12", "String should match pattern"),
        ("appointment_types", [{"key": "a", "name": "A", "duration_minutes": 1}], "greater"),
        ("caller_id_policy", "whatever", "Input should be"),
    ],
)
def test_agent_input_is_validated(api: Api, field: str, value: object, reason: str) -> None:
    user = create_user(api)
    body = {"user_id": user["id"], "name": "x", field: value}
    response = api.post("/agents", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"
    assert reason in response.json()["detail"]
    assert str(value) not in str(response.json()["fields"]) or field == "timezone"


def test_unknown_fields_and_wrong_content_type_are_refused(api: Api) -> None:
    assert api.post("/users", json={"name": "x", "admin": True}).status_code == 422
    form = api.post("/users", data={"name": "x"})
    assert form.status_code == 415 and form.json()["error"] == "unsupported_media_type"


# --- appointments and pagination ------------------------------------------------------------------


def test_list_filters_and_pages(api: Api, demo: DemoData, session: Session) -> None:
    ids = [book(session, demo, TUESDAY_3PM_PT + timedelta(hours=h)) for h in (-5, -4, -2, -1, 0)]
    first = api.get("/appointments", params={"agent_id": demo.agent_id, "limit": 2}).json()
    assert [a["id"] for a in first["items"]] == ids[:2]
    assert first["items"][0]["contact"] == "+1••••••0123"
    second = api.get("/appointments", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = api.get("/appointments", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [a["id"] for a in second["items"] + third["items"]] == ids[2:]
    assert third["next_cursor"] is None
    exact = api.get("/appointments", params={"limit": 5}).json()
    assert len(exact["items"]) == 5 and exact["next_cursor"] is None
    assert api.get("/appointments", params={"limit": 0}).status_code == 422
    assert api.get("/appointments", params={"limit": 201}).status_code == 422
    bad = api.get("/appointments", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_cursor"
    day = api.get("/appointments", params={"date_from": "2026-11-25"}).json()
    assert day["items"] == []
    cancelled = api.get("/appointments", params={"status": "cancelled"}).json()
    assert cancelled["items"] == []


def test_pages_stay_stable_when_rows_arrive_between_them(
    api: Api, demo: DemoData, session: Session
) -> None:
    ids = [book(session, demo, TUESDAY_3PM_PT + timedelta(hours=h)) for h in (-4, -2, -1)]
    first = api.get("/appointments", params={"limit": 2}).json()
    book(session, demo, TUESDAY_3PM_PT - timedelta(hours=5))  # sorts before the cursor
    rest = api.get("/appointments", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [a["id"] for a in first["items"] + rest["items"]] == ids


def test_cancel_and_reschedule_go_through_the_tools(
    api: Api, demo: DemoData, session: Session
) -> None:
    first = book(session, demo, TUESDAY_3PM_PT)
    other = book(session, demo, TUESDAY_3PM_PT + timedelta(hours=1), caller="+14155550999")
    busy = api.post(
        f"/appointments/{first}/reschedule",
        json={"new_start": "2026-11-24T16:00:00-08:00"},
    ).json()
    assert busy["ok"] is False and "Nearby free times" in busy["message"]
    assert busy["appointment"]["start_at"].startswith("2026-11-24T23:00")
    moved = api.post(
        f"/appointments/{first}/reschedule", json={"new_start": "2026-11-25T10:00:00"}
    ).json()
    assert moved["ok"] is True
    assert moved["appointment"]["start_at"].startswith("2026-11-25T18:00")
    closed = api.post(
        f"/appointments/{other}/reschedule", json={"new_start": "2026-11-29T10:00:00"}
    ).json()
    assert closed["ok"] is False  # Sunday: closed
    cancelled = api.post(f"/appointments/{other}/cancel").json()
    assert cancelled["ok"] is True and cancelled["appointment"]["status"] == "cancelled"
    session.expire_all()
    actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions.count("appointment.rescheduled") == 1
    assert actions.count("appointment.cancelled") == 1
    assert actions.count("admin.appointment.reschedule") == 3
    assert actions.count("admin.appointment.cancel") == 1
    row = session.get(Appointment, other)
    assert row is not None and row.status == "cancelled"


# --- conversations ----------------------------------------------------------------------


def test_conversation_transcript_masks_numbers(
    api: Api, demo: DemoData, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        conversation = Conversation(
            channel="sms",
            external_id=f"{demo.agent_id}:{demo.caller}",
            caller_e164=demo.caller,
            agent_id=demo.agent_id,
        )
        session.add(conversation)
        session.flush()
        session.add_all(
            [
                Message(
                    conversation_id=conversation.id,
                    direction="in",
                    body="call me back on +14155550188",
                ),
                Message(
                    conversation_id=conversation.id,
                    direction="out",
                    body="Sure.",
                    tool_calls=[{"name": "book_appointment", "arguments": {"pin": "1234"}}],
                ),
            ]
        )
        session.commit()
        conversation_id = conversation.id
    listed = api.get("/conversations", params={"channel": "sms"}).json()["items"]
    assert [c["id"] for c in listed] == [conversation_id]
    assert listed[0]["caller"] == "+1••••••0123"
    detail = api.get(f"/conversations/{conversation_id}").json()
    assert [m["direction"] for m in detail["messages"]] == ["in", "out"]
    assert "+14155550188" not in str(detail) and "0188" in detail["messages"][0]["body"]
    assert detail["messages"][1]["tool_calls"][0]["arguments"]["pin"] == "[redacted]"
    assert api.get("/conversations", params={"channel": "voice"}).json()["items"] == []
