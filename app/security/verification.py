"""Phone verification: a 6-digit code by SMS proves a user holds the number.

The code is stored as an HMAC keyed with the app secret (a bare hash of six digits is
reversed by trying all million), expires, and allows a few attempts. A number that is
already someone else's stays theirs, and keeps routing, until the new owner proves
possession: the pending verification names the user the number will move to.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import PhoneNumber, PhoneVerification

CODE_DIGITS = 6
MAX_SENDS_PER_HOUR = 5


class Outcome(StrEnum):
    VERIFIED = "verified"
    WRONG_CODE = "wrong_code"
    EXPIRED = "expired"
    LOCKED = "locked"
    NO_PENDING = "no_pending"


class SendRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Policy:
    secret: str
    ttl: timedelta = timedelta(minutes=10)
    max_attempts: int = 5


def code_hash(secret: str, number_id: str, code: str) -> str:
    message = f"{number_id}:{code}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def pending(session: Session, number: PhoneNumber) -> PhoneVerification | None:
    return session.scalar(
        select(PhoneVerification)
        .where(
            PhoneVerification.phone_number_id == number.id,
            PhoneVerification.consumed_at.is_(None),
        )
        .order_by(PhoneVerification.id.desc())
        .limit(1)
    )


# Texts `body` to a number; False when it must not (the number opted out). The caller
# passes app.notify.send_sms bound to its session and sender: security does not import
# notify, which imports security (consent).
Deliver = Callable[[str, str], bool]


def send_code(
    session: Session,
    deliver: Deliver,
    number: PhoneNumber,
    *,
    for_user_id: str,
    policy: Policy,
    now: datetime,
) -> PhoneVerification:
    """Replace any pending code with a fresh one and text it; SendRefused when we must not."""
    recent = session.scalar(
        select(func.count())
        .select_from(PhoneVerification)
        .where(
            PhoneVerification.phone_number_id == number.id,
            PhoneVerification.created_at > now - timedelta(hours=1),
        )
    )
    if (recent or 0) >= MAX_SENDS_PER_HOUR:
        raise SendRefused("too many codes sent to this number in the last hour")
    session.execute(
        update(PhoneVerification)
        .where(
            PhoneVerification.phone_number_id == number.id,
            PhoneVerification.consumed_at.is_(None),
        )
        .values(consumed_at=now)
    )
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    verification = PhoneVerification(
        phone_number_id=number.id,
        user_id=for_user_id,
        code_hash=code_hash(policy.secret, number.id, code),
        expires_at=now + policy.ttl,
        attempts=0,
        created_at=now,
    )
    session.add(verification)
    session.flush()
    minutes = int(policy.ttl.total_seconds() // 60)
    body = f"Your scheduling agent verification code is {code}. It expires in {minutes} minutes."
    if not deliver(number.e164, body):
        raise SendRefused("the number has opted out of SMS (it must text START first)")
    return verification


def check_code(
    session: Session, number: PhoneNumber, code: str, *, policy: Policy, now: datetime
) -> Outcome:
    """Check a code; on success the number is verified and belongs to the user it was for.

    Each check first takes one attempt with a single conditional UPDATE, so concurrent
    guesses can never check more codes than the limit allows (a read, compare and write
    in Python would let them all read the same count)."""
    verification = pending(session, number)
    if verification is None:
        return Outcome.NO_PENDING
    if now >= verification.expires_at:
        return Outcome.EXPIRED
    attempts = _take_attempt(session, verification.id, policy.max_attempts)
    if attempts is None:
        return Outcome.LOCKED
    expected = code_hash(policy.secret, number.id, code.strip())
    if not hmac.compare_digest(expected, verification.code_hash):
        return Outcome.LOCKED if attempts >= policy.max_attempts else Outcome.WRONG_CODE
    if not _consume(session, verification.id, now):
        return Outcome.NO_PENDING  # a concurrent check with the right code got there first
    if verification.user_id and verification.user_id != number.user_id:
        # The number moves: it no longer reaches the old owner's agent.
        number.user_id = verification.user_id
        number.agent_id = None
    number.verified_at = now
    return Outcome.VERIFIED


def _take_attempt(session: Session, verification_id: int, max_attempts: int) -> int | None:
    """The attempt count after taking one, or None when none is left (or it was spent)."""
    taken = session.execute(
        update(PhoneVerification)
        .where(
            PhoneVerification.id == verification_id,
            PhoneVerification.consumed_at.is_(None),
            PhoneVerification.attempts < max_attempts,
        )
        .values(attempts=PhoneVerification.attempts + 1)
        .returning(PhoneVerification.attempts)
        .execution_options(synchronize_session="fetch")
    ).scalar_one_or_none()
    return taken


def _consume(session: Session, verification_id: int, now: datetime) -> bool:
    consumed = session.execute(
        update(PhoneVerification)
        .where(PhoneVerification.id == verification_id, PhoneVerification.consumed_at.is_(None))
        .values(consumed_at=now)
        .returning(PhoneVerification.id)
        .execution_options(synchronize_session="fetch")
    ).scalar_one_or_none()
    return consumed is not None
