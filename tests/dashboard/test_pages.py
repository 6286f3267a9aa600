"""Dashboard pages over HTTP: owner scoping, cancel and move through the scheduling
tools, settings validated like the admin API and seen by the next SMS, calendar, phone
numbers and insights."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.demo import DemoData
from app.models import (
    Agent,
    Appointment,
    Attendance,
    AuditEntry,
    CalendarConnection,
    Conversation,
    Message,
    Notification,
    ReminderSettings,
)
from app.security.pins import verify_pin
from tests.conftest import Reader
from tests.dashboard.conftest import CODE, RecordingSender, book, page_csrf, sign_in
from tests.webhooks.test_sms_dialogues import Texter


def test_another_owners_pages_and_objects_are_refused(
    client: TestClient,
    sender: RecordingSender,
    demo: DemoData,
    other_owner: tuple[str, str, str],
    session_factory: sessionmaker[Session],
    db: Reader,
) -> None:
    mine = book(session_factory, demo, 26)
    _, other_agent, other_phone = other_owner
    sign_in(client, sender, other_phone)
    csrf = page_csrf(client, f"/dashboard/a/{other_agent}/agenda")
    for page in ("agenda", "conversations", "settings", "calendar", "numbers", "insights"):
        refused = client.get(f"/dashboard/a/{demo.agent_id}/{page}")
        assert refused.status_code == 404 and "<h1>Not found</h1>" in refused.text
        assert "Sam" not in refused.text
    for agent in (demo.agent_id, other_agent):
        assert client.get(f"/dashboard/a/{agent}/appointments/{mine}").status_code == 404
    # Someone else's appointment through one's own agent's URL: also not found.
    for agent in (demo.agent_id, other_agent):
        base = f"/dashboard/a/{agent}/appointments/{mine}"
        assert client.post(f"{base}/cancel", data={"csrf": csrf}).status_code == 404
        moved = client.post(f"{base}/move", data={"csrf": csrf, "new_start": "2026-11-25T10:00"})
        assert moved.status_code == 404
    settings_path = f"/dashboard/a/{demo.agent_id}/settings"
    assert client.post(settings_path, data={"csrf": csrf, "hours_mon": ""}).status_code == 404
    reminders = {"csrf": csrf, "offsets_minutes": "60", "quiet_start": "22:00"}
    assert client.post(f"{settings_path}/reminders", data=reminders).status_code == 404
    assert db.get(ReminderSettings, demo.agent_id) is None
    with session_factory() as session:
        chat = Conversation(channel="sms", external_id="x", agent_id=demo.agent_id)
        session.add(chat)
        session.commit()
        chat_id = chat.id
    for path in (
        f"{demo.agent_id}/conversations/{chat_id}",
        f"{other_agent}/conversations/{chat_id}",
    ):
        assert client.get(f"/dashboard/a/{path}").status_code == 404
        assert client.get(f"/dashboard/a/{path}/events").status_code == 404
    assert db.get(Appointment, mine).status == "confirmed"
    assert db.get(Agent, demo.agent_id).weekly_hours["mon"]


def test_agenda_lists_by_local_day_and_cancel_goes_through_the_tool(
    client: TestClient,
    sender: RecordingSender,
    demo: DemoData,
    session_factory: sessionmaker[Session],
    db: Reader,
) -> None:
    first = book(session_factory, demo, 26, key="a")  # Tue 24 Nov 10:00 in Los Angeles
    book(session_factory, demo, 50, contact="+14155550151", key="b")  # Wed 10:00
    sign_in(client, sender, demo.caller)
    page = client.get(f"/dashboard/a/{demo.agent_id}/agenda").text
    assert page.index("Tuesday 24 November 2026") < page.index("Wednesday 25 November 2026")
    assert "+14155550150" not in page  # contacts' numbers are masked
    manage = client.get(f"/dashboard/a/{demo.agent_id}/appointments/{first}")
    assert "Tuesday 24 November 2026 10:00" in manage.text
    assert 'value="2026-11-24T10:00"' in manage.text
    csrf = page_csrf(client, f"/dashboard/a/{demo.agent_id}/agenda")
    url = f"/dashboard/a/{demo.agent_id}/appointments/{first}/cancel"
    fragment = client.post(url, data={"csrf": csrf}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "Cancelled your consultation" in fragment.text and "<html" not in fragment.text
    assert db.get(Appointment, first).status == "cancelled"
    # The person whose appointment it was is told, by the job engine's outbound text.
    (told,) = db.scalars(select(Notification).where(Notification.appointment_id == first))
    assert told.kind == "confirmation" and told.to_e164 == db.get(Appointment, first).contact_e164
    assert told.body.startswith("Cancelled: your consultation")
    # A repeated click changes nothing more and says so.
    again = client.post(url, data={"csrf": csrf})
    assert again.status_code == 303
    assert "already cancelled" in client.get(again.headers["location"]).text
    trail = [(e.action, e.actor) for e in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert sum(a == "dashboard.appointment.cancel" for a, _ in trail) == 2
    assert sum(a == "appointment.cancelled" for a, _ in trail) == 1
    assert "Tuesday 24 November" not in client.get(f"/dashboard/a/{demo.agent_id}/agenda").text


def test_move_obeys_the_agents_rules(
    client: TestClient,
    sender: RecordingSender,
    demo: DemoData,
    session_factory: sessionmaker[Session],
    db: Reader,
) -> None:
    row = book(session_factory, demo, 26)
    sign_in(client, sender, demo.caller)
    csrf = page_csrf(client, f"/dashboard/a/{demo.agent_id}/agenda")
    url = f"/dashboard/a/{demo.agent_id}/appointments/{row}/move"
    before = db.get(Appointment, row).start_at
    closed = client.post(url, data={"csrf": csrf, "new_start": "2026-11-24T21:00"})
    assert "21:00" not in str(db.get(Appointment, row).start_at)
    assert db.get(Appointment, row).start_at == before
    assert closed.status_code == 303
    garbage = client.post(
        url, data={"csrf": csrf, "new_start": "soon"}, headers={"HX-Request": "1"}
    )
    assert "Pick a date and time" in garbage.text
    moved = client.post(url, data={"csrf": csrf, "new_start": "2026-11-24T14:00"})
    assert moved.status_code == 303
    start = db.get(Appointment, row).start_at
    assert start.isoformat() == "2026-11-24T22:00:00+00:00"  # 14:00 in Los Angeles


def _settings_form(client: TestClient, agent_id: str, **changes: str) -> dict[str, str]:
    page = client.get(f"/dashboard/a/{agent_id}/settings").text
    fields = dict(re.findall(r'<input id="[^"]*" name="([^"]+)"[^>]*value="([^"]*)"', page))
    fields.update(re.findall(r'name="([^"]+)" value="([^"]*)"', page))
    fields.update(
        (name, value)
        for name, value in re.findall(r'name="([^"]+)" rows="\d+"[^>]*>([^<]*)</textarea>', page)
    )
    fields["language"] = "en-US"
    fields.update(changes)
    return fields


def test_settings_change_hours_and_the_next_sms_offers_them(
    client: TestClient, sender: RecordingSender, demo: DemoData, db: Reader
) -> None:
    sign_in(client, sender, demo.caller)
    form = _settings_form(client, demo.agent_id, hours_tue="18:00-20:00", pin="2468")
    saved = client.post(f"/dashboard/a/{demo.agent_id}/settings", data=form)
    assert saved.status_code == 303, saved.text
    agent = db.get(Agent, demo.agent_id)
    assert agent.weekly_hours["tue"] == [["18:00", "20:00"]]
    assert agent.weekly_hours["mon"] == [["09:00", "12:00"], ["13:00", "17:00"]]
    assert [t["key"] for t in agent.appointment_types] == ["consultation", "haircut"]
    assert agent.pin_hash and verify_pin("2468", agent.pin_hash)
    stranger = Texter(client, sender="+14155550177", to=demo.dedicated_line)
    offer = stranger.text("book a consultation tomorrow")
    assert "6:00 PM" in offer and "9:00 AM" not in offer


def test_settings_errors_show_beside_the_field_and_change_nothing(
    client: TestClient, sender: RecordingSender, demo: DemoData, db: Reader
) -> None:
    sign_in(client, sender, demo.caller)
    form = _settings_form(
        client,
        demo.agent_id,
        hours_wed="17:00-09:00",
        hours_thu="nine to five",
        type_0_duration="two",
        horizon_days="0",
        pin="12",
    )
    answer = client.post(f"/dashboard/a/{demo.agent_id}/settings", data=form)
    assert answer.status_code == 422
    assert (
        'id="f-hours_thu" name="hours_thu" type="text" value="nine to five" aria-invalid="true"'
        in answer.text
    )
    assert 'id="e-hours_thu"' in answer.text
    assert db.get(Agent, demo.agent_id).weekly_hours["wed"] == [
        ["09:00", "12:00"],
        ["13:00", "17:00"],
    ]
    # With the unreadable day fixed, the schema's own checks speak per field.
    form["hours_thu"] = ""
    answer = client.post(f"/dashboard/a/{demo.agent_id}/settings", data=form)
    assert answer.status_code == 422
    for field in ("hours_wed", "horizon_days", "pin"):
        assert f'id="e-{field}"' in answer.text, field
    assert "enter a whole number" in answer.text
    agent = db.get(Agent, demo.agent_id)
    assert agent.horizon_days == 60 and agent.pin_hash is None and "thu" in agent.weekly_hours


def _reminder_form(client: TestClient, agent_id: str, **changes: str) -> dict[str, str]:
    page = client.get(f"/dashboard/a/{agent_id}/settings").text
    reminders = page[page.index('action="/dashboard/a/' + agent_id + '/settings/reminders"') :]
    fields = dict(re.findall(r'<input id="[^"]*" name="([^"]+)"[^>]*value="([^"]*)"', reminders))
    fields.update(re.findall(r'name="(csrf)" value="([^"]*)"', reminders))
    fields.update((name, "on") for name in re.findall(r'name="([^"]+)" checked', reminders))
    fields.update(changes)
    return fields


def test_reminder_settings_are_saved_through_the_admin_schema_and_audited(
    client: TestClient, sender: RecordingSender, demo: DemoData, db: Reader
) -> None:
    sign_in(client, sender, demo.caller)
    page = client.get(f"/dashboard/a/{demo.agent_id}/settings").text
    assert "not available" not in page
    assert '<label for="f-offsets_minutes">' in page and 'value="1440, 120"' in page
    form = _reminder_form(
        client,
        demo.agent_id,
        offsets_minutes="30, 1440, 30",
        quiet_start="22:30",
        quiet_end="07:15",
    )
    del form["confirmations_enabled"]  # an unticked checkbox is not sent
    saved = client.post(f"/dashboard/a/{demo.agent_id}/settings/reminders", data=form)
    assert saved.status_code == 303, saved.text
    row = db.get(ReminderSettings, demo.agent_id)
    assert row.offsets_minutes == [1440, 30]
    assert (row.quiet_start, row.quiet_end) == ("22:30", "07:15")
    assert row.reminders_enabled and not row.confirmations_enabled
    entry = db.scalar(
        select(AuditEntry).where(AuditEntry.action == "dashboard.agent.reminder_settings")
    )
    assert entry is not None and entry.actor == f"owner:{demo.user_id}"
    assert 'value="1440, 30"' in client.get(f"/dashboard/a/{demo.agent_id}/settings").text
    client.cookies.set("dash_lang", "es")
    assert "Recordatorios" in client.get(f"/dashboard/a/{demo.agent_id}/settings").text


def test_reminder_settings_errors_show_beside_the_field_and_save_nothing(
    client: TestClient, sender: RecordingSender, demo: DemoData, db: Reader
) -> None:
    sign_in(client, sender, demo.caller)
    form = _reminder_form(client, demo.agent_id, offsets_minutes="1440, 2", quiet_start="25:00")
    answer = client.post(f"/dashboard/a/{demo.agent_id}/settings/reminders", data=form)
    assert answer.status_code == 422
    assert 'id="e-offsets_minutes"' in answer.text and 'id="e-quiet_start"' in answer.text
    assert "use 24-hour HH:MM" in answer.text
    assert 'name="quiet_start" type="text" value="25:00" aria-invalid="true"' in answer.text
    form = _reminder_form(client, demo.agent_id, offsets_minutes="soon")
    answer = client.post(f"/dashboard/a/{demo.agent_id}/settings/reminders", data=form)
    assert answer.status_code == 422 and "enter a whole number" in answer.text
    assert db.get(ReminderSettings, demo.agent_id) is None


def test_calendar_connect_uses_the_signed_link_and_disconnect_erases_the_token(
    client: TestClient,
    sender: RecordingSender,
    demo: DemoData,
    session_factory: sessionmaker[Session],
    db: Reader,
) -> None:
    with session_factory() as session:
        session.add(
            CalendarConnection(
                agent_id=demo.agent_id, encrypted_refresh_token="sealed", account_email="s@x.test"
            )
        )
        session.get(Agent, demo.agent_id).calendar_provider = "google"
        session.commit()
    sign_in(client, sender, demo.caller)
    page = client.get(f"/dashboard/a/{demo.agent_id}/calendar").text
    assert "active" in page and "s@x.test" in page
    go = client.get(f"/dashboard/a/{demo.agent_id}/calendar/connect")
    assert go.status_code == 303 and "/calendar/google/connect?t=" in go.headers["location"]
    csrf = page_csrf(client, f"/dashboard/a/{demo.agent_id}/calendar")
    client.post(f"/dashboard/a/{demo.agent_id}/calendar/disconnect", data={"csrf": csrf})
    row = db.scalar(select(CalendarConnection))
    assert row.status == "disconnected" and row.encrypted_refresh_token is None
    assert db.get(Agent, demo.agent_id).calendar_provider == "local"


def test_add_and_verify_a_phone_number(
    client: TestClient, sender: RecordingSender, demo: DemoData, db: Reader
) -> None:
    sign_in(client, sender, demo.caller)
    path = f"/dashboard/a/{demo.agent_id}/numbers"
    csrf = page_csrf(client, path)
    bad = client.post(path, data={"csrf": csrf, "phone": "hello"})
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    assert client.post(path, data={"csrf": csrf, "phone": "+1 415 555 0142"}).status_code == 303
    code = CODE.search(sender.last_to("+14155550142")) or re.search(
        r"(\d{6})", sender.last_to("+14155550142")
    )
    assert code
    page = client.get(path).text
    assert "+14155550142" not in page and "Waiting for the code" in page
    number_id = re.search(r"/numbers/(pn_\w+)/verify", page)
    assert number_id
    wrong = client.post(f"{path}/{number_id[1]}/verify", data={"csrf": csrf, "code": "000000"})
    if code[1] != "000000":
        assert "not right" in client.get(wrong.headers["location"]).text
    client.post(f"{path}/{number_id[1]}/verify", data={"csrf": csrf, "code": code[1]})
    page = client.get(path).text
    assert page.count("Verified") >= 2


def test_insights_chart_counts_bookings_by_channel(
    client: TestClient,
    sender: RecordingSender,
    demo: DemoData,
    session_factory: sessionmaker[Session],
) -> None:
    book(session_factory, demo, 26, key="a")
    book(session_factory, demo, 27, key="b")
    with session_factory() as session:
        for row in session.scalars(select(Appointment)):
            row.channel = "voice" if row.idempotency_key == "b" else "sms"
        session.commit()
    sign_in(client, sender, demo.caller)
    page = client.get(f"/dashboard/a/{demo.agent_id}/insights").text
    assert "<svg" in page and "2 bookings" in page
    assert "sms: 1" in page and "voice: 1" in page
    assert "No attendance marked" in page


def test_insights_show_the_no_show_rate_from_marked_attendance(
    client: TestClient,
    sender: RecordingSender,
    demo: DemoData,
    session_factory: sessionmaker[Session],
) -> None:
    first = book(session_factory, demo, -50, key="a")  # two days before the pinned now
    second = book(session_factory, demo, -49, key="b")
    book(session_factory, demo, 26, key="c")  # still to come: not counted
    with session_factory() as session:
        session.add(Attendance(appointment_id=first, outcome="no_show"))
        session.add(Attendance(appointment_id=second, outcome="attended"))
        session.commit()
    sign_in(client, sender, demo.caller)
    page = client.get(f"/dashboard/a/{demo.agent_id}/insights").text
    assert "No-shows: 1 · Attended: 1 · No-show rate: 50%" in page


def test_conversation_page_shows_turns_and_report_with_masked_caller(
    client: TestClient,
    sender: RecordingSender,
    demo: DemoData,
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        chat = Conversation(
            channel="vapi",
            external_id="call-1",
            agent_id=demo.agent_id,
            caller_e164="+14155550188",
            details={
                "report": {
                    "summary": "Booked a haircut <b>Friday</b>",
                    "recording_url": "https://storage.vapi.ai/rec.wav",
                }
            },
        )
        session.add(chat)
        session.flush()
        session.add(Message(conversation_id=chat.id, direction="in", body="<script>x</script>"))
        session.commit()
        chat_id = chat.id
    sign_in(client, sender, demo.caller)
    listing = client.get(f"/dashboard/a/{demo.agent_id}/conversations").text
    assert chat_id in listing and "+14155550188" not in listing
    page = client.get(f"/dashboard/a/{demo.agent_id}/conversations/{chat_id}").text
    assert "Booked a haircut &lt;b&gt;Friday&lt;/b&gt;" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    assert 'src="https://storage.vapi.ai/rec.wav"' in page


def test_agenda_pages_by_week_in_the_agents_zone(
    client: TestClient,
    sender: RecordingSender,
    demo: DemoData,
    session_factory: sessionmaker[Session],
) -> None:
    book(session_factory, demo, 26, key="a")  # Tue 24 Nov, 10:00 Los Angeles
    book(session_factory, demo, 26 + 24 * 8, key="b")  # Wed 2 Dec
    book(session_factory, demo, -3, key="past")  # already over: never listed
    sign_in(client, sender, demo.caller)
    path = f"/dashboard/a/{demo.agent_id}/agenda"
    week = client.get(path).text
    assert "Tuesday 24 November 2026" in week and "December" not in week
    assert "Monday 23 November" not in week and "Earlier" not in week
    later = client.get(f"{path}?start=2026-11-30").text
    assert "Wednesday 02 December 2026" in later and "24 November" not in later
    assert "?start=2026-11-23" in later  # back to this week
    assert "24 November" in client.get(f"{path}?start=2020-01-01").text  # never before today
    assert client.get(f"{path}?start=someday").status_code == 422


@pytest.mark.parametrize("start", ["9999-12-31", "2200-01-01"])
def test_an_agenda_start_at_the_end_of_time_is_refused_not_a_crash(
    client: TestClient, sender: RecordingSender, demo: DemoData, start: str
) -> None:
    sign_in(client, sender, demo.caller)
    response = client.get(f"/dashboard/a/{demo.agent_id}/agenda?start={start}")
    assert response.status_code == 422
