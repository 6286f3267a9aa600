"""Conversations: find or open one, run one engine turn, keep the transcript and state.

The dialogue state is saved in the conversation row in the same transaction as the turn,
so a restart between two messages loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ScalarSelect,
    Select,
    String,
    Table,
    and_,
    bindparam,
    literal,
    select,
)
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value

from app import commit_writes, sql_fast
from app.agent.engine import Channel, Engine, Reply, Turn
from app.agent.turn_log import record_engine_turn
from app.calendar.backend import CalendarFactory
from app.db import UTCDateTime
from app.models import Appointment, Conversation, Message, User, utcnow
from app.routing import Route
from app.tools.service import SchedulingTools, ToolContext, upcoming_of
from app.turn_rows import (
    CONVERSATION_COLUMNS,
    CONVERSATION_WIDTH,
    ConversationLike,
    ConversationRow,
    column_keys,
    conversation_at,
    conversation_of,
    entity_at,
    entity_columns,
    new_conversation,
    write_unwritten,
)

# A scalar subquery, built once, and the parameters of this use of it.
ReadAlong = tuple[ScalarSelect[Any], dict[str, Any]]


class ConversationService:
    def __init__(
        self,
        session: Session,
        engine: Engine,
        calendar_factory: CalendarFactory,
        now: datetime,
        idle_reset: timedelta | None = None,
    ) -> None:
        self.session = session
        self.engine = engine
        self.calendar_factory = calendar_factory
        self.now = now
        self.idle_reset = idle_reset
        self.read_along: Any = None
        self.upcoming: list[Appointment] | None = None

    def open(
        self,
        channel: str,
        external_id: str,
        route: Route,
        read_along: ReadAlong | None = None,
    ) -> ConversationRow:
        """The conversation, found or new, as a plain row written back at commit.
        `read_along`: a scalar subquery (built once) and its parameters, read in the same
        round trip, its value then in `self.read_along`."""
        conversation, known_name, self.read_along = self._find(
            channel, external_id, route, read_along
        )
        if conversation is None:
            conversation = new_conversation(
                self.session,
                channel=channel,
                external_id=external_id,
                caller_e164=route.caller,
                agent_id=route.agent.id,
                details={"caller_name": known_name},
            )
        elif self._idle_too_long(conversation):
            # A text days later starts a new request, not the end of an old one.
            conversation.state = {}
            conversation.details = {**(conversation.details or {}), "caller_name": known_name}
        return conversation

    def _find(
        self, channel: str, external_id: str, route: Route, read_along: ReadAlong | None
    ) -> tuple[ConversationRow | None, str | None, Any]:
        """The conversation, for a new one the caller's known name, and the caller's
        upcoming appointments with this agent (kept in `self.upcoming` for the turn's
        list_appointments): one round trip.

        At least one row always comes back (outer joins from a one-row select), so the
        name is there even when the conversation is not; one row per appointment."""
        along, along_params = read_along if read_along is not None else (None, {})
        params = {
            **_name_params(route),
            **along_params,
            "channel": channel,
            "external_id": external_id,
            "upcoming_now": self.now,
        }
        # A Core statement on the session's cursor (app/sql_fast.py), read by position,
        # after the flush the ORM's execution would do.
        statement = _found_statement(route.caller_is_owner, along)
        rows = sql_fast.read(self.session, statement, params).rows
        first = rows[0]
        self.upcoming = upcoming_in(self.session, rows, _APPOINTMENT_AT)
        found = conversation_at(first, 0)
        return conversation_of(self.session, found), first[_KNOWN_NAME_AT], first[_READ_ALONG_AT]

    def _idle_too_long(self, conversation: ConversationLike) -> bool:
        last = (conversation.details or {}).get("last_turn_at")
        if self.idle_reset is None or last is None:
            return False
        return self.now - datetime.fromisoformat(last) > self.idle_reset

    def tools_for(
        self, conversation: ConversationLike, route: Route, channel: str, may_manage_existing: bool
    ) -> SchedulingTools:
        return SchedulingTools(
            ToolContext(
                session=self.session,
                agent=route.agent,
                calendar=self.calendar_factory(self.session, route.agent),
                now=self.now,
                caller=route.caller,
                channel=channel,
                conversation_id=conversation.id,
                may_manage_existing=may_manage_existing,
                upcoming=self.upcoming,
            )
        )

    def take_turn(
        self,
        conversation: ConversationLike,
        route: Route,
        text: str,
        *,
        channel: Channel,
        may_manage_existing: bool = True,
        inbound_external_id: str | None = None,
    ) -> Reply:
        # Reads during the turn need not write the conversation first (that was an INSERT
        # or UPDATE per query); every tool that writes flushes explicitly, in a savepoint.
        with self.session.no_autoflush:
            tools = self.tools_for(conversation, route, channel, may_manage_existing)
            reply = self.engine.respond(
                Turn(
                    text=text,
                    channel=channel,
                    now=self.now,
                    agent=route.agent,
                    tools=tools,
                    state=dict(conversation.state or {}),
                    caller_name=self.caller_name(conversation, route),
                    history=self.history(conversation),
                )
            )
        # A new dict, so the JSON column is seen as changed.
        conversation.state = dict(reply.state)
        # The injected clock, not the row's onupdate (wall time), decides idleness.
        conversation.details = {
            **(conversation.details or {}),
            "last_turn_at": self.now.isoformat(),
        }
        if reply.end_conversation:
            conversation.status = "ended"
        if reply.meta:
            record_engine_turn(self.session, conversation, reply.meta, self.now)
        # Both sides of the turn in one INSERT (the ORM would fetch each new id back).
        self._write_turn(
            conversation,
            [
                {"direction": "in", "body": text, "external_id": inbound_external_id},
                {"direction": "out", "body": reply.text, "tool_calls": reply.tool_calls or None},
            ],
        )
        return reply

    def history(self, conversation: ConversationLike) -> list[tuple[str, str]]:
        """The recent transcript, for engines that ask for it (one indexed query)."""
        limit = getattr(self.engine, "history_messages", 0)
        if not limit:
            return []
        rows = self.session.execute(
            select(Message.direction, Message.body)
            .where(Message.conversation_id == conversation.id)
            .order_by(Message.id.desc())
            .limit(limit)
        ).all()
        return [(row.direction, row.body) for row in reversed(rows)]

    def record(
        self,
        conversation: ConversationLike,
        direction: str,
        body: str,
        *,
        tool_calls: list[dict[str, object]] | None = None,
        external_id: str | None = None,
    ) -> None:
        if self.session.in_nested_transaction():
            # Inside a savepoint (a VAPI tool call) the ORM drops the row if it rolls
            # back; a deferred write would outlive it. It refers to the conversation,
            # which must be written first.
            write_unwritten(self.session)
            self.session.add(
                Message(
                    conversation_id=conversation.id,
                    direction=direction,
                    body=body,
                    tool_calls=tool_calls,
                    external_id=external_id,
                )
            )
            return
        message = {"direction": direction, "body": body, "tool_calls": tool_calls}
        self._write_turn(conversation, [{**message, "external_id": external_id}])

    def _write_turn(self, conversation: ConversationLike, messages: list[dict[str, Any]]) -> None:
        """The messages, and the conversation's row as it stands at commit, written with
        the transaction's last writes (app/commit_writes.py): no id is read back."""
        for message in messages:
            row = {"tool_calls": None, "external_id": None, **message}
            commit_writes.insert_row(
                self.session,
                Message.__table__,
                {"conversation_id": conversation.id, "created_at": utcnow(), **row},
            )
        if isinstance(conversation, Conversation):  # a row writes itself (app/turn_rows.py)
            commit_writes.prepare_at_commit(
                self.session,
                conversation,
                lambda session: _write_conversation(session, conversation),
            )

    def caller_name(self, conversation: ConversationLike, route: Route) -> str | None:
        """Looked up once per conversation; the engine keeps names it learns in its state."""
        details = conversation.details or {}
        if "caller_name" not in details:
            details = {**details, "caller_name": self.known_name(route)}
            conversation.details = details
        name: str | None = details["caller_name"]
        return name

    def known_name(self, route: Route) -> str | None:
        statement = _OWNER_NAME if route.caller_is_owner else _CONTACT_NAME
        return self.session.scalar(statement, _name_params(route))


