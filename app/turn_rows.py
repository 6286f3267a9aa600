"""What a turn reads of its agent and conversation: plain rows, not ORM entities.

A turn reads its agent at every webhook (routing), never changes it, and the ORM's
loading of the entity (identity map, instance state, some twenty attributes, three JSON
columns decoded) was a visible part of its CPU. Routing selects the columns below and
builds an `AgentView`; code that changes an agent (admin API, dashboard) keeps the
entity. Consumers that serve both take `AgentLike`, which the entity satisfies too.
The conversation of an SMS or Gather turn is likewise a `ConversationRow`, written back
with the transaction's last writes; the VAPI path keeps the entity (`ConversationLike`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import ColumnElement, Table, Text, event, insert, inspect
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, SessionTransaction, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from app import commit_writes
from app.models import Agent, Conversation, new_id, utcnow

E = TypeVar("E")


class AgentLike(Protocol):
    """An agent as the turn's code reads it: the ORM entity or an `AgentView`."""

    @property
    def id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def weekly_hours(self) -> dict[str, Any]: ...
    @property
    def appointment_types(self) -> list[dict[str, Any]]: ...
    @property
    def slot_step_minutes(self) -> int: ...
    @property
    def min_notice_minutes(self) -> int: ...
    @property
    def horizon_days(self) -> int: ...
    @property
    def daily_cap(self) -> int | None: ...
    @property
    def greeting(self) -> str: ...
    @property
    def instructions(self) -> str: ...
    @property
    def caller_id_policy(self) -> str: ...
    @property
    def pin_hash(self) -> str | None: ...
    @property
    def language(self) -> str: ...
    @property
    def voice(self) -> str | None: ...
    @property
    def address(self) -> str: ...
    @property
    def services_description(self) -> str: ...
    @property
    def faq(self) -> list[dict[str, str]]: ...
    @property
    def voice_mode(self) -> str: ...
    @property
    def calendar_provider(self) -> str: ...


@dataclass(frozen=True, slots=True)
class AgentView:
    """The agent's row as read at this turn. Its JSON values may be shared with other
    turns that read the same text (`parsed_json`): read them, never change them."""

    id: str
    user_id: str
    name: str
    timezone: str
    weekly_hours: dict[str, Any]
    appointment_types: list[dict[str, Any]]
    slot_step_minutes: int
    min_notice_minutes: int
    horizon_days: int
    daily_cap: int | None
    greeting: str
    instructions: str
    caller_id_policy: str
    pin_hash: str | None
    language: str
    voice: str | None
    address: str
    services_description: str
    faq: list[dict[str, str]]
    voice_mode: str
    calendar_provider: str

    @classmethod
    def of(cls, agent: AgentLike) -> AgentView:
        """The view of an agent held otherwise (an entity, in a test or a tool)."""
        return cls(*(getattr(agent, name) for name in AGENT_FIELDS))


AGENT_FIELDS: tuple[str, ...] = tuple(AgentView.__dataclass_fields__)
_JSON_FIELDS = frozenset({"weekly_hours", "appointment_types", "faq"})
_JSON_POSITIONS = tuple(i for i, name in enumerate(AGENT_FIELDS) if name in _JSON_FIELDS)


# --- views from plain rows, by position -------------------------------------------------
# A Core statement sent through app/sql_fast.py selects these columns (labels unique in
# any statement that also selects another table's) and builds the view from the row at
# the offset where they start: no Bundle, no ORM execution.

_AGENTS = cast(Table, Agent.__table__)
AGENT_COLUMNS: tuple[ColumnElement[Any], ...] = tuple(
    (sql_cast(_AGENTS.c[name], Text) if name in _JSON_FIELDS else _AGENTS.c[name]).label(
        f"agent_{name}"
    )
    for name in AGENT_FIELDS
)
"""The agent's columns, in `AgentView`'s order (JSON as its text, so PostgreSQL's
driver does not decode it either; `agent_at` parses each distinct text once)."""
AGENT_WIDTH = len(AGENT_FIELDS)


def agent_at(row: Sequence[Any], offset: int) -> AgentView | None:
    """The `AgentView` of `row`'s `AGENT_COLUMNS` from `offset` on; None when an outer
    join found no agent (its id is NULL)."""
    if row[offset] is None:
        return None
    values = list(row[offset : offset + AGENT_WIDTH])
    for position in _JSON_POSITIONS:
        values[position] = parsed_json(values[position])
    return AgentView(*values)


