from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from app.calendar.local import LocalCalendar
from app.demo import DemoData
from app.models import Agent, Appointment, AuditEntry, BusyBlock
from app.tools.registry import run_tool
from app.tools.schemas import BookAppointmentArgs
from app.tools.service import SchedulingTools, ToolContext
from tests.conftest import PINNED_NOW

TUESDAY_3PM_PT = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)


def tools_for(session: Session, demo: DemoData, caller: str | None = None, **kw) -> SchedulingTools:
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    return SchedulingTools(
        ToolContext(
            session=session,
            agent=agent,
            calendar=LocalCalendar(session),
            now=PINNED_NOW,
            caller=caller or demo.caller,
            channel="sms",
            **kw,
        )
    )


def test_check_availability_lists_free_times_in_agent_zone(session: Session, demo: DemoData):
    result = run_tool(
        tools_for(session, demo),
        "check_availability",
        {"date": "2026-11-24", "appointment_type": "consultation", "part_of_day": "afternoon"},
    )
    assert result.ok
    assert result.data["slots"][0] == "2026-11-24T13:00:00-08:00"
    assert "1:00 PM" in result.message


def test_book_then_same_slot_is_refused_with_alternatives(session: Session, demo: DemoData):
    tools = tools_for(session, demo)
    first = run_tool(
        tools,
        "book_appointment",
        {"start": "2026-11-24T15:00:00-08:00", "appointment_type": "consultation"},
    )
    assert first.ok, first.message
    other = tools_for(session, demo, caller="+14155550999")
    second = run_tool(
        other,
        "book_appointment",
        {"start": "2026-11-24T15:00:00", "appointment_type": "consultation"},
    )
    assert not second.ok
    assert second.data["error"] == "busy"
    assert second.data["alternatives"]
    session.commit()
    assert session.scalar(select(func.count()).select_from(Appointment)) == 1
    actions = session.scalars(select(AuditEntry.action)).all()
    assert actions == ["appointment.booked"]


def test_same_request_key_books_once(session: Session, demo: DemoData):
    tools = tools_for(session, demo)
    args = {"start": "2026-11-24T10:00:00-08:00"}
    a = run_tool(tools, "book_appointment", args, request_key="tc-1")
    b = run_tool(tools, "book_appointment", args, request_key="tc-1")
    assert a.ok and b.ok
    assert a.data["appointment"]["id"] == b.data["appointment"]["id"]
    assert session.scalar(select(func.count()).select_from(Appointment)) == 1


def test_another_callers_request_key_never_reaches_their_booking(session: Session, demo: DemoData):
    """Caller B reusing A's key gets B's own booking, never A's time or id."""
    a = run_tool(
        tools_for(session, demo),
        "book_appointment",
        {"start": "2026-11-24T10:00:00-08:00"},
        request_key="tc-1",
    )
    other = tools_for(session, demo, caller="+14155550999")
    b = run_tool(
        other, "book_appointment", {"start": "2026-11-24T11:00:00-08:00"}, request_key="tc-1"
    )
    assert a.ok and b.ok, b.message
    assert b.data["appointment"]["id"] != a.data["appointment"]["id"]
    assert b.data["appointment"]["start"] == "2026-11-24T11:00:00-08:00"
    rows = session.scalars(select(Appointment).order_by(Appointment.start_at)).all()
    assert [row.contact_e164 for row in rows] == [demo.caller, "+14155550999"]


def test_a_model_supplied_idempotency_key_is_ignored(session: Session, demo: DemoData):
    """A constant key from a model must not swallow later bookings."""
    tools = tools_for(session, demo)
    for start in ("2026-11-24T10:00:00-08:00", "2026-11-24T11:00:00-08:00"):
        result = run_tool(tools, "book_appointment", {"start": start, "idempotency_key": "k"})
        assert result.ok and result.data["appointment"]["start"] == start
    assert session.scalar(select(func.count()).select_from(Appointment)) == 2


def test_busy_block_and_buffers_are_respected(session: Session, demo: DemoData):
    session.add(
        BusyBlock(
            agent_id=demo.agent_id,
            start_at=TUESDAY_3PM_PT,
            end_at=TUESDAY_3PM_PT + timedelta(hours=1),
        )
    )
    session.flush()
    tools = tools_for(session, demo)
    refused = tools.book_appointment(BookAppointmentArgs(start=TUESDAY_3PM_PT))
    assert not refused.ok and refused.data["error"] == "busy"
    # consultation: 30 min + 10 min buffer after; 14:30 would run into the block.
    refused = tools.book_appointment(
        BookAppointmentArgs(start=TUESDAY_3PM_PT - timedelta(minutes=30))
    )
    assert not refused.ok
    assert tools.book_appointment(
        BookAppointmentArgs(start=TUESDAY_3PM_PT - timedelta(minutes=45))
    ).ok


