"""What the Google and Microsoft 365 backends share: a remote calendar read once per window.

Free/busy answers are cached briefly per (connection, window) and asked at most once per
request, or once per turn across its attempts (`WindowReads`, app/calendar/turn_reads.py):
inside a turn's write transaction a window is never asked but raised as `ReadNeeded`. When
the provider does not answer, a recent answer covering the window stands in; failing that
the agent says plainly that it cannot check the calendar. Our own bookings are taken out of
the provider's busy times (the tools count them from the database), writes go out after
commit, and a revoked grant flags the connection and texts the owner a fresh connect link.
A provider subclass supplies only what is its own: how it reads busy times, talks HTTP and
words its errors.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.after_commit import Dispatch, after_commit
from app.calendar.availability import Interval
from app.calendar.backend import CalendarBackend, CalendarError
from app.calendar.oauth import text_connect_link
from app.calendar.turn_reads import ReadNeeded, turn_reads
from app.clock import Clock
from app.config import Settings
from app.models import Agent, Appointment, CalendarConnection
from app.notify import SmsSender
from app.security import audit
from app.turn_rows import AgentLike

log = logging.getLogger(__name__)

UNAVAILABLE_MESSAGE = "The calendar isn't answering right now; please try again in a minute."
CANNOT_CHECK_MESSAGE = (
    "I can't check the calendar right now, so I can't offer or book times yet. "
    "Please try again in a few minutes."
)


class Deadline:
    """The provider time one request may still spend."""

    def __init__(self, seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._seconds = seconds
        self._end: float | None = None

    def remaining(self) -> float:
        if self._end is None:
            self._end = self._monotonic() + self._seconds
        return self._end - self._monotonic()


class FreeBusyCache:
    """Short-lived free/busy answers per (connection, window), so one conversation
    asking about the same day several times costs one provider call."""

    def __init__(self, ttl: float, max_entries: int = 10_000, keep: float = 0.0) -> None:
        self.ttl = ttl
        # Entries stay this long past their ttl as the outage fallback (`covering`).
        self.keep = keep
        self.max_entries = max_entries
        self._entries: dict[tuple[Any, ...], tuple[float, list[Interval]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> list[Interval] | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def covering(
        self, connection_id: str, calendar_id: str, start: datetime, end: datetime, age: float
    ) -> list[Interval] | None:
        """Busy times in [start, end) from an answer at most `age` seconds old whose
        window covers it (the fallback when Google does not answer)."""
        oldest = time.monotonic() - age
        with self._lock:
            entries = list(self._entries.items())
        for (conn, cal, s, e), (expires, busy) in entries:
            fetched = expires - self.ttl
            same = (conn, cal) == (connection_id, calendar_id)
            if same and s <= start and e >= end and fetched >= oldest:
                return [b for b in busy if b.start < end and b.end > start]
        return None

    def drop(self, connection_id: str) -> None:
        """Forget every answer about one connection (its calendar just changed)."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if k[0] != connection_id}

    def put(self, key: tuple[Any, ...], value: list[Interval]) -> None:
        if self.ttl <= 0 and self.keep <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = time.monotonic() - self.keep
                self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl, value)


class WindowReads:
    """A provider calendar's free/busy answers for one request, or for one turn across
    its attempts (app/calendar/turn_reads.py): each window is asked once; inside a turn's
    write transaction it is never asked but raised as `ReadNeeded`; when the provider
    does not answer, a recent answer covering the window stands in, and failing that the
    agent says plainly that it cannot check the calendar. Shared by Google and Graph."""

    def __init__(
        self,
        session: Session,
        budget: float,
        cache: FreeBusyCache,
        stale_seconds: float,
        connection_id: str,
        calendar_id: str,
    ) -> None:
        self.cache, self.stale_seconds = cache, stale_seconds
        self.connection_id, self.calendar_id = connection_id, calendar_id
        self.reads = turn_reads(session)
        if self.reads is None:
            self.deadline = Deadline(budget)
            self.answers: dict[tuple[Any, ...], list[Interval] | CalendarError] = {}
        else:
            if self.reads.deadline is None:
                self.reads.deadline = Deadline(budget)
            self.deadline = self.reads.deadline
            self.answers = self.reads.answers

    def fetch(
        self, key: tuple[Any, ...], ask: Callable[[], list[Interval]], what: str
    ) -> list[Interval]:
        known = self.answers.get(key)
        if isinstance(known, CalendarError):
            raise known
        if known is not None:
            return known
        if self.reads is not None and self.reads.offline:
            # Inside the turn's write transaction: never call out (see turn_reads).
            if self.reads.exhausted:
                raise CalendarError(CANNOT_CHECK_MESSAGE)
            raise ReadNeeded(what, lambda: self._ask_once(key, ask, what))
        return self._ask_once(key, ask, what)

    def _ask_once(
        self, key: tuple[Any, ...], ask: Callable[[], list[Interval]], what: str
    ) -> list[Interval]:
        try:
            found = ask()
        except CalendarError as exc:
            if str(exc) != UNAVAILABLE_MESSAGE:
                # Access revoked or a calendar error the provider reported: not an outage
                # to ride out; never book against a calendar we cannot see.
                self.answers[key] = exc
                raise
            _, _, start, end = key
            stale = self.cache.covering(
                self.connection_id, self.calendar_id, start, end, self.stale_seconds
            )
            if stale is None:
                refused = CalendarError(CANNOT_CHECK_MESSAGE)
                self.answers[key] = refused
                raise refused from None
            log.warning(
                "%s unavailable for connection %s: using a recent answer",
                what.split(" ")[0],
                self.connection_id,
            )
            found = stale
        else:
            self.cache.put(key, found)
        self.answers[key] = found
        return found


