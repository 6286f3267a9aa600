"""Delivering notification rows: claim, send once, record the outcome.

At most once: a row is claimed (status "sending", committed) before Twilio is called,
and only a worker holding the claim records the outcome. A worker that dies between the
claim and the answer leaves the row "sending"; after NOTIFY_SEND_LEASE_SECONDS `reap`
marks it "unknown", and nobody resends it blindly. Twilio's 429/503 (it did not take the
message) go back to "scheduled" with a backoff; timeouts and other 5xx are "unknown".

When: the send planner (sendplan.py) gives each row its send_at, early enough for a
burst to finish by its due time. A claim takes a batch of rows whose send_at has come
(SKIP LOCKED, so workers take disjoint rows) in one transaction, and paces them per
number with sms_sender_pace (each number's next free slot, shared by every worker
process), so SMS_SENDER_MPS holds even for rows the planner has not seen yet. A batch's
outcomes are recorded together in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from app.clock import Clock
from app.config import Settings
from app.models import Appointment, AppointmentStatus, Notification, SenderPace, SmsOptOut
from app.notifications import replies
from app.notifications.outbound import (
    NotConfigured,
    Outbound,
    OutboundSender,
    Refused,
    Unknown,
)
from app.phone import mask

log = logging.getLogger(__name__)
STATUS_PATH = "/webhooks/twilio/notifications/status"
CALL_PATH = "/webhooks/twilio/notifications/call"
RETRY_BASE = timedelta(seconds=30)


@dataclass(frozen=True)
class DeliveryConfig:
    agent_number: str
    public_base_url: str
    mps: float = 1.0
    batch: int = 50
    lease: timedelta = timedelta(seconds=120)
    max_attempts: int = 5
    # A claim takes rows whose send time comes within this (the worker waits for it),
    # so a row goes out on time rather than at the next tick after it.
    lookahead: timedelta = timedelta(0)

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        return cls(
            agent_number=settings.agent_number,
            public_base_url=settings.public_base_url,
            mps=settings.sms_sender_mps,
            batch=settings.notify_batch,
            lease=timedelta(seconds=settings.notify_send_lease_seconds),
            max_attempts=settings.notify_max_attempts,
            lookahead=timedelta(seconds=settings.notify_tick_seconds),
        )


@dataclass(frozen=True)
class Claimed:
    id: str
    channel: str
    kind: str
    to: str
    from_: str
    body: str
    send_at: datetime
    attempts: int


@dataclass(frozen=True)
class Outcome:
    item: Claimed
    status: str
    at: datetime
    sid: str | None = None
    reason: str | None = None


@dataclass
class DrainReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    outcomes: list[str] = field(default_factory=list)

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.unknown + self.skipped


class Deliverer:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        sender: OutboundSender,
        clock: Clock,
        config: DeliveryConfig,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session_factory = session_factory
        self.sender = sender
        self.clock = clock
        self.config = config
        self.sleep = sleep
        self._skipped = 0

    # --- the loop a job runs ----------------------------------------------------------

    def drain(self, max_claims: int = 1000) -> DrainReport:
        """Claim, send and record batch by batch until nothing is eligible."""
        report = DrainReport()
        for _ in range(max_claims):
            self._skipped = 0
            claimed = self.claim()
            report.skipped += self._skipped
            if not claimed and not self._skipped:
                break
            for label in self.record([self.send(item) for item in claimed]):
                report.add(label)
        return report

    def deliver(self, item: Claimed) -> str:
        """Send one claimed row and record its outcome."""
        [label] = self.record([self.send(item)])
        return label

    # --- claiming -----------------------------------------------------------------

    def claim(self) -> list[Claimed]:
        """A batch of rows whose send time has come, paced per number, in one
        transaction (rows locked SKIP LOCKED: concurrent workers take disjoint rows)."""
        now = self.clock()
        with self.session_factory() as session:
            rows = list(
                session.scalars(
                    select(Notification)
                    .where(
                        Notification.status == "scheduled",
                        Notification.send_at <= now + self.config.lookahead,
                    )
                    .order_by(Notification.send_at, Notification.id)
                    .limit(self.config.batch)
                    .with_for_update(skip_locked=True)
                )
            )
            rows = self._without_skipped(session, rows, now)
            slots = self._paced(session, rows, now) if self.config.mps > 0 else {}
            claimed = [
                self._mark_sending(row, slots.get(row.id, max(row.send_at, now)))
                for row in rows
                if self.config.mps <= 0 or row.id in slots
            ]
            session.commit()
        return sorted(claimed, key=lambda item: item.send_at)

    def _paced(
        self, session: Session, rows: list[Notification], now: datetime
    ) -> dict[str, datetime]:
        """Each row's slot on its number, for rows whose slot comes within the
        lookahead; numbers another worker holds right now are left for later."""
        senders = sorted({self._from(row) for row in rows})
        if not senders:
            return {}
        self._add_paces(session, senders, now)
        paces = {
            pace.from_e164: pace
            for pace in session.scalars(
                select(SenderPace)
                .where(SenderPace.from_e164.in_(senders))
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
        }
        gap = timedelta(seconds=1 / self.config.mps)
        limit = now + self.config.lookahead
        slots: dict[str, datetime] = {}
        for row in sorted(rows, key=lambda r: (r.send_at, r.id)):
            pace = paces.get(self._from(row))
            if pace is None:
                continue
            slot = max(pace.next_free_at, row.send_at, now)
            if slot > limit:
                continue  # its number is busy until after this round
            slots[row.id] = slot
            pace.next_free_at = slot + gap
        return slots

    def _from(self, row: Notification) -> str:
        return row.from_e164 or self.config.agent_number

    def _add_paces(self, session: Session, senders: list[str], now: datetime) -> None:
        """Pace rows for new numbers, inserted in sorted order so two workers adding the
        same numbers wait on each other instead of deadlocking."""
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        known = set(
            session.scalars(select(SenderPace.from_e164).where(SenderPace.from_e164.in_(senders)))
        )
        missing = [sender for sender in senders if sender not in known]
        if missing:
            session.execute(
                insert(SenderPace)
                .values([{"from_e164": sender, "next_free_at": now} for sender in missing])
                .on_conflict_do_nothing(index_elements=["from_e164"])
            )

    def _mark_sending(self, row: Notification, send_at: datetime) -> Claimed:
        row.status = "sending"
        row.claimed_at = send_at
        row.attempts = (row.attempts or 0) + 1
        return Claimed(
            id=row.id,
            channel=row.channel,
            kind=row.kind,
            to=row.to_e164,
            from_=self._from(row),
            body=row.body,
            send_at=send_at,
            attempts=row.attempts,
        )

    # --- sending ------------------------------------------------------------------

    def send(self, item: Claimed) -> Outcome:
        """Call Twilio once, at the claimed slot; classify what came back."""
        wait = (item.send_at - self.clock()).total_seconds()
        if wait > 0:
            self.sleep(wait)
        try:
            sid = self._call_twilio(item)
        except NotConfigured:
            return self._outcome(item, "failed", reason="no Twilio account configured")
        except Refused as exc:
            if exc.retryable and item.attempts < self.config.max_attempts:
                return self._outcome(item, "scheduled", reason=f"twilio {exc.status}, retrying")
            return self._outcome(item, "failed", reason=f"twilio {exc.status} code {exc.code}")
        except Unknown as exc:
            log.warning("notification %s: outcome unknown (%s)", item.id, exc)
            return self._outcome(item, "unknown", reason=f"no answer from twilio: {exc}")
        return self._outcome(item, "sent", sid=sid)

    def _outcome(
        self, item: Claimed, status: str, *, sid: str | None = None, reason: str | None = None
    ) -> Outcome:
        return Outcome(item, status, self.clock(), sid, reason)

    def _call_twilio(self, item: Claimed) -> str:
        base = self.config.public_base_url
        message = Outbound(
            to=item.to,
            from_=item.from_,
            body=item.body,
            status_callback=f"{base}{STATUS_PATH}",
        )
        if item.channel == "call":
            message.twiml = replies.call_twiml(item.id, item.body, base + CALL_PATH)
            return self.sender.start_call(message)
        return self.sender.send_sms(message)

    def _without_skipped(
        self, session: Session, rows: list[Notification], now: datetime
    ) -> list[Notification]:
        """Mark rows that must not go out "skipped" (with the reason), in the claim's
        transaction; return the rest. Checked at claim time, a moment before sending."""
        numbers = {row.to_e164 for row in rows if row.channel == "sms"}
        opted_out = (
            set(session.scalars(select(SmsOptOut.e164).where(SmsOptOut.e164.in_(numbers))))
            if numbers
            else set()
        )
        reminder_of = {row.appointment_id for row in rows if row.kind.startswith("reminder")}
        booked = (
            set(
                session.scalars(
                    select(Appointment.id).where(
                        Appointment.id.in_(reminder_of),
                        Appointment.status == AppointmentStatus.CONFIRMED,
                    )
                )
            )
            if reminder_of
            else set()
        )
        keep = []
        for row in rows:
            reason = None
            if row.channel == "sms" and row.to_e164 in opted_out:
                reason = "opted out (STOP)"
            elif row.kind.startswith("reminder") and row.appointment_id not in booked:
                reason = "appointment no longer booked"
            if reason is None:
                keep.append(row)
            else:
                row.status, row.reason, row.status_at = "skipped", reason, now
                self._skipped += 1
        return keep

    # --- recording ----------------------------------------------------------------

    def record(self, outcomes: list[Outcome]) -> list[str]:
        """Write a batch's outcomes in one transaction. Only the holder of a claim
        records: a row the reaper already marked "unknown" stays so."""
        if not outcomes:
            return []
        with self.session_factory() as session:
            held = {
                row.id: row
                for row in session.scalars(
                    select(Notification)
                    .where(
                        Notification.id.in_([o.item.id for o in outcomes]),
                        Notification.status == "sending",
                    )
                    .with_for_update()
                )
            }
            reminded = []
            for outcome in outcomes:
                row = held.get(outcome.item.id)
                if row is None:
                    continue
                self._apply(row, outcome)
                if outcome.status == "sent" and row.kind == "reminder":
                    reminded.append(row)
            replies.remember_reminders(session, reminded, outcomes[-1].at)
            session.commit()
        for outcome in outcomes:
            if outcome.status != "sent":
                log.info(
                    "notification %s to %s: %s (%s)",
                    outcome.item.id,
                    mask(outcome.item.to),
                    outcome.status,
                    outcome.reason,
                )
        return [{"scheduled": "retried"}.get(o.status, o.status) for o in outcomes]

    def _apply(self, row: Notification, outcome: Outcome) -> None:
        row.status, row.reason, row.status_at = outcome.status, outcome.reason, outcome.at
        if outcome.sid is not None:
            row.provider_sid, row.sent_at = outcome.sid, outcome.at
        if outcome.status == "scheduled":
            retry_at = outcome.at + RETRY_BASE * 2 ** (outcome.item.attempts - 1)
            row.due_at = row.send_at = row.not_before = retry_at
            row.claimed_at = None

    # --- housekeeping -----------------------------------------------------------------

    def reap(self) -> int:
        """Claims older than the lease: the worker died mid-send. Never resent."""
        cutoff = self.clock() - self.config.lease
        with self.session_factory() as session:
            done = session.execute(
                update(Notification)
                .where(Notification.status == "sending", Notification.claimed_at < cutoff)
                .values(
                    status="unknown",
                    reason="worker stopped before Twilio answered; not resent",
                    status_at=self.clock(),
                )
                .execution_options(synchronize_session=False)
            )
            session.commit()
        return int(cast(CursorResult[Any], done).rowcount or 0)
