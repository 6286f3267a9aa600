"""A transaction's last writes: sent at commit, dropped with a rollback, one statement on
PostgreSQL, and a new conversation's row before the messages that refer to it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from app import commit_writes
from app.agent.conversations import ConversationService
from app.demo import DemoData
from app.models import Agent, AuditEntry, Conversation, InboundEvent, Message, new_id
from app.security import audit
from app.security.idempotency import claim, respond
from tests.conftest import Reader


def _service(session: Session) -> ConversationService:
    return ConversationService(session, engine=None, calendar_factory=None, now=None)  # type: ignore[arg-type]


def _turn(session: Session, demo: DemoData, caller: str = "x") -> Conversation:
    """What an SMS turn writes last: a new conversation, two messages, an audit entry
    and the event's stored response."""
    event_claim = claim(session, "twilio", f"SM{new_id('t')}", "sms")
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    conversation = Conversation(
        id=new_id("cnv"), channel="sms", external_id=f"{agent.id}:{caller}", agent_id=agent.id
    )
    session.add(conversation)
    service = _service(session)
    service.record(conversation, "in", "hello")
    service.record(conversation, "out", "hi there")
    conversation.state = {"seen": 1}
    audit.record(session, "webhook.accepted", actor="twilio", subject="SMx")
    respond(session, event_claim, "<Response/>")
    return conversation


def test_last_writes_commit_together(
    session_factory: sessionmaker[Session], demo: DemoData, db: Reader
):
    with session_factory() as session:
        conversation = _turn(session, demo)
        session.commit()
    stored = db.get(Conversation, conversation.id)
    assert stored.state == {"seen": 1} and stored.details == {} and stored.status == "active"
    bodies = db.scalars(
        select(Message.body).where(Message.conversation_id == conversation.id).order_by(Message.id)
    )
    assert bodies == ["hello", "hi there"]
    assert db.scalars(select(InboundEvent.response)) == ["<Response/>"]
    assert db.scalars(select(AuditEntry.action)) == ["webhook.accepted"]


def test_rollback_drops_the_last_writes(
    session_factory: sessionmaker[Session], demo: DemoData, db: Reader
):
    with session_factory() as session:
        _turn(session, demo)
        session.rollback()
        session.commit()  # nothing deferred is left to write
    assert db.count(Conversation) == 0 and db.count(Message) == 0
    assert db.count(InboundEvent) == 0 and db.count(AuditEntry) == 0


def test_closing_the_session_drops_the_last_writes(
    session_factory: sessionmaker[Session], demo: DemoData, db: Reader
):
    """A session closed without commit (a turn abandoned mid-way) ends its transaction:
    what waited for its commit must not ride on the session's next transaction."""
    with session_factory() as session:
        _turn(session, demo)
        session.close()
        audit.record(session, "later.work", actor="test", subject="x")
        session.commit()
    assert db.count(Conversation) == 0 and db.count(Message) == 0
    assert db.count(InboundEvent) == 0
    assert db.scalars(select(AuditEntry.action)) == ["later.work"]


def test_a_later_change_to_the_conversation_is_written_with_them(
    session_factory: sessionmaker[Session], demo: DemoData, db: Reader
):
    """The conversation's row is taken at commit, so a change after the messages counts."""
    with session_factory() as session:
        conversation = _turn(session, demo)
        session.commit()
    with session_factory() as session:
        again = session.get(Conversation, conversation.id)
        assert again is not None
        _service(session).record(again, "in", "later")
        again.details = {"voice": {"turn": 2}}
        session.commit()
    assert db.get(Conversation, conversation.id).details == {"voice": {"turn": 2}}


def test_postgresql_sends_them_in_one_statement(
    session_factory: sessionmaker[Session], demo: DemoData
):
    with session_factory() as session:
        engine = session.get_bind()
        _turn(session, demo)  # its claim's INSERT has run already
        sent: list[str] = []

        def count(*args: Any) -> None:
            sent.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            commit_writes.write_deferred(session)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        session.commit()
    if engine.dialect.name == "postgresql":
        assert len(sent) == 1 and sent[0].startswith("WITH")
    else:  # one INSERT (executemany) per table, then the stored response
        assert [statement.split()[0] for statement in sent] == ["INSERT"] * 3 + ["UPDATE"]


def test_rows_of_one_shape_keep_their_own_values(
    session_factory: sessionmaker[Session], db: Reader
):
    """Two updates and two turns of the same shape in one commit: the statement is built
    once per shape, so each write must still get its own parameters."""
    with session_factory() as session:
        first = claim(session, "twilio", "SMfirst", "sms")
        second = claim(session, "twilio", "SMsecond", "sms")
        respond(session, first, "<First/>")
        respond(session, second, "<Second/>")
        audit.record(session, "test.one", actor="tester")
        audit.record(session, "test.two", actor="tester")
        session.commit()
    with session_factory() as session:  # the same shape again, new values
        third = claim(session, "twilio", "SMthird", "sms")
        fourth = claim(session, "twilio", "SMfourth", "sms")
        respond(session, third, "<Third/>")
        respond(session, fourth, "<Fourth/>")
        audit.record(session, "test.three", actor="tester")
        audit.record(session, "test.four", actor="tester")
        session.commit()
    responses = db.scalars(select(InboundEvent.response).order_by(InboundEvent.id))
    assert responses == ["<First/>", "<Second/>", "<Third/>", "<Fourth/>"]
    actions = db.scalars(select(AuditEntry.action).order_by(AuditEntry.id))
    assert actions == ["test.one", "test.two", "test.three", "test.four"]


