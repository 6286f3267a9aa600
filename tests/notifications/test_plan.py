"""Notification rows are written with the booking change, in its transaction."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.demo import DemoData
from app.models import Notification, ReminderSettings
from app.notifications.plan import (
    DEFAULT_POLICY,
    ReminderPolicy,
    default_settings,
    settings_and_sender,
    when_text,
)
from app.tools.schemas import (
    BookAppointmentArgs,
    CancelAppointmentArgs,
    RescheduleAppointmentArgs,
)
from tests.conftest import PINNED_NOW
from tests.notifications.conftest import AGENT_LINE, PERSON, tools

LA = ZoneInfo("America/Los_Angeles")
WED_3PM = datetime(2026, 11, 25, 15, 0, tzinfo=LA)
THU_10AM = datetime(2026, 11, 26, 10, 0, tzinfo=LA)


def rows(session: Session) -> list[Notification]:
    return list(session.scalars(select(Notification).order_by(Notification.due_at)))


def book(session: Session, demo: DemoData, start: datetime = WED_3PM, channel: str = "voice"):
    result = tools(session, demo, PINNED_NOW, channel).book_appointment(
        BookAppointmentArgs(start=start, name="Dana")
    )
    assert result.ok, result.message
    return result.data["appointment"]["id"]


def test_phone_booking_writes_confirmation_and_two_reminders(session: Session, demo: DemoData):
    appointment_id = book(session, demo)
    session.commit()
    found = {(n.kind, n.due_at.astimezone(LA).strftime("%a %H:%M")) for n in rows(session)}
    assert found == {
        ("confirmation", "Mon 08:00"),
        ("reminder", "Tue 15:00"),
        ("reminder", "Wed 13:00"),
    }
    for row in rows(session):
        assert row.to_e164 == PERSON
        assert row.from_e164 == AGENT_LINE
        assert row.status == "scheduled"
        assert row.appointment_id == appointment_id
    confirmation = next(n for n in rows(session) if n.kind == "confirmation")
    assert "Confirmed" in confirmation.body and "Wed Nov 25 at 3:00 PM" in confirmation.body


def test_rows_roll_back_with_the_booking(session: Session, demo: DemoData):
    book(session, demo)
    session.rollback()
    assert rows(session) == []


def test_sms_booking_gets_reminders_but_no_confirmation(session: Session, demo: DemoData):
    book(session, demo, channel="sms")
    session.commit()
    assert sorted(n.kind for n in rows(session)) == ["reminder", "reminder"]


def test_moving_skips_pending_reminders_and_schedules_new_ones(session: Session, demo: DemoData):
    appointment_id = book(session, demo)
    result = tools(session, demo, PINNED_NOW).reschedule_appointment(
        RescheduleAppointmentArgs(appointment_id=appointment_id, new_start=THU_10AM)
    )
    assert result.ok, result.message
    session.commit()
    old = [n for n in rows(session) if n.kind == "reminder" and n.status == "skipped"]
    new = [n for n in rows(session) if n.kind == "reminder" and n.status == "scheduled"]
    assert len(old) == 2 and all(n.reason == "appointment moved" for n in old)
    assert sorted(n.due_at.astimezone(LA).strftime("%a %H:%M") for n in new) == [
        "Thu 08:00",
        "Wed 10:00",
    ]
    assert [n.body.split(":")[0] for n in rows(session) if n.kind == "confirmation"] == [
        "Confirmed",
        "Moved",
    ]


def test_cancelling_drops_pending_reminders(session: Session, demo: DemoData):
    appointment_id = book(session, demo)
    tools(session, demo, PINNED_NOW).cancel_appointment(
        CancelAppointmentArgs(appointment_id=appointment_id)
    )
    session.commit()
    reminders = [n for n in rows(session) if n.kind == "reminder"]
    assert {(n.status, n.reason) for n in reminders} == {("skipped", "appointment cancelled")}
    assert any(n.body.startswith("Cancelled") for n in rows(session) if n.kind == "confirmation")


def test_reminders_already_past_are_not_written(session: Session, demo: DemoData):
    soon = datetime(2026, 11, 23, 10, 0, tzinfo=LA)  # 2 h after "now" (08:00)
    book(session, demo, start=soon, channel="sms")
    session.commit()
    assert rows(session) == []


def test_agent_settings_offsets_off_switch_calls_and_owner_messages(
    session: Session, demo: DemoData
):
    session.add(
        ReminderSettings(
            agent_id=demo.agent_id,
            offsets_minutes=[30],
            owner_notifications=True,
            reminder_calls=True,
            confirmations_enabled=False,
        )
    )
    session.flush()
    book(session, demo)
    session.commit()
    found = {(n.kind, n.channel, n.to_e164) for n in rows(session)}
    assert found == {("reminder_call", "call", PERSON), ("owner_booked", "sms", demo.caller)}
    owner = next(n for n in rows(session) if n.kind == "owner_booked")
    assert owner.body == "Dana booked consultation on Wed Nov 25 at 3:00 PM."
    assert PERSON not in owner.body

    settings = session.get(ReminderSettings, demo.agent_id)
    assert settings is not None
    settings.reminders_enabled = False
    second = book(session, demo, start=THU_10AM)
    session.commit()
    kinds = [n.kind for n in rows(session) if n.appointment_id == second]
    assert kinds == ["owner_booked"]


def test_due_times_are_stored_in_utc(session: Session, demo: DemoData):
    book(session, demo)
    session.commit()
    reminder = next(n for n in rows(session) if n.kind == "reminder")
    assert reminder.due_at.tzinfo is not None
    assert reminder.due_at - WED_3PM.astimezone(UTC) in (timedelta(days=-1), timedelta(hours=-2))


def test_rows_wait_for_the_commit_and_join_its_last_writes(session: Session, demo: DemoData):
    book(session, demo)
    assert rows(session) == []  # planned: written with the transaction's last writes
    session.commit()
    assert len(rows(session)) == 3


def test_rows_planned_in_a_savepoint_roll_back_with_it(session: Session, demo: DemoData):
    savepoint = session.begin_nested()
    book(session, demo)
    assert len(rows(session)) == 3  # written at once: the savepoint may roll back alone
    savepoint.rollback()
    session.commit()
    assert rows(session) == []


def test_a_rollback_forgets_the_planned_rows(session: Session, demo: DemoData):
    book(session, demo)
    session.rollback()
    book(session, demo, start=THU_10AM, channel="sms")
    session.commit()
    assert sorted(n.kind for n in rows(session)) == ["reminder", "reminder"]


def test_planning_is_the_agents_settings_row_or_the_defaults(session: Session, demo: DemoData):
    assert settings_and_sender(session, demo.agent_id) == (DEFAULT_POLICY, AGENT_LINE)
    session.add(
        ReminderSettings(
            agent_id=demo.agent_id,
            reminders_enabled=False,
            offsets_minutes=[30, 90],
            quiet_start="22:30",
            quiet_end="07:15",
            confirmations_enabled=False,
            owner_notifications=True,
            reminder_calls=True,
        )
    )
    session.flush()
    policy, line = settings_and_sender(session, demo.agent_id)
    assert line == AGENT_LINE
    assert policy == ReminderPolicy(
        reminders_enabled=False,
        offsets_minutes=(30, 90),
        quiet_start=time(22, 30),
        quiet_end=time(7, 15),
        confirmations_enabled=False,
        owner_notifications=True,
        reminder_calls=True,
    )
    assert ReminderPolicy.of(default_settings(demo.agent_id)) == DEFAULT_POLICY


def test_when_text_reads_as_strftime_wrote_it() -> None:
    rng = random.Random(16)
    zones = [ZoneInfo(z) for z in ("UTC", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Chatham")]
    for _ in range(3000):
        moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**9))
        zone = rng.choice(zones)
        local = moment.astimezone(zone)
        written = f"{local:%a %b} {local.day} at {local:%I:%M %p}".replace(" 0", " ")
        assert when_text(moment, zone) == written
