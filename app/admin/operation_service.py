"""Global operator resources (SMS opt-outs, the audit log, API keys): the queries and
writes behind app/admin/operations.py.

Endpoints parse, authorise and answer; this module talks to the models
(endpoints → service → models). It raises no HTTP errors: it returns None, False or rows.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.models import ApiKey, AuditEntry, SmsOptOut, User
from app.security import api_keys, audit
from app.security.api_keys import NewKey, Role


def opt_out_id(secret: str, e164: str) -> str:
    """An opaque, stable handle: the API never shows the full number, not even in an id."""
    return hmac.new(secret.encode(), e164.encode(), hashlib.sha256).hexdigest()[:24]


def opt_outs_window(session: Session, offset: int, count: int) -> list[SmsOptOut]:
    """Opt-outs newest first, `count` of them from `offset`."""
    return list(
        session.scalars(
            select(SmsOptOut)
            .order_by(SmsOptOut.opted_out_at.desc(), SmsOptOut.e164)
            .offset(offset)
            .limit(count)
        )
    )


def remove_opt_out(session: Session, actor: str, secret: str, handle: str) -> bool:
    """Delete the opt-out whose handle this is; False when there is none."""
    # Opt-out tables stay small (people who texted STOP); a scan beats storing the handle.
    for row in session.scalars(select(SmsOptOut)):
        if hmac.compare_digest(opt_out_id(secret, row.e164), handle):
            session.delete(row)
            audit.record(session, "admin.optout.removed", actor=actor, subject=row.e164)
            session.commit()
            return True
    return False


def audit_query(
    actor: str | None,
    action: str | None,
    subject: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Select[Any]:
    """`action` is exact, or a prefix when it ends in *."""
    query = select(AuditEntry)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        if action.endswith("*"):
            query = query.where(AuditEntry.action.startswith(action[:-1], autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if subject:
        query = query.where(AuditEntry.subject == subject)
    if since:
        query = query.where(AuditEntry.at >= since)
    if until:
        query = query.where(AuditEntry.at < until)
    return query


def user_exists(session: Session, user_id: str) -> bool:
    return session.get(User, user_id) is not None


def create_api_key(
    session: Session, actor: str, name: str, role: Role, user_id: str | None
) -> NewKey:
    new = api_keys.create_key(session, name=name, role=role, user_id=user_id)
    audit.record(
        session,
        "admin.apikey.created",
        actor=actor,
        subject=new.key.prefix,
        details={"role": role.value, "scoped_to": user_id},
    )
    session.commit()
    return new


def revoke_api_key(session: Session, actor: str, key_id: str, now: datetime) -> ApiKey | None:
    key = api_keys.revoke(session, key_id, now)
    if key is None:
        return None
    audit.record(session, "admin.apikey.revoked", actor=actor, subject=key.prefix)
    session.commit()
    return key
