"""The calendar interface every backend implements, and the choice of backend per agent."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from app.calendar.availability import Interval
from app.models import Appointment
from app.turn_rows import AgentLike


class CalendarError(Exception):
    """The calendar could not be read or written; the message is safe to show."""


class CalendarBackend(Protocol):
    name: str

    def busy(
        self, agent: AgentLike, start: datetime, end: datetime, *, fresh: bool = False
    ) -> list[Interval]:
        """Busy time in [start, end) that is not one of our own appointments rows.

        `fresh`: bypass any cache (the re-check just before a booking is written)."""
        ...

    def create_event(self, agent: AgentLike, appointment: Appointment) -> str | None:
        """Write the appointment to the calendar; the external event id, if any."""
        ...

    def update_event(self, agent: AgentLike, appointment: Appointment) -> None: ...

    def delete_event(self, agent: AgentLike, appointment: Appointment) -> None: ...

    def write_after_commit(self, appointment_id: str) -> None:
        """External calendars: write the row's state once its transaction commits."""
        ...


class CalendarFactory(Protocol):
    def __call__(self, session: Session, agent: AgentLike) -> CalendarBackend: ...


def may_be_external(factory: object) -> bool:
    """Whether `factory` may give some agent an external calendar. Only the factories
    that know their configuration say no (no OAuth client set up: everyone gets the
    built-in calendar); any other factory might, so the answer is yes."""
    return getattr(factory, "external_calendars", True) is not False


def default_calendar_factory(session: Session, agent: AgentLike) -> CalendarBackend:
    """The built-in calendar for everyone. create_app() wires the Google-aware factory
    (app.calendar.google.GoogleCalendarFactory), which falls back to this per agent."""
    from app.calendar.local import LocalCalendar

    return LocalCalendar(session)
