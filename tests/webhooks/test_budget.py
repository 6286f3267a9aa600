"""The hop of a webhook's work to a worker thread (app/webhooks/budget.py): what anyio's
hop gave (the caller's context variables, a bound on threads, a turn over budget
abandoned rather than killed) kept on a cheaper hand-over."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from app.webhooks import budget
from app.webhooks.budget import OverBudget, TurnThreads, in_thread

request_name: contextvars.ContextVar[str] = contextvars.ContextVar("request_name")


def test_the_work_runs_in_another_thread_and_sees_the_callers_context() -> None:
    async def main() -> tuple[str, bool]:
        request_name.set("SM123")
        return await in_thread(
            lambda: (request_name.get(), threading.current_thread() is threading.main_thread()),
            5.0,
        )

    assert asyncio.run(main()) == ("SM123", False)


def test_a_context_variable_set_in_the_thread_stays_there() -> None:
    async def main() -> str:
        request_name.set("caller's")
        await in_thread(lambda: request_name.set("thread's"), 5.0)
        return request_name.get()

    assert asyncio.run(main()) == "caller's"


def test_the_works_exception_reaches_the_caller() -> None:
    def fails() -> None:
        raise LookupError("no such agent")

    with pytest.raises(LookupError, match="no such agent"):
        asyncio.run(in_thread(fails, 5.0))


def test_over_budget_the_caller_moves_on_and_the_thread_finishes_unharmed() -> None:
    finished = threading.Event()

    def slow() -> str:
        time.sleep(0.3)
        finished.set()
        return "late"

    async def main() -> None:
        began = time.monotonic()
        with pytest.raises(OverBudget):
            await in_thread(slow, 0.05)
        assert time.monotonic() - began < 0.25  # answered at the budget, not after the work
        # The abandoned thread runs to its end; its late answer is dropped quietly.
        assert await asyncio.to_thread(finished.wait, 5)
        await asyncio.sleep(0.05)

    asyncio.run(main())


def test_a_cancelled_caller_leaves_the_thread_running() -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def held() -> None:
        started.set()
        release.wait(5)
        finished.set()

    async def main() -> None:
        waiting = asyncio.ensure_future(in_thread(held, 5.0))
        assert await asyncio.to_thread(started.wait, 5)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        release.set()
        assert await asyncio.to_thread(finished.wait, 5)

    asyncio.run(main())


def test_an_answer_after_the_loop_closed_is_dropped() -> None:
    release, reported = threading.Event(), threading.Event()

    def held() -> None:
        release.wait(5)

    async def main() -> None:
        waiting = asyncio.ensure_future(in_thread(held, 5.0))
        await asyncio.sleep(0.01)
        waiting.cancel()

    asyncio.run(main())  # the loop is closed when this returns
    threads = budget._threads
    before = threads._idle
    release.set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not reported.is_set():
        if threads._idle > before:
            reported.set()
        time.sleep(0.01)
    assert reported.is_set()  # the thread survived the closed loop and is idle again


def test_threads_are_reused_and_never_more_than_the_limit() -> None:
    pool = TurnThreads(limit=2)
    started: list[str] = []
    gate = threading.Event()
    done = threading.Semaphore(0)

    async def run_all() -> None:
        loop = asyncio.get_running_loop()

        def job() -> None:
            started.append(threading.current_thread().name)
            gate.wait(5)
            done.release()

        answers = []
        for _ in range(5):
            answer = loop.create_future()
            pool.submit(budget._Job(contextvars.copy_context(), job, loop, answer))
            answers.append(answer)
        await asyncio.sleep(0.1)
        assert len(started) == 2  # two threads busy, three jobs waiting in line
        gate.set()
        await asyncio.gather(*answers)

    asyncio.run(run_all())
    assert len(started) == 5
    assert len(set(started)) == 2
    assert pool._threads == 2


def test_an_idle_thread_takes_the_next_job_without_a_new_thread() -> None:
    pool = TurnThreads(limit=10)

    async def run_one() -> str:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()
        job = budget._Job(
            contextvars.copy_context(), lambda: threading.current_thread().name, loop, answer
        )
        pool.submit(job)
        return await answer

    async def main() -> list[str]:
        names = []
        for _ in range(4):
            names.append(await run_one())
            await asyncio.sleep(0.02)  # the thread counts itself idle after its job
        return names

    names = asyncio.run(main())
    assert len(set(names)) == 1
    assert pool._threads == 1
