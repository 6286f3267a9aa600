"""Work that must wait until a session's transaction has committed and let go of its
connection: calls to an external calendar, which must never run inside a write
transaction (on SQLite that transaction holds the one write turn every other request
waits for).

`after_commit(session, action, dispatch)` queues the action; once the root transaction
has committed and its connection is back in the pool, `dispatch` runs it. A rollback
drops it: nothing that did not commit is written anywhere else.

`run_now` (the default) runs it on the committing thread. `BackgroundWrites` hands it to
a small thread pool, so a request that booked answers its caller without waiting for
the calendar's round trip: the booking is already the truth (its row is pending until
the write lands, and the sweeper retries it if this process dies first).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)
_QUEUED = "after_commit_queued"
_READY = "after_commit_ready"


Action = Callable[[], object]
Dispatch = Callable[[Action], None]


def run_now(action: Action) -> None:
    _run(action)


class BackgroundWrites:
    """Post-commit calendar writes on their own threads (a few: each holds one HTTP
    call). `drain()` waits for what was handed over (shutdown, tests, benchmarks)."""

    def __init__(self, workers: int = 4) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="calendar-write")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def __call__(self, action: Action) -> None:
        future = self._pool.submit(_run, action)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self, timeout: float | None = 30.0) -> None:
        with self._lock:
            pending = list(self._pending)
        for future in pending:
            future.result(timeout=timeout)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def after_commit(session: Session, action: Action, dispatch: Dispatch = run_now) -> None:
    session.info.setdefault(_QUEUED, []).append((action, dispatch))


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    queued = session.info.pop(_QUEUED, [])
    if queued:
        session.info.setdefault(_READY, []).extend(queued)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_QUEUED, None)


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    # Only the root transaction: by now its connection has been released.
    if transaction.parent is not None or transaction.nested:
        return
    for action, dispatch in session.info.pop(_READY, []):
        dispatch(action)


def _run(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:
        # The row stays pending: the sweeper writes it later.
        log.exception("post-commit calendar write failed; left for the sweeper")