def test_a_changed_conversation_leaves_the_orm_nothing_to_flush_unless_more_changed(
    session_factory: sessionmaker[Session], demo: DemoData, db: Reader
):
    """Its turn columns go with the last writes; the ORM's unit of work is not run for a
    conversation that has nothing else to write, and still is when it has."""
    with session_factory() as session:
        conversation = _turn(session, demo)
        session.commit()
    flushes: list[int] = []
    listener = lambda *_: flushes.append(1)  # noqa: E731
    event.listen(Session, "before_flush", listener)
    try:
        with session_factory() as session:
            again = session.get(Conversation, conversation.id)
            assert again is not None
            _service(session).record(again, "in", "later")
            again.details = {"voice": {"turn": 2}}
            session.commit()
            assert not inspect(again).modified and not flushes
        with session_factory() as session:
            third = session.get(Conversation, conversation.id)
            assert third is not None
            _service(session).record(third, "in", "and later")
            third.state = {"seen": 3}
            third.caller_e164 = "+15550001111"  # not a turn column: the ORM writes it
            session.commit()
            assert flushes
    finally:
        event.remove(Session, "before_flush", listener)
    stored = db.get(Conversation, conversation.id)
    assert stored.details == {"voice": {"turn": 2}} and stored.state == {"seen": 3}
    assert stored.caller_e164 == "+15550001111"


def test_waiting_values_show_what_the_commit_will_write_and_nothing_after(
    session_factory: sessionmaker[Session], demo: DemoData
):
    with session_factory() as session:
        conversation = _turn(session, demo)
        (stored,) = commit_writes.waiting_values(session, InboundEvent.__table__)
        assert stored["response"] == "<Response/>" and "id" in stored
        bodies = [row["body"] for row in commit_writes.waiting_values(session, Message.__table__)]
        assert bodies == ["hello", "hi there"]
        assert conversation.id
        session.commit()
        assert commit_writes.waiting_values(session, InboundEvent.__table__) == []


def test_the_kept_parameter_names_give_each_value_its_own_name():
    """The combined statement's names are made once per shape and zipped with the
    values at each commit: the same mapping `_params` builds name by name, whatever
    the order of a row's keys."""
    deferred = commit_writes._Deferred()
    messages, events = Message.__table__, InboundEvent.__table__
    deferred.rows[messages] = [
        {"id": 1, "body": "a", "direction": "in"},
        {"direction": "out", "id": 2, "body": "b"},  # same columns, another order
    ]
    deferred.rows[events] = [{"id": "e1", "kind": "sms"}]
    deferred.statements += [
        commit_writes._RowUpdate(events, "id", ("response",), "e1", ("<R/>",)),
        commit_writes._RowUpdate(messages, "id", ("body", "direction"), 2, ("c", "out")),
    ]
    tables = [messages, events]
    shape = commit_writes._shape(tables, deferred)
    assert shape is not None
    names = commit_writes._param_names(shape)
    zipped = dict(zip(names, commit_writes._values(shape, deferred), strict=True))
    assert zipped == commit_writes._params(tables, deferred)
    assert len(names) == len(set(names)) == 3 * 2 + 2 + 2 + 3


def test_writes_queued_outside_a_transaction_begin_one_and_end_with_it(
    session_factory: sessionmaker[Session], db: Reader
):
    """While writes wait, the session is in a transaction whose end drops them: one
    begun by the queueing itself, or one begun before without a connection yet."""
    with session_factory() as session:
        assert not session.in_transaction()
        audit.record(session, "first.work", actor="test", subject="x")
        assert session.in_transaction()
        session.rollback()
        assert commit_writes.rows_waiting(session, AuditEntry.__table__) == []
        session.begin()  # a transaction, no connection yet
        audit.record(session, "dropped.work", actor="test", subject="x")
        session.rollback()
        session.begin()
        audit.record(session, "closed.work", actor="test", subject="x")
        session.close()
        session.begin()
        audit.record(session, "kept.work", actor="test", subject="x")
        session.commit()
        session.commit()  # nothing left to write twice
    assert db.scalars(select(AuditEntry.action)) == ["kept.work"]


def test_the_combined_statement_is_compiled_for_its_parameters_sorted_names(
    session_factory: sessionmaker[Session], demo: DemoData, monkeypatch: Any
):
    """The names are kept sorted per shape: they must be what Connection.execute would
    compile the statement for, `tuple(sorted(params))`, at every commit of the shape."""
    from app import sql_fast

    compiled_for = sql_fast.compiled_for
    seen: list[tuple[Any, Any]] = []

    def checked(statement: Any, dialect: Any, keys: Any, many: bool) -> Any:
        seen.append((statement, keys))
        return compiled_for(statement, dialect, keys, many)

    execute = sql_fast.execute
    given: list[dict[str, Any]] = []

    def recorded(on: Any, statement: Any, params: Any = None, **kw: Any) -> Any:
        given.append(dict(params or {}))
        return execute(on, statement, params, **kw)

    for caller in ("x", "y"):  # a new shape, then the same shape again
        with session_factory() as session:
            if session.get_bind().dialect.name != "postgresql":
                pytest.skip("one combined statement on PostgreSQL only")
            _turn(session, demo, caller)
            monkeypatch.setattr(sql_fast, "compiled_for", checked)
            monkeypatch.setattr(sql_fast, "execute", recorded)
            commit_writes.write_deferred(session)
            monkeypatch.undo()
            session.commit()
        (_statement, keys), params = seen[-1], given[-1]
        assert keys == tuple(sorted(params))
    assert seen[0][0] is seen[1][0]  # the kept statement
