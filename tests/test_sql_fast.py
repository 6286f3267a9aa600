"""A hot statement sent on the session's cursor (app/sql_fast.py) sends the same SQL and
parameters as `Connection.execute` and reads the same rows, on SQLite and PostgreSQL
(TEST_DATABASE_URL): every statement a call site runs through it, both ways."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, column, event, insert, literal, select, table
from sqlalchemy.exc import IntegrityError, InvalidRequestError
from sqlalchemy.orm import Session, sessionmaker

from app import commit_writes, sql_fast
from app.demo import DemoData
from app.models import (
    Appointment,
    AuditEntry,
    BusyBlock,
    Conversation,
    InboundEvent,
    Message,
    SmsOptOut,
)
from app.security import idempotency
from app.security.idempotency import ClaimRequest, claim_insert
from app.tools import service
from app.webhooks import sms_intake

Sent = list[tuple[str, Any]]
Run = Callable[[Session], list[Any]]
START = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)


class _ThroughSqlalchemy:
    """sql_fast's API by way of `Connection.execute`: the reference."""

    @staticmethod
    def execute(on: Any, statement: Any, params: Mapping[str, Any] | None = None) -> Any:
        connection = on.connection() if isinstance(on, Session) else on
        return connection.execute(statement, params)

    @staticmethod
    def execute_many(on: Any, statement: Any, rows: Sequence[Mapping[str, Any]]) -> Any:
        connection = on.connection() if isinstance(on, Session) else on
        return connection.execute(statement, rows)


