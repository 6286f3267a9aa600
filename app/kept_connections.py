"""PostgreSQL: a turn's transaction on a SQLAlchemy Connection kept from one turn to the next.

A session bound to the engine makes a `Connection` for each transaction: the engine's
connect, the pool's checkout (its record, the fairy, the checkout events), and at the end
the connection's close, the pool's check-in and its reset (the driver's `rollback()`).
Measured on an empty transaction, that is ~96k of its ~368k instructions. A turn attempt
(app/webhooks/turns.py) instead begins its session's transaction on a Connection kept
checked out between turns, and hands it back when that transaction ends; the session is
still bound to the engine (`get_bind()` answers the engine, as code that makes its own
sessions from it expects), and commits or rolls back as before: the Connection is only
where its transaction runs.

What the pool does at checkout is done here when a kept Connection is taken again:
- a Connection invalidated (its database connection was found dead) is never kept, and
  any invalidation drops every idle one (the pool, at a disconnect, replaces every
  connection older than it at their next checkout; the dropped ones go back to it);
- one whose database connection is older than `pool_recycle` goes back to the pool,
  which replaces it at the next checkout;
- `engine.dispose()` closes the idle ones (as it closes the pool's idle connections);
  one lent out then goes back to its old pool when its transaction ends.

At most `size` are kept idle (a burst's others go back to the pool). SQLite is not kept:
its writer pool hands out the write turn at checkout and takes it back at check-in
(app/db.py). Nor with `DATABASE_PRE_PING`: the ping is done at checkout.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session, SessionTransaction

# The engine's execution option holding its KeptConnections (an option, so the engine
# and what it keeps are one garbage-collectable cycle, not held by a module's registry).
OPTION = "kept_connections"
_BORN = "kept_connections_born"  # in the pool entry's info: when its connection was made
LISTENING = "kept_connections_listening"  # in a session's info: it has a listener of ours


class KeptConnections:
    """Connections of one engine kept checked out between turns, lent one per attempt."""

    def __init__(self, engine: Engine, size: int, recycle_seconds: float) -> None:
        self.engine = engine
        self.size = size
        self.recycle_seconds = recycle_seconds
        self._idle: list[tuple[Connection, int]] = []  # with the generation it was kept in
        self._generation = 0
        self._lock = threading.Lock()
        event.listen(engine, "connect", _born)
        event.listen(engine, "invalidate", self._invalidated)
        event.listen(engine, "engine_disposed", self._disposed)

    def lend(self, session: Session) -> Lent | None:
        """Begin `session`'s transaction on a kept Connection; None when the session is
        already in one or not bound to this engine (it then runs as before)."""
        if session.bind is not self.engine or session.in_transaction():
            return None
        connection = self._take()
        try:
            session.connection(bind_arguments={"bind": connection})
        except BaseException:
            connection.close()
            raise
        transaction = session.get_transaction()
        assert transaction is not None
        return Lent(self, session, transaction, connection)

    def give_back(self, connection: Connection, generation: int | None = None) -> None:
        """Keep `connection` for a later turn, or give it back to the pool."""
        with self._lock:
            keep = (
                len(self._idle) < self.size
                and (generation is None or generation == self._generation)
                and not connection.invalidated
                and not connection.closed
                and not connection.in_transaction()
            )
            if keep:
                self._idle.append((connection, self._generation))
        if not keep:
            connection.close()

    @property
    def generation(self) -> int:
        return self._generation

    def idle(self) -> int:
        return len(self._idle)

    def _take(self) -> Connection:
        while True:
            with self._lock:
                if not self._idle:
                    break
                connection, generation = self._idle.pop()  # the warmest
                fresh = generation == self._generation
            if fresh and self._young(connection):
                return connection
            connection.close()  # back to the pool, which checks it at the next checkout
        return self.engine.connect()

    def _young(self, connection: Connection) -> bool:
        if self.recycle_seconds < 0:
            return True
        # A connection made before this engine's listener: counted from when first seen.
        born = connection.connection.info.setdefault(_BORN, time.time())
        return bool(time.time() - born <= self.recycle_seconds)

    def _invalidated(self, *_: Any) -> None:
        with self._lock:
            self._generation += 1

    def _disposed(self, _engine: Engine) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        for connection, _generation in idle:
            # Out of the disposed pool and closed, as dispose closes the pool's idle ones.
            connection.detach()
            connection.close()


def _born(_dbapi_connection: Any, record: Any) -> None:
    record.info[_BORN] = time.time()


class Lent:
    """A kept Connection lent to one session's transaction, given back when it ends."""

    __slots__ = ("_connection", "_generation", "_kept", "_session", "_transaction")

    def __init__(
        self,
        kept: KeptConnections,
        session: Session,
        transaction: SessionTransaction,
        connection: Connection,
    ) -> None:
        self._kept = kept
        self._session = session
        self._transaction = transaction
        self._connection = connection
        self._generation = kept.generation

    def end(self) -> None:
        """At the attempt's end: given back now if the transaction is over (committed or
        rolled back), else when it ends (a retry's answer, an error the caller rolls
        back), whoever ends it."""
        if self._session.get_transaction() is not self._transaction:
            self._kept.give_back(self._connection, self._generation)
        else:
            event.listen(self._session, "after_transaction_end", self._after_end)
            # Its own listener from now on: not a session to use again (app/thread_sessions.py).
            self._session.info[LISTENING] = True

    def _after_end(self, _session: Session, transaction: SessionTransaction) -> None:
        if transaction is self._transaction:
            self._kept.give_back(self._connection, self._generation)


def keep_connections(engine: Engine, size: int, recycle_seconds: float) -> None:
    """Turns on this engine run on up to `size` Connections kept between them."""
    if size > 0 and engine.dialect.name == "postgresql":
        engine.update_execution_options(**{OPTION: KeptConnections(engine, size, recycle_seconds)})


def kept_for(bind: Any) -> KeptConnections | None:
    """The engine's kept Connections, if it keeps any."""
    if not isinstance(bind, Engine):
        return None
    kept: KeptConnections | None = bind.get_execution_options().get(OPTION)
    return kept
