"""The turn's hop to a worker thread and its time budget (app/webhooks/budget.py)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import sniffio

from app.webhooks import budget
from app.webhooks.budget import OverBudget, WorkerThreads, answer_within, in_worker

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


class FakeSession:
    def __init__(self) -> None:
        self.rolled_back = False

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def rollback(self) -> None:
        self.rolled_back = True


def request_with(sessions: list[FakeSession]) -> Any:
    def factory() -> FakeSession:
        sessions.append(FakeSession())
        return sessions[-1]

    services = SimpleNamespace(session_factory=factory)
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(services=services)))


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerThreads]:
    pool = WorkerThreads(limit=2, idle_seconds=0.2)
    monkeypatch.setattr(budget, "THREADS", pool)
    yield pool


def run(coroutine_function: Callable[[], Any]) -> Any:
    return asyncio.run(coroutine_function())


def test_the_work_runs_in_a_worker_thread_with_the_requests_context(
    threads: WorkerThreads,
) -> None:
    sessions: list[FakeSession] = []
    seen: dict[str, Any] = {}

    def work(session: Any) -> str:
        seen.update(
            thread=threading.current_thread(),
            marker=marker.get(),
            session=session,
            library=sniffio.current_async_library_cvar.get(),
        )
        marker.set("changed in the thread")  # the thread's copy, not the request's
        return "answer"

    async def request() -> tuple[str, str]:
        marker.set("the request's")
        sniffio.current_async_library_cvar.set("asyncio")  # as anyio.run sets it
        answer = await in_worker(request_with(sessions), work, 5.0)
        return answer, marker.get()

    assert run(request) == ("answer", "the request's")
    assert seen["thread"] is not threading.main_thread()
    assert seen["marker"] == "the request's"
    assert seen["session"] is sessions[0]
    assert seen["library"] is None  # a worker thread runs no async library, as anyio's


def test_the_works_exception_is_raised_in_the_request_after_a_rollback(
    threads: WorkerThreads,
) -> None:
    sessions: list[FakeSession] = []

    def work(_: Any) -> str:
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        run(lambda: in_worker(request_with(sessions), work, 5.0))
    assert sessions[0].rolled_back


def test_past_its_budget_the_request_stops_waiting_and_the_work_goes_on(
    threads: WorkerThreads,
) -> None:
    release, finished = threading.Event(), threading.Event()

    def slow(_: Any) -> str:
        release.wait(5)
        finished.set()
        return "late"

    async def request() -> float:
        started = time.monotonic()
        with pytest.raises(OverBudget):
            await in_worker(request_with([]), slow, 0.1)
        return time.monotonic() - started

    assert run(request) < 2
    release.set()
    assert finished.wait(5)  # abandoned, not killed: its transaction ends on its own


def test_work_still_queued_past_its_budget_never_runs(threads: WorkerThreads) -> None:
    release = threading.Event()
    ran: list[str] = []

    def blocking(_: Any) -> None:
        release.wait(5)
        ran.append("blocking")

    def queued(_: Any) -> None:
        ran.append("queued")

    async def request() -> None:
        first = asyncio.ensure_future(in_worker(request_with([]), blocking, 5.0))
        second = asyncio.ensure_future(in_worker(request_with([]), blocking, 5.0))
        await asyncio.sleep(0.05)  # both threads of the pool are taken
        with pytest.raises(OverBudget):
            await in_worker(request_with([]), queued, 0.1)
        release.set()
        await first
        await second

    run(request)
    time.sleep(0.2)  # a thread is free again: the queued work was dropped, not run late
    assert ran == ["blocking", "blocking"]


def test_threads_are_reused_then_end_when_idle(threads: WorkerThreads) -> None:
    names: list[str] = []

    def work(_: Any) -> None:
        names.append(threading.current_thread().name)

    async def requests() -> None:
        for _ in range(5):
            await in_worker(request_with([]), work, 5.0)

    run(requests)
    assert len(names) == 5 and threads.threads == 1
    deadline = time.monotonic() + 5
    while threads.threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threads.threads == 0
    run(requests)  # and start again when needed
    assert threads.threads == 1


def test_a_cancelled_request_abandons_its_work(threads: WorkerThreads) -> None:
    release, finished = threading.Event(), threading.Event()

    def slow(_: Any) -> None:
        release.wait(5)
        finished.set()

    async def request() -> None:
        waiting = asyncio.ensure_future(in_worker(request_with([]), slow, 5.0))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    run(request)
    release.set()
    assert finished.wait(5)


def test_answer_within_answers_the_fallback_on_failure_or_past_the_budget(
    threads: WorkerThreads, caplog: pytest.LogCaptureFixture
) -> None:
    release = threading.Event()

    def failing(_: Any) -> str:
        raise RuntimeError("broken")

    def slow(_: Any) -> str:
        release.wait(5)
        return "late"

    request = request_with([])
    with caplog.at_level(logging.ERROR, logger=budget.__name__):
        assert run(lambda: answer_within(request, lambda _: "ok", 5.0, "t", lambda: "x")) == "ok"
        assert run(lambda: answer_within(request, failing, 5.0, "turn A", lambda: "x")) == "x"
        assert run(lambda: answer_within(request, slow, 0.1, "turn B", lambda: "y")) == "y"
    release.set()
    assert "turn A failed" in caplog.text
    assert "turn B ran past its 0.1s budget" in caplog.text


def test_stop_ends_idle_threads_at_once_and_busy_ones_after_their_turn() -> None:
    pool = WorkerThreads(limit=2, idle_seconds=60)
    release, finished = threading.Event(), threading.Event()

    def slow(_: Any) -> None:
        release.wait(5)
        finished.set()

    def quick(_: Any) -> None:
        pass

    async def requests() -> None:
        busy = asyncio.ensure_future(in_worker(request_with([]), slow, 0.1))
        await asyncio.sleep(0.05)
        await in_worker(request_with([]), quick, 5.0)  # a second thread, idle after
        with pytest.raises(OverBudget):
            await busy  # abandoned: its thread is still busy

    original = budget.THREADS
    budget.THREADS = pool
    try:
        run(requests)
    finally:
        budget.THREADS = original
    workers = [t for t in threading.enumerate() if t.name == "turn-worker" and not t.daemon]
    assert pool.threads == 2
    pool.stop()
    deadline = time.monotonic() + 5
    while pool.threads > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.threads == 1 and not finished.is_set()  # the idle one ended at once
    release.set()
    while pool.threads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.threads == 0 and finished.is_set()  # the busy one after its turn
    assert workers  # not daemons: the interpreter waits for a turn still running
