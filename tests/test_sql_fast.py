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
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    bindparam,
    column,
    event,
    insert,
    literal,
    select,
    table,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, InvalidRequestError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool.base import _ConnectionFairy

from app import commit_writes, sql_fast
from app.db import UTCDateTime
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
from app.routing import Unrouted
from app.security import idempotency
from app.security.idempotency import ClaimRequest, claim_insert
from app.tools import service
from app.tools import service as service_module
from app.webhooks import sms_intake

Sent = list[tuple[str, Any]]
Run = Callable[[Session], list[Any]]
START = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)


class _ThroughSqlalchemy:
    """sql_fast's API by way of `Connection.execute`: the reference."""

    @staticmethod
    def execute(
        on: Any,
        statement: Any,
        params: Mapping[str, Any] | None = None,
        *,
        sorted_keys: tuple[str, ...] | None = None,
    ) -> Any:
        # Names a caller keeps sorted must be the parameters' own, sorted.
        assert sorted_keys is None or sorted_keys == tuple(sorted(params or {}))
        connection = on.connection() if isinstance(on, Session) else on
        return connection.execute(statement, params)

    @staticmethod
    def read(
        session: Session,
        statement: Any,
        params: Mapping[str, Any] | None = None,
        *,
        connection: Connection | None = None,
    ) -> Any:
        if session.autoflush:
            session.flush()
        # A connection the caller passes must be the one the session would use.
        assert connection is None or connection is session.connection()
        result = session.connection().execute(statement, params)
        return sql_fast.FastResult(list(result), result.rowcount)

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
    for caller in ("+15550001111", seeded.caller, None):

        def run(session: Session, caller: str | None = caller) -> list[Any]:
            intake = sms_intake.take_in(session, "SM-intake", caller, seeded.dedicated_line)
            return [(intake.claim.is_new, intake.opted_out, intake.looked_up)]

        (fast_sent, fast), (sent, reference) = _both_ways(
            session_factory, db_engine, run, monkeypatch
        )
        now = datetime.now(UTC)
        assert [_masked(s, now) for s in fast_sent] == [_masked(s, now) for s in sent]
        assert fast == reference
        assert fast[0][:2] == (True, caller == "+15550001111")
        # PostgreSQL reads routing's rows with the claim (SQLite's route() reads them).
        read_along = db_engine.dialect.name == "postgresql" and caller is not None
        assert (fast[0][2] is not None) == read_along


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


def test_parameters_are_gathered_as_the_rules_gather_them(session: Session):
    """The generated gatherer and `_value`'s rules give the same driver parameters:
    a literal, a bind with a value of its own (given or not), a processed value, and a
    value given under a unique bind's compiled name (the rules' fallback)."""
    unique = bindparam("u", unique=True, type_=Integer)
    statement = select(
        literal("fixed").label("a"),
        bindparam("own", value=3).label("b"),
        bindparam("when", type_=UTCDateTime).label("c"),
        unique.label("d"),
    )
    dialect = session.get_bind().dialect
    compiled = sql_fast.compiled_for(statement, dialect, None, False)
    name = compiled.compiled.bind_names[unique]  # "u_1": its key is anonymous
    for params in (
        {"when": START, name: 1},  # by compiled name only: not the gatherer's lookup
        {"when": START, name: 1, "own": 9},
    ):
        assert compiled.parameters(params) == compiled._parameters_by_rule(params)
    assert sql_fast.execute(session, statement, {"when": START, name: 2}).one()[1:] == (
        3,
        START,
        2,
    )
    with pytest.raises(InvalidRequestError, match="'when'"):
        compiled.parameters({name: 1})