@contextmanager
def _capture(engine: Engine) -> Iterator[Sent]:
    sent: Sent = []

    def record(_c: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        sent.append((sql, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


_CLOCK_TEXT = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?$")


def _masked(value: Any, now: datetime) -> Any:
    """A value set by a column default at execution (the time now) masked, so two runs
    a moment apart compare equal; anything else as it is."""
    if isinstance(value, datetime) and abs(value - now) < timedelta(minutes=5):
        return "<now>"
    if isinstance(value, str) and _CLOCK_TEXT.match(value) and value.startswith(str(now.year)):
        return "<now?>"
    if type(value).__name__ in {"Json", "Jsonb"}:  # psycopg's wrappers compare by identity
        return (type(value).__name__, _masked(value.obj, now))
    if isinstance(value, dict):
        return {key: _masked(item, now) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_masked(item, now) for item in value)
    return value


def _both_ways(
    factory: sessionmaker[Session], engine: Engine, run: Run, monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[Sent, list[Any]], tuple[Sent, list[Any]]]:
    """`run` once through sql_fast and once through SQLAlchemy, each rolled back: what
    each sent and read."""
    results = []
    for module in (_ThroughSqlalchemy, sql_fast):
        with monkeypatch.context() as patch:
            for owner in (idempotency, sms_intake, service, commit_writes):
                patch.setattr(owner, "sql_fast", module)
            with factory() as session, _capture(engine) as sent:
                rows = run(session)
                session.rollback()
        results.append((sent, rows))
    reference, fast = results
    return fast, reference


def _assert_same(
    factory: sessionmaker[Session],
    engine: Engine,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
    ids_differ: bool = False,
) -> list[Any]:
    (fast_sent, fast_rows), (sent, rows) = _both_ways(factory, engine, run, monkeypatch)
    now = datetime.now(UTC)
    assert [_masked(item, now) for item in fast_sent] == [_masked(item, now) for item in sent]
    assert fast_sent, "nothing was sent"
    if ids_differ:  # a sequence moves on past a rolled-back INSERT on PostgreSQL
        assert [len(row) for row in fast_rows] == [len(row) for row in rows]
    else:
        assert [_masked(tuple(row), now) for row in fast_rows] == [
            _masked(tuple(row), now) for row in rows
        ]
    for fast_row, row in zip(fast_rows, rows, strict=True):
        assert fast_row._fields == tuple(row._fields)
        for value, expected in zip(fast_row, row, strict=True):
            assert type(value) is type(expected)
    return fast_rows


def _request(external_id: str = "SM1") -> ClaimRequest:
    return ClaimRequest("twilio", external_id, "sms", {"Body": "hi"}, datetime.now(UTC))


def _seed(factory: sessionmaker[Session], demo: DemoData) -> None:
    with factory() as session:
        session.add_all(
            [
                Appointment(
                    agent_id=demo.agent_id,
                    appointment_type="consultation",
                    start_at=START,
                    end_at=START + timedelta(minutes=30),
                    idempotency_key="k1",
                    contact_e164=demo.caller,
                ),
                BusyBlock(
                    agent_id=demo.agent_id,
                    start_at=START + timedelta(hours=2),
                    end_at=START + timedelta(hours=3),
                ),
                SmsOptOut(e164="+15550001111"),
            ]
        )
        session.add(
            InboundEvent(provider="twilio", external_id="SEEN", kind="sms", response="<R/>")
        )
        session.commit()


@pytest.fixture
def seeded(session_factory: sessionmaker[Session], demo: DemoData) -> DemoData:
    _seed(session_factory, demo)
    return demo


def test_the_claim_sends_and_reads_the_same(
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    seeded: DemoData,
    monkeypatch: pytest.MonkeyPatch,
):
    def new(session: Session) -> list[Any]:
        return [idempotency.claim(session, "twilio", "SM-new", "sms", {"a": [1]})]

    def seen(session: Session) -> list[Any]:
        return [idempotency.claim(session, "twilio", "SEEN", "sms")]

    for run in (new, seen):
        (fast_sent, fast), (sent, reference) = _both_ways(
            session_factory, db_engine, run, monkeypatch
        )
        now = datetime.now(UTC)
        assert [_masked(s, now) for s in fast_sent] == [_masked(s, now) for s in sent]
        assert fast[0].is_new == reference[0].is_new
        assert fast[0].previous_response == reference[0].previous_response
    assert fast[0].previous_response == "<R/>"


def test_the_intakes_insert_and_opt_out_read_the_same(
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    seeded: DemoData,
    monkeypatch: pytest.MonkeyPatch,
):
    if db_engine.dialect.name == "postgresql":
        pytest.skip("the PostgreSQL intake reads routing's entities through the ORM")
    for caller in ("+15550001111", seeded.caller, None):

        def run(session: Session, caller: str | None = caller) -> list[Any]:
            intake = sms_intake.take_in(session, "SM-intake", caller, seeded.dedicated_line)
            return [(intake.claim.is_new, intake.opted_out)]

        (fast_sent, fast), (sent, reference) = _both_ways(
            session_factory, db_engine, run, monkeypatch
        )
        now = datetime.now(UTC)
        assert [_masked(s, now) for s in fast_sent] == [_masked(s, now) for s in sent]
        assert fast == reference
        assert fast[0] == (True, caller == "+15550001111")


@pytest.mark.parametrize("statement_name", ["_LOCAL", "_LOCAL_EXCLUDING", "_APPOINTMENTS"])
def test_the_availability_reads_read_the_same_rows(
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    seeded: DemoData,
    monkeypatch: pytest.MonkeyPatch,
    statement_name: str,
):
    statement = getattr(service, statement_name)
    params = {
        "agent_id": seeded.agent_id,
        "window_start": START - timedelta(days=1),
        "window_end": START + timedelta(days=1),
        "exclude_id": "apt_none",
    }

    def run(session: Session) -> list[Any]:
        return list(service.sql_fast.execute(session, statement, params))

    rows = _assert_same(session_factory, db_engine, run, monkeypatch)
    assert len(rows) == (1 if statement_name == "_APPOINTMENTS" else 2)
    first = rows[0]
    assert first.start_at == START and first.start_at.tzinfo is not None
    kind, start, end = first  # unpacked, as the engine's slot maths does
    assert (kind, first[1], end) == ("consultation", start, START + timedelta(minutes=30))


def test_the_last_writes_send_the_same(
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    seeded: DemoData,
    monkeypatch: pytest.MonkeyPatch,
):
    """Two messages (an executemany on SQLite), one audit entry, a conversation's
    INSERT, an UPDATE by key: on PostgreSQL all of it one statement."""
    at = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)

    def run(session: Session) -> list[Any]:
        conversation = {
            "id": "cnv_fast",
            "channel": "sms",
            "external_id": "x",
            "caller_e164": None,
            "agent_id": seeded.agent_id,
            "state": {"seen": 1},
            "status": "active",
            "details": {},
            "created_at": at,
            "updated_at": at,
        }
        commit_writes.insert_row(session, Conversation.__table__, conversation)
        for body in ("hello", "hi there"):
            row = {"conversation_id": "cnv_fast", "direction": "in", "body": body, "created_at": at}
            commit_writes.insert_row(
                session, Message.__table__, {**row, "tool_calls": None, "external_id": None}
            )
        commit_writes.insert_row(
            session,
            AuditEntry.__table__,
            {"at": at, "actor": "t", "action": "a", "subject": None, "details": {}, "mac": "m"},
        )
        seen = session.scalar(select(InboundEvent.id).where(InboundEvent.external_id == "SEEN"))
        commit_writes.update_row(
            session, InboundEvent.__table__, ("id", seen), {"response": "<new/>"}
        )
        commit_writes.write_deferred(session)
        return session.execute(
            select(Message.body, Message.tool_calls, Message.created_at)
            .where(Message.conversation_id == "cnv_fast")
            .order_by(Message.id)
        ).all()

    rows = _assert_same(session_factory, db_engine, run, monkeypatch)
    assert [row.body for row in rows] == ["hello", "hi there"]


def test_a_column_left_out_gets_its_python_default(
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    seeded: DemoData,
    monkeypatch: pytest.MonkeyPatch,
):
    """created_at (default utcnow, computed in Python per row, as SQLAlchemy's prefetch
    does), singly and in an executemany."""
    with session_factory() as session:
        session.add(Conversation(id="cnv_fast", channel="sms", external_id="x"))
        session.commit()

    def run(session: Session) -> list[Any]:
        rows = [{"conversation_id": "cnv_fast", "direction": "in", "body": "b"}] * 2
        service.sql_fast.execute(session, insert(Message.__table__), rows[0])
        service.sql_fast.execute_many(session, insert(Message.__table__), rows)
        return session.execute(select(Message.body, Message.created_at)).all()

    rows = _assert_same(session_factory, db_engine, run, monkeypatch)
    assert len(rows) == 3 and all(row.created_at.tzinfo is not None for row in rows)


def test_a_single_deferred_row_is_one_execute(
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    seeded: DemoData,
    monkeypatch: pytest.MonkeyPatch,
):
    def run(session: Session) -> list[Any]:
        commit_writes.insert_row(
            session,
            AuditEntry.__table__,
            {
                "at": START,
                "actor": "t",
                "action": "a",
                "subject": "s",
                "details": {"k": 1},
                "mac": "m",
            },
        )
        commit_writes.write_deferred(session)
        return session.execute(select(AuditEntry.details, AuditEntry.mac)).all()

    rows = _assert_same(session_factory, db_engine, run, monkeypatch)
    assert [tuple(row) for row in rows] == [({"k": 1}, "m")]


# --- the path's own behaviour --------------------------------------------------------------


def test_rows_read_by_label_index_and_as_a_result(session: Session):
    statement = select(literal(1).label("one"), bindparam("word").label("word"))
    result = sql_fast.execute(session, statement, {"word": "two"})
    row = result.one()
    assert (row.one, row[1], tuple(row)) == (1, "two", (1, "two"))
    assert result.first() == row and result.scalar() == 1 and result.scalars() == [1]
    assert result.all() == [row] and list(result) == [row] and result.one_or_none() == row


def test_a_missing_parameter_is_refused(session: Session):
    with pytest.raises(InvalidRequestError, match="word"):
        sql_fast.execute(session, select(bindparam("word").label("w")), {})


def test_an_expanding_parameter_is_refused(session: Session):
    values = table("conversations", column("id"))
    statement = select(values.c.id).where(values.c.id.in_(bindparam("ids", expanding=True)))
    with pytest.raises(sql_fast.Unsupported):
        sql_fast.execute(session, statement, {"ids": ["a"]})


def test_a_value_computed_per_execution_is_refused(session: Session):
    statement = select(bindparam("now", callable_=lambda: 1).label("now"))
    with pytest.raises(sql_fast.Unsupported):
        sql_fast.execute(session, statement)


def test_a_driver_error_is_sqlalchemys_and_the_transaction_can_roll_back(
    session_factory: sessionmaker[Session], seeded: DemoData
):
    row = {
        "conversation_id": "cnv_missing",  # no such conversation: a foreign key refuses
        "direction": "in",
        "body": "x",
    }
    with session_factory() as session:
        with pytest.raises(IntegrityError):
            sql_fast.execute(session, insert(Message.__table__), row)
        session.rollback()
        assert sql_fast.execute(session, select(literal(1).label("one"))).scalar() == 1


def test_statements_are_counted_as_round_trips(session: Session):
    engine = session.get_bind()
    with _capture(engine) as sent:  # type: ignore[arg-type]
        sql_fast.execute(session, select(literal(1).label("one")))
        sql_fast.execute(session, select(literal(1).label("one")))
    assert len([sql for sql, _ in sent if sql.startswith("SELECT")]) == 2


def test_a_statement_is_compiled_once_per_dialect(session: Session):
    statement = claim_insert(session.get_bind().dialect.name)
    dialect = session.get_bind().dialect
    keys = tuple(sorted(_request().params()))
    first = sql_fast.compiled_for(statement, dialect, keys, False)
    assert sql_fast.compiled_for(statement, dialect, keys, False) is first
    assert sql_fast.compiled_for(statement, dialect, keys, True) is not first


def test_cursor_listeners_share_one_context_and_dialect_listeners_run(session: Session):
    """Listeners keep state on the context between before and after (OpenTelemetry's
    span does); a dialect's do_execute listener sees the statement first."""
    engine = session.get_bind()
    seen: list[Any] = []

    def before(_c: Any, _cur: Any, sql: str, params: Any, context: Any, _many: bool) -> None:
        context.mark = sql

    def after(_c: Any, _cur: Any, sql: str, _p: Any, context: Any, _many: bool) -> None:
        seen.append(context.mark == sql and not context.executemany)

    def do_execute(_cursor: Any, sql: str, _params: Any, _context: Any) -> None:
        seen.append(sql)  # returns None: the dialect still sends it

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine.dialect, "do_execute", do_execute)  # type: ignore[union-attr]
    try:
        assert sql_fast.execute(session, select(literal(7).label("n"))).scalar() == 7
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        event.remove(engine.dialect, "do_execute", do_execute)  # type: ignore[union-attr]
    assert seen[-2].startswith("SELECT") and seen[-1] is True
