"""Caller ID (and the dialled number) → the agent that answers.

Two indexed lookups on phone_numbers.e164 (unique): first the dialled number, in case it
is a line dedicated to one agent; then the caller, who on the shared line reaches the
agent of the user who owns and has verified that number.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Agent, PhoneNumber
from app.phone import try_e164


class RouteFailure(StrEnum):
    INVALID_CALLER = "invalid_caller"
    UNKNOWN_CALLER = "unknown_caller"
    UNVERIFIED_CALLER = "unverified_caller"
    NO_AGENT = "no_agent"


@dataclass(frozen=True)
class Route:
    agent: Agent
    caller: str
    dialled: str | None
    # True when the caller owns the agent (texting their own assistant).
    caller_is_owner: bool
    via: str  # "dedicated_line" | "caller_id"


@dataclass(frozen=True)
class Unrouted:
    reason: RouteFailure
    caller: str | None


def route(
    session: Session, caller_raw: str | None, dialled_raw: str | None, region: str = "US"
) -> Route | Unrouted:
    caller = try_e164(caller_raw, region)
    dialled = try_e164(dialled_raw, region)
    if caller is None:
        return Unrouted(RouteFailure.INVALID_CALLER, None)

    if dialled is not None:
        line = session.scalar(
            select(PhoneNumber).where(
                PhoneNumber.e164 == dialled, PhoneNumber.purpose == "agent_line"
            )
        )
        if line is not None and line.agent_id is not None:
            agent = session.get(Agent, line.agent_id)
            if agent is not None and agent.active:
                is_owner = _owns(session, caller, agent.user_id)
                return Route(agent, caller, dialled, is_owner, "dedicated_line")

    owned = session.scalar(
        select(PhoneNumber).where(PhoneNumber.e164 == caller, PhoneNumber.purpose == "caller")
    )
    if owned is None:
        return Unrouted(RouteFailure.UNKNOWN_CALLER, caller)
    if owned.verified_at is None:
        return Unrouted(RouteFailure.UNVERIFIED_CALLER, caller)
    agent = _agent_for(session, owned)
    if agent is None:
        return Unrouted(RouteFailure.NO_AGENT, caller)
    return Route(agent, caller, dialled, True, "caller_id")


def _agent_for(session: Session, number: PhoneNumber) -> Agent | None:
    if number.agent_id is not None:
        agent = session.get(Agent, number.agent_id)
        if agent is not None and agent.active:
            return agent
    return session.scalar(
        select(Agent)
        .where(Agent.user_id == number.user_id, Agent.active.is_(True))
        .order_by(Agent.created_at)
        .limit(1)
    )


def _owns(session: Session, caller: str, user_id: str) -> bool:
    owner = session.scalar(
        select(PhoneNumber.user_id).where(
            PhoneNumber.e164 == caller,
            PhoneNumber.purpose == "caller",
            PhoneNumber.verified_at.is_not(None),
        )
    )
    return owner == user_id
