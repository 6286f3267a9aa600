"""Run one webhook's work with its own session in a worker thread, within a time budget.

Providers hang up on slow servers (Twilio after 15 s, VAPI's assistant-request after
7.5 s), so a webhook answers something polite in time even when a step is stuck. The
abandoned thread is not killed: its transaction still commits or rolls back on its own,
and the idempotency record makes a retry see whatever it did.

The hop is one future on the event loop: the work goes to a worker thread (with a copy
of the request's context, as anyio's `to_thread.run_sync` gives it), and the loop waits
once, until the thread hands the answer back or the budget's timer fires. anyio's hop
suspended the request four times (a checkpoint, its thread limiter, the result, a
cancel-shielded checkpoint), each time resuming the whole chain of ASGI layers, and ran
two cancel scopes; here the request is suspended once.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

import sniffio
from sqlalchemy.orm import Session
from starlette.requests import Request

from app.services import services_of
from app.thread_sessions import run_in_session

T = TypeVar("T")
log = logging.getLogger(__name__)

# As many threads as anyio's default limiter allowed the turns (they shared its 40 with
# FastAPI's sync endpoints); beyond it work waits for a free thread, its budget running.
MAX_THREADS = 40
IDLE_SECONDS = 10.0  # a thread idle this long ends (anyio's WorkerThread.MAX_IDLE_TIME)


class OverBudget(Exception):
    pass


# The request's context, the work, and the loop and future waiting for its result.
Job = tuple[
    contextvars.Context, Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"
]


class WorkerThreads:
    """Threads taking jobs from one queue, started as needed up to `limit`.

    `_idle` counts threads free for a job not yet handed to one; a job that finds none
    starts a thread, or past the limit waits in the queue (`_waiting`) for the next to
    finish. As anyio's workers, they are not daemons: at exit the interpreter waits for
    the turns still running (an abandoned one included) to commit or roll back, and
    `stop()` (run first at exit) ends the idle ones."""

    def __init__(self, limit: int = MAX_THREADS, idle_seconds: float = IDLE_SECONDS) -> None:
        self.limit = limit
        self.idle_seconds = idle_seconds
        self._jobs: SimpleQueue[Job | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._waiting = 0

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif self._threads < self.limit:
                self._threads += 1
                threading.Thread(target=self._work, name="turn-worker").start()
            else:
                self._waiting += 1
        self._jobs.put(job)

    def stop(self) -> None:
        """Every thread ends once its current job (if any) is done."""
        with self._lock:
            count = self._threads
        for _ in range(count):
            self._jobs.put(None)

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=self.idle_seconds)
            except Empty:
                with self._lock:
                    if self._idle:  # no job is on its way to this thread: end it
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a job was handed to the idle threads: one of them takes it
            if job is None:  # stop()
                with self._lock:
                    self._idle = max(self._idle - 1, 0)
                    self._threads -= 1
                return
            context, work, loop, future = job
            outcome = _run(context, work, future)
            # Free before the answer is handed back, so the request's next hop finds
            # this thread idle (as anyio's worker did) rather than starting another.
            with self._lock:
                if self._waiting:
                    self._waiting -= 1  # the next loop iteration takes a queued job
                else:
                    self._idle += 1
            if outcome is not None:
                with suppress(RuntimeError):  # the loop closed: nobody is waiting any more
                    loop.call_soon_threadsafe(_deliver, future, *outcome)
            del job, context, work, loop, future, outcome

    @property
    def threads(self) -> int:
        return self._threads


def _run(
    context: contextvars.Context, work: Callable[[], Any], future: asyncio.Future[Any]
) -> tuple[Any, BaseException | None] | None:
    """In a worker thread: `work`'s result (or its exception) in the request's context;
    None if the request stopped waiting before it started (over budget or cancelled
    while queued)."""
    if future.done():
        return None
    try:
        return context.run(work), None
    except BaseException as exc:  # whatever it is, the awaiting request raises it
        return None, exc


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the budget ran out first, or the request was cancelled
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _expire(future: asyncio.Future[Any], seconds: float) -> None:
    if not future.done():
        future.set_exception(OverBudget(f"over the {seconds:.1f}s budget"))


THREADS = WorkerThreads()
# Before the interpreter waits for non-daemon threads (as concurrent.futures does).
getattr(threading, "_register_atexit", atexit.register)(THREADS.stop)
_ASYNC_LIBRARY = sniffio.current_async_library_cvar


async def in_worker(request: Request, work: Callable[[Session], T], seconds: float) -> T:
    """`work(session)`'s result; OverBudget after `seconds`; its exception if it raised."""

    # SQLite writers queue in the process (app/db.py), not in SQLite's busy handler.
    def run() -> T:
        return run_in_session(services_of(request).session_factory, work)

    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    timer = loop.call_later(seconds, _expire, future, seconds)
    context = contextvars.copy_context()
    if context.get(_ASYNC_LIBRARY) is not None:  # a thread runs no async library (as anyio's)
        context.run(_ASYNC_LIBRARY.set, None)
    THREADS.submit((context, run, loop, future))
    try:
        return await future
    finally:
        timer.cancel()


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