# The statements of finding a conversation, built once: a turn passes only parameters.
_OWNER_NAME: Select[str | None] = select(User.name).where(User.id == bindparam("owner_id"))
_CONTACT_NAME: Select[str | None] = (
    select(Appointment.contact_name)
    .where(
        Appointment.agent_id == bindparam("agent_id"),
        Appointment.contact_e164 == bindparam("caller"),
        Appointment.contact_name.is_not(None),
    )
    .order_by(Appointment.created_at.desc())
    .limit(1)
)
_UPCOMING = upcoming_of(
    bindparam("agent_id", type_=String()),
    bindparam("caller", type_=String()),
    bindparam("upcoming_now", type_=UTCDateTime()),
)
_found_statements: dict[tuple[bool, Any], Select[Any]] = {}


def _name_params(route: Route) -> dict[str, Any]:
    return {"owner_id": route.agent.user_id, "agent_id": route.agent.id, "caller": route.caller}


def _found_statement(caller_is_owner: bool, read_along: ScalarSelect[Any] | None) -> Select[Any]:
    """The conversation (`channel`, `external_id`), the known name, `read_along` and the
    caller's upcoming appointments; one per variant, kept. A row: the conversation's
    `CONVERSATION_COLUMNS`, the name, `read_along`, the appointment's columns."""
    key = (caller_is_owner, read_along)
    found = _found_statements.get(key)
    if found is None:
        anchor = select(literal(1).label("one")).subquery()
        name = _OWNER_NAME if caller_is_owner else _CONTACT_NAME
        found = _found_statements[key] = cast(
            Select[Any],
            select(
                *CONVERSATION_COLUMNS,
                name.scalar_subquery().label("known_name"),
                (literal(None) if read_along is None else read_along).label("read_along"),
                *_APPOINTMENT_COLUMNS,
            )
            .select_from(anchor)
            .outerjoin(
                _CONVERSATIONS,
                and_(
                    _CONVERSATIONS.c.channel == bindparam("channel"),
                    _CONVERSATIONS.c.external_id == bindparam("external_id"),
                ),
            )
            .outerjoin(_APPOINTMENTS, _UPCOMING)
            .order_by(_APPOINTMENTS.c.start_at),
        )
    return found


