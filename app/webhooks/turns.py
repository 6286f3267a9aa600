"""A conversation turn that never calls out while its write transaction is open.

The engine decides which calendar days to read while the turn runs, so the turn runs
optimistically inside its write transaction with external reads switched off
(app/calendar/turn_reads.py). When it needs a free/busy window nobody fetched yet, the
transaction is rolled back (nothing was claimed, written or sent), the window is fetched
with no transaction open, and the turn runs again from the start: a retried webhook or a
racing message that committed meanwhile is seen by the new attempt, as for any turn.
A turn whose windows are all cached runs once. A turn whose pooled connection turns out
dead (the database restarted; there is no ping before each use) runs again once, on a
fresh connection: nothing of the failed attempt committed, and if its COMMIT was lost in
flight the retry finds the event claimed and answers as before. After `FETCH_ROUNDS`
fetches a window still unknown is answered honestly ("I can't check the calendar right
now"). The LLM engine's model requests go the same way (app/agent/llm.py), with their own bound (the
engine's tool rounds): the attempts of a turn are bounded per kind of read.

Work outside the database that a turn does once, whatever its number of attempts
(counting a caller against a rate limit), goes through `memo(session)`.

Only `TURN_CONCURRENCY` attempts run at once in a process (`TurnSlots`): a process runs
one thread's Python at a time, so more turns at once add GIL hand-offs and cache misses,
not throughput (32 concurrent SMS turns cost ~25% more CPU each than 4). The slot is
held while an attempt runs and given back while the turn waits on a calendar or a model
(the fetches above), so a slow provider does not hold up the other turns. On PostgreSQL
an attempt's transaction runs on a Connection kept between turns (app/kept_connections.py).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext, suppress
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.calendar import turn_reads
from app.calendar.backend import CalendarError
from app.calendar.turn_reads import ReadNeeded
from app.kept_connections import KeptConnections, Lent, kept_for

T = TypeVar("T")
log = logging.getLogger(__name__)

FETCH_ROUNDS = turn_reads.CALENDAR_ROUNDS
_SLOTS = "turn_slots"


class TurnSlots:
    """How many turn attempts may run at once in this process, handed out first come,
    first served: a slot given back goes straight to the longest waiter, so a turn that
    arrives later cannot overtake one already waiting (a plain semaphore lets it, which
    doubled the p99 of turns under load)."""

    def __init__(self, size: int, kept: KeptConnections | None = None) -> None:
        self.size = size
        self.kept = kept
        self._free = size
        self._waiting: deque[threading.Lock] = deque()
        self._lock = threading.Lock()
        self._holder = threading.local()

    def held(self) -> TurnSlots:
        """A context manager holding one slot while it is entered (a class, not a
        generator: it is entered at every turn attempt)."""
        return self

    def __enter__(self) -> None:
        holder = self._holder
        depth = getattr(holder, "depth", 0)
        if depth:  # a turn inside a turn: its own slot
            holder.depth = depth + 1
            return
        self._acquire()
        holder.depth = 1

    def __exit__(self, *_: object) -> None:
        holder = self._holder
        holder.depth -= 1
        if not holder.depth:
            self._release()

    def _acquire(self) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            handed = threading.Lock()
            handed.acquire()
            self._waiting.append(handed)
        handed.acquire()  # released by _release(): the slot is ours

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1


class _Attempt:
    """A slot, and the kept Connection the attempt's transaction begins on (given back
    when that transaction ends)."""

    __slots__ = ("_kept", "_lent", "_session", "_slots")

    def __init__(self, slots: TurnSlots, kept: KeptConnections, session: Session) -> None:
        self._slots = slots
        self._kept = kept
        self._session = session
        self._lent: Lent | None = None

    def __enter__(self) -> None:
        slots = self._slots
        slots.__enter__()
        try:
            self._lent = self._kept.lend(self._session)
        except BaseException:
            slots.__exit__()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            if self._lent is not None:
                self._lent.end()
        finally:
            self._slots.__exit__()


def limit_turns(session_factory: sessionmaker[Session], size: int) -> None:
    """Turns run through this factory's sessions share `size` slots (and, on PostgreSQL,
    the engine's kept Connections)."""
    slots = TurnSlots(size, kept_for(session_factory.kw.get("bind")))
    session_factory.configure(info={**session_factory.kw.get("info", {}), _SLOTS: slots})


_NO_LIMIT = nullcontext()


def _slot(session: Session) -> AbstractContextManager[None]:
    slots: TurnSlots | None = session.info.get(_SLOTS)
    if slots is None:  # a session from outside the app (CLI, tests): no limit
        return _NO_LIMIT
    if slots.kept is not None:
        return _Attempt(slots, slots.kept, session)
    return slots


_MEMO = "turn_memo"


def run_turn(
    session: Session,
    work: Callable[[Session], T],
    before: Callable[[Session], None] | None = None,
) -> T:
    """`work(session)`'s answer; every external read it needs is fetched between
    attempts, with no transaction open. `before` may read ahead (with external calls
    allowed and no write transaction open): what it fetches serves every attempt."""
    reads = turn_reads.begin(session)
    session.info[_MEMO] = {}
    try:
        if before is not None:
            before(session)
        fetched: dict[str, int] = {}
        reconnected = False
        while True:
            reads.offline = True
            try:
                with _slot(session):
                    return work(session)
            except DBAPIError as error:
                if reconnected or not error.connection_invalidated:
                    raise
                log.warning("turn's database connection was dead; running it again")
                reconnected = True
                _start_over(session)
            except ReadNeeded as needed:
                _start_over(session)
                if needed.kind in reads.spent:
                    raise RuntimeError(f"{needed} asked for after its rounds") from None
                reads.offline = False
                _fetch(session, needed)
                # Bounded per kind: each fetch is a round of its kind, so the turn ends
                # after at most the sum of the kinds' rounds plus one attempt.
                fetched[needed.kind] = rounds = fetched.get(needed.kind, 0) + 1
                if rounds >= needed.rounds:
                    reads.spent.add(needed.kind)
    finally:
        turn_reads.end(session)
        session.info.pop(_MEMO, None)


def _start_over(session: Session) -> None:
    session.rollback()
    # The next attempt starts as a new request would: nothing of this one (an identity
    # claimed by a row that was rolled back) stays in the session.
    session.expunge_all()


def _fetch(session: Session, needed: ReadNeeded) -> None:
    log.debug("turn needs %s: fetched outside its transaction", needed)
    # A CalendarError is kept as the window's answer: the next attempt's tool reports it.
    with suppress(CalendarError):
        needed.fetch()
    # A fetch may record what it learnt (a revoked grant): keep that, in its own short
    # transaction, whatever the turn does next.
    session.commit()


def memo(session: Session) -> dict[Any, Any] | None:
    """Decisions taken once per turn, kept across its attempts (None outside a turn)."""
    return session.info.get(_MEMO)
