"""What a VAPI tool call reads with its claim, as plain columns (app/sql_fast.py).

The claim's read-ahead (the routing rows, the call's conversation, each agent's
notification settings and the caller's known name) used to select ORM bundles and the
`Conversation` entity through `session.execute`. Here it selects plain columns, sent on
the session's cursor, and the agent's view, the conversation's row and routing's rows
are built from positions: no ORM execution, no entity in the session.

The agent's and the conversation's columns are labelled `agent_<field>` and
`conversation_<field>`, in `AgentView`'s and `ConversationRow`'s field order, so the
statement can select another table's `id` or `user_id` beside them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import ColumnElement, Table, Text, and_, bindparam, literal, select, true
from sqlalchemy import cast as sql_cast
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import CTE

from app.models import Agent, Conversation, PhoneNumber
from app.routing import _agent_of_number, _numbers
from app.turn_rows import (
    _JSON_FIELDS,
    _JSON_POSITIONS,
    AGENT_FIELDS,
    CONVERSATION_FIELDS,
    AgentView,
    ConversationRow,
    parsed_json,
)

_AGENTS = cast(Table, Agent.__table__)
_CONVERSATIONS = cast(Table, Conversation.__table__)
_PHONES = cast(Table, PhoneNumber.__table__)

AGENT_COLUMNS: tuple[ColumnElement[Any], ...] = tuple(
    (sql_cast(_AGENTS.c[name], Text) if name in _JSON_FIELDS else _AGENTS.c[name]).label(
        f"agent_{name}"
    )
    for name in AGENT_FIELDS
)
AGENT_WIDTH = len(AGENT_FIELDS)
CONVERSATION_COLUMNS: tuple[ColumnElement[Any], ...] = tuple(
    _CONVERSATIONS.c[name].label(f"conversation_{name}") for name in CONVERSATION_FIELDS
)
CONVERSATION_WIDTH = len(CONVERSATION_FIELDS)
# Routing's columns of each number found (app/routing.py reads them by these names).
NUMBER_COLUMNS: tuple[ColumnElement[Any], ...] = (
    _PHONES.c.e164,
    _PHONES.c.purpose,
    _PHONES.c.user_id,
    _PHONES.c.verified_at,
)


def agent_at(row: Sequence[Any], offset: int) -> AgentView | None:
    """The `AgentView` of `row`'s `AGENT_COLUMNS` from `offset` on (JSON parsed once
    per distinct text, as routing's view); None when an outer join found no agent."""
    if row[offset] is None:
        return None
    values = list(row[offset : offset + AGENT_WIDTH])
    for position in _JSON_POSITIONS:
        values[position] = parsed_json(values[position])
    return AgentView(*values)


def conversation_at(row: Sequence[Any], offset: int) -> ConversationRow | None:
    """The `ConversationRow` of `row`'s `CONVERSATION_COLUMNS` from `offset` on, as read
    (None when an outer join found none): hand it to `turn_rows.conversation_of`."""
    key, channel, external_id, caller, agent_id, state, details, status = row[
        offset : offset + CONVERSATION_WIDTH
    ]
    if key is None:
        return None
    return ConversationRow(
        key,
        channel,
        external_id,
        caller,
        agent_id,
        state,
        details,
        status,
        (state, details, status),
    )


class LookedUp(NamedTuple):
    """One number found by routing's lookup, with the agent it leads to: what
    `routing.route(looked_up=...)` reads of a row."""

    e164: str | None
    purpose: str | None
    user_id: str | None
    verified_at: Any
    Agent: AgentView | None


class ReadAhead:
    """A read-ahead statement's columns and where each part starts in its rows."""

    def __init__(self, first: Sequence[ColumnElement[Any]]) -> None:
        self.conversation_at = len(first)
        self.numbers_at = self.conversation_at + CONVERSATION_WIDTH
        self.agent_at = self.numbers_at + len(NUMBER_COLUMNS)

    def looked_up(self, row: Sequence[Any]) -> LookedUp:
        at = self.numbers_at
        e164, purpose, user_id, verified_at = row[at : at + len(NUMBER_COLUMNS)]
        return LookedUp(e164, purpose, user_id, verified_at, agent_at(row, self.agent_at))

    def conversation(self, row: Sequence[Any]) -> ConversationRow | None:
        return conversation_at(row, self.conversation_at)


def read_ahead_statement(channel: str, claimed: CTE | None) -> tuple[Select[Any], ReadAhead]:
    """One row at least: the claim's id (when `claimed`, a CTE of its INSERT), the call's
    conversation (`call_id`), then one row per number routing looks up (`caller_number`,
    `dialled_number`) with the agent it leads to; the caller adds what goes with each
    agent. Outer joins from a one-row subquery, so nothing found is still a row."""
    first: list[ColumnElement[Any]] = []
    if claimed is not None:
        first.append(claimed.c.id.label("claim_id"))
    statement = select(*first, *CONVERSATION_COLUMNS, *NUMBER_COLUMNS, *AGENT_COLUMNS).select_from(
        select(literal(1).label("one")).subquery()
    )
    if claimed is not None:
        statement = statement.outerjoin(claimed, true())
    statement = (
        statement.outerjoin(
            _CONVERSATIONS,
            and_(
                _CONVERSATIONS.c.channel == channel,
                _CONVERSATIONS.c.external_id == bindparam("call_id"),
            ),
        )
        .outerjoin(_PHONES, _numbers())
        .outerjoin(_AGENTS, _agent_of_number())
    )
    return statement, ReadAhead(first)
