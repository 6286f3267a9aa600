"""Caller ID (and the dialled number) → the agent that answers.

Two indexed lookups on phone_numbers.e164 (unique): first the dialled number, in case it
is a line dedicated to one agent; then the caller, who on the shared line reaches the
agent of the user who owns and has verified that number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, bindparam, case, func, select
from sqlalchemy.orm import Session

from app.logs import bind
from app.models import Agent, PhoneNumber
from app.phone import try_e164
from app.turn_rows import AgentView, agent_bundle


class RouteFailure(StrEnum):
    INVALID_CALLER = "invalid_caller"
    UNKNOWN_CALLER = "unknown_caller"
    UNVERIFIED_CALLER = "unverified_caller"
    NO_AGENT = "no_agent"


@dataclass(frozen=True)
class Route:
    # The agent's row as read at this turn, not the ORM entity (app/turn_rows.py).
    agent: AgentView
    caller: str
    dialled: str | None
    # True when the caller owns the agent (texting their own assistant).
    caller_is_owner: bool
    via: str  # "dedicated_line" | "caller_id"


@dataclass(frozen=True)
class Unrouted:
    reason: RouteFailure
    caller: str | None


def explain(failure: Unrouted, registration_instructions: str, *, again: str = "text") -> str:
    """What an unrouted caller is told, on every channel ("call again" / "text again")."""
    if failure.reason is RouteFailure.UNVERIFIED_CALLER:
        return f"Your number is registered but not verified yet. Verify it, then {again} again."
    if failure.reason is RouteFailure.NO_AGENT:
        return "Your number is registered, but no scheduling agent is set up for it yet."
    return f"This number isn't registered with a scheduling agent. {registration_instructions}"


def route(
    session: Session,
    caller_raw: str | None,
    dialled_raw: str | None,
    region: str = "US",
    looked_up: Sequence[Row[Any]] | None = None,
) -> Route | Unrouted:
    """`looked_up`: the rows of `lookup_joined` when a webhook read them already, in a
    statement of its own (app/webhooks/sms_intake.py); otherwise they are read here."""
    caller = try_e164(caller_raw, region)
    dialled = try_e164(dialled_raw, region)
    if caller is None:
        return Unrouted(RouteFailure.INVALID_CALLER, None)
    if looked_up is None:
        # One round trip for both the caller's own phone and the dialled line.
        looked_up = list(session.execute(_LOOKUP, numbers_of(caller, dialled)))
    rows = {row.e164: row for row in looked_up if row.e164 is not None}
    owned = rows.get(caller)
    if owned is not None and owned.purpose != "caller":
        owned = None
    line = rows.get(dialled) if dialled is not None else None

    line_agent = line.Agent if line is not None and line.purpose == "agent_line" else None
    if line_agent is not None:
        is_owner = (
            owned is not None
            and owned.verified_at is not None
            and owned.user_id == line_agent.user_id
        )
        bind(agent_id=line_agent.id)
        return Route(line_agent, caller, dialled, is_owner, "dedicated_line")
    if owned is None:
        return Unrouted(RouteFailure.UNKNOWN_CALLER, caller)
    if owned.verified_at is None:
        return Unrouted(RouteFailure.UNVERIFIED_CALLER, caller)
    owned_agent = owned.Agent
    if owned_agent is None:
        return Unrouted(RouteFailure.NO_AGENT, caller)
    bind(agent_id=owned_agent.id)
    return Route(owned_agent, caller, dialled, True, "caller_id")


def numbers_of(caller: str, dialled: str | None) -> dict[str, str | None]:
    """The lookup's parameters. Two plain parameters, not an expanding list: an
    expanding IN is rendered again at every execution; a missing dialled number is a
    NULL, which matches no row."""
    return {"caller_number": caller, "dialled_number": dialled}


def lookup_numbers(
    caller_raw: str | None, dialled_raw: str | None, region: str = "US"
) -> dict[str, str | None] | None:
    """The lookup's parameters for the numbers as given; None when the caller is no
    number (route() refuses it without a lookup)."""
    caller = try_e164(caller_raw, region)
    if caller is None:
        return None
    return numbers_of(caller, try_e164(dialled_raw, region))


def _numbers() -> ColumnElement[bool]:
    return PhoneNumber.e164.in_([bindparam("caller_number"), bindparam("dialled_number")])


def _agent_of_number() -> ColumnElement[bool]:
    """The agent a number leads to: the number's own agent, else the owner's first
    active agent."""
    default_agent = (
        select(Agent.id)
        .where(Agent.user_id == PhoneNumber.user_id, Agent.active.is_(True))
        .order_by(Agent.created_at)
        .limit(1)
        .correlate(PhoneNumber)
        .scalar_subquery()
    )
    target = case(
        (PhoneNumber.purpose == "agent_line", PhoneNumber.agent_id),
        else_=func.coalesce(PhoneNumber.agent_id, default_agent),
    )
    return (Agent.id == target) & Agent.active.is_(True)


# Each number's routing columns, then its agent's view (the row's "Agent").
_LOOKED_UP = (
    PhoneNumber.e164,
    PhoneNumber.purpose,
    PhoneNumber.user_id,
    PhoneNumber.verified_at,
    agent_bundle(),
)


def _lookup_statement() -> Select[Any]:
    """Both numbers, each with the agent it leads to, by the unique index on e164;
    built once, reused."""
    return select(*_LOOKED_UP).outerjoin(Agent, _agent_of_number()).where(_numbers())


def lookup_joined(statement: Select[Any]) -> Select[Any]:
    """`statement` (one row) with the lookup's columns added by outer joins: one row per
    number found, or its one row with the lookup's columns null; parameters as above."""
    return (
        statement.add_columns(*_LOOKED_UP)
        .outerjoin(PhoneNumber, _numbers())
        .outerjoin(Agent, _agent_of_number())
    )


_LOOKUP = _lookup_statement()