def test_a_literal_is_gathered_as_the_rules_gather_it(session: Session):
    """A literal's value is its own, under an anonymous key: the gatherer takes the key,
    then its compiled name, then that value, as `_value` does (processor included)."""
    statement = select(
        literal("fixed").label("a"),
        literal(START, UTCDateTime).label("b"),
        bindparam("own", value=3).label("c"),
    )
    compiled = sql_fast.compiled_for(statement, session.get_bind().dialect, None, False)
    by_name = {bind.key: bind.name for bind in compiled.binds}
    literal_names = [name for key, name in by_name.items() if key != name]
    assert len(literal_names) == 2
    later = START + timedelta(hours=1)
    for params in (
        {},
        {"own": 9},
        {literal_names[0]: "given"},
        {literal_names[0]: "given", literal_names[1]: later, "own": 4},
    ):
        assert compiled._gather(params) == compiled._parameters_by_rule(params)
    assert sql_fast.execute(session, statement, {literal_names[1]: later}).one() == (
        "fixed",
        later,
        3,
    )


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


# --- the turn's lookups: Core statements read by position, against the ORM bundles -----
# Each converted statement against the statement it replaced (selecting the ORM bundles
# `agent_bundle()` / `conversation_bundle()` and the Appointment entity, run through
# `session.execute`): the same routes, views, conversation rows, names and entities.

SHARED_LINE = "+15005550006"
STRANGER = "+14155550999"
CONTACT = "+14155550444"


def _orm_looked_up(session: Session, caller: str, dialled: str | None) -> list[Any]:
    from app.routing import numbers_of
    from tests.orm_reference import lookup_statement

    return list(session.execute(lookup_statement(), numbers_of(caller, dialled)))


