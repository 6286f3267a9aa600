"""Appointments: list and read; cancel and reschedule through the scheduling tools, so an
operator's change obeys the same rules, calendar write-through and audit as a caller's."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.admin import schemas as s
from app.admin.auth import Operator, Principal, ReadOnly
from app.admin.errors import not_found
from app.admin.pagination import DEFAULT_LIMIT, Order, Page, paginate
from app.admin.params import Day, Moment
from app.admin.users import Cursor, Limit
from app.deps import SessionDep
from app.models import Agent, Appointment, AppointmentStatus, Conversation, Message
from app.security import audit
from app.services import services_of
from app.tools.schemas import CancelAppointmentArgs, RescheduleAppointmentArgs, ToolResult
from app.tools.service import SchedulingTools, ToolContext

router = APIRouter()
ADMIN_CHANNEL = "admin"


def _owned_agent_ids(principal: Principal):  # type: ignore[no-untyped-def]
    return select(Agent.id).where(Agent.user_id == principal.user_id)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), UTC)


@router.get(
    "/appointments",
    response_model=Page[s.AppointmentOut],
    summary="List appointments by start time",
    description="Dates are UTC calendar days: from `date_from` 00:00 to the end of `date_to`.",
)
def list_appointments(
    principal: ReadOnly,
    session: SessionDep,
    agent_id: Annotated[str | None, Query(max_length=32)] = None,
    status: AppointmentStatus | None = None,
    channel: Annotated[str | None, Query(max_length=16)] = None,
    date_from: Day | None = None,
    date_to: Day | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[s.AppointmentOut]:
    query = select(Appointment)
    if principal.user_id is not None:
        query = query.where(Appointment.agent_id.in_(_owned_agent_ids(principal)))
    if agent_id:
        query = query.where(Appointment.agent_id == agent_id)
    if status:
        query = query.where(Appointment.status == status)
    if channel:
        query = query.where(Appointment.channel == channel)
    if date_from:
        query = query.where(Appointment.start_at >= _day_start(date_from))
    if date_to:
        query = query.where(Appointment.start_at < _day_start(date_to) + timedelta(days=1))
    order = Order(Appointment.start_at, Appointment.id)
    rows, next_cursor = paginate(session, query, order, cursor, limit)
    return Page(
        items=[s.AppointmentOut.model_validate(r) for r in rows],
        next_cursor=next_cursor,
        limit=limit,
    )


def _get(session: Session, principal: Principal, appointment_id: str) -> tuple[Appointment, Agent]:
    row = session.get(Appointment, appointment_id)
    agent = session.get(Agent, row.agent_id) if row is not None else None
    if row is None or agent is None:
        raise not_found("appointment")
    principal.check_user(agent.user_id, "appointment")
    return row, agent


@router.get("/appointments/{appointment_id}", response_model=s.AppointmentOut, summary="Get one")
def read_appointment(
    appointment_id: str, principal: ReadOnly, session: SessionDep
) -> s.AppointmentOut:
    return s.AppointmentOut.model_validate(_get(session, principal, appointment_id)[0])


def _tools(request: Request, session: Session, agent: Agent, row: Appointment) -> SchedulingTools:
    return SchedulingTools(
        ToolContext(
            session=session,
            agent=agent,
            calendar=services_of(request).calendar_factory(session, agent),
            now=services_of(request).clock(),
            # The tools act for the appointment's contact: the operator speaks for them.
            caller=row.contact_e164,
            channel=ADMIN_CHANNEL,
            conversation_id=row.conversation_id,
        )
    )


def _outcome(
    session: Session, principal: Principal, action: str, row: Appointment, result: ToolResult
) -> s.ToolOutcome:
    if not result.ok:
        # Nothing changed; the refusal is still worth a line in the trail.
        session.rollback()
        session.refresh(row)
    audit.record(
        session,
        action,
        actor=principal.actor,
        subject=row.id,
        details={"ok": result.ok, "error": result.data.get("error")},
    )
    session.commit()
    return s.ToolOutcome(
        ok=result.ok, message=result.one_line(), appointment=s.AppointmentOut.model_validate(row)
    )


@router.post(
    "/appointments/{appointment_id}/cancel",
    response_model=s.ToolOutcome,
    summary="Cancel (through the cancel_appointment tool)",
)
def cancel(
    appointment_id: str, request: Request, principal: Operator, session: SessionDep
) -> s.ToolOutcome:
    row, agent = _get(session, principal, appointment_id)
    result = _tools(request, session, agent, row).cancel_appointment(
        CancelAppointmentArgs(appointment_id=row.id)
    )
    return _outcome(session, principal, "admin.appointment.cancel", row, result)


@router.post(
    "/appointments/{appointment_id}/reschedule",
    response_model=s.ToolOutcome,
    summary="Move to a free time (through the reschedule_appointment tool)",
    description="The agent's hours, notice, horizon, buffers and daily cap apply; when the "
    "time is not free, ok is false and the message names nearby free times.",
)
def reschedule(
    appointment_id: str,
    body: s.Reschedule,
    request: Request,
    principal: Operator,
    session: SessionDep,
) -> s.ToolOutcome:
    row, agent = _get(session, principal, appointment_id)
    result = _tools(request, session, agent, row).reschedule_appointment(
        RescheduleAppointmentArgs(appointment_id=row.id, new_start=body.new_start)
    )
    return _outcome(session, principal, "admin.appointment.reschedule", row, result)


# --- conversations ---------------------------------------------------------------------------


@router.get(
    "/conversations",
    response_model=Page[s.ConversationOut],
    summary="List conversations (newest first)",
)
def list_conversations(
    principal: ReadOnly,
    session: SessionDep,
    agent_id: Annotated[str | None, Query(max_length=32)] = None,
    channel: Annotated[str | None, Query(max_length=16, examples=["sms"])] = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[s.ConversationOut]:
    query = select(Conversation)
    if principal.user_id is not None:
        query = query.where(Conversation.agent_id.in_(_owned_agent_ids(principal)))
    if agent_id:
        query = query.where(Conversation.agent_id == agent_id)
    if channel:
        query = query.where(Conversation.channel == channel)
    if since:
        query = query.where(Conversation.created_at >= since)
    if until:
        query = query.where(Conversation.created_at < until)
    order = Order(Conversation.created_at, Conversation.id, descending=True)
    rows, next_cursor = paginate(session, query, order, cursor, limit)
    items = [s.ConversationOut.model_validate(r) for r in rows]
    return Page(items=items, next_cursor=next_cursor, limit=limit)


@router.get(
    "/conversations/{conversation_id}",
    response_model=s.ConversationDetail,
    summary="A conversation with its transcript",
)
def read_conversation(
    conversation_id: str, principal: ReadOnly, session: SessionDep
) -> s.ConversationDetail:
    row = session.get(Conversation, conversation_id)
    if row is None:
        raise not_found("conversation")
    agent = session.get(Agent, row.agent_id) if row.agent_id else None
    principal.check_user(agent.user_id if agent else None, "conversation")
    messages = session.scalars(
        select(Message).where(Message.conversation_id == row.id).order_by(Message.id)
    )
    detail = s.ConversationDetail.model_validate(row)
    return detail.model_copy(
        update={"messages": [s.MessageOut.model_validate(m) for m in messages]}
    )
