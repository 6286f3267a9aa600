"""A worker thread's session, used again by the thread's next turn once it is as new.

A `Session` costs ~80k instructions to make and set up (its identity map, state, its
per-instance event dispatch) on top of what its transaction costs. A closed session is
documented as ready to be used again: `close()` ends its transaction, releases its
connection and expunges every object. So a turn's worker thread keeps its session and
hands it to its next turn, but only when, once closed, nothing of the last turn is left on
it: its `info` is exactly what the factory gives a new session (every module that keeps
state there removes it when the transaction or turn ends; anything left means the
session is not used again), no object, no transaction, and the factory's settings
(autoflush, bind) unchanged. Otherwise the next turn gets a new session, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")


class _Kept(threading.local):
    factory: sessionmaker[Session] | None = None
    settings: dict[str, Any] | None = None
    session: Session | None = None


_kept = _Kept()


def run_in_session(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """`work(session)` in a session of `factory`, rolled back if it raises, then closed."""
    if not isinstance(factory, sessionmaker):  # a stand-in (tests): a session each time
        with factory() as session:
            return _run(session, work)
    session = _take(factory)
    try:
        return _run(session, work)
    finally:
        session.close()
        _keep(factory, session)


def _run(session: Session, work: Callable[[Session], T]) -> T:
    try:
        return work(session)
    except Exception:
        session.rollback()
        raise


def _take(factory: sessionmaker[Session]) -> Session:
    kept = _kept
    session = kept.session
    if session is not None and kept.factory is factory and kept.settings == factory.kw:
        kept.session = None  # a turn inside this turn makes its own
        return session
    return factory()


def _keep(factory: sessionmaker[Session], session: Session) -> None:
    if as_new(factory, session):
        kept = _kept
        kept.factory = factory
        kept.settings = dict(factory.kw)
        kept.session = session


def as_new(factory: sessionmaker[Session], session: Session) -> bool:
    """Whether the closed `session` is as `factory()` would make it."""
    settings = factory.kw
    return (
        session.info == settings.get("info", {})
        and not session.in_transaction()
        and not session.identity_map
        and not session.new
        and not session.deleted
        and session.bind is settings.get("bind")
        and session.autoflush is settings.get("autoflush", True)
        and session.expire_on_commit is settings.get("expire_on_commit", True)
    )
