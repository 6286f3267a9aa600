"""Run one webhook's work with its own session in a worker thread, within a time budget.

Providers hang up on slow servers (Twilio after 15 s, VAPI's assistant-request after
7.5 s), so a webhook answers something polite in time even when a step is stuck. The
abandoned thread is not killed: its transaction still commits or rolls back on its own,
and the idempotency record makes a retry see whatever it did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import anyio
from sqlalchemy.orm import Session
from starlette.requests import Request

from app.services import services_of

T = TypeVar("T")
log = logging.getLogger(__name__)


class OverBudget(Exception):
    pass


async def in_worker(request: Request, work: Callable[[Session], T], seconds: float) -> T:
    """`work(session)`'s result; OverBudget after `seconds`; its exception if it raised."""

    # SQLite writers queue in the process (app/db.py), not in SQLite's busy handler.
    def run() -> T:
        with services_of(request).session_factory() as session:
            try:
                return work(session)
            except Exception:
                session.rollback()
                raise

    done: list[T] = []
    with anyio.move_on_after(seconds):
        done.append(await anyio.to_thread.run_sync(run, abandon_on_cancel=True))
    if not done:
        raise OverBudget(f"over the {seconds:.1f}s budget")
    return done[0]


async def answer_within(
    request: Request,
    work: Callable[[Session], T],
    seconds: float,
    what: str,
    fallback: Callable[[], T],
) -> T:
    """`work`'s answer within `seconds`; otherwise (over budget, or it raised) the
    fault is logged and `fallback()` answers: the one policy every webhook turn shares."""
    try:
        return await in_worker(request, work, seconds)
    except OverBudget:
        log.error("%s ran past its %.1fs budget", what, seconds)
    except Exception:
        log.exception("%s failed", what)
    return fallback()
