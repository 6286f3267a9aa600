"""The turn's reads as they were through the ORM (bundles of the agent's and the
conversation's columns, `session.execute`): the reference that tests compare the Core
statements of app/routing.py, app/turn_rows.py and their callers with (same rows, same
views). Nothing in app/ runs these any more."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Select, Text, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Bundle

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


class _AgentBundle(Bundle[Any]):
    """The agent's columns as one element of a result row, an `AgentView` (None when an
    outer join found no agent): built from the row by position, as the ORM reads any
    column, without an entity. A row's element is reached by the bundle's name."""

    def create_row_processor(
        self, query: Any, procs: Sequence[Callable[[Any], Any]], labels: Sequence[str]
    ) -> Callable[[Any], AgentView | None]:
        def agent(row: Any) -> AgentView | None:
            values = [proc(row) for proc in procs]
            if values[0] is None:
                return None
            for position in _JSON_POSITIONS:
                values[position] = parsed_json(values[position])
            return AgentView(*values)

        return agent


def agent_bundle() -> Bundle[Any]:
    """What a statement selects for an agent's view, as the row's element "Agent" (the
    name the entity had there). JSON columns are read as their text (a cast, so
    PostgreSQL's driver does not decode them either) and parsed once per distinct text
    (`parsed_json`): the row is still read at every turn, so an owner's edit is seen at
    the next one."""
    return _AgentBundle("Agent", *(_agent_column(name) for name in AGENT_FIELDS))


def _agent_column(name: str) -> Any:
    column = getattr(Agent, name)
    return sql_cast(column, Text).label(name) if name in _JSON_FIELDS else column


class _ConversationBundle(Bundle[Any]):
    """The conversation's columns as one element of a result row, a `ConversationRow`
    (None when an outer join found none), built as `_AgentBundle` builds its view."""

    def create_row_processor(
        self, query: Any, procs: Sequence[Callable[[Any], Any]], labels: Sequence[str]
    ) -> Callable[[Any], ConversationRow | None]:
        def conversation(row: Any) -> ConversationRow | None:
            key, channel, external_id, caller, agent_id, state, details, status = (
                proc(row) for proc in procs
            )
            if key is None:
                return None
            stored = (state, details, status)
            return ConversationRow(
                key, channel, external_id, caller, agent_id, state, details, status, stored
            )

        return conversation


def conversation_bundle() -> Bundle[Any]:
    """What a statement selects for a `ConversationRow`: the row's element
    "Conversation" (the name the entity had there); hand it to `conversation_of`."""
    return _ConversationBundle(
        "Conversation", *(getattr(Conversation, name) for name in CONVERSATION_FIELDS)
    )


# Each number's routing columns, then its agent's view (the row's "Agent").
_LOOKED_UP = (
    PhoneNumber.e164,
    PhoneNumber.purpose,
    PhoneNumber.user_id,
    PhoneNumber.verified_at,
    agent_bundle(),
)


def lookup_statement() -> Select[Any]:
    """Both numbers, each with the agent it leads to: what routing's `_LOOKUP` replaced."""
    return select(*_LOOKED_UP).outerjoin(Agent, _agent_of_number()).where(_numbers())


def lookup_joined(statement: Select[Any]) -> Select[Any]:
    """`statement` (one row) with the lookup's columns added by outer joins: one row per
    number found, or its one row with the lookup's columns null; parameters as above."""
    return (
        statement.add_columns(*_LOOKED_UP)
        .outerjoin(PhoneNumber, _numbers())
        .outerjoin(Agent, _agent_of_number())
    )
