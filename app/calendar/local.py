"""The built-in calendar: appointments rows are the events; owners add busy blocks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.calendar.availability import Interval
from app.models import Appointment, BusyBlock
from app.turn_rows import AgentLike


class LocalCalendar:
    name = "local"

    def __init__(self, session: Session) -> None:
        self.session = session

    def busy(
        self, agent: AgentLike, start: datetime, end: datetime, *, fresh: bool = False
    ) -> list[Interval]:
        rows = self.session.execute(
            select(BusyBlock.start_at, BusyBlock.end_at).where(
                BusyBlock.agent_id == agent.id,
                BusyBlock.start_at < end,
                BusyBlock.end_at > start,
            )
        )
        return [Interval(s, e) for s, e in rows]

    def create_event(self, agent: AgentLike, appointment: Appointment) -> str | None:
        return None  # the appointments row is the event

    def update_event(self, agent: AgentLike, appointment: Appointment) -> None:
        return None

    def delete_event(self, agent: AgentLike, appointment: Appointment) -> None:
        return None

    def write_after_commit(self, appointment_id: str) -> None:
        return None  # the built-in calendar is the database itself
