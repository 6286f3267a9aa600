"""Run one webhook's work with its own session in a worker thread, within a time budget.

Providers hang up on slow servers (Twilio after 15 s, VAPI's assistant-request after
7.5 s), so a webhook answers something polite in time even when a step is stuck. The
abandoned thread is not killed: its transaction still commits or rolls back on its own,
and the idempotency record makes a retry see whatever it did.

The hop to the worker thread is our own (`TurnThreads`) rather than anyio's: under load
the event loop's thread shares the GIL with the turns' threads, and every loop iteration
may wait up to the GIL's switch interval for a turn's Python to yield. anyio's hop took
four iterations a turn (a checkpoint, its thread limiter's, the result's hand-over and
the task's wake-up) and Python-level locks on both sides; this one takes two (the
hand-over and the wake-up) and C queues. What anyio gave is kept: the request's context
variables in the thread, a bound on threads (40, as anyio's default), and a turn over
budget abandoned, not killed.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from queue import SimpleQueue
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.requests import Request

from app.services import services_of

T = TypeVar("T")
log = logging.getLogger(__name__)

# As anyio's default thread limiter: turns beyond this many at once queue for a thread.
MAX_TURN_THREADS = 40


class OverBudget(Exception):
    pass


class _Job:
    """One call in a worker thread, its outcome handed to the loop's future."""

    __slots__ = ("answer", "context", "loop", "work")

    def __init__(
        self,
        context: contextvars.Context,
        work: Callable[[], Any],
        loop: asyncio.AbstractEventLoop,
        answer: asyncio.Future[Any],
    ) -> None:
        self.context, self.work, self.loop, self.answer = context, work, loop, answer

    def outcome(self) -> tuple[Any, BaseException | None]:
        try:
            return self.context.run(self.work), None
        except BaseException as exc:  # handed to the awaiting request, as anyio did
            return None, exc

    def hand_over(self, outcome: Any, error: BaseException | None) -> None:
        # The loop may have closed meanwhile (a test's client, shutdown): nobody waits.
        with suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._hand_over, outcome, error)

    def _hand_over(self, outcome: Any, error: BaseException | None) -> None:
        if self.answer.done():  # over budget or cancelled: the request answered already
            return
        if error is None:
            self.answer.set_result(outcome)
        else:
            self.answer.set_exception(error)


class TurnThreads:
    """Worker threads started as needed up to `limit`, taking jobs first come, first
    served from one queue. A thread is started only when none is idle; `_idle` counts
    threads that finished a job and were not yet promised another, so a job never waits
    in the queue while fewer than `limit` threads exist (at the limit, a thread that takes
    a queued job nobody promised it counts itself idle too: harmless, as no thread can be
    started then and threads never end). Threads are daemons: one stuck
    past its budget must not hold up the process's exit (its transaction dies with the
    connection, committing nothing)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._jobs: SimpleQueue[_Job] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, job: _Job) -> None:
        start = False
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif self._threads < self.limit:
                self._threads += 1
                start = True
        self._jobs.put(job)
        if start:
            name = f"turn-worker-{self._threads}"
            threading.Thread(target=self._serve, name=name, daemon=True).start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            outcome, error = job.outcome()
            # Idle before the answer is handed over: the request's next turn, submitted
            # as soon as the loop has the answer, finds this thread instead of a new one.
            with self._lock:
                self._idle += 1
            job.hand_over(outcome, error)


_threads = TurnThreads(MAX_TURN_THREADS)


def _over_budget(answer: asyncio.Future[Any], seconds: float) -> None:
    if not answer.done():
        answer.set_exception(OverBudget(f"over the {seconds:.1f}s budget"))


async def in_thread(work: Callable[[], T], seconds: float) -> T:
    """`work()`'s result, run in a turn worker thread with the caller's context
    variables; OverBudget after `seconds` (the thread runs on, its answer dropped); the
    exception it raised, if it did. Cancelling the caller leaves the thread running too."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()
    _threads.submit(_Job(contextvars.copy_context(), work, loop, answer))
    timer = loop.call_later(seconds, _over_budget, answer, seconds)
    try:
        return await answer
    finally:
        timer.cancel()


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

    return await in_thread(run, seconds)


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
