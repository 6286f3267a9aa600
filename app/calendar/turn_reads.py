"""External calendar reads kept out of write transactions.

A conversation turn runs inside its write transaction (on SQLite that is the one write
turn every other request waits for), and the engine decides which days to read while it
runs. So a turn is run under `TurnReads`: while the transaction is open an external
backend answers free/busy only from what this turn (or the shared cache) already holds;
for a window it does not know it raises `ReadNeeded`, the webhook rolls the transaction
back, runs `ReadNeeded.fetch()` with no transaction open, and runs the turn again from
the start (app/webhooks/turns.py). Answers fetched for the turn are kept across its
attempts, so they also serve the fresh re-check before a booking. After the last allowed
round an unknown window is a CalendarError: the agent says it cannot check the calendar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

_KEY = "calendar_turn_reads"


# Fetch rounds a turn may spend per kind of external read. An engine turn reads a day,
# then perhaps nearby days for alternatives: a few windows. A model engine needs one
# round per model request (its own bound, given with ReadNeeded).
CALENDAR_ROUNDS = 4


class ReadNeeded(Exception):
    """Raised inside a write transaction for something external nobody fetched yet
    (a free/busy window, a model's answer). Engines and tools must let it through:
    the turn is rolled back, `fetch` runs with no transaction open, the turn runs again.
    After `rounds` fetches of its `kind`, that kind is spent: the next attempt answers
    without it."""

    def __init__(
        self,
        what: str,
        fetch: Callable[[], object],
        kind: str = "calendar",
        rounds: int = CALENDAR_ROUNDS,
    ) -> None:
        super().__init__(what)
        self.fetch = fetch
        self.kind = kind
        self.rounds = rounds


@dataclass
class TurnReads:
    """What one turn's external reads know, shared by all its attempts."""

    # Free/busy answers (or the CalendarError Google gave) by backend window key.
    answers: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    # True while the turn's transaction is open: no external call may run.
    offline: bool = False
    # Kinds with no fetch round left: an unknown window is answered "can't check the
    # calendar", an unknown model answer is a fallback to the offline engine.
    spent: set[str] = field(default_factory=set)
    # The backend's time budget, spanning every attempt of the turn.
    deadline: Any = None
    # Model answers by request (app/agent/llm.py), and what a model turn pins for all
    # its attempts (its start and clock) so that its requests are byte-identical.
    model: dict[str, Any] = field(default_factory=dict)

    @property
    def exhausted(self) -> bool:
        return "calendar" in self.spent


def turn_reads(session: Session) -> TurnReads | None:
    """The reads of the turn this session runs, if it runs under TurnReads."""
    return session.info.get(_KEY)


def begin(session: Session) -> TurnReads:
    reads = TurnReads()
    session.info[_KEY] = reads
    return reads


def end(session: Session) -> None:
    session.info.pop(_KEY, None)