def _as_looked_up(rows: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [(r.e164, r.purpose, r.user_id, r.verified_at, r.Agent) for r in rows]


def _numbers_to_route(session: Session, demo: DemoData) -> list[tuple[str, str | None]]:
    """Every kind of answer: the owner on the shared line, a stranger on the dedicated
    line and on the shared one, an unverified number, a user without an agent."""
    from app.models import PhoneNumber, User

    user = User(name="No agent yet")
    session.add(user)
    session.flush()
    session.add_all(
        [
            PhoneNumber(e164="+14155550777", purpose="caller", user_id=demo.user_id),
            PhoneNumber(e164="+14155550888", purpose="caller", user_id=user.id, verified_at=START),
        ]
    )
    session.flush()
    return [
        (demo.caller, SHARED_LINE),
        (demo.caller, demo.dedicated_line),
        (STRANGER, demo.dedicated_line),
        (STRANGER, SHARED_LINE),
        (STRANGER, None),
        ("+14155550777", SHARED_LINE),
        ("+14155550888", SHARED_LINE),
    ]


def test_routing_reads_the_same_rows_and_routes_as_the_orm_lookup(
    session: Session, seeded: DemoData
):
    from app import routing

    agents = []
    for caller, dialled in _numbers_to_route(session, seeded):
        reference = _orm_looked_up(session, caller, dialled)
        fast = [
            routing.looked_up_at(row, 0)
            for row in sql_fast.read(session, routing._LOOKUP, routing.numbers_of(caller, dialled))
        ]
        assert sorted(_as_looked_up(fast), key=str) == sorted(_as_looked_up(reference), key=str)
        expected = routing.route(session, caller, dialled, looked_up=reference)
        assert routing.route(session, caller, dialled) == expected
        assert routing.route(session, caller, dialled, looked_up=fast) == expected
        agents += [r.Agent for r in fast + reference if r.Agent is not None]
    assert agents and all(type(agent).__name__ == "AgentView" for agent in agents)


def test_the_postgresql_intake_reads_the_same_claim_opt_out_and_routing_rows(
    session_factory: sessionmaker[Session], db_engine: Engine, seeded: DemoData
):
    if db_engine.dialect.name != "postgresql":
        pytest.skip("SQLite's intake reads no routing rows (no INSERT in a CTE)")
    from app.routing import numbers_of
    from tests.orm_reference import lookup_joined

    request = _request("SM-lookups")
    for caller, dialled in (
        (seeded.caller, seeded.dedicated_line),
        ("+15550001111", SHARED_LINE),
        (STRANGER, None),
    ):
        with session_factory() as session:
            fast = sms_intake.take_in(session, "SM-lookups", caller, dialled)
            session.rollback()
        with session_factory() as session:
            claimed = request.insert(session).cte("claimed")
            anchor = select(literal(1).label("one")).subquery()
            old = lookup_joined(
                select(claimed.c.id.label("claim_id"), sms_intake._OPTED_OUT)
                .select_from(anchor)
                .outerjoin(claimed, sms_intake.true())
            )
            params = {**request.params(), "caller": caller, **numbers_of(caller, dialled)}
            rows = session.execute(old, params).all()
            session.rollback()
        assert fast.claim.is_new and rows[0].claim_id is not None
        assert fast.opted_out == bool(rows[0].opted_out) == (caller == "+15550001111")
        assert fast.looked_up is not None
        assert sorted(_as_looked_up(fast.looked_up), key=str) == sorted(
            _as_looked_up(rows), key=str
        )


def _orm_found_statement(caller_is_owner: bool, read_along: Any) -> Any:
    """The conversation lookup as it was: the conversation's bundle and the Appointment
    entity, through the ORM."""
    from sqlalchemy import and_

    from app.agent import conversations
    from tests.orm_reference import conversation_bundle

    anchor = select(literal(1).label("one")).subquery()
    name = conversations._OWNER_NAME if caller_is_owner else conversations._CONTACT_NAME
    return (
        select(
            conversation_bundle(),
            name.scalar_subquery().label("known_name"),
            (literal(None) if read_along is None else read_along).label("read_along"),
            Appointment,
        )
        .select_from(anchor)
        .outerjoin(
            Conversation,
            and_(
                Conversation.channel == bindparam("channel"),
                Conversation.external_id == bindparam("external_id"),
            ),
        )
        .outerjoin(Appointment, conversations._UPCOMING)
        .order_by(Appointment.start_at)
    )


def _conversation_fields(found: Any) -> tuple[Any, ...] | None:
    from app.turn_rows import CONVERSATION_FIELDS

    if found is None:
        return None
    return (*(getattr(found, name) for name in CONVERSATION_FIELDS), found.stored)


def test_the_conversation_lookup_reads_the_same_conversation_name_and_appointments(
    session_factory: sessionmaker[Session], seeded: DemoData
):
    """A new caller and a returning one, as the owner and as a contact, with and without
    the reminder read-along; the returning one has an upcoming appointment (an entity in
    the session, as the ORM's load made it)."""
    from app.agent.conversations import ConversationService
    from app.models import Notification
    from app.notifications.replies import reminded_appointment_id
    from app.routing import route

    now = START - timedelta(days=2)
    with session_factory() as session:
        appointment_id = session.scalar(select(Appointment.id))
        session.add(
            Conversation(
                id="cnv_lookups",
                channel="sms",
                external_id=f"{seeded.agent_id}:{seeded.caller}",
                caller_e164=seeded.caller,
                agent_id=seeded.agent_id,
                state={"about_appointment": appointment_id},
                details={"caller_name": "Pat"},
            )
        )
        session.add(
            Notification(
                agent_id=seeded.agent_id,
                appointment_id=appointment_id,
                kind="reminder",
                to_e164=seeded.caller,
                from_e164=seeded.dedicated_line,
                due_at=now,
                status="sent",
                sent_at=now - timedelta(hours=1),
                dedupe_key="lookups",
            )
        )
        session.add(
            Appointment(
                agent_id=seeded.agent_id,
                appointment_type="consultation",
                start_at=START + timedelta(days=1),
                end_at=START + timedelta(days=1, minutes=30),
                idempotency_key="k-contact",
                contact_e164=CONTACT,
                contact_name="Lee",
            )
        )
        session.commit()
    seen = []
    for caller, dialled in (
        (seeded.caller, SHARED_LINE),
        (seeded.caller, seeded.dedicated_line),
        (STRANGER, seeded.dedicated_line),
        (CONTACT, seeded.dedicated_line),
    ):
        for reminded in (False, True):
            with session_factory() as session:
                routed = route(session, caller, dialled)
                assert not isinstance(routed, Unrouted)
                along = reminded_appointment_id(routed.agent.id, routed.caller, now)
                read_along = along if reminded else None
                external_id = f"{routed.agent.id}:{routed.caller}"
                service = ConversationService(session, None, None, now)  # type: ignore[arg-type]
                found, name, read = service._find("sms", external_id, routed, read_along)
                upcoming = service.upcoming
                statement = _orm_found_statement(routed.caller_is_owner, read_along and along[0])
                params = {
                    "owner_id": routed.agent.user_id,
                    "agent_id": routed.agent.id,
                    "caller": routed.caller,
                    **(along[1] if reminded else {}),
                    "channel": "sms",
                    "external_id": external_id,
                    "upcoming_now": now,
                }
                rows = session.execute(statement, params).all()
                expected = [row.Appointment for row in rows if row.Appointment is not None]
                # The same entities: the ORM's load found them in the identity map.
                assert upcoming is not None
                assert [id(a) for a in upcoming] == [id(a) for a in expected]
                assert not session.dirty and not session.new
                assert _conversation_fields(found) == _conversation_fields(rows[0].Conversation)
                assert (name, read) == (rows[0].known_name, rows[0].read_along)
                seen.append((found is not None, name, read, len(upcoming)))
    assert (True, "Sam Rivera", appointment_id, 1) in seen  # the owner, reminded
    assert (False, None, None, 0) in seen  # a stranger
    assert (False, "Lee", None, 1) in seen  # a contact, known by a booking


def test_the_gather_lookup_reads_the_same_conversation_route_and_appointments(
    session_factory: sessionmaker[Session], seeded: DemoData
):
    """The conversation and route against the ORM bundles' statement; the upcoming
    appointments read along against list_appointments' own query (the same entities)."""
    from sqlalchemy import and_

    from app.agent.conversations import ConversationService
    from app.routing import lookup_numbers, route
    from app.webhooks import twilio_voice
    from tests.orm_reference import conversation_bundle, lookup_joined

    now = START - timedelta(days=2)
    with session_factory() as session:
        session.add(
            Conversation(
                id="cnv_call",
                channel=twilio_voice.CHANNEL,
                external_id="CA-lookups",
                caller_e164=seeded.caller,
                agent_id=seeded.agent_id,
                state={"turn": 2},
                details={"caller_name": "Pat"},
            )
        )
        for days in (3, 1):  # read in their order, not the order written
            session.add(
                Appointment(
                    agent_id=seeded.agent_id,
                    appointment_type="consultation",
                    start_at=START + timedelta(days=days),
                    end_at=START + timedelta(days=days, minutes=30),
                    idempotency_key=f"k-call-{days}",
                    contact_e164=seeded.caller,
                )
            )
        session.commit()
    old = lookup_joined(
        select(conversation_bundle())
        .select_from(select(literal(1).label("one")).subquery())
        .outerjoin(
            Conversation,
            and_(
                Conversation.channel == twilio_voice.CHANNEL,
                Conversation.external_id == bindparam("call_sid"),
            ),
        )
    )
    counts = []
    for sid, caller, line in (
        ("CA-lookups", seeded.caller, seeded.dedicated_line),
        ("CA-lookups", seeded.caller, SHARED_LINE),
        ("CA-new", STRANGER, seeded.dedicated_line),
        ("CA-new", STRANGER, SHARED_LINE),
    ):
        with session_factory() as session:
            form = {"CallSid": sid, "From": caller, "To": line}
            call = twilio_voice.Call(None, session, form)  # type: ignore[arg-type]
            numbers = lookup_numbers(caller, line)
            assert numbers is not None
            service = ConversationService(session, None, None, now)  # type: ignore[arg-type]
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(twilio_voice.Call, "settings", _Region())
                found, routed = call.conversation_and_route(service)
                alone = call.conversation()
            rows = session.execute(old, {"call_sid": sid, **numbers}).all()
            assert _conversation_fields(found) == _conversation_fields(rows[0].Conversation)
            assert _conversation_fields(alone) == _conversation_fields(found)
            assert routed == route(session, caller, line, looked_up=rows)
            assert (found is not None) == (sid == "CA-lookups")
            if isinstance(routed, Unrouted):
                assert service.upcoming is None
                continue
            listed = list(
                session.scalars(
                    service_module._CALLERS[False, False],
                    {"agent_id": routed.agent.id, "caller": routed.caller, "now": now},
                )
            )
            assert service.upcoming is not None
            assert [id(a) for a in service.upcoming] == [id(a) for a in listed]
            assert not session.dirty and not session.new
            counts.append(len(listed))
    assert counts == [3, 3, 0]  # the seeded one and two more; a stranger has none


class _Region:
    default_region = "US"


def _cursors_made(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Each DBAPI cursor a pooled connection makes from here on."""
    made: list[Any] = []
    make = _ConnectionFairy.cursor

    def counted(self: _ConnectionFairy, *args: Any, **kwargs: Any) -> Any:
        made.append(make(self, *args, **kwargs))
        return made[-1]

    monkeypatch.setattr(_ConnectionFairy, "cursor", counted)
    return made


def test_postgresql_runs_a_statement_again_on_its_kept_cursor(
    session: Session, monkeypatch: pytest.MonkeyPatch
):
    """psycopg keeps a cursor's dumpers and loaders only while it runs the same query
    again, so on PostgreSQL a statement's next run uses the cursor of its last; other
    statements get their own, and the rows are each run's."""
    same = select(bindparam("n").label("n"), literal("x").label("tag"))
    other = select(literal(2).label("two"))
    session.connection()
    made = _cursors_made(monkeypatch)
    firsts = [sql_fast.execute(session, same, {"n": n}).scalar() for n in (1, 2, 3)]
    assert sql_fast.execute(session, other).scalar() == 2
    assert firsts == [1, 2, 3]
    assert sql_fast.execute(session, same, {"n": 4}).all() == [(4, "x")]
    if session.get_bind().dialect.name == "postgresql":
        assert len(made) == 2 and not any(cursor.closed for cursor in made)
    else:  # SQLite caches its statements per connection: a cursor per run, closed
        assert len(made) == 5 and all(_closed(cursor) for cursor in made)


def _closed(cursor: Any) -> bool:
    try:
        cursor.execute("SELECT 1")
    except Exception:  # sqlite3.ProgrammingError: cannot operate on a closed cursor
        return True
    return False


def test_a_kept_cursor_belongs_to_its_dbapi_connection(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
):
    """A connection the pool replaced (invalidated) gets cursors of its own: a kept
    cursor never outlives the DBAPI connection it was made on."""
    statement = select(literal(5).label("five"))
    with session_factory() as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("cursors are kept on PostgreSQL only")
        assert sql_fast.execute(session, statement).scalar() == 5
        first = session.connection().connection.dbapi_connection
        session.connection().invalidate()
        session.rollback()
        made = _cursors_made(monkeypatch)
        assert sql_fast.execute(session, statement).scalar() == 5
        assert session.connection().connection.dbapi_connection is not first
        assert len(made) == 1


def test_an_error_leaves_a_kept_cursor_usable(session_factory: sessionmaker[Session]):
    statement = select((literal(1) / bindparam("d", type_=Integer)).label("q"))
    with session_factory() as session:
        assert sql_fast.execute(session, statement, {"d": 1}).scalar() == 1
        if session.get_bind().dialect.name == "postgresql":
            with pytest.raises(DBAPIError):
                sql_fast.execute(session, statement, {"d": 0})  # division by zero
            session.rollback()
        assert sql_fast.execute(session, statement, {"d": 1}).scalar() == 1


def test_a_row_is_made_as_its_named_tuple_of_processed_values() -> None:
    row_type = sql_fast._row_type(("a", "b", "c"))
    raw = [(1, "2", None), (4, "5", 6)]
    plain = sql_fast._maker(row_type, [None, None, None])
    processed = sql_fast._maker(row_type, [None, lambda v: f"<{v}>", lambda v: [v]])
    assert [plain(row) for row in raw] == [row_type._make(row) for row in raw]
    made = [processed(row) for row in raw]
    assert made == [row_type(1, "<2>", [None]), row_type(4, "<5>", [6])]
    assert all(type(row) is row_type for row in made)
    assert made[1].b == "<5>" and made[1][2] == [6]