_CONVERSATIONS = cast(Table, Conversation.__table__)
_APPOINTMENTS = cast(Table, Appointment.__table__)
UPCOMING_COLUMNS = entity_columns(Appointment, "appointment_")
"""An upcoming appointment's columns, read along with a turn's other rows (`upcoming_in`)."""
_APPOINTMENT_COLUMNS = UPCOMING_COLUMNS
_APPOINTMENT_AGENT_ID = [key for key, _column in column_keys(Appointment)].index("agent_id")


def upcoming_in(
    session: Session, rows: Sequence[Any], offset: int, agent_id: str | None = None
) -> list[Appointment]:
    """The caller's upcoming appointments read along (`UPCOMING_COLUMNS` from `offset`,
    rows in their order, NULL where an outer join found none), as entities the session
    holds as if a query had loaded them; with `agent_id`, only that agent's, each once
    (the rows repeat them when more than one number was looked up)."""
    if all(row[offset] is None for row in rows):  # the usual case: none
        return []
    found: list[Appointment] = []
    seen: set[str] = set()
    for row in rows:
        key = row[offset]
        if key is None or key in seen:
            continue
        if agent_id is not None and row[offset + _APPOINTMENT_AGENT_ID] != agent_id:
            continue
        seen.add(key)
        found.append(cast(Appointment, entity_at(session, Appointment, row, offset)))
    return found


_KNOWN_NAME_AT = CONVERSATION_WIDTH
_READ_ALONG_AT = CONVERSATION_WIDTH + 1
_APPOINTMENT_AT = CONVERSATION_WIDTH + 2


# What a turn changes on its conversation; anything else changed is left to the ORM.
_TURN_COLUMNS = ("state", "details", "status")
# The columns' defaults, which an explicit INSERT of None would not apply.
_DEFAULTS: dict[str, Callable[[], object]] = {
    "state": dict,
    "details": dict,
    "status": lambda: "active",
}
_NEW_COLUMNS = ("id", "channel", "external_id", "caller_e164", "agent_id", *_TURN_COLUMNS)


def _write_conversation(session: Session, conversation: Conversation) -> None:
    """The conversation's INSERT (new) or UPDATE (changed), as one of the transaction's
    last writes; the ORM then holds it as written."""
    now = utcnow()
    table = cast(Table, Conversation.__table__)
    state = instance_state(conversation)  # inspect()'s answer, without its dispatch
    if not (state.pending or state.persistent):  # rolled back with a savepoint, or deleted
        return
    if state.pending:
        # Only when nothing else new may refer to it (the ORM orders such inserts
        # itself) and its id was chosen in Python.
        if len(session.new) > 1 or conversation.id is None:
            return
        conversation.created_at = conversation.updated_at = now
        for key, empty in _DEFAULTS.items():
            if getattr(conversation, key) is None:
                setattr(conversation, key, empty())
        row = {key: getattr(conversation, key) for key in (*_NEW_COLUMNS, "created_at")}
        commit_writes.insert_row(session, table, {**row, "updated_at": now})
        session.expunge(conversation)
        make_transient_to_detached(conversation)
        session.add(conversation)
        return
    changed = {key: getattr(conversation, key) for key in _TURN_COLUMNS if _changed(state, key)}
    if not changed:
        return
    for key, value in changed.items():
        set_committed_value(conversation, key, value)
    set_committed_value(conversation, "updated_at", now)
    commit_writes.update_row(
        session, table, ("id", conversation.id), {**changed, "updated_at": now}
    )
    if state.modified and _only_turn_columns_changed(state):
        _mark_written(session, state)


def _only_turn_columns_changed(state: Any) -> bool:
    """Nothing but the columns just deferred: no attribute keeps a change for the ORM
    (each one set loses it to set_committed_value above) and no collection waits."""
    return not state.committed_state and "_pending_mutations" not in state.__dict__


def _mark_written(session: Session, state: Any) -> None:
    """Clear the ORM's modified flag of a conversation whose changes are all deferred:
    set, it makes the commit's flush run a whole unit of work that finds nothing to write
    (a sixth of a Gather turn's CPU). This is SQLAlchemy's own call after a flush (and in
    make_transient_to_detached); it has no public equivalent for a persistent object."""
    state._commit_all(state.dict, session.identity_map)


def _changed(state: Any, key: str) -> bool:
    return bool(state.attrs[key].history.has_changes())
