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


class ReadNeeded(Exception):
    """Raised inside a write transaction for a free/busy window nobody fetched yet.
    Engines and tools must let it through: the turn is rolled back and run again."""

    def __init__(self, what: str, fetch: Callable[[], object]) -> None:
        super().__init__(what)
        self.fetch = fetch


@dataclass
class TurnReads:
    """What one turn's external reads know, shared by all its attempts."""

    # Free/busy answers (or the CalendarError Google gave) by backend window key.
    answers: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    # True while the turn's transaction is open: no external call may run.
    offline: bool = False
    # No more fetch rounds: an unknown window is answered "can't check the calendar".
    exhausted: bool = False
    # The backend's time budget, spanning every attempt of the turn.
    deadline: Any = None


def turn_reads(session: Session) -> TurnReads | None:
    """The reads of the turn this session runs, if it runs under TurnReads."""
    return session.info.get(_KEY)


def begin(session: Session) -> TurnReads:
    reads = TurnReads()
    session.info[_KEY] = reads
    return reads


def end(session: Session) -> None:
    session.info.pop(_KEY, None)