# Parsed JSON by its text. Agents are few and edited rarely, so this stays small; the
# bound only keeps a process that sees many edits from growing.
_PARSED: dict[str | None, Any] = {}
_PARSED_LIMIT = 1024


def parsed_json(text: str | None) -> Any:
    """`text` decoded, the same object for the same text (None for a NULL)."""
    found = _PARSED.get(text)
    if found is None and text is not None:
        if len(_PARSED) >= _PARSED_LIMIT:
            _PARSED.clear()
        found = _PARSED[text] = json.loads(text)
    return found


# --- the conversation ----------------------------------------------------------------


@dataclass(slots=True, eq=False)
class ConversationRow:
    """A conversation's row for one turn (SMS, Gather, a media stream): read as columns,
    changed in place, and written back with the transaction's last writes
    (app/commit_writes.py): an INSERT for a new one, else an UPDATE of what changed.
    Equal only to itself (it keys its own write at commit)."""

    id: str
    channel: str
    external_id: str
    caller_e164: str | None
    agent_id: str | None
    state: dict[str, Any]
    details: dict[str, Any]
    status: str
    # (state, details, status) as the database holds them; None: not written yet.
    stored: tuple[Any, Any, Any] | None = None


ConversationLike = Conversation | ConversationRow

CONVERSATION_FIELDS = (
    "id",
    "channel",
    "external_id",
    "caller_e164",
    "agent_id",
    "state",
    "details",
    "status",
)
_CONVERSATIONS = cast(Table, Conversation.__table__)
_INSERT_CONVERSATION = insert(_CONVERSATIONS)
# The columns' defaults, which an explicit INSERT of None would not apply.
_EMPTY: dict[str, Callable[[], object]] = {
    "state": dict,
    "details": dict,
    "status": lambda: "active",
}
_UNWRITTEN = "unwritten_conversations"


CONVERSATION_COLUMNS: tuple[ColumnElement[Any], ...] = tuple(
    _CONVERSATIONS.c[name].label(f"conversation_{name}") for name in CONVERSATION_FIELDS
)
"""The conversation's columns, in `ConversationRow`'s order (`conversation_at`)."""
CONVERSATION_WIDTH = len(CONVERSATION_FIELDS)


def conversation_at(row: Sequence[Any], offset: int) -> ConversationRow | None:
    """The `ConversationRow` of `row`'s `CONVERSATION_COLUMNS` from `offset` on (None
    when an outer join found none), as read: hand it to `conversation_of`."""
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


# --- an entity from a row, as a query's load makes it ---------------------------------


def entity_columns(entity: type[Any], prefix: str) -> tuple[ColumnElement[Any], ...]:
    """Every column of a mapped class's table, labelled `<prefix><attribute>`, in the
    order `entity_at` reads them."""
    return tuple(column.label(f"{prefix}{key}") for key, column in _column_attrs(entity))


def entity_at(session: Session, entity: type[E], row: Sequence[Any], offset: int) -> E | None:
    """The entity whose `entity_columns` start at `offset` in `row`, held by `session` as
    a query's load holds it: the one already in its identity map (its unloaded
    attributes filled from the row), else a new persistent object whose values are its
    committed state (no attribute events, nothing to flush). None when an outer join
    found no row (its primary key is NULL)."""
    attrs = _column_attrs(entity)
    values = row[offset : offset + len(attrs)]
    mapper = inspect(entity)
    key = mapper.identity_key_from_primary_key([values[i] for i in _primary_positions(entity)])
    if key[1][0] is None:
        return None
    found = session.identity_map.get(key)
    if found is not None:
        state = instance_state(found)
        unloaded = state.unloaded
        if unloaded:
            for (name, _column), value in zip(attrs, values, strict=True):
                if name in unloaded:
                    set_committed_value(found, name, value)
        return cast(E, found)
    made = mapper.class_manager.new_instance()
    made.__dict__.update(
        (name, value) for (name, _column), value in zip(attrs, values, strict=True)
    )
    make_transient_to_detached(made)
    session.add(made)
    return cast(E, made)


_attrs_of: dict[type[Any], tuple[tuple[str, Any], ...]] = {}


def column_keys(entity: type[Any]) -> tuple[tuple[str, Any], ...]:
    """(attribute, column) of a mapped class's columns, in `entity_columns`' order."""
    return _column_attrs(entity)