class RemoteFactory(Protocol):
    """What a remote calendar needs from the factory that built it."""

    cache: FreeBusyCache
    stale_seconds: float
    writes: Dispatch
    clock: Clock
    sms_sender: SmsSender
    settings: Settings

    def __call__(self, session: Session, agent: AgentLike) -> CalendarBackend: ...


class RemoteCalendar:
    """A provider calendar bound to one connection for one session (request or turn)."""

    name: str
    # How the provider's busy read is named in logs and ReadNeeded ("free/busy", ...).
    read_label: str

    def __init__(
        self,
        factory: RemoteFactory,
        session: Session,
        connection: CalendarConnection,
        budget: float,
    ) -> None:
        self.session = session
        self.connection_id = connection.id
        self.calendar_id = connection.calendar_id
        self.status = connection.status
        self.encrypted_token = connection.encrypted_refresh_token
        # A turn run under TurnReads keeps its answers and its budget across attempts
        # (and calendar instances); anything else keeps them for this instance.
        self.windows = WindowReads(
            session,
            budget,
            factory.cache,
            factory.stale_seconds,
            connection.id,
            connection.calendar_id,
        )
        self.deadline = self.windows.deadline
        self._remote = factory

    def busy(
        self, agent: AgentLike, start: datetime, end: datetime, *, fresh: bool = False
    ) -> list[Interval]:
        key = (self.connection_id, self.calendar_id, start, end)
        outside = None if fresh else self._remote.cache.get(key)
        if outside is None:
            # Asked once per window in this request or turn: the tools ask before their
            # write transaction, then check again inside it, and get this answer.
            outside = self.windows.fetch(
                key,
                lambda: self.read_busy(start, end),
                f"{self.read_label} {start.isoformat()}..{end.isoformat()}",
            )
        return subtract(outside, own_events(self.session, agent, start, end))

    def read_busy(self, start: datetime, end: datetime) -> list[Interval]:
        """The provider's busy times in [start, end), sorted: one HTTP read (or a few pages)."""
        raise NotImplementedError

    def write_after_commit(self, appointment_id: str) -> None:
        """Write the appointment to the provider once the transaction that changed it has
        committed (never inside it); a failure leaves it pending for the sweeper."""
        from app.calendar.sync import sync_one

        factory = sessionmaker(self.session.get_bind(), expire_on_commit=False)
        remote = self._remote
        after_commit(
            self.session,
            lambda: sync_one(factory, remote, remote.clock, appointment_id),
            remote.writes,
        )

    def flag_needs_reconsent(
        self, *, last_error: str, details: dict[str, Any], reason: str, path: str
    ) -> None:
        """Revoked or expired for good: flag the connection once and text the owner a
        fresh connect link; bookings wait as pending until they reconnect."""
        self.status = "needs_reconsent"
        connection = self.session.get(CalendarConnection, self.connection_id)
        if connection is None or connection.status != "active":
            return
        connection.status = "needs_reconsent"
        connection.last_error = last_error
        audit.record(
            self.session,
            "calendar.needs_reconsent",
            actor=self.name,
            subject=connection.agent_id,
            details={"connection_id": connection.id, **details},
        )
        agent = self.session.get(Agent, connection.agent_id)
        if agent is not None:
            remote = self._remote
            text_connect_link(
                self.session,
                remote.sms_sender,
                remote.settings,
                agent,
                remote.clock(),
                reason=reason,
                path=path,
            )
        self.session.flush()


def own_events(
    session: Session, agent: AgentLike, start: datetime, end: datetime
) -> list[Interval]:
    """Our bookings as the external calendar sees them; the tools count them from the
    database (with buffers), so the calendar's copy must not block them twice."""
    rows = session.execute(
        select(Appointment.start_at, Appointment.end_at).where(
            Appointment.agent_id == agent.id,
            Appointment.start_at < end,
            Appointment.end_at > start,
            or_(
                Appointment.status == "confirmed",
                and_(Appointment.status == "cancelled", Appointment.sync_status == "pending"),
            ),
        )
    )
    return [Interval(s, e) for s, e in rows]


def event_text(agent: AgentLike, appointment: Appointment) -> tuple[str, str]:
    """The event's title and description in the owner's calendar (any provider)."""
    kind = next(
        (t for t in agent.appointment_types or [] if t.get("key") == appointment.appointment_type),
        {},
    )
    type_name = str(kind.get("name") or appointment.appointment_type)
    who = appointment.contact_name or appointment.contact_e164 or "caller"
    lines = [f"Booked by your scheduling agent ({appointment.channel})."]
    if appointment.contact_name:
        lines.append(f"Name: {appointment.contact_name}")
    if appointment.contact_e164:
        # The owner's own calendar may hold the full number; logs never do.
        lines.append(f"Phone: {appointment.contact_e164}")
    if appointment.notes:
        lines.append(f"Notes: {appointment.notes}")
    lines.append(f"Appointment id: {appointment.id}")
    return f"{type_name.capitalize()} with {who}", "\n".join(lines)


def subtract(busy: list[Interval], own: list[Interval]) -> list[Interval]:
    if not own:
        return list(busy)
    result: list[Interval] = []
    own = sorted(own)
    for interval in busy:
        pieces = [interval]
        for mine in own:
            if mine.start >= interval.end:
                break
            next_pieces = []
            for piece in pieces:
                if not piece.overlaps(mine):
                    next_pieces.append(piece)
                    continue
                if piece.start < mine.start:
                    next_pieces.append(Interval(piece.start, mine.start))
                if mine.end < piece.end:
                    next_pieces.append(Interval(mine.end, piece.end))
            pieces = next_pieces
        result.extend(pieces)
    return result