def test_caller_only_sees_and_cancels_own(session: Session, demo: DemoData):
    mine = run_tool(tools_for(session, demo), "book_appointment", {"start": "2026-11-24T10:00:00"})
    stranger = tools_for(session, demo, caller="+14155550999")
    assert run_tool(stranger, "list_appointments", {}).data["appointments"] == []
    apt_id = mine.data["appointment"]["id"]
    refused = run_tool(stranger, "cancel_appointment", {"appointment_id": apt_id})
    assert not refused.ok and refused.data["error"] == "not_found"
    done = run_tool(tools_for(session, demo), "cancel_appointment", {"appointment_id": apt_id})
    assert done.ok
    assert session.get(Appointment, apt_id).status == "cancelled"


def test_reschedule_moves_and_frees_old_slot(session: Session, demo: DemoData):
    tools = tools_for(session, demo)
    booked = run_tool(tools, "book_appointment", {"start": "2026-11-24T10:00:00"})
    apt_id = booked.data["appointment"]["id"]
    moved = run_tool(
        tools,
        "reschedule_appointment",
        {"appointment_id": apt_id, "new_start": "2026-11-24T16:00:00"},
    )
    assert moved.ok, moved.message
    assert moved.data["appointment"]["start"] == "2026-11-24T16:00:00-08:00"
    again = run_tool(
        tools_for(session, demo, caller="+14155550999"),
        "book_appointment",
        {"start": "2026-11-24T10:00:00"},
    )
    assert again.ok


def test_unverified_caller_cannot_list(session: Session, demo: DemoData):
    result = run_tool(tools_for(session, demo, may_manage_existing=False), "list_appointments", {})
    assert not result.ok and result.data["error"] == "verification_required"


def test_invalid_arguments_give_one_clear_error(session: Session, demo: DemoData):
    result = run_tool(tools_for(session, demo), "book_appointment", '{"start": "someday"}')
    assert not result.ok
    assert result.message.startswith("Invalid arguments for book_appointment: start")
    assert run_tool(tools_for(session, demo), "nope", None).data["error"] == "unknown_tool"


def test_rebooking_a_cancelled_or_moved_slot_books_anew(session: Session, demo: DemoData):
    tools = tools_for(session, demo)
    args = {"start": "2026-11-24T10:00:00", "appointment_type": "consultation"}
    first = run_tool(tools, "book_appointment", args)
    assert run_tool(
        tools, "cancel_appointment", {"appointment_id": first.data["appointment"]["id"]}
    ).ok
    second = run_tool(tools, "book_appointment", args)
    assert second.ok, second.message
    assert second.data["appointment"]["id"] != first.data["appointment"]["id"]
    assert second.data["appointment"]["status"] == "confirmed"
    # Moved away, then the old time booked again: a new row, the moved one stays put.
    moved = run_tool(
        tools,
        "reschedule_appointment",
        {"appointment_id": second.data["appointment"]["id"], "new_start": "2026-11-24T14:00:00"},
    )
    assert moved.ok, moved.message
    third = run_tool(tools, "book_appointment", args)
    assert third.ok and third.data["appointment"]["start"] == "2026-11-24T10:00:00-08:00"
    assert third.data["appointment"]["id"] not in {
        first.data["appointment"]["id"],
        second.data["appointment"]["id"],
    }
    # A retry of the same request still books once.
    assert (
        run_tool(tools, "book_appointment", args).data["appointment"]["id"]
        == (third.data["appointment"]["id"])
    )
    confirmed = session.scalars(select(Appointment).where(Appointment.status == "confirmed")).all()
    assert len(confirmed) == 2


