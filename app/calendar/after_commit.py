"""Work that must wait until a session's transaction has committed and let go of its
connection: calls to an external calendar, which must never run inside a write
transaction (on SQLite that transaction holds the one write turn every other request
waits for).

`after_commit(session, action)` queues the action; it runs once the root transaction
has committed and its connection is back in the pool. A rollback drops it: nothing
that did not commit is written anywhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)
_QUEUED = "after_commit_queued"
_READY = "after_commit_ready"


def after_commit(session: Session, action: Callable[[], object]) -> None:
    session.info.setdefault(_QUEUED, []).append(action)


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
    for action in session.info.pop(_READY, []):
        _run(action)


def _run(action: Callable[[], Any]) -> None:
    try:
        action()
    except Exception:
        # The row stays pending: the sweeper writes it later.
        log.exception("post-commit calendar write failed; left for the sweeper")
