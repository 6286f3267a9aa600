"""Delivering notification rows: claim, send once, record the outcome.

At most once: a row is claimed (status "sending", committed) before Twilio is called,
and only a worker holding the claim records the outcome. A worker that dies between the
claim and the answer leaves the row "sending"; after NOTIFY_SEND_LEASE_SECONDS `reap`
marks it "unknown", and nobody resends it blindly. Twilio's 429/503 (it did not take the
message) go back to "scheduled" with a backoff; timeouts and other 5xx are "unknown".

Pacing: each sending number has a row in sms_sender_pace holding its next free slot.
A claim locks free numbers' rows (SKIP LOCKED, so workers take disjoint numbers) and
takes one message per number whose slot has come, so every worker process shares
SMS_SENDER_MPS and no worker waits on one number while others have work. A burst of
due messages becomes eligible 1.5 x `backlog / rate` seconds early (at most
NOTIFY_MAX_EARLY_MINUTES), so the last of them still goes out on time.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
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
EARLY_HEADROOM = 1.5


@dataclass(frozen=True)
class DeliveryConfig:
    agent_number: str
    public_base_url: str
    mps: float = 1.0
    batch: int = 50
    lease: timedelta = timedelta(seconds=120)
    max_early: timedelta = timedelta(minutes=30)
    max_attempts: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryConfig:
        return cls(
            agent_number=settings.agent_number,
            public_base_url=settings.public_base_url,
            mps=settings.sms_sender_mps,
            batch=settings.notify_batch,
            lease=timedelta(seconds=settings.notify_send_lease_seconds),
            max_early=timedelta(minutes=settings.notify_max_early_minutes),
            max_attempts=settings.notify_max_attempts,
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
        """Claim and send until nothing is eligible (or max_claims rounds)."""
        report = DrainReport()
        for _ in range(max_claims):
            self._skipped = 0
            claimed = self.claim()
            report.skipped += self._skipped
            if not claimed and not self._skipped:
                break
            for item in claimed:
                report.add(self.deliver(item))
        return report

    # --- claiming -----------------------------------------------------------------

    def claim(self) -> list[Claimed]:
        if self.config.mps <= 0:
            return self._claim_unpaced()
        return self._claim_paced()

    def _claim_unpaced(self) -> list[Claimed]:
        now = self.clock()
        with self.session_factory() as session:
            rows = list(
                session.scalars(
                    select(Notification)
                    .where(Notification.status == "scheduled", Notification.due_at <= now)
                    .order_by(Notification.due_at)
                    .limit(self.config.batch)
                    .with_for_update(skip_locked=True)
                )
            )
            claimed = [
                self._mark_sending(row, now) for row in self._without_skipped(session, rows, now)
            ]
            session.commit()
        return claimed

    def _senders_with_work(self, session: Session, now: datetime) -> list[str]:
        """Numbers with eligible-soon work and a free slot now (others would refuse)."""
        return list(
            session.scalars(
                select(Notification.from_e164)
                .outerjoin(SenderPace, SenderPace.from_e164 == Notification.from_e164)
                .where(
                    Notification.status == "scheduled",
                    Notification.due_at <= now + self.config.max_early,
                    or_(SenderPace.next_free_at.is_(None), SenderPace.next_free_at <= now),
                )
                .group_by(Notification.from_e164)
                .limit(self.config.batch * 4)
            )
        )

    def _claim_paced(self) -> list[Claimed]:
        """One row per free number, up to a batch, in one transaction. Pace rows are
        locked with SKIP LOCKED, so concurrent workers take disjoint numbers."""
        now = self.clock()
        gap = timedelta(seconds=1 / self.config.mps)
        with self.session_factory() as session:
            senders = self._senders_with_work(session, now)
            if not senders:
                session.commit()
                return []
            self._add_paces(session, senders, now)
            random.shuffle(senders)  # workers spread over numbers instead of queueing
            claimed: list[Claimed] = []
            for pace in self._lock_free_paces(session, senders, now):
                row = self._eligible(session, pace.from_e164, now)
                if row is None:
                    continue
                slot = max(pace.next_free_at, now)
                if not self._without_skipped(session, [row], now):
                    continue  # skipped: the number's slot stays free
                claimed.append(self._mark_sending(row, slot))
                pace.next_free_at = slot + gap
            session.commit()
        return claimed

    def _add_paces(self, session: Session, senders: list[str], now: datetime) -> None:
        """Pace rows for new numbers, committed on their own and in sorted order, so two
        workers adding the same numbers wait on each other instead of deadlocking."""
        known = set(
            session.scalars(select(SenderPace.from_e164).where(SenderPace.from_e164.in_(senders)))
        )
        missing = sorted(set(senders) - known)
        if not missing:
            return
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(
            insert(SenderPace)
            .values([{"from_e164": sender, "next_free_at": now} for sender in missing])
            .on_conflict_do_nothing(index_elements=["from_e164"])
        )
        session.commit()

    def _lock_free_paces(
        self, session: Session, senders: list[str], now: datetime
    ) -> list[SenderPace]:
        return list(
            session.scalars(
                select(SenderPace)
                .where(SenderPace.from_e164.in_(senders), SenderPace.next_free_at <= now)
                .limit(self.config.batch)
                .with_for_update(skip_locked=True)
                .execution_options(populate_existing=True)
            )
        )

    def _eligible(self, session: Session, sender: str, now: datetime) -> Notification | None:
        """The next row due by now + lead, where lead = backlog / rate: a burst on one
        number starts early enough for its last message to go out on time."""
        horizon = now + self.config.max_early
        backlog = session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.from_e164 == sender,
                Notification.status == "scheduled",
                Notification.due_at <= horizon,
            )
        )
        # Headroom: a worker sends when its tick comes round, so the achieved rate is
        # below the nominal one (measured ~0.76 of it on a loaded machine).
        seconds = (backlog or 0) * EARLY_HEADROOM / self.config.mps
        lead = min(timedelta(seconds=seconds), self.config.max_early)
        return session.scalar(
            select(Notification)
            .where(
                Notification.from_e164 == sender,
                Notification.status == "scheduled",
                Notification.due_at <= now + lead,
            )
            .order_by(Notification.due_at, Notification.id)
            .limit(1)
            .with_for_update(skip_locked=True)
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
            from_=row.from_e164 or self.config.agent_number,
            body=row.body,
            send_at=send_at,
            attempts=row.attempts,
        )

    # --- sending ------------------------------------------------------------------

    def deliver(self, item: Claimed) -> str:
        wait = (item.send_at - self.clock()).total_seconds()
        if wait > 0:
            self.sleep(wait)
        try:
            sid = self._send(item)
        except NotConfigured:
            return self._finish(item, "failed", reason="no Twilio account configured")
        except Refused as exc:
            if exc.retryable and item.attempts < self.config.max_attempts:
                return self._finish(item, "scheduled", reason=f"twilio {exc.status}, retrying")
            return self._finish(item, "failed", reason=f"twilio {exc.status} code {exc.code}")
        except Unknown as exc:
            log.warning("notification %s: outcome unknown (%s)", item.id, exc)
            return self._finish(item, "unknown", reason=f"no answer from twilio: {exc}")
        return self._finish(item, "sent", sid=sid)

    def _send(self, item: Claimed) -> str:
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

    def _finish(
        self, item: Claimed, status: str, *, sid: str | None = None, reason: str | None = None
    ) -> str:
        now = self.clock()
        values: dict[str, object] = {"status": status, "reason": reason, "status_at": now}
        if sid is not None:
            values.update(provider_sid=sid, sent_at=now)
        if status == "scheduled":
            values["due_at"] = now + RETRY_BASE * 2 ** (item.attempts - 1)
            values["claimed_at"] = None
        with self.session_factory() as session:
            # Only the holder of the claim records: a reaped row stays "unknown".
            done = session.execute(
                update(Notification)
                .where(Notification.id == item.id, Notification.status == "sending")
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            changed = cast(CursorResult[Any], done).rowcount
            if changed and status == "sent" and item.kind == "reminder":
                replies.remember_reminder(session, item.id, now)
            session.commit()
        if status != "sent":
            log.info("notification %s to %s: %s (%s)", item.id, mask(item.to), status, reason)
        return {"scheduled": "retried"}.get(status, status)

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
