"""Hash-chained audit log.

`record()` queues an entry on the session; the entries are chained and written just
before the session commits, so the audit trail commits or rolls back with the work it
describes, and the lock that keeps the chain linear is held only for that moment.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from app.models import AuditEntry, utcnow
from app.phone import mask

GENESIS_HASH = "0" * 64
_PENDING_KEY = "pending_audit_entries"
_SECRET_KEYS = re.compile(r"token|secret|password|passwd|authorization|api_key|pin|code", re.I)
_PHONE = re.compile(r"\+\d{7,15}\b")
# Any integer that fits a signed 64-bit advisory lock key; identifies the chain lock.
_CHAIN_LOCK_ID = 7_202_611


def scrub(value: Any) -> Any:
    """Details without secrets or full phone numbers, whatever a caller passed in."""
    if isinstance(value, dict):
        return {
            str(k): ("[redacted]" if _SECRET_KEYS.search(str(k)) else scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _PHONE.sub(lambda m: mask(m.group()), value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def mask_phones(text: str) -> str:
    return _PHONE.sub(lambda m: mask(m.group()), text)


def entry_hash(
    prev_hash: str, at: datetime, actor: str, action: str, subject: str | None, details: Any
) -> str:
    canonical = json.dumps(
        {
            "prev": prev_hash,
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def record(
    session: Session,
    action: str,
    *,
    actor: str,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    # Begin the transaction now, so a rollback of it also drops these entries.
    session.connection()
    pending = session.info.setdefault(_PENDING_KEY, [])
    pending.append((utcnow(), scrub(actor), action, scrub(subject), scrub(details or {})))


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _CHAIN_LOCK_ID})
    # SQLite: the write transaction (BEGIN IMMEDIATE) already serialises writers.


def _last_hash(session: Session) -> str:
    last = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
    return last or GENESIS_HASH


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING_KEY, None)
    if not pending:
        return
    _lock_chain(session)
    prev = _last_hash(session)
    for at, actor, action, subject, details in pending:
        digest = entry_hash(prev, at, actor, action, subject, details)
        session.add(
            AuditEntry(
                at=at,
                actor=actor,
                action=action,
                subject=subject,
                details=details,
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    session.flush()


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str | None = None


def verify_chain(session: Session, batch_size: int = 5000) -> ChainReport:
    prev = GENESIS_HASH
    count = 0
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.id > last_id)
            .order_by(AuditEntry.id)
            .limit(batch_size)
        ).all()
        if not rows:
            return ChainReport(ok=True, entries=count)
        for row in rows:
            if row.prev_hash != prev:
                return ChainReport(False, count, row.id, "link to previous entry broken")
            expected = entry_hash(prev, row.at, row.actor, row.action, row.subject, row.details)
            if expected != row.hash:
                return ChainReport(False, count, row.id, "entry altered")
            prev = row.hash
            count += 1
            last_id = row.id
        session.expunge_all()
