"""The owner's daily agenda: written once per local day, at the chosen local time."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.demo import DemoData
from app.models import Notification, ReminderSettings
from app.notifications.agenda import schedule_agendas
from app.tools.schemas import BookAppointmentArgs
from tests.conftest import PINNED_NOW
from tests.notifications.conftest import tools


def opt_in(session: Session, demo: DemoData, at: str = "07:30") -> None:
    session.add(
        ReminderSettings(agent_id=demo.agent_id, owner_notifications=True, daily_agenda_time=at)
    )
    session.flush()


def test_agenda_lists_todays_bookings_once(session: Session, demo: DemoData):
    opt_in(session, demo)
    tools(session, demo, PINNED_NOW, "sms").book_appointment(
        BookAppointmentArgs(start=datetime.fromisoformat("2026-11-23T10:00:00-08:00"), name="Dana")
    )
    assert schedule_agendas(session, PINNED_NOW) == 1
    assert schedule_agendas(session, PINNED_NOW + timedelta(minutes=5)) == 0
    [agenda] = session.scalars(select(Notification).where(Notification.kind == "owner_agenda"))
    assert agenda.to_e164 == demo.caller  # the owner's verified number
    assert agenda.body == "Sam's scheduling line today (1): 10:00 AM consultation (Dana)"
    assert agenda.due_at == datetime.fromisoformat("2026-11-23T07:30:00-08:00")


def test_no_agenda_before_its_time_or_long_after(session: Session, demo: DemoData):
    opt_in(session, demo, at="09:00")
    assert schedule_agendas(session, PINNED_NOW) == 0  # 08:00 local
    assert schedule_agendas(session, PINNED_NOW + timedelta(hours=3)) == 0  # 11:00: too late
    assert schedule_agendas(session, PINNED_NOW + timedelta(hours=1, minutes=1)) == 1


def test_agenda_needs_the_owner_to_opt_in(session: Session, demo: DemoData):
    session.add(ReminderSettings(agent_id=demo.agent_id, daily_agenda_time="07:30"))
    session.flush()
    assert schedule_agendas(session, PINNED_NOW) == 0
