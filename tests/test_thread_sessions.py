"""A worker thread's session is used again by its next turn only when, closed, nothing of
the last turn is left on it (app/thread_sessions.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, object_session, sessionmaker

from app.models import InboundEvent
from app.security.idempotency import claim
from app.thread_sessions import as_new, run_in_session
from app.webhooks.turns import limit_turns, run_turn


@pytest.fixture
def factory(session_factory: sessionmaker[Session]) -> sessionmaker[Session]:
    limit_turns(session_factory, 4)  # as the app's: its info holds the turn slots
    return session_factory


def _session(session: Session) -> Session:
    return session


def _events(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(InboundEvent)) or 0)


def test_the_next_turn_gets_the_threads_session_as_new(factory: sessionmaker[Session]):
    loaded: list[Any] = []

    def first(session: Session) -> Session:
        claim(session, "test", "one", "test")
        session.commit()
        loaded.append(session.scalars(select(InboundEvent)).one())
        session.info["turn"] = "first"  # taken away again below, as modules do
        session.info.pop("turn")
        return session

    session = run_in_session(factory, first)
    assert object_session(loaded[0]) is None  # closed: the last turn's objects are gone
    assert as_new(factory, session)

    def second(again: Session) -> Session:
        assert again.info == factory.kw["info"] and not again.identity_map
        assert not again.in_transaction()
        return again

    assert run_in_session(factory, second) is session


def test_a_session_with_anything_left_of_its_turn_is_not_used_again(
    factory: sessionmaker[Session],
):
    def leaves_info(session: Session) -> Session:
        session.info["left"] = True
        return session

    first = run_in_session(factory, leaves_info)
    second = run_in_session(factory, _session)
    assert second is not first and "left" not in second.info

    def no_autoflush(session: Session) -> Session:
        session.autoflush = False
        return session

    third = run_in_session(factory, no_autoflush)
    fourth = run_in_session(factory, _session)
    assert fourth is not third and fourth.autoflush


def test_a_failed_turn_rolls_back_and_the_next_one_commits(factory: sessionmaker[Session]):
    def fails(session: Session) -> None:
        claim(session, "test", "failed", "test")
        raise RuntimeError("the turn failed")

    with pytest.raises(RuntimeError):
        run_in_session(factory, fails)
    run_in_session(factory, lambda s: (claim(s, "test", "next", "test"), s.commit()))
    assert _events(factory) == 1


def test_a_turn_inside_a_turn_and_other_threads_get_sessions_of_their_own(
    factory: sessionmaker[Session],
):
    outer = run_in_session(factory, _session)  # now this thread's
    inner: list[Session] = []

    def nested(session: Session) -> Session:
        inner.append(run_in_session(factory, _session))
        return session

    assert run_in_session(factory, nested) is outer
    assert inner[0] is not outer
    other: list[Session] = []
    thread = threading.Thread(target=lambda: other.append(run_in_session(factory, _session)))
    thread.start()
    thread.join(5)
    assert other[0] is not outer


def test_a_reconfigured_or_other_factory_makes_a_new_session(factory: sessionmaker[Session]):
    first = run_in_session(factory, _session)
    factory.configure(expire_on_commit=False)  # the same setting, configured again
    assert run_in_session(factory, _session) is first
    factory.configure(autoflush=False)
    try:
        second = run_in_session(factory, _session)
        assert second is not first and not second.autoflush
    finally:
        factory.configure(autoflush=True)
    other = sessionmaker(factory.kw["bind"], expire_on_commit=False)
    assert run_in_session(other, _session) is not second


def test_a_turn_left_in_its_transaction_is_rolled_back_and_its_session_used_again(
    factory: sessionmaker[Session],
):
    def left_open(session: Session) -> Session:
        return run_turn(session, lambda s: (claim(s, "test", "open", "test"), s)[1])

    first = run_in_session(factory, left_open)
    reused = run_in_session(factory, _session) is first
    # On PostgreSQL its kept connection's listener is on it (app/kept_connections.py).
    assert reused is (factory.kw["bind"].dialect.name != "postgresql")
    assert _events(factory) == 0