def _column_attrs(entity: type[Any]) -> tuple[tuple[str, Any], ...]:
    found = _attrs_of.get(entity)
    if found is None:
        found = _attrs_of[entity] = tuple(
            (prop.key, prop.columns[0]) for prop in inspect(entity).column_attrs
        )
    return found


def _primary_positions(entity: type[Any]) -> list[int]:
    columns = [column for _key, column in _column_attrs(entity)]
    return [columns.index(column) for column in inspect(entity).primary_key]


def conversation_of(session: Session, found: ConversationRow | None) -> ConversationRow | None:
    """The conversation a statement read (`conversation_at`), written back at
    commit if the turn changes it."""
    if found is not None:
        _write_at_commit(session, found)
    return found


def new_conversation(
    session: Session,
    *,
    channel: str,
    external_id: str,
    caller_e164: str | None,
    agent_id: str | None,
    details: dict[str, Any],
) -> ConversationRow:
    """A conversation not yet in the database, with its id chosen here so the turn can
    name it: its row goes out once, with the turn's final state, at commit, or earlier
    when something that refers to it is written first (`write_unwritten`)."""
    found = ConversationRow(
        new_id("cnv"), channel, external_id, caller_e164, agent_id, {}, details, "active"
    )
    session.info.setdefault(_UNWRITTEN, []).append(found)
    _write_at_commit(session, found)
    return found


def write_unwritten(session: Session) -> None:
    """INSERT now the new conversations of this transaction that are not written yet:
    call it before writing a row that refers to one (an appointment booked in it)."""
    for conversation in session.info.pop(_UNWRITTEN, ()):
        _insert_now(session, conversation)


def _write_at_commit(session: Session, conversation: ConversationRow) -> None:
    commit_writes.prepare_at_commit(
        session, conversation, lambda at_commit: _write(at_commit, conversation)
    )


def _write(session: Session, conversation: ConversationRow) -> None:
    """The conversation's INSERT (new) or UPDATE (changed), as one of the last writes."""
    if conversation.stored is None:
        if session.new:
            # The ORM's pending rows are flushed before the last writes, and one may
            # refer to this conversation: it goes first.
            write_unwritten(session)
            return
        _fill_defaults(conversation)
        commit_writes.insert_row(session, _CONVERSATIONS, _new_row(conversation))
        mark_written(session, conversation)
        return
    current = (conversation.state, conversation.details, conversation.status)
    changed = {
        name: value
        for name, value, stored in zip(_TURN_FIELDS, current, conversation.stored, strict=True)
        if value != stored
    }
    if not changed:
        return
    conversation.stored = current
    commit_writes.update_row(
        session, _CONVERSATIONS, ("id", conversation.id), {**changed, "updated_at": utcnow()}
    )


_TURN_FIELDS = ("state", "details", "status")


def _insert_now(session: Session, conversation: ConversationRow) -> None:
    if conversation.stored is not None:
        return
    _fill_defaults(conversation)
    session.connection().execute(_INSERT_CONVERSATION, _new_row(conversation))
    mark_written(session, conversation)


def _fill_defaults(conversation: ConversationRow) -> None:
    for name, empty in _EMPTY.items():
        if getattr(conversation, name) is None:
            setattr(conversation, name, empty())


def _new_row(conversation: ConversationRow) -> dict[str, Any]:
    now = utcnow()
    row = {name: getattr(conversation, name) for name in CONVERSATION_FIELDS}
    return {**row, "created_at": now, "updated_at": now}


def mark_written(session: Session, conversation: ConversationRow) -> None:
    """`conversation` is as stored now (a statement of the caller's wrote it): nothing
    to INSERT early, and no UPDATE at commit unless it changes again."""
    conversation.stored = (conversation.state, conversation.details, conversation.status)
    unwritten = session.info.get(_UNWRITTEN)
    if unwritten and conversation in unwritten:
        unwritten.remove(conversation)


@event.listens_for(Session, "after_rollback")
def _forget_unwritten(session: Session) -> None:
    session.info.pop(_UNWRITTEN, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_unwritten_at_end(session: Session, transaction: SessionTransaction) -> None:
    # close() ends the transaction without an after_rollback (as in app/commit_writes.py).
    if transaction.parent is None:
        session.info.pop(_UNWRITTEN, None)
