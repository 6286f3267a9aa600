"""No double booking under real concurrency: 50 callers race for one slot."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.local import LocalCalendar
from app.demo import DemoData
from app.models import Agent, Appointment
from app.security.audit import verify_chain
from app.tools.schemas import BookAppointmentArgs, RescheduleAppointmentArgs
from app.tools.service import SchedulingTools, ToolContext
from tests.conftest import PINNED_NOW, Reader

RACERS = 50
SLOT = "2026-11-24T10:00:00-08:00"


def book_in_own_transaction(
    factory: sessionmaker[Session], agent_id: str, caller: str, barrier: threading.Barrier
) -> bool:
    # Line up before taking a connection: the pool is smaller than the crowd.
    barrier.wait()
    with factory() as session:
        agent = session.get(Agent, agent_id)
        tools = SchedulingTools(
            ToolContext(session, agent, LocalCalendar(session), PINNED_NOW, caller, "sms")
        )
        result = tools.book_appointment(BookAppointmentArgs.model_validate({"start": SLOT}))
        session.commit()
        return result.ok


def test_fifty_concurrent_bookings_of_one_slot_book_exactly_once(
    session_factory: sessionmaker[Session], demo: DemoData, db: Reader
):
    barrier = threading.Barrier(RACERS, timeout=30)
    with ThreadPoolExecutor(RACERS) as pool:
        results = list(
            pool.map(
                lambda i: book_in_own_transaction(
                    session_factory, demo.agent_id, f"+1415555{i:04d}", barrier
                ),
                range(RACERS),
            )
        )
    assert results.count(True) == 1
    assert db.count(Appointment) == 1


def test_concurrent_moves_into_one_slot_leave_one_there(
    session_factory: sessionmaker[Session], demo: DemoData, db: Reader
):
    ids = []
    with session_factory() as session:
        agent = session.get(Agent, demo.agent_id)
        starts = ["09:00", "10:00", "11:00", "13:00", "14:00", "15:00", "16:00"]
        for i, hour in enumerate(starts):
            caller = f"+1415666{i:04d}"
            tools = SchedulingTools(
                ToolContext(session, agent, LocalCalendar(session), PINNED_NOW, caller, "sms")
            )
            args = BookAppointmentArgs.model_validate({"start": f"2026-11-25T{hour}:00"})
            booked = tools.book_appointment(args)
            assert booked.ok, booked.message
            ids.append((caller, booked.data["appointment"]["id"]))
        session.commit()
    barrier = threading.Barrier(len(ids), timeout=30)

    def move(pair: tuple[str, str]) -> bool:
        caller, appointment_id = pair
        barrier.wait()
        with session_factory() as session:
            agent = session.get(Agent, demo.agent_id)
            tools = SchedulingTools(
                ToolContext(session, agent, LocalCalendar(session), PINNED_NOW, caller, "sms")
            )
            result = tools.reschedule_appointment(
                RescheduleAppointmentArgs(appointment_id=appointment_id, new_start=SLOT)
            )
            session.commit()
            return result.ok

    with ThreadPoolExecutor(len(ids)) as pool:
        moved = list(pool.map(move, ids))
    assert moved.count(True) == 1
    at_slot = db.scalars(
        select(Appointment).where(Appointment.start_at == BookAppointmentArgs(start=SLOT).start)
    )
    assert len(at_slot) == 1


def test_concurrent_bookings_of_different_slots_keep_one_audit_chain(
    session_factory: sessionmaker[Session], demo: DemoData, db: Reader
):
    days = [f"2026-11-{day}" for day in (24, 25, 26, 27)]
    starts = [f"{day}T{hour}:00:00" for day in days for hour in ("09", "10", "11", "13", "14")]
    barrier = threading.Barrier(len(starts), timeout=30)

    def book(index: int) -> bool:
        barrier.wait()
        with session_factory() as session:
            agent = session.get(Agent, demo.agent_id)
            caller = f"+1415777{index:04d}"
            tools = SchedulingTools(
                ToolContext(session, agent, LocalCalendar(session), PINNED_NOW, caller, "sms")
            )
            args = BookAppointmentArgs.model_validate({"start": starts[index]})
            result = tools.book_appointment(args)
            session.commit()
            return result.ok

    with ThreadPoolExecutor(len(starts)) as pool:
        assert all(pool.map(book, range(len(starts))))
    assert db.count(Appointment) == len(starts)
    with session_factory() as session:
        report = verify_chain(session)
    assert report.ok and report.entries == len(starts)
