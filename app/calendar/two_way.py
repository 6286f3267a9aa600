"""Two-way sync: changes the owner makes in their own calendar reach the appointments.

A push (Google channel, Graph subscription) or a poll asks `TwoWaySync.sync` to read what
changed since the stored cursor (Google sync token, Graph delta link; 410 means read
everything again). Each change drops that calendar's free/busy cache at once. For an
event of ours (an appointment's external_event_id):

- moved by the owner: the appointment moves (its reminders are re-planned) and the
  caller is texted the new time;
- deleted by the owner: the appointment is cancelled and the caller is told;

all audit-logged. Other events only change availability (the cache drop). A row whose
own write is still pending is left alone: the calendar has not caught up with us yet,
and its change would undo ours.

Whose calendar wins when the owner moves our event to a time the agent would not offer:
- outside the agent's hours: the owner's. Hours bound what the agent offers callers,
  not what the owner may decide about their own day. The appointment moves, the caller
  is told, and the owner is texted that the new time is outside the agent's hours (a
  drag in the wrong column is then caught by the person who made it);
- onto another confirmed booking: ours. Two callers hold confirmations and the database
  refuses a double booking, so the appointment keeps its time, the event is written back
  to that time in the owner's calendar, the caller is told nothing (nothing changed for
  them) and the owner is texted what was refused and what stands.

The owner's change is confirmed to the caller as a change the owner made from their
dashboard is (notification channel "dashboard": no owner copy of the caller's text).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.calendar.backend import CalendarError, CalendarFactory
from app.calendar.changes import EventChange, SyncExpired
from app.clock import Clock
from app.config import Settings
from app.models import Agent, Appointment, CalendarConnection, CalendarWatch, Notification
from app.notifications import plan as notifications
from app.security import audit
from app.tools.service import schedule_for

log = logging.getLogger(__name__)

PROVIDERS = ("google", "microsoft")
GOOGLE_PUSH_PATH = "/webhooks/calendar/google"
GRAPH_PUSH_PATH = "/webhooks/calendar/microsoft"
GRAPH_LIFECYCLE_PATH = "/webhooks/calendar/microsoft/lifecycle"
# A first sync (or a resync) reads events from this long ago onwards.
LOOKBACK = timedelta(days=1)
# The notification channel under which an owner's own change reaches the caller.
OWNER_CHANNEL = "dashboard"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(watch: CalendarWatch, token: str | None) -> bool:
    if not token or watch.token_hash is None:
        return False
    return hmac.compare_digest(token_hash(token), watch.token_hash)


@dataclass
class SyncReport:
    moved: int = 0
    cancelled: int = 0
    foreign: int = 0
    refused: list[str] = field(default_factory=list)  # appointments written back
    failed: bool = False


class TwoWaySync:
    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        calendar_factory: CalendarFactory,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.calendar_factory = calendar_factory
        self.clock = clock

    # --- reading changes -------------------------------------------------------------

    def sync(self, connection_id: str) -> SyncReport:
        """Read and apply what changed in one connected calendar since the cursor."""
        report = SyncReport()
        with self.session_factory() as session:
            loaded = self._load(session, connection_id)
            if loaded is None:
                return report
            agent, calendar, cursor = loaded
            session.commit()  # no transaction held while the provider is called
            since = self.clock() - LOOKBACK
            try:
                try:
                    found, next_cursor = calendar.changes(cursor, since)
                    full = cursor is None
                except SyncExpired:
                    log.info("sync cursor of connection %s expired: full resync", connection_id)
                    found, next_cursor = calendar.changes(None, since)
                    full = True
            except CalendarError as exc:
                log.warning("two-way sync of connection %s failed: %s", connection_id, exc)
                # Keep what the backend recorded (needs_reconsent, the link texted once).
                session.commit()
                report.failed = True
                return report
            self._forget_free_busy(connection_id)
            for change in found:
                self._apply(session, agent, calendar.name, change, full, report)
            watch = self._watch(session, connection_id, calendar.name)
            watch.sync_token = next_cursor or None
            watch.last_synced_at = self.clock()
            try:
                session.commit()
            except IntegrityError:
                # A concurrent first sync made the row: its changes are the same ones.
                session.rollback()
                report.failed = True
                return report
        self._write_back(report.refused)
        return report

    def _write_back(self, appointment_ids: list[str]) -> None:
        """Put refused moves back at the booked time in the owner's calendar now; a
        failure leaves the row pending for the sweeper."""
        from app.calendar.sync import sync_one

        for appointment_id in appointment_ids:
            sync_one(self.session_factory, self.calendar_factory, self.clock, appointment_id)

    def poll_all(self) -> int:
        """The job engine's poll: every active connection, push or not (a push can be
        lost; the cursor makes a poll with nothing new one cheap call)."""
        with self.session_factory() as session:
            ids = list(
                session.scalars(
                    select(CalendarConnection.id).where(
                        CalendarConnection.status == "active",
                        CalendarConnection.provider.in_(PROVIDERS),
                    )
                )
            )
            session.commit()
        for connection_id in ids:
            self.sync(connection_id)
        return len(ids)

    def _load(self, session: Session, connection_id: str) -> tuple[Agent, Any, str | None] | None:
        connection = session.get(CalendarConnection, connection_id)
        if connection is None or connection.status != "active":
            return None
        agent = session.get(Agent, connection.agent_id)
        if agent is None:
            return None
        calendar = self.calendar_factory(session, agent)
        if calendar.name not in PROVIDERS or not hasattr(calendar, "changes"):
            return None
        watch = session.scalar(
            select(CalendarWatch).where(CalendarWatch.connection_id == connection_id)
        )
        return agent, calendar, watch.sync_token if watch else None

    def changed(self, connection_id: str) -> None:
        """A push said this calendar changed: stop trusting its cached free/busy now,
        before the changes are even read."""
        self._forget_free_busy(connection_id)

    def _forget_free_busy(self, connection_id: str) -> None:
        forget = getattr(self.calendar_factory, "forget_free_busy", None)
        if forget is not None:
            forget(connection_id)

    def _watch(self, session: Session, connection_id: str, provider: str) -> CalendarWatch:
        watch = session.scalar(
            select(CalendarWatch).where(CalendarWatch.connection_id == connection_id)
        )
        if watch is None:
            watch = CalendarWatch(connection_id=connection_id, provider=provider)
            session.add(watch)
        return watch

    # --- applying one change ---------------------------------------------------------

    def _apply(
        self,
        session: Session,
        agent: Agent,
        provider: str,
        change: EventChange,
        full: bool,
        report: SyncReport,
    ) -> None:
        appointment = session.scalar(
            select(Appointment)
            .where(
                Appointment.agent_id == agent.id,
                Appointment.external_event_id == change.event_id,
                Appointment.status == "confirmed",
            )
            # A push and a poll may read the same change: the second waits, then sees it.
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if appointment is None:
            report.foreign += 1
            return
        if appointment.sync_status == "pending":
            return  # our own write has not landed yet: it wins
        if change.deleted:
            if not full:  # a resync lists what exists; absence there proves nothing
                self._cancel(session, agent, provider, appointment)
                report.cancelled += 1
            return
        if change.start is None or change.end is None:
            return
        if (change.start, change.end) == (appointment.start_at, appointment.end_at):
            return  # our own write coming back, or a change to something else
        if self._move(session, agent, provider, appointment, change.start, change.end, report):
            report.moved += 1

    def _cancel(
        self, session: Session, agent: Agent, provider: str, appointment: Appointment
    ) -> None:
        now = self.clock()
        appointment.status = "cancelled"
        appointment.cancelled_at = now
        appointment.sync_status = "synced"  # the calendar already has it gone
        session.flush()
        audit.record(
            session,
            "appointment.cancelled_by_owner",
            actor=provider,
            subject=appointment.id,
            details={"agent_id": agent.id, "event_source": provider},
        )
        notifications.on_change(
            session,
            agent,
            appointment,
            "cancelled",
            now=now,
            channel=OWNER_CHANNEL,
            caller=appointment.contact_e164,
        )
        log.info("appointment %s cancelled in the owner's %s calendar", appointment.id, provider)

    def _move(
        self,
        session: Session,
        agent: Agent,
        provider: str,
        appointment: Appointment,
        start: datetime,
        end: datetime,
        report: SyncReport,
    ) -> bool:
        before = appointment.start_at
        if _overlaps_another(session, appointment, start, end):
            self._refuse_move(session, agent, provider, appointment, start)
            report.refused.append(appointment.id)
            return False
        try:
            # PostgreSQL's exclusion constraint also catches a booking made meanwhile.
            with session.begin_nested():
                appointment.start_at, appointment.end_at = start, end
                appointment.sync_status = "synced"
                session.flush()
        except IntegrityError:
            session.refresh(appointment)
            self._refuse_move(session, agent, provider, appointment, start)
            report.refused.append(appointment.id)
            return False
        outside = not within_hours(agent, start, end)
        audit.record(
            session,
            "appointment.moved_by_owner",
            actor=provider,
            subject=appointment.id,
            details={"from": before.isoformat(), "to": start.isoformat(), "outside_hours": outside},
        )
        notifications.on_change(
            session,
            agent,
            appointment,
            "moved",
            now=self.clock(),
            channel=OWNER_CHANNEL,
            caller=appointment.contact_e164,
        )
        if outside:
            zone = ZoneInfo(agent.timezone)
            self._tell_owner(
                session,
                agent,
                appointment,
                "owner_outside_hours",
                start,
                f"{_who(appointment)}'s {appointment.appointment_type} is now "
                f"{notifications.when_text(start, zone)}, as you moved it in your calendar. "
                "That is outside your agent's hours; the caller has been told the new time.",
            )
        log.info("appointment %s moved in the owner's %s calendar", appointment.id, provider)
        return True

    def _refuse_move(
        self,
        session: Session,
        agent: Agent,
        provider: str,
        appointment: Appointment,
        wanted: datetime,
    ) -> None:
        """Another confirmed booking holds the time the owner chose: the booked time
        stands and goes back into their calendar; the owner is told, the caller not."""
        now = self.clock()
        appointment.sync_status = "pending"
        appointment.next_sync_at = now
        audit.record(
            session,
            "calendar.owner_move_refused",
            actor=provider,
            subject=appointment.id,
            details={
                "agent_id": agent.id,
                "reason": "overlaps another booking",
                "wanted": wanted.isoformat(),
                "kept": appointment.start_at.isoformat(),
            },
        )
        zone = ZoneInfo(agent.timezone)
        self._tell_owner(
            session,
            agent,
            appointment,
            "owner_move_refused",
            wanted,
            f"You moved {_who(appointment)}'s {appointment.appointment_type} to "
            f"{notifications.when_text(wanted, zone)} in your calendar, but another booking "
            f"holds that time. It stays on {notifications.when_text(appointment.start_at, zone)}"
            " and is back there in your calendar; the caller was not told of any change.",
        )

    def _tell_owner(
        self,
        session: Session,
        agent: Agent,
        appointment: Appointment,
        kind: str,
        wanted: datetime,
        body: str,
    ) -> None:
        """One text to the owner's verified phone per appointment, kind and time asked
        for: a push and a poll reading the same change send it once."""
        owner = notifications.owner_number(session, agent)
        key = f"{appointment.id}:{kind}:{int(wanted.timestamp())}"
        if owner is None or session.scalar(
            select(Notification.id).where(Notification.dedupe_key == key)
        ):
            return
        now = self.clock()
        session.add(
            Notification(
                agent_id=agent.id,
                appointment_id=appointment.id,
                kind=kind,
                channel="sms",
                to_e164=owner,
                from_e164=notifications.sending_number(session, agent.id),
                body=body,
                due_at=now,
                status="scheduled",
                attempts=0,
                dedupe_key=key,
            )
        )

    # --- push channels and subscriptions ---------------------------------------------

    def push_possible(self) -> bool:
        # Google and Graph only deliver to https addresses they can reach.
        return self.settings.calendar_push_enabled and self.settings.public_base_url.startswith(
            "https://"
        )

    def ensure_watches(self) -> int:
        """Open a channel for every active connection without a live one and renew
        those expiring within CALENDAR_WATCH_RENEW_HOURS; how many were opened or renewed."""
        if not self.push_possible():
            return 0
        renew_by = self.clock() + timedelta(hours=self.settings.calendar_watch_renew_hours)
        with self.session_factory() as session:
            ids = list(
                session.scalars(
                    select(CalendarConnection.id)
                    .outerjoin(CalendarWatch, CalendarWatch.connection_id == CalendarConnection.id)
                    .where(
                        CalendarConnection.status == "active",
                        CalendarConnection.provider.in_(PROVIDERS),
                        (CalendarWatch.channel_id.is_(None))
                        | (CalendarWatch.expires_at.is_(None))
                        | (CalendarWatch.expires_at <= renew_by),
                    )
                )
            )
            session.commit()
        return sum(1 for connection_id in ids if self.watch(connection_id))

    def watch(self, connection_id: str) -> bool:
        """Open (or renew) the push channel of one connection."""
        seconds = int(self.settings.calendar_watch_hours * 3600)
        base = self.settings.public_base_url
        with self.session_factory() as session:
            loaded = self._load(session, connection_id)
            if loaded is None:
                return False
            _, calendar, _ = loaded
            watch = self._watch(session, connection_id, calendar.name)
            old = (watch.channel_id, watch.resource_id)
            session.commit()
            secret = secrets.token_urlsafe(32)
            try:
                if calendar.name == "microsoft" and old[0]:
                    expires = calendar.renew(old[0], seconds)
                    if expires is not None:
                        watch.expires_at = expires
                        self._audit_watch(session, watch, connection_id, "renewed")
                        session.commit()
                        return True
                if calendar.name == "microsoft":
                    channel = calendar.watch(
                        base + GRAPH_PUSH_PATH, base + GRAPH_LIFECYCLE_PATH, secret, seconds
                    )
                else:
                    channel = calendar.watch(base + GOOGLE_PUSH_PATH, secret, seconds)
            except CalendarError as exc:
                log.warning("push channel for connection %s not opened: %s", connection_id, exc)
                return False
            watch.channel_id = channel.channel_id
            watch.resource_id = channel.resource_id
            watch.token_hash = token_hash(secret)
            watch.expires_at = channel.expires_at
            self._audit_watch(session, watch, connection_id, "opened")
            session.commit()
            if calendar.name == "google" and old[0]:
                # Google channels cannot be extended: the new one is live, stop the old.
                self._stop_quietly(calendar, old[0], old[1])
        return True

    def _audit_watch(
        self, session: Session, watch: CalendarWatch, connection_id: str, what: str
    ) -> None:
        audit.record(
            session,
            f"calendar.watch_{what}",
            actor="system",
            subject=connection_id,
            details={"provider": watch.provider, "expires_at": str(watch.expires_at)},
        )

    @staticmethod
    def _stop_quietly(calendar: Any, channel_id: str, resource_id: str | None) -> None:
        try:
            calendar.stop(channel_id, resource_id)
        except CalendarError as exc:
            log.warning("stopping a push channel failed (it expires by itself): %s", exc)


def within_hours(agent: Agent, start: datetime, end: datetime) -> bool:
    """Whether [start, end) lies inside one of the agent's opening windows."""
    schedule = schedule_for(agent)
    day = schedule.local_day(start)
    windows = schedule.open_windows(day) + schedule.open_windows(day - timedelta(days=1))
    return any(w.start <= start and end <= w.end for w in windows)


