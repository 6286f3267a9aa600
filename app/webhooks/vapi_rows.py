"""What a VAPI tool call reads with its claim, as plain columns (app/sql_fast.py).

The claim's read-ahead (the routing rows, the call's conversation, each agent's
notification settings and the caller's known name) used to select ORM bundles and the
`Conversation` entity through `session.execute`. Here it selects plain columns, sent on
the session's cursor, and the agent's view, the conversation's row and routing's rows
are built from positions: no ORM execution, no entity in the session.

The columns and the views built from them are routing's (`LOOKUP_COLUMNS`,
`looked_up_at`) and turn_rows' (`CONVERSATION_COLUMNS`, `conversation_at`), shared with
the SMS and Gather lookups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, bindparam, literal, select, true
from sqlalchemy.sql import Select
from sqlalchemy.sql.selectable import CTE

from app.models import Conversation
from app.routing import LookedUp, looked_up_at, lookup_joined_columns
from app.turn_rows import CONVERSATION_COLUMNS, CONVERSATION_WIDTH, ConversationRow, conversation_at

_CONVERSATIONS = cast(Table, Conversation.__table__)


class ReadAhead:
    """A read-ahead statement's columns and where each part starts in its rows."""

    def __init__(self, first: Sequence[ColumnElement[Any]]) -> None:
        self.conversation_at = len(first)
        self.numbers_at = self.conversation_at + CONVERSATION_WIDTH

    def looked_up(self, row: Sequence[Any]) -> LookedUp:
        return looked_up_at(row, self.numbers_at)

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
    statement = select(*first, *CONVERSATION_COLUMNS).select_from(
        select(literal(1).label("one")).subquery()
    )
    if claimed is not None:
        statement = statement.outerjoin(claimed, true())
    statement = statement.outerjoin(
        _CONVERSATIONS,
        and_(
            _CONVERSATIONS.c.channel == channel,
            _CONVERSATIONS.c.external_id == bindparam("call_id"),
        ),
    )
    # Routing's columns of each number (routing.LOOKUP_COLUMNS), by the same joins.
    return lookup_joined_columns(statement), ReadAhead(first)
