"""Export and erasure leave nothing behind; analytics counted in SQL; audit query and chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import String, cast, func, or_, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import Base
from app.demo import DemoData
from app.models import (
    Appointment,
    AuditEntry,
    CalendarConnection,
    Conversation,
    Message,
    SmsOptOut,
)
from app.security import api_keys
from app.security.api_keys import Role
from tests.admin.conftest import Api, RecordingSender, verified_number
from tests.admin.test_resources import TUESDAY_3PM_PT, book

OTHER_CALLER = "+14155550999"


def seed_conversation(
    session: Session, agent_id: str, caller: str, channel: str, at: datetime, texts: int = 2
) -> str:
    conversation = Conversation(
        channel=channel,
        external_id=f"{channel}-{caller}-{at.isoformat()}",
        caller_e164=caller,
        agent_id=agent_id,
        created_at=at,
    )
    session.add(conversation)
    session.flush()
    for i in range(texts):
        session.add(
            Message(
                conversation_id=conversation.id,
                direction="in" if i % 2 == 0 else "out",
                body=f"message {i} from {caller}",
                created_at=at + timedelta(minutes=i),
            )
        )
    session.commit()
    return conversation.id


def test_export_then_erase_leaves_nothing(
    api: Api,
    demo: DemoData,
    sender: RecordingSender,
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        mine = book(session, demo, TUESDAY_3PM_PT, caller=OTHER_CALLER)
        conversation_id = seed_conversation(
            session, demo.agent_id, OTHER_CALLER, "sms", TUESDAY_3PM_PT
        )
        session.add(
            CalendarConnection(
                agent_id=demo.agent_id, encrypted_refresh_token="gAAAA-secret", status="active"
            )
        )
        session.add(SmsOptOut(e164=demo.caller))
        api_keys.create_key(session, name="scoped", role=Role.READONLY, user_id=demo.user_id)
        session.commit()
    second = verified_number(api, sender, demo.user_id, "+14155550166")

    exported = api.get(f"/users/{demo.user_id}/export")
    assert exported.status_code == 200
    data = exported.json()
    assert data["user"]["id"] == demo.user_id
    assert {p["e164"] for p in data["phone_numbers"]} >= {demo.caller, "+14155550166"}
    assert [a["id"] for a in data["appointments"]] == [mine]
    assert data["conversations"][0]["id"] == conversation_id
    assert len(data["conversations"][0]["messages"]) == 2
    assert "gAAAA-secret" not in exported.text and "pin_hash" not in exported.text
    assert "code_hash" not in exported.text and "key_hash" not in exported.text

    assert api.delete(f"/users/{demo.user_id}").status_code == 204
    assert api.get(f"/users/{demo.user_id}").status_code == 404

    personal = [
        demo.user_id,
        demo.agent_id,
        demo.caller,
        demo.dedicated_line,
        second,
        "+14155550166",
        OTHER_CALLER,
        mine,
        conversation_id,
        "gAAAA-secret",
    ]
    with session_factory() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in ("audit_log", "sms_opt_outs"):
                continue
            columns = [cast(c, String) for c in table.columns]
            hits = session.scalar(
                select(func.count())
                .select_from(table)
                .where(or_(*[c.contains(p) for c in columns for p in personal]))
            )
            assert hits == 0, table.name
        # Kept on purpose: the STOP (so it keeps working), and the audit trail, which
        # names ids and masked numbers but no full number.
        assert session.get(SmsOptOut, demo.caller) is not None
        for number in (demo.caller, "+14155550166", OTHER_CALLER):
            assert (
                session.scalar(
                    select(func.count())
                    .select_from(AuditEntry)
                    .where(
                        or_(
                            cast(AuditEntry.details, String).contains(number),
                            AuditEntry.subject == number,
                            AuditEntry.actor.contains(number),
                        )
                    )
                )
                == 0
            )
        erased = session.scalar(
            select(AuditEntry).where(AuditEntry.action == "privacy.user_erased")
        )
        assert erased is not None and erased.details["appointments"] == 1
        assert session.execute(text("SELECT 1")).scalar() == 1


def test_analytics_by_day_hour_agent_and_channel(
    api: Api, demo: DemoData, session_factory: sessionmaker[Session]
) -> None:
    day1 = datetime(2026, 11, 20, 17, 5, tzinfo=UTC)
    day2 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    with session_factory() as session:
        sms = seed_conversation(session, demo.agent_id, demo.caller, "sms", day1, texts=3)
        seed_conversation(session, demo.agent_id, OTHER_CALLER, "sms", day2, texts=2)
        seed_conversation(session, demo.agent_id, OTHER_CALLER, "voice", day2, texts=0)
        seed_conversation(session, demo.agent_id, demo.caller, "vapi", day2, texts=0)
        booked = book(session, demo, TUESDAY_3PM_PT)
        row = session.get(Appointment, booked)
        assert row is not None
        row.conversation_id, row.created_at = sms, day1
        cancelled = book(session, demo, TUESDAY_3PM_PT + timedelta(hours=1), caller=OTHER_CALLER)
        row = session.get(Appointment, cancelled)
        assert row is not None
        row.created_at, row.status, row.cancelled_at = day2, "cancelled", day2
        session.commit()

    by_day = api.get("/analytics", params={"since": "2026-11-20", "until": "2026-11-22"}).json()
    assert by_day["traffic"] == [
        {"bucket": "2026-11-20", "calls": 0, "messages": 3},
        {"bucket": "2026-11-21", "calls": 2, "messages": 2},
    ]
    assert by_day["bookings_per_agent"] == [
        {"agent_id": demo.agent_id, "bookings": 2, "cancellations": 1}
    ]
    conversion = {c["channel"]: c for c in by_day["conversion_per_channel"]}
    assert conversion["sms"] == {
        "channel": "sms",
        "conversations": 2,
        "with_booking": 1,
        "conversion": 0.5,
    }
    assert conversion["voice"]["with_booking"] == 0
    by_hour = api.get(
        "/analytics", params={"since": "2026-11-21", "until": "2026-11-21", "granularity": "hour"}
    ).json()
    assert by_hour["traffic"] == [
        {"bucket": "2026-11-21T09", "calls": 2, "messages": 2},
    ]
    other = api.get("/analytics", params={"since": "2026-11-20", "agent_id": "agt_none"}).json()
    assert other["traffic"] == [] and other["bookings_per_agent"] == []
    too_long = api.get("/analytics", params={"since": "2026-01-01", "granularity": "hour"})
    assert too_long.status_code == 422


def test_audit_query_and_chain(api: Api, session_factory: sessionmaker[Session]) -> None:
    for name in ("A", "B", "C"):
        api.post("/users", json={"name": name})
    created = api.get("/audit", params={"action": "admin.user.created"}).json()
    assert len(created["items"]) == 3
    assert created["items"][0]["id"] > created["items"][-1]["id"]  # newest first
    actor = created["items"][0]["actor"]
    by_prefix = api.get("/audit", params={"action": "admin.user.*", "actor": actor}).json()
    assert len(by_prefix["items"]) == 3
    one = api.get("/audit", params={"subject": created["items"][1]["subject"]}).json()
    assert len(one["items"]) == 1
    page = api.get("/audit", params={"limit": 2}).json()
    rest = api.get("/audit", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert page["items"][-1]["id"] > rest["items"][0]["id"]
    future = api.get("/audit", params={"since": "2100-01-01T00:00:00Z"}).json()
    assert future["items"] == []
    assert api.get("/audit/verify").json()["ok"] is True
    with session_factory() as session:
        entry = session.get(AuditEntry, created["items"][1]["id"])
        assert entry is not None
        entry.details = {"tampered": True}
        session.commit()
    broken = api.get("/audit/verify").json()
    assert broken["ok"] is False and broken["first_bad_id"] == created["items"][1]["id"]


def test_opt_outs_listed_masked_and_removed(
    api: Api, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        session.add_all([SmsOptOut(e164="+14155550101"), SmsOptOut(e164="+14155550102")])
        session.commit()
    listed = api.get("/opt-outs", params={"limit": 1}).json()
    rest = api.get("/opt-outs", params={"limit": 1, "cursor": listed["next_cursor"]}).json()
    items = listed["items"] + rest["items"]
    assert sorted(i["number"] for i in items) == ["+1••••••0101", "+1••••••0102"]
    assert "+1415555010" not in str(items)
    assert api.delete(f"/opt-outs/{items[0]['id']}").status_code == 204
    assert len(api.get("/opt-outs").json()["items"]) == 1
    assert api.delete(f"/opt-outs/{items[0]['id']}").status_code == 404
