"""Appointments: list and read; cancel and reschedule through the scheduling tools, so an
operator's change obeys the same rules, calendar write-through and audit as a caller's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from app.admin import appointment_service
from app.admin import schemas as s
from app.admin.auth import Operator, Principal, ReadOnly
from app.admin.errors import not_found
from app.admin.pagination import DEFAULT_LIMIT, Order, Page, paginate
from app.admin.params import Day, Moment
from app.admin.users import Cursor, Limit
from app.deps import SessionDep
from app.models import Agent, Appointment, AppointmentStatus, Conversation
from app.services import services_of
from app.tools.schemas import CancelAppointmentArgs, RescheduleAppointmentArgs, ToolResult
from app.tools.service import SchedulingTools, ToolContext

router = APIRouter()
ADMIN_CHANNEL = "admin"


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
    query = appointment_service.appointments_query(
        principal, agent_id, status, channel, date_from, date_to
    )
    order = Order(Appointment.start_at, Appointment.id)
    rows, next_cursor = paginate(session, query, order, cursor, limit)
    return Page(
        items=[s.AppointmentOut.model_validate(r) for r in rows],
        next_cursor=next_cursor,
        limit=limit,
    )


def _get(session: Session, principal: Principal, appointment_id: str) -> tuple[Appointment, Agent]:
    found = appointment_service.appointment_with_agent(session, appointment_id)
    if found is None:
        raise not_found("appointment")
    principal.check_user(found[1].user_id, "appointment")
    return found


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
    row = appointment_service.record_tool_outcome(session, principal.actor, action, row, result)
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
    query = appointment_service.conversations_query(principal, agent_id, channel, since, until)
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
    found = appointment_service.conversation_with_owner(session, conversation_id)
    if found is None:
        raise not_found("conversation")
    row, owner_id = found
    principal.check_user(owner_id, "conversation")
    messages = appointment_service.transcript(session, row.id)
    detail = s.ConversationDetail.model_validate(row)
    return detail.model_copy(
        update={"messages": [s.MessageOut.model_validate(m) for m in messages]}
    )
