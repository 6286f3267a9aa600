"""Turn attempts on PostgreSQL begin their transaction on a Connection kept between turns
(app/kept_connections.py): they skip the engine's connect and the pool's checkout and
check-in, and everything else about the transaction holds."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.db import make_engine, make_session_factory
from app.kept_connections import kept_for
from app.models import InboundEvent
from app.security.idempotency import claim
from app.webhooks.turns import limit_turns, run_turn


def _postgres(settings: Settings) -> None:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL keeps connections between turns")


@pytest.fixture
def own(settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[Engine]:
    """An engine of the test's own (its pool and kept connections), tables emptied."""
    _postgres(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


def _turns(engine: Engine, size: int = 4) -> sessionmaker[Session]:
    factory = make_session_factory(engine)
    limit_turns(factory, size)
    return factory


def _turn(factory: sessionmaker[Session], work: Callable[[Session], Any]) -> Any:
    with factory() as session:
        return run_turn(session, work)


def _connection(session: Session) -> Connection:
    return session.connection()


def _pid(session: Session) -> int:
    pid: int = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def _events(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(InboundEvent)) or 0)


def test_only_postgresql_without_a_ping_keeps_connections(settings: Settings, tmp_path: Any):
    sqlite = make_engine(settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/k.db"}))
    assert kept_for(sqlite) is None  # its writer pool hands the write turn out at checkout
    sqlite.dispose()
    if settings.database_url.startswith("postgresql"):
        pinged = make_engine(settings.model_copy(update={"database_pre_ping": True}))
        assert kept_for(pinged) is None  # the ping is done at checkout
        pinged.dispose()
        small = make_engine(settings.model_copy(update={"database_pool_size": 1}))
        assert kept_for(small) is None  # never more than half the pool
        small.dispose()


def test_turns_run_one_after_another_on_one_kept_connection(own: Engine):
    factory = _turns(own)
    checkouts: list[object] = []
    event.listen(own, "checkout", lambda *args: checkouts.append(args))
    seen: list[tuple[int, Connection, object]] = []

    def work(session: Session) -> None:
        seen.append((_pid(session), _connection(session), session.get_bind()))
        session.commit()

    for _ in range(3):
        _turn(factory, work)
    assert len(checkouts) == 1  # the first turn's; the others found it kept
    assert len({pid for pid, _, _ in seen}) == 1
    assert len({id(connection) for _, connection, _ in seen}) == 1
    assert all(bind is own for _, _, bind in seen)  # what get_bind() answers is unchanged
    connection = seen[0][1]
    assert not connection.in_transaction()
    assert connection.get_execution_options() == own.get_execution_options()


def test_a_turn_commits_and_a_failed_one_rolls_back_as_before(
    own: Engine, session_factory: sessionmaker[Session]
):
    factory = _turns(own)

    def committed(session: Session) -> None:
        claim(session, "test", "kept-1", "test")
        session.commit()

    def failed(session: Session) -> None:
        claim(session, "test", "kept-2", "test")
        raise RuntimeError("the turn failed")

    def left_open(session: Session) -> None:
        claim(session, "test", "kept-3", "test")

    _turn(factory, committed)
    with pytest.raises(RuntimeError):
        _turn(factory, failed)
    _turn(factory, left_open)  # never committed: rolled back when its session closes
    assert _events(session_factory) == 1
    _turn(factory, lambda session: (claim(session, "test", "kept-4", "test"), session.commit()))
    assert _events(session_factory) == 2


def test_a_transaction_still_open_keeps_its_connection_until_it_ends(own: Engine):
    factory = _turns(own)
    kept = kept_for(own)
    assert kept is not None
    pids: list[int] = []
    with factory() as open_one:
        run_turn(open_one, lambda session: pids.append(_pid(session)))  # no commit
        assert open_one.in_transaction() and kept.idle() == 0
        _turn(factory, lambda session: (pids.append(_pid(session)), session.commit()))
        assert pids[0] != pids[1]  # not lent to another turn while it is in use
        assert kept.idle() == 1
        assert _pid(open_one) == pids[0]  # still its transaction's connection
    assert kept.idle() == 2  # given back when the session ended the transaction


def test_a_session_already_in_a_transaction_goes_on_with_it(own: Engine):
    factory = _turns(own)
    _turn(factory, lambda session: session.commit())  # one connection kept
    kept = kept_for(own)
    assert kept is not None and kept.idle() == 1
    with factory() as session:
        before = _connection(session)  # begun before the turn: the engine's own
        assert run_turn(session, lambda s: _connection(s) is before)
        session.commit()
    assert kept.idle() == 1


def test_at_most_size_connections_are_kept(own: Engine):
    kept = kept_for(own)
    assert kept is not None
    kept.size = 2
    release = threading.Event()
    started = threading.Barrier(4)

    def held(session: Session) -> None:
        _pid(session)
        started.wait(5)
        release.wait(5)
        session.commit()

    factory = _turns(own, size=4)  # slots enough for all three at once
    threads = [threading.Thread(target=_turn, args=(factory, held)) for _ in range(3)]
    for thread in threads:
        thread.start()
    started.wait(5)
    release.set()
    for thread in threads:
        thread.join(5)
    assert kept.idle() == 2  # the third went back to the pool


def test_a_dead_kept_connection_makes_the_turn_run_again_on_a_fresh_one(
    own: Engine, session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
):
    factory = _turns(own)
    first = _turn(factory, lambda session: (_pid(session), session.commit())[0])
    with session_factory() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        other.commit()
    attempts: list[int] = []

    def work(session: Session) -> int:
        attempts.append(len(attempts))
        pid = _pid(session)
        session.commit()
        return pid

    second = _turn(factory, work)
    assert attempts == [0, 1] and second != first
    assert "connection was dead; running it again" in caplog.text
    assert _turn(factory, work) == second  # the fresh one is kept; the dead one is not


def test_any_invalidation_drops_the_idle_kept_connections(own: Engine):
    factory = _turns(own)
    connections: list[Connection] = []
    _turn(factory, lambda session: (connections.append(_connection(session)), session.commit()))
    with own.connect() as other:
        other.invalidate()  # as the pool does at a disconnect: every older one is suspect
    _turn(factory, lambda session: (connections.append(_connection(session)), session.commit()))
    assert connections[0] is not connections[1]


def test_a_connection_older_than_pool_recycle_is_not_lent_again(settings: Settings):
    _postgres(settings)
    engine = make_engine(settings.model_copy(update={"database_pool_recycle_seconds": 0}))
    try:
        factory = _turns(engine)
        pids = [_turn(factory, lambda s: (_pid(s), s.commit())[0]) for _ in range(2)]
    finally:
        engine.dispose()
    assert pids[0] != pids[1]  # given back, and the pool replaced it


def test_dispose_closes_the_idle_kept_connections(own: Engine):
    factory = _turns(own)
    drivers: list[Any] = []
    _turn(
        factory, lambda s: (drivers.append(_connection(s).connection.dbapi_connection), s.commit())
    )
    assert not drivers[0].closed
    own.dispose()
    assert drivers[0].closed
    kept = kept_for(own)
    assert kept is not None and kept.idle() == 0
    assert _turn(factory, lambda s: (_pid(s), s.commit())[0])  # the engine still works