def _overlaps_another(
    session: Session, appointment: Appointment, start: datetime, end: datetime
) -> bool:
    """The rule the PostgreSQL exclusion constraint enforces, asked of any database."""
    clash = session.scalar(
        select(Appointment.id)
        .where(
            Appointment.agent_id == appointment.agent_id,
            Appointment.id != appointment.id,
            Appointment.status == "confirmed",
            Appointment.start_at < end,
            Appointment.end_at > start,
        )
        .limit(1)
    )
    return clash is not None


def _who(appointment: Appointment) -> str:
    return appointment.contact_name or "A caller"


def stop_push(session: Session, calendar_factory: CalendarFactory, agent: Agent) -> None:
    """On disconnect, before the token is erased: stop the provider's pushes and forget
    the channel and cursor. Best effort: a channel we cannot stop expires by itself, and
    its notifications are refused once its row is gone."""
    connection = session.scalar(
        select(CalendarConnection).where(CalendarConnection.agent_id == agent.id)
    )
    if connection is None:
        return
    watch = session.scalar(
        select(CalendarWatch).where(CalendarWatch.connection_id == connection.id)
    )
    if watch is None:
        return
    if watch.channel_id and connection.status == "active":
        calendar = calendar_factory(session, agent)
        if hasattr(calendar, "stop"):
            TwoWaySync._stop_quietly(calendar, watch.channel_id, watch.resource_id)
    session.delete(watch)
    audit.record(
        session, "calendar.watch_stopped", actor="system", subject=connection.id, details={}
    )
    session.flush()


def find_watch(session: Session, channel_id: str | None) -> CalendarWatch | None:
    if not channel_id:
        return None
    return session.scalar(select(CalendarWatch).where(CalendarWatch.channel_id == channel_id))