def test_one_turn_sees_its_own_changes_in_later_availability(session: Session, demo: DemoData):
    """Availability read once per turn (a day wider) must not hide the turn's own
    changes: after a booking, a cancellation or a move, the next check reads again."""
    tools = tools_for(session, demo)
    day = {"date": "2026-11-24", "appointment_type": "consultation"}

    def free() -> list[str]:
        return [
            slot
            for part in ("morning", "afternoon")
            for slot in run_tool(
                tools, "check_availability", {**day, "part_of_day": part, "limit": 20}
            ).data["slots"]
        ]

    assert "2026-11-24T10:00:00-08:00" in free()
    booked = run_tool(tools, "book_appointment", {"start": "2026-11-24T10:00:00"})
    assert "2026-11-24T10:00:00-08:00" not in free()
    moved = run_tool(
        tools,
        "reschedule_appointment",
        {"appointment_id": booked.data["appointment"]["id"], "new_start": "2026-11-24T16:00:00"},
    )
    assert moved.ok, moved.message
    after_move = free()
    assert "2026-11-24T10:00:00-08:00" in after_move
    assert "2026-11-24T16:00:00-08:00" not in after_move
    run_tool(tools, "cancel_appointment", {"appointment_id": booked.data["appointment"]["id"]})
    assert "2026-11-24T16:00:00-08:00" in free()


def test_a_nearby_day_in_the_same_turn_is_answered_from_the_same_read(
    session: Session, demo: DemoData
):
    tools = tools_for(session, demo)
    reads: list[str] = []

    def count(_c, _cur, sql, *_):  # type: ignore[no-untyped-def]
        if "FROM appointments" in sql or "FROM busy_blocks" in sql:
            reads.append(sql)

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", count)
    try:
        for date in ("2026-11-24", "2026-11-25"):
            run_tool(tools, "check_availability", {"date": date})
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert len(reads) == 1  # appointments and busy blocks, once, in one query


def _soonest_day_by_full_search(tools: SchedulingTools, after: datetime, part: str | None):
    """What check_availability without a date answered before it stopped at the first
    day: every slot of the 14 days, filtered by part of day, then the first one's day."""
    from app.calendar.availability import find_slots
    from app.tools.service import PARTS_OF_DAY, SEARCH_DAYS_WITHOUT_DATE

    schedule = tools.schedule
    kind = schedule.types[0]
    end = PINNED_NOW + timedelta(days=SEARCH_DAYS_WITHOUT_DATE)
    busy, per_day = tools._busy_and_counts(after, end)
    slots = find_slots(
        schedule,
        kind,
        busy,
        now=PINNED_NOW,
        window_start=after,
        window_end=end,
        booked_per_day=per_day,
    )
    if part is not None:
        low, high = PARTS_OF_DAY[part]
        slots = [s for s in slots if low <= s.astimezone(schedule.zone).time() < high]
    if slots:
        first = schedule.local_day(slots[0])
        slots = [s for s in slots if schedule.local_day(s) == first]
    return [s.astimezone(schedule.zone).isoformat() for s in slots[:20]]


def test_soonest_day_search_stops_early_with_the_same_answer(session: Session, demo: DemoData):
    """Overnight hours (a window past midnight), a full day and parts of the day: the
    search that stops at the first free day lists exactly what the full search did."""
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    agent.weekly_hours = {
        "mon": [["22:00", "02:00"]],
        "tue": [["09:00", "12:00"], ["13:00", "17:00"]],
        "wed": [["00:00", "23:59"]],
        "thu": [["18:00", "01:30"]],
        "sat": [["10:00", "14:00"]],
    }
    session.flush()
    tools = tools_for(session, demo)
    # Wednesday fully booked by a busy block: the soonest day moves past it.
    session.add(
        BusyBlock(
            agent_id=agent.id,
            start_at=datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
            end_at=datetime(2026, 11, 26, 9, 0, tzinfo=UTC),
        )
    )
    session.flush()
    checked = 0
    # Monday 8 AM Pacific; +16 h: Tuesday's first times come from Monday's hours.
    for hours_ahead in (0, 5, 16, 17, 26, 30, 49, 75, 100):
        after = PINNED_NOW + timedelta(hours=hours_ahead)
        for part in (None, "morning", "afternoon", "evening"):
            tools = tools_for(session, demo)
            args = {"after": after.isoformat(), "part_of_day": part, "limit": 20}
            result = run_tool(tools, "check_availability", {k: v for k, v in args.items() if v})
            assert result.ok, result.message
            assert result.data["slots"] == _soonest_day_by_full_search(tools, after, part)
            checked += bool(result.data["slots"])
    assert checked >= 20  # most cases find a day: the comparison is not of empty lists
