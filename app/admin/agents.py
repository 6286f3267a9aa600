"""Agents (hours, appointment types, rules, caller-ID policy and PIN) and their calendar
connection (status, connect link, disconnect)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.admin import agent_service
from app.admin import schemas as s
from app.admin.auth import Operator, Principal, ReadOnly
from app.admin.errors import ApiError, not_found
from app.admin.pagination import DEFAULT_LIMIT, Order, Page, paginate
from app.admin.users import Cursor, Limit, get_user
from app.calendar import oauth
from app.calendar.ms_oauth import START_PATH as MS_START_PATH
from app.deps import ServicesDep, SessionDep
from app.models import Agent, CalendarConnection

router = APIRouter()
NO_SMS_PHONE: dict[int | str, dict[str, Any]] = {
    409: {"description": "the owner has no verified phone that accepts SMS"}
}


def get_agent(session: Session, principal: Principal, agent_id: str) -> Agent:
    row = agent_service.agent_by_id(session, agent_id)
    if row is None:
        raise not_found("agent")
    principal.check_user(row.user_id, "agent")
    return row


@router.get("/agents", response_model=Page[s.AgentOut], summary="List agents")
def list_agents(
    principal: ReadOnly,
    session: SessionDep,
    user_id: Annotated[str | None, Query(max_length=32)] = None,
    active: bool | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[s.AgentOut]:
    query = agent_service.agents_query(principal, user_id, active)
    rows, next_cursor = paginate(session, query, Order(Agent.created_at, Agent.id), cursor, limit)
    return Page(
        items=[s.AgentOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit
    )


@router.post(
    "/agents",
    status_code=201,
    response_model=s.AgentOut,
    summary="Create an agent",
    responses={404: {"description": "no such user_id"}},
)
def create_agent(body: s.AgentCreate, principal: Operator, session: SessionDep) -> s.AgentOut:
    owner = get_user(session, principal, body.user_id)
    row = agent_service.create_agent(session, principal.actor, owner.id, body)
    return s.AgentOut.model_validate(row)


@router.get("/agents/{agent_id}", response_model=s.AgentOut, summary="Get an agent")
def read_agent(agent_id: str, principal: ReadOnly, session: SessionDep) -> s.AgentOut:
    return s.AgentOut.model_validate(get_agent(session, principal, agent_id))


@router.patch("/agents/{agent_id}", response_model=s.AgentOut, summary="Update an agent")
def update_agent(
    agent_id: str, body: s.AgentUpdate, principal: Operator, session: SessionDep
) -> s.AgentOut:
    row = get_agent(session, principal, agent_id)
    row = agent_service.update_agent(session, principal.actor, row, body)
    return s.AgentOut.model_validate(row)


# --- calendar connection ----------------------------------------------------------------


class ConnectLinkOut(BaseModel):
    url: str
    expires_in_minutes: int
    texted_to: int


class ConnectLinkRequest(s.Strict):
    text_to_owner: bool = False
    # Which sign-in the link opens; the signed token is the same either way.
    provider: Literal["google", "microsoft"] = "google"


def _connection(session: Session, agent: Agent) -> CalendarConnection:
    row = agent_service.connection_of(session, agent)
    if row is None:
        raise not_found("calendar connection")
    return row


@router.get(
    "/agents/{agent_id}/calendar",
    response_model=s.CalendarConnectionOut,
    summary="Calendar connection status",
)
def read_calendar(
    agent_id: str, principal: ReadOnly, session: SessionDep
) -> s.CalendarConnectionOut:
    return s.CalendarConnectionOut.model_validate(
        _connection(session, get_agent(session, principal, agent_id))
    )


@router.delete(
    "/agents/{agent_id}/calendar",
    response_model=s.CalendarConnectionOut,
    summary="Disconnect the calendar (the stored token is erased)",
)
def disconnect_calendar(
    agent_id: str, services: ServicesDep, principal: Operator, session: SessionDep
) -> s.CalendarConnectionOut:
    agent = get_agent(session, principal, agent_id)
    row = _connection(session, agent)
    row = agent_service.disconnect_calendar(
        session, principal.actor, services.calendar_factory, agent, row
    )
    return s.CalendarConnectionOut.model_validate(row)


@router.post(
    "/agents/{agent_id}/calendar/connect-link",
    response_model=ConnectLinkOut,
    summary="A signed link the owner opens to connect Google Calendar or Microsoft 365",
    responses=NO_SMS_PHONE,
)
def connect_link(
    agent_id: str,
    services: ServicesDep,
    principal: Operator,
    session: SessionDep,
    body: ConnectLinkRequest | None = None,
) -> Any:
    agent = get_agent(session, principal, agent_id)
    settings = services.settings
    now = services.clock()
    texted = 0
    microsoft = body is not None and body.provider == "microsoft"
    path = MS_START_PATH if microsoft else oauth.START_PATH
    if body is not None and body.text_to_owner:
        reason = (
            "Connect your Microsoft 365 calendar to your scheduling agent"
            if microsoft
            else "Connect your Google Calendar to your scheduling agent"
        )
        texted = oauth.text_connect_link(
            session, services.sms_sender, settings, agent, now, reason, path
        )
        if texted == 0:
            raise ApiError(409, "the owner has no verified phone that accepts SMS")
    url = oauth.connect_url(settings, agent.id, now, path)
    agent_service.record_link_created(session, principal.actor, agent, texted)
    minutes = int(timedelta(minutes=settings.calendar_connect_link_minutes).total_seconds() // 60)
    return ConnectLinkOut(url=url, expires_in_minutes=minutes, texted_to=texted)
