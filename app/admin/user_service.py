"""Users and phone numbers: the queries and writes behind app/admin/users.py.

Endpoints parse, authorise and answer; this module talks to the models
(endpoints → service → models). It raises no HTTP errors: it returns None or rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.admin.auth import Principal
from app.models import PhoneNumber, User
from app.security import audit


def users_query(principal: Principal, name_contains: str | None) -> Select[Any]:
    query = principal.scoped(select(User), User.id)
    if name_contains:
        query = query.where(User.name.ilike(f"%{name_contains}%"))
    return query


def user_by_id(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def create_user(session: Session, actor: str, name: str, email: str | None) -> User:
    row = User(name=name, email=email)
    session.add(row)
    session.flush()
    audit.record(session, "admin.user.created", actor=actor, subject=row.id)
    session.commit()
    return row


def update_user(session: Session, actor: str, row: User, changes: dict[str, Any]) -> User:
    if changes.get("name") is None:
        changes.pop("name", None)  # a name may change, never be cleared
    for field, value in changes.items():
        setattr(row, field, value)
    audit.record(
        session,
        "admin.user.updated",
        actor=actor,
        subject=row.id,
        details={"fields": sorted(changes)},
    )
    session.commit()
    return row


def numbers_query(
    principal: Principal, user_id: str | None, verified: bool | None, purpose: str | None
) -> Select[Any]:
    query = principal.scoped(select(PhoneNumber), PhoneNumber.user_id)
    if user_id:
        query = query.where(PhoneNumber.user_id == user_id)
    if verified is not None:
        column = PhoneNumber.verified_at
        query = query.where(column.is_not(None) if verified else column.is_(None))
    if purpose:
        query = query.where(PhoneNumber.purpose == purpose)
    return query


def number_by_id(session: Session, number_id: str) -> PhoneNumber | None:
    return session.get(PhoneNumber, number_id)


def number_by_e164(session: Session, e164: str) -> PhoneNumber | None:
    return session.scalar(select(PhoneNumber).where(PhoneNumber.e164 == e164))


def add_caller_number(
    session: Session, e164: str, owner_id: str, agent_id: str | None
) -> PhoneNumber:
    """A new, unverified caller number (flushed for its id, not committed: the code
    still has to go out)."""
    row = PhoneNumber(e164=e164, purpose="caller", user_id=owner_id)
    row.agent_id = agent_id
    session.add(row)
    session.flush()
    return row


def add_agent_line(
    session: Session, actor: str, e164: str, owner_id: str, agent_id: str, now: datetime
) -> PhoneNumber:
    """One of our own numbers: verified at once, no code."""
    row = PhoneNumber(
        e164=e164, purpose="agent_line", user_id=owner_id, agent_id=agent_id, verified_at=now
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "admin.phone.line_added",
        actor=actor,
        subject=row.id,
        details={"agent_id": agent_id, "number": e164},
    )
    session.commit()
    return row


def record_number_event(
    session: Session,
    action: str,
    actor: str,
    number_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Audit what was done to a number (code sent, code checked) and commit it."""
    audit.record(session, action, actor=actor, subject=number_id, details=details)
    session.commit()


def remove_number(session: Session, actor: str, row: PhoneNumber) -> None:
    number_id, owner_id = row.id, row.user_id
    session.delete(row)
    audit.record(
        session,
        "admin.phone.removed",
        actor=actor,
        subject=number_id,
        details={"user_id": owner_id},
    )
    session.commit()
