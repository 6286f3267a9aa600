from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Engine, bindparam, event, insert, literal, select
from sqlalchemy.orm import Session, sessionmaker

from app.demo import DemoData
from app.models import Agent, Appointment, Conversation, new_id, utcnow
from app.routing import Route, route
from app.turn_rows import (
    AgentView,
    ConversationRow,
    conversation_of,
    new_conversation,
    write_unwritten,
)
from tests.orm_reference import conversation_bundle

STRANGER = "+14155550999"


@contextmanager
def statements_of(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def keep(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", keep)


def _routed(session: Session, demo: DemoData) -> Route:
    routed = route(session, STRANGER, demo.dedicated_line)
    assert isinstance(routed, Route)
    return routed


def test_routing_reads_the_agent_as_a_view_equal_to_the_entity(
    session: Session, demo: DemoData
) -> None:
    routed = _routed(session, demo)
    assert isinstance(routed.agent, AgentView)
    # No entity was loaded for the turn's read.
    assert not any(isinstance(obj, Agent) for obj in session.identity_map.values())
    entity = session.get(Agent, demo.agent_id)
    assert entity is not None
    assert routed.agent == AgentView.of(entity)
    assert routed.agent.weekly_hours and routed.agent.appointment_types


def test_json_is_parsed_once_per_text_and_an_edit_is_seen_at_the_next_route(
    session_factory: sessionmaker[Session], demo: DemoData
) -> None:
    with session_factory() as session:
        hours = _routed(session, demo).agent.weekly_hours
    with session_factory() as session:
        assert _routed(session, demo).agent.weekly_hours is hours  # the same text, parsed once
    with session_factory() as session:
        agent = session.get(Agent, demo.agent_id)
        assert agent is not None
        agent.weekly_hours = {"mon": [["10:00", "11:00"]]}
        session.commit()
    with session_factory() as session:
        assert _routed(session, demo).agent.weekly_hours == {"mon": [["10:00", "11:00"]]}


def _new(session: Session, routed: Route) -> ConversationRow:
    return new_conversation(
        session,
        channel="sms",
        external_id=f"{routed.agent.id}:{routed.caller}",
        caller_e164=routed.caller,
        agent_id=routed.agent.id,
        details={"caller_name": None},
    )


def _load(session: Session, conversation_id: str) -> ConversationRow | None:
    found = session.scalar(select(conversation_bundle()).where(Conversation.id == conversation_id))
    return conversation_of(session, found)


def test_a_new_conversation_is_inserted_once_with_its_final_state(
    session_factory: sessionmaker[Session], demo: DemoData, db_engine: Engine
) -> None:
    with session_factory() as session:
        conversation = _new(session, _routed(session, demo))
        conversation.state = {"intent": "book"}
        with statements_of(db_engine) as seen:
            session.commit()
    # On PostgreSQL the last writes are one statement of CTEs: count the conversation's.
    written = " ".join(seen)
    assert written.count("INSERT INTO conversations") == 1
    assert "UPDATE conversations" not in written
    with session_factory() as session:
        stored = session.get(Conversation, conversation.id)
        assert stored is not None
        assert (stored.state, stored.details, stored.status) == (
            {"intent": "book"},
            {"caller_name": None},
            "active",
        )


def test_a_loaded_conversation_is_updated_only_when_it_changed(
    session_factory: sessionmaker[Session], demo: DemoData, db_engine: Engine
) -> None:
    with session_factory() as session:
        conversation_id = _new(session, _routed(session, demo)).id
        session.commit()
    with session_factory() as session:
        found = _load(session, conversation_id)
        assert found is not None and found.stored is not None
        found.details = dict(found.details)  # equal: nothing to write
        with statements_of(db_engine) as seen:
            session.commit()
    assert "UPDATE conversations" not in " ".join(seen)
    with session_factory() as session:
        found = _load(session, conversation_id)
        assert found is not None
        found.status = "ended"
        session.commit()
    with session_factory() as session:
        stored = session.get(Conversation, conversation_id)
        assert stored is not None and stored.status == "ended"


def test_a_row_that_refers_to_a_new_conversation_finds_it_written(
    session_factory: sessionmaker[Session], demo: DemoData
) -> None:
    with session_factory() as session:
        conversation = _new(session, _routed(session, demo))
        write_unwritten(session)
        start = utcnow() + timedelta(days=3)
        session.execute(
            insert(Appointment).values(
                id=new_id("apt"),
                agent_id=demo.agent_id,
                appointment_type="haircut",
                start_at=start,
                end_at=start + timedelta(minutes=30),
                idempotency_key="k",
                conversation_id=conversation.id,
            )
        )
        conversation.state = {"last": "booked"}
        session.commit()
    with session_factory() as session:
        stored = session.get(Conversation, conversation.id)
        assert stored is not None and stored.state == {"last": "booked"}


def test_a_rolled_back_conversation_is_not_written_by_the_next_transaction(
    session_factory: sessionmaker[Session], demo: DemoData
) -> None:
    with session_factory() as session:
        conversation = _new(session, _routed(session, demo))
        session.rollback()
        write_unwritten(session)
        session.commit()
    with session_factory() as session:
        assert session.get(Conversation, conversation.id) is None


# --- views and entities from plain rows, by position -----------------------------------


def test_views_are_built_from_a_row_at_an_offset(session: Session, demo: DemoData) -> None:
    from app import sql_fast
    from app.turn_rows import (
        AGENT_COLUMNS,
        CONVERSATION_COLUMNS,
        CONVERSATION_WIDTH,
        agent_at,
        conversation_at,
    )

    conversation = Conversation(
        id="cnv_rows", channel="sms", external_id="x", state={"a": 1}, details={"b": 2}
    )
    session.add(conversation)
    session.flush()
    statement = (
        select(*CONVERSATION_COLUMNS, *AGENT_COLUMNS)
        .select_from(Conversation.__table__)
        .outerjoin(Agent.__table__, Agent.__table__.c.id == bindparam("agent_id"))
        .where(Conversation.__table__.c.id == "cnv_rows")
    )
    row = sql_fast.execute(session, statement, {"agent_id": demo.agent_id}).one()
    found = conversation_at(row, 0)
    assert found is not None
    assert (found.id, found.state, found.details, found.status) == (
        "cnv_rows",
        {"a": 1},
        {"b": 2},
        "active",
    )
    assert found.stored == ({"a": 1}, {"b": 2}, "active")
    entity = session.get(Agent, demo.agent_id)
    assert entity is not None
    assert agent_at(row, CONVERSATION_WIDTH) == AgentView.of(entity)
    # An outer join that found nothing: no view.
    missing = sql_fast.execute(session, statement, {"agent_id": "agt_none"}).one()
    assert agent_at(missing, CONVERSATION_WIDTH) is None
    assert conversation_at((None,) * CONVERSATION_WIDTH, 0) is None


def test_an_entity_from_a_row_is_held_as_a_load_holds_it(
    session_factory: sessionmaker[Session], demo: DemoData
) -> None:
    from sqlalchemy import inspect as sa_inspect

    from app import sql_fast
    from app.turn_rows import entity_at, entity_columns

    start = utcnow() + timedelta(days=3)
    with session_factory() as session:
        session.add(
            Appointment(
                id="apt_rows",
                agent_id=demo.agent_id,
                appointment_type="haircut",
                start_at=start,
                end_at=start + timedelta(minutes=30),
                idempotency_key="k-rows",
            )
        )
        session.commit()
    statement = select(literal(0).label("zero"), *entity_columns(Appointment, "a_")).where(
        Appointment.__table__.c.id == bindparam("id")
    )
    with session_factory() as session:
        row = sql_fast.execute(session, statement, {"id": "apt_rows"}).one()
        made = entity_at(session, Appointment, row, 1)
        assert made is not None
        state = sa_inspect(made)
        assert state.persistent and not state.modified and not state.unloaded
        assert session.get(Appointment, "apt_rows") is made  # in the identity map
        assert made.start_at == start and made.idempotency_key == "k-rows"
        # Read again: the same object, as the ORM's load answers.
        assert entity_at(session, Appointment, row, 1) is made
        made.notes = "changed"  # a change is a change: flushed as an UPDATE
        assert session.dirty
        session.commit()
    with session_factory() as session:
        stored = session.get(Appointment, "apt_rows")
        assert stored is not None and stored.notes == "changed"
        nothing = (None,) * (1 + len(entity_columns(Appointment, "a_")))
        assert entity_at(session, Appointment, nothing, 1) is None
