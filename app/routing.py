"""Caller ID (and the dialled number) → the agent that answers.

Two indexed lookups on phone_numbers.e164 (unique): first the dialled number, in case it
is a line dedicated to one agent; then the caller, who on the shared line reaches the
agent of the user who owns and has verified that number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Row, Select, Table, bindparam, case, func, select
from sqlalchemy.orm import Session

from app import sql_fast
from app.logs import bind
from app.models import Agent, PhoneNumber
from app.phone import try_e164
from app.turn_rows import AGENT_COLUMNS, AgentView, agent_at


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


class LookedUp(NamedTuple):
    """One number's routing row and the agent it leads to (what `route` reads of it)."""

    e164: str | None
    purpose: str | None
    user_id: str | None
    verified_at: datetime | None
    Agent: AgentView | None


def route(
    session: Session,
    caller_raw: str | None,
    dialled_raw: str | None,
    region: str = "US",
    looked_up: Sequence[LookedUp | Row[Any]] | None = None,
) -> Route | Unrouted:
    """`looked_up`: the lookup's rows when a webhook read them already, in a statement
    of its own (`looked_up_at` of a `LOOKUP_COLUMNS` statement); otherwise they are read
    here."""
    caller = try_e164(caller_raw, region)
    dialled = try_e164(dialled_raw, region)
    if caller is None:
        return Unrouted(RouteFailure.INVALID_CALLER, None)
    if looked_up is None:
        # One round trip for both the caller's own phone and the dialled line: a Core
        # statement on the session's cursor (app/sql_fast.py), after the flush the ORM's
        # execution would do.
        found = sql_fast.read(session, _LOOKUP, numbers_of(caller, dialled)).rows
        looked_up = [looked_up_at(row, 0) for row in found]
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


def _numbers(phones: Any = PhoneNumber) -> ColumnElement[bool]:
    """`phones`: the mapped class, or its table (in a Core statement)."""
    numbers: ColumnElement[bool] = phones.e164.in_(
        [bindparam("caller_number"), bindparam("dialled_number")]
    )
    return numbers


def _agent_of_number(phones: Any = PhoneNumber, agents: Any = Agent) -> ColumnElement[bool]:
    """The agent a number leads to: the number's own agent, else the owner's first
    active agent. `phones`, `agents`: the mapped classes, or the tables' columns."""
    default_agent = (
        select(agents.id)
        .where(agents.user_id == phones.user_id, agents.active.is_(True))
        .order_by(agents.created_at)
        .limit(1)
        .correlate(phones if phones is PhoneNumber else _PHONES)
        .scalar_subquery()
    )
    target = case(
        (phones.purpose == "agent_line", phones.agent_id),
        else_=func.coalesce(phones.agent_id, default_agent),
    )
    leads_to: ColumnElement[bool] = (agents.id == target) & agents.active.is_(True)
    return leads_to


# --- the same lookup as a Core statement, its rows read by position ----------------------

_PHONES = cast(Table, PhoneNumber.__table__)
_AGENTS = cast(Table, Agent.__table__)
LOOKUP_COLUMNS: tuple[ColumnElement[Any], ...] = (
    _PHONES.c.e164.label("number_e164"),
    _PHONES.c.purpose.label("number_purpose"),
    _PHONES.c.user_id.label("number_user_id"),
    _PHONES.c.verified_at.label("number_verified_at"),
    *AGENT_COLUMNS,
)
"""A number's routing columns, then its agent's (`looked_up_at`)."""
LOOKUP_WIDTH = len(LOOKUP_COLUMNS)


def looked_up_at(row: Sequence[Any], offset: int) -> LookedUp:
    """The `LookedUp` of `row`'s `LOOKUP_COLUMNS` from `offset` on."""
    return LookedUp(
        row[offset], row[offset + 1], row[offset + 2], row[offset + 3], agent_at(row, offset + 4)
    )


def lookup_joined_columns(statement: Select[Any]) -> Select[Any]:
    """`statement` (one row) with `LOOKUP_COLUMNS` added by outer joins on the tables:
    one row per number found, or its one row with them null."""
    return (
        statement.add_columns(*LOOKUP_COLUMNS)
        .outerjoin(_PHONES, _numbers(_PHONES.c))
        .outerjoin(_AGENTS, _agent_of_number(_PHONES.c, _AGENTS.c))
    )


_LOOKUP = (
    select(*LOOKUP_COLUMNS)
    .select_from(_PHONES)
    .outerjoin(_AGENTS, _agent_of_number(_PHONES.c, _AGENTS.c))
    .where(_numbers(_PHONES.c))
)
"""Both numbers, each with the agent it leads to, by the unique index on e164."""
