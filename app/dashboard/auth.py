"""Owner sign-in: a single-use link and a 6-digit code texted to a verified number, then a
browser session. Link, code and session token are stored only as HMACs/hashes and never
logged; the cookie is HttpOnly, SameSite=Lax and Secure outside development."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import OwnerSession, OwnerSignIn, PhoneNumber, User, new_id
from app.notify import SmsSender, send_sms
from app.security import audit

SESSION_COOKIE = "dash_session"
ANON_COOKIE = "dash_anon"
COOKIE_PATH = "/dashboard"
LINK_PATH = "/dashboard/auth"
MAX_CODE_ATTEMPTS = 5
CODE_DIGITS = 6


def _mac(settings: Settings, purpose: str, value: str) -> str:
    key = settings.app_secret_key.get_secret_value().encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(settings: Settings, cookie_value: str) -> str:
    """Bound to the browser's session (or pre-sign-in) cookie, so no storage is needed."""
    return _mac(settings, "csrf", cookie_value)[:32]


def csrf_ok(settings: Settings, cookie_value: str | None, submitted: str | None) -> bool:
    if not cookie_value or not submitted:
        return False
    return hmac.compare_digest(csrf_token(settings, cookie_value), submitted)


def owner_of(session: Session, e164: str) -> User | None:
    """The user whose verified caller number this is (owners are users with one)."""
    row = session.scalar(
        select(PhoneNumber).where(
            PhoneNumber.e164 == e164,
            PhoneNumber.purpose == "caller",
            PhoneNumber.verified_at.is_not(None),
        )
    )
    return session.get(User, row.user_id) if row is not None else None


@dataclass(frozen=True)
class IssuedSignIn:
    sign_in_id: str
    link: str
    code: str


def issue(session: Session, settings: Settings, user: User, now: datetime) -> IssuedSignIn:
    """A fresh link and code; earlier unused ones for this user stop working."""
    for old in session.scalars(
        select(OwnerSignIn).where(OwnerSignIn.user_id == user.id, OwnerSignIn.used_at.is_(None))
    ):
        old.used_at = now
    link_token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    row = OwnerSignIn(
        id=new_id("osi"),
        user_id=user.id,
        link_hash=_mac(settings, "link", link_token),
        code_hash="",
        expires_at=now + timedelta(minutes=settings.dashboard_sign_in_minutes),
        attempts=0,
        created_at=now,
    )
    row.code_hash = _mac(settings, f"code:{row.id}", code)
    session.add(row)
    session.flush()
    # In the fragment: browsers never send it, so no access log or proxy ever sees it.
    link = f"{settings.public_base_url}{LINK_PATH}#t={link_token}"
    return IssuedSignIn(sign_in_id=row.id, link=link, code=code)


def text_sign_in(
    session: Session,
    sender: SmsSender,
    settings: Settings,
    e164: str,
    user: User,
    now: datetime,
    spanish: bool = False,
) -> str | None:
    """Text a link and code to the owner's number; the sign-in id, or None if not sent."""
    issued = issue(session, settings, user, now)
    minutes = settings.dashboard_sign_in_minutes
    if spanish:
        body = (
            f"Tu panel: {issued.link} (o escribe el código {issued.code}). "
            f"Caduca en {minutes} min y sirve una sola vez."
        )
    else:
        body = (
            f"Your dashboard: {issued.link} (or enter code {issued.code}). "
            f"Expires in {minutes} min, works once."
        )
    if not send_sms(session, sender, e164, body):
        return None
    audit.record(session, "dashboard.sign_in.sent", actor="owner", subject=user.id)
    return issued.sign_in_id


def redeem_link(
    session: Session, settings: Settings, token: str, now: datetime
) -> OwnerSignIn | None:
    row = session.scalar(
        select(OwnerSignIn).where(OwnerSignIn.link_hash == _mac(settings, "link", token))
    )
    if row is None or row.used_at is not None or now >= row.expires_at:
        return None
    row.used_at = now
    return row


def redeem_code(
    session: Session, settings: Settings, sign_in_id: str, code: str, now: datetime
) -> OwnerSignIn | None:
    row = session.get(OwnerSignIn, sign_in_id)
    if row is None or row.used_at is not None or now >= row.expires_at:
        return None
    if row.attempts >= MAX_CODE_ATTEMPTS:
        return None
    if not hmac.compare_digest(_mac(settings, f"code:{row.id}", code.strip()), row.code_hash):
        row.attempts += 1
        return None
    row.used_at = now
    return row


def start_session(session: Session, settings: Settings, user_id: str, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        OwnerSession(
            token_hash=token_hash(token),
            user_id=user_id,
            expires_at=now + timedelta(hours=settings.dashboard_session_hours),
            created_at=now,
        )
    )
    audit.record(session, "dashboard.signed_in", actor="owner", subject=user_id)
    return token


def session_user(session: Session, token: str | None, now: datetime) -> str | None:
    if not token:
        return None
    row = session.get(OwnerSession, token_hash(token))
    if row is None or row.revoked_at is not None or now >= row.expires_at:
        return None
    return row.user_id


def end_session(session: Session, token: str, now: datetime) -> None:
    row = session.get(OwnerSession, token_hash(token))
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
        audit.record(session, "dashboard.signed_out", actor="owner", subject=row.user_id)
