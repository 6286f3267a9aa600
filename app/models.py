"""SQLAlchemy models. Every datetime is UTC (UTCDateTime); ids are prefixed random strings."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime


class AppointmentStatus(StrEnum):
    CONFIRMED = "confirmed"  # holds its time
    CANCELLED = "cancelled"


class SyncStatus(StrEnum):
    """Where an appointment stands with an external calendar."""

    SYNCED = "synced"
    PENDING = "pending"  # still to be written; the sweeper retries it
    NOT_APPLICABLE = "not_applicable"  # no external calendar


# Ids come from the OS's CSPRNG (os.urandom, what secrets.token_hex reads), fetched for
# many ids at once: one getrandom syscall per id was a visible part of a turn's kernel
# time. Each thread takes from its own batch, so no id is handed to two threads; the
# taking is one C-level `next`, so a signal handler that makes an id mid-call takes the
# next one, never the same. A forked child starts with no batch (`_forget_batches`): it
# must not hand out ids its parent will hand out too.
_IDS_PER_FETCH = 256
_ID_HEX = 16  # 8 random bytes, as token_hex(8)


class _Batches(threading.local):
    def __init__(self) -> None:
        self.take: Callable[[], str] = iter(()).__next__


_batches = _Batches()


def _fetch() -> Callable[[], str]:
    text = os.urandom(_IDS_PER_FETCH * _ID_HEX // 2).hex()
    take = iter([text[i : i + _ID_HEX] for i in range(0, len(text), _ID_HEX)]).__next__
    _batches.take = take
    return take


def _forget_batches() -> None:
    global _batches
    _batches = _Batches()


os.register_at_fork(after_in_child=_forget_batches)


def new_id(prefix: str) -> str:
    """`prefix`, "_" and 16 hex digits of 8 random bytes, as `secrets.token_hex(8)`."""
    try:
        return f"{prefix}_{_batches.take()}"
    except StopIteration:
        return f"{prefix}_{_fetch()()}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("usr"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))

    agents: Mapped[list[Agent]] = relationship(back_populates="user", cascade="all, delete")
    phone_numbers: Mapped[list[PhoneNumber]] = relationship(
        back_populates="user", cascade="all, delete"
    )


class PhoneNumber(TimestampMixin, Base):
    """A number we know. `caller`: a user's own phone, which on the shared line reaches
    that user's agent once verified. `agent_line`: a number dedicated to one agent, which
    every caller reaches."""

    __tablename__ = "phone_numbers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("pn"))
    e164: Mapped[str] = mapped_column(String(20), unique=True)
    purpose: Mapped[str] = mapped_column(String(16), default="caller")
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="phone_numbers")


class Agent(TimestampMixin, Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("agt"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # {"mon": [["09:00", "17:00"]], ...}; a missing day is closed.
    weekly_hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # [{"key": "haircut", "name": "Haircut", "duration_minutes": 30,
    #   "buffer_before_minutes": 0, "buffer_after_minutes": 10}]
    appointment_types: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    slot_step_minutes: Mapped[int] = mapped_column(Integer, default=15)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, default=60)
    horizon_days: Mapped[int] = mapped_column(Integer, default=60)
    daily_cap: Mapped[int | None] = mapped_column(Integer)
    greeting: Mapped[str] = mapped_column(Text, default="")
    instructions: Mapped[str] = mapped_column(Text, default="")
    # "strict": an unattested caller must pass the PIN before listing, moving or cancelling.
    caller_id_policy: Mapped[str] = mapped_column(String(16), default="strict")
    pin_hash: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16), default="en-US")
    voice: Mapped[str | None] = mapped_column(String(64))
    # What callers ask besides times: answered from the owner's own words.
    address: Mapped[str] = mapped_column(Text, default="")
    services_description: Mapped[str] = mapped_column(Text, default="")
    # [{"question": "Do you take walk-ins?", "answer": "No, by appointment only."}]
    faq: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # "gather" (Twilio speech recognition) or "stream" (Media Streams + Deepgram).
    voice_mode: Mapped[str] = mapped_column(String(16), default="gather")
    calendar_provider: Mapped[str] = mapped_column(String(16), default="local")
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    user: Mapped[User] = relationship(back_populates="agents")


class BusyBlock(TimestampMixin, Base):
    """Time the owner blocked in the built-in calendar (not an appointment)."""

    __tablename__ = "busy_blocks"
    __table_args__ = (Index("ix_busy_blocks_agent_range", "agent_id", "start_at", "end_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    label: Mapped[str] = mapped_column(String(200), default="busy")


class Appointment(TimestampMixin, Base):
    __tablename__ = "appointments"
    __table_args__ = (
        UniqueConstraint("agent_id", "idempotency_key", name="uq_appointments_idempotency"),
        # A caller's bookings with an agent, newest first: every turn reads the name they
        # last gave (app/agent/conversations.py) without sorting all their bookings.
        Index("ix_appointments_agent_contact_created", "agent_id", "contact_e164", "created_at"),
        Index("ix_appointments_start_id", "start_at", "id"),
        # (agent_id, start_at) alone is this index's prefix: alembic 0011_booking_keys.
        Index("ix_appointments_agent_start_id", "agent_id", "start_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("apt"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    appointment_type: Mapped[str] = mapped_column(String(64))
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=AppointmentStatus.CONFIRMED)
    contact_e164: Mapped[str | None] = mapped_column(String(20))
    contact_name: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    external_event_id: Mapped[str | None] = mapped_column(String(1024))
    sync_status: Mapped[str] = mapped_column(String(16), default=SyncStatus.NOT_APPLICABLE)
    channel: Mapped[str] = mapped_column(String(16), default="sms")
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    notes: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # External calendar sync: retried until it lands (the database is the source of truth).
    sync_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_sync_error: Mapped[str | None] = mapped_column(String(500))


class Conversation(TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_conversations_channel"),
        Index("ix_conversations_created", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cnv"))
    channel: Mapped[str] = mapped_column(String(16))
    # SMS: "<agent id>:<caller>"; voice: CallSid; VAPI: call id.
    external_id: Mapped[str] = mapped_column(String(128))
    caller_e164: Mapped[str | None] = mapped_column(String(20))
    agent_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(32), default="active")
    # Provider reports: summary, transcript, recording URL, ended reason, cost, ...
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", cascade="all, delete", order_by="Message.id"
    )


class Message(TimestampMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(8))  # "in" | "out"
    body: Mapped[str] = mapped_column(Text, default="")
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    external_id: Mapped[str | None] = mapped_column(String(64))

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class InboundEvent(TimestampMixin, Base):
    """Each provider event once: a retry finds its row and gets the stored response."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("provider", "external_id", name="uq_inbound_events_provider"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    response: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_action_at", "action", "at"),
        Index("ix_audit_log_subject", "subject"),
        Index("ix_audit_log_actor_at", "actor", "at"),
        # The seal's queue: entries not chained yet, in id order.
        Index(
            "ix_audit_log_unsealed",
            "id",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
        # Unique among the entries that have them: an unsealed entry has neither, and a
        # constraint's index would hold its NULL keys too (a page write per turn for no
        # query: alembic 0010_audit_keys).
        *(
            Index(
                f"uq_audit_log_{key}",
                key,
                unique=True,
                postgresql_where=text(f"{key} IS NOT NULL"),
                sqlite_where=text(f"{key} IS NOT NULL"),
            )
            for key in ("seq", "hash")
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # HMAC of the content under AUDIT_SIGNING_KEY, written with the entry (no lock).
    mac: Mapped[str] = mapped_column(String(64))
    # Set by the seal (app/security/audit.py): position in the chain and its links.
    seq: Mapped[int | None] = mapped_column(Integer)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


class AuditCheckpoint(Base):
    """One sealed batch: the chain's head at `seq`, signed with a key not in the database."""

    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    first_seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    signature: Mapped[str] = mapped_column(String(64))


class SmsOptOut(Base):
    __tablename__ = "sms_opt_outs"

    e164: Mapped[str] = mapped_column(String(20), primary_key=True)
    opted_out_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarConnection(TimestampMixin, Base):
    """An agent's external calendar. The refresh token is Fernet-encrypted (token vault)."""

    __tablename__ = "calendar_connections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cal"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), unique=True)
    provider: Mapped[str] = mapped_column(String(16), default="google")
    calendar_id: Mapped[str] = mapped_column(String(320), default="primary")
    account_email: Mapped[str | None] = mapped_column(String(320))
    encrypted_refresh_token: Mapped[str | None] = mapped_column(Text)
    scopes: Mapped[str | None] = mapped_column(Text)
    # "active", "needs_reconsent", "disconnected"
    status: Mapped[str] = mapped_column(String(24), default="active")
    last_error: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CalendarWatch(TimestampMixin, Base):
    """Two-way sync of one connected calendar: its push channel (Google events.watch) or
    subscription (Graph), the secret it carries (stored as SHA-256 only) and the cursor
    of changes read so far (Google sync token, Graph delta link)."""

    __tablename__ = "calendar_watches"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cw"))
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("calendar_connections.id", ondelete="CASCADE"), unique=True
    )
    provider: Mapped[str] = mapped_column(String(16))
    # Google channel id / Graph subscription id; None while polling only.
    channel_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    resource_id: Mapped[str | None] = mapped_column(String(256))
    token_hash: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sync_token: Mapped[str | None] = mapped_column(Text)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OAuthState(TimestampMixin, Base):
    """A started OAuth flow: state → agent, with the PKCE verifier kept server-side."""

    __tablename__ = "oauth_states"

    state: Mapped[str] = mapped_column(String(128), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    encrypted_code_verifier: Mapped[str | None] = mapped_column(Text)
    link_nonce: Mapped[str | None] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(TimestampMixin, Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("key"))
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))  # admin | operator | readonly
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PhoneVerification(TimestampMixin, Base):
    __tablename__ = "phone_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    phone_number_id: Mapped[str] = mapped_column(
        ForeignKey("phone_numbers.id", ondelete="CASCADE"), index=True
    )
    # The user the number belongs to once verified (differs from the owner on a move).
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OwnerSignIn(TimestampMixin, Base):
    """A dashboard sign-in texted to an owner: a single-use link and a 6-digit code, both
    stored only as HMACs, short-lived, with few attempts (app/dashboard/auth.py)."""

    __tablename__ = "owner_sign_ins"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("osi"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    link_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OwnerSession(TimestampMixin, Base):
    """A signed-in dashboard browser; the cookie holds a token whose SHA-256 is the key."""

    __tablename__ = "owner_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


__all__ = [
    "Agent",
    "ApiKey",
    "Appointment",
    "AuditEntry",
    "BusyBlock",
    "CalendarConnection",
    "CalendarWatch",
    "Conversation",
    "InboundEvent",
    "Message",
    "OAuthState",
    "OwnerSession",
    "OwnerSignIn",
    "PhoneNumber",
    "PhoneVerification",
    "SmsOptOut",
    "User",
]


# --- Outbound notifications (issue 11): rows are the source of truth, workers deliver ---


def _due_at(context: Any) -> Any:
    """send_at defaults to due_at (ORM and Core inserts alike)."""
    return context.get_current_parameters()["due_at"]


class Notification(TimestampMixin, Base):
    """One outbound SMS or call. Written in the same transaction as the booking change;
    a worker claims it (status "sending", committed) before calling Twilio, so a send is
    attempted at most once. A claim that outlives its lease becomes "unknown"."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_status_due", "status", "due_at"),
        Index("ix_notifications_agent_created", "agent_id", "created_at", "id"),
        Index("ix_notifications_appointment", "appointment_id"),
        # Per-number claims: the backlog and next row of one sending number.
        Index("ix_notifications_sender_due", "from_e164", "status", "due_at"),
        # Claims take what is planned to go out now.
        Index("ix_notifications_status_send", "status", "send_at"),
        # A turn's reminder read-along (app/notifications/replies.py): the latest sent to
        # one person by one agent, without scanning every notification the agent has had.
        Index("ix_notifications_agent_to_sent", "agent_id", "to_e164", "sent_at"),
        # Unique among the rows sent: a planned row has none, and a constraint's index
        # would hold its NULL key too (alembic 0011_booking_keys).
        Index(
            "uq_notifications_provider_sid",
            "provider_sid",
            unique=True,
            postgresql_where=text("provider_sid IS NOT NULL"),
            sqlite_where=text("provider_sid IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ntf"))
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    appointment_id: Mapped[str | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="SET NULL")
    )
    # confirmation | reminder | reminder_call | owner_booked | owner_moved |
    # owner_cancelled | owner_agenda
    kind: Mapped[str] = mapped_column(String(24))
    channel: Mapped[str] = mapped_column(String(8), default="sms")  # sms | call
    to_e164: Mapped[str] = mapped_column(String(20))
    # The sending number: the agent's dedicated line, or the shared agent number.
    from_e164: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When a worker sends it: the due time, or earlier when the send planner
    # (app/notifications/sendplan.py) starts a burst early so none of it is late.
    send_at: Mapped[datetime] = mapped_column(UTCDateTime, default=_due_at)
    # How early it may go out at most (a reminder: 1/24 of its lead, never in the
    # person's quiet hours); None: not before its due time.
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # scheduled | sending | sent | delivered | undelivered | failed | skipped | unknown
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    reason: Mapped[str | None] = mapped_column(String(200))
    # One row per (appointment, kind, moment): a retried booking writes nothing twice.
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReminderSettings(Base):
    """Per-agent reminder settings; an agent without a row gets the defaults."""

    __tablename__ = "reminder_settings"

    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    reminders_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Minutes before the start, e.g. [1440, 120] (24 h and 2 h).
    offsets_minutes: Mapped[list[int]] = mapped_column(JSON, default=lambda: [1440, 120])
    quiet_start: Mapped[str] = mapped_column(String(5), default="21:00")
    quiet_end: Mapped[str] = mapped_column(String(5), default="08:00")
    confirmations_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    owner_notifications: Mapped[bool] = mapped_column(Boolean, default=False)
    # Local "HH:MM" for the owner's daily agenda; None: no agenda.
    daily_agenda_time: Mapped[str | None] = mapped_column(String(5))
    reminder_calls: Mapped[bool] = mapped_column(Boolean, default=False)


class Attendance(Base):
    """Whether the person confirmed they will come, and whether the owner marked them
    as attended or a no-show (kept beside the appointment, not in it)."""

    __tablename__ = "appointment_attendance"

    appointment_id: Mapped[str] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), primary_key=True
    )
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_via: Mapped[str | None] = mapped_column(String(16))
    # attended | no_show, set by the owner
    outcome: Mapped[str | None] = mapped_column(String(16))
    outcome_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SenderPace(Base):
    """Per sending number: the next free send slot, shared by every worker process
    (claims lock this row), so SMS_SENDER_MPS holds across processes."""

    __tablename__ = "sms_sender_pace"

    from_e164: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_free_at: Mapped[datetime] = mapped_column(UTCDateTime)


__all__ += ["Attendance", "Notification", "ReminderSettings", "SenderPace"]
