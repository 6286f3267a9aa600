"""Privacy: the export of everything held about a user, and erasure of a user; the
queries and writes behind app/admin/privacy.py.

Erasure removes the user, their numbers, agents, local appointment copies, busy blocks,
conversations with transcripts (their agents' and their own as a caller), verification
codes, calendar tokens and API keys. Events already written to an external calendar stay
there (the calendar belongs to the user). Two things are kept on purpose: the audit log
(hash-chained; it holds ids and masked numbers only) and SMS opt-outs (a STOP must keep
working after erasure, or a later re-registration could text a person who refused).
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from app.models import (
    Agent,
    ApiKey,
    Appointment,
    AuditEntry,
    BusyBlock,
    CalendarConnection,
    Conversation,
    Message,
    OAuthState,
    PhoneNumber,
    PhoneVerification,
    SmsOptOut,
    User,
)
from app.security import audit


def _row(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    data = {}
    for column in obj.__table__.columns:
        if column.key in skip:
            continue
        value = getattr(obj, column.key)
        data[column.key] = value.isoformat() if hasattr(value, "isoformat") else value
    return data


def _scope(session: Session, user: User) -> tuple[list[str], list[str], list[str]]:
    numbers = list(session.scalars(select(PhoneNumber.e164).where(PhoneNumber.user_id == user.id)))
    number_ids = list(session.scalars(select(PhoneNumber.id).where(PhoneNumber.user_id == user.id)))
    agent_ids = list(session.scalars(select(Agent.id).where(Agent.user_id == user.id)))
    return numbers, number_ids, agent_ids


def _conversations_of(agent_ids: list[str], numbers: list[str]) -> Any:
    return or_(Conversation.agent_id.in_(agent_ids), Conversation.caller_e164.in_(numbers))


def export_user(session: Session, user: User) -> dict[str, Any]:
    numbers, number_ids, agent_ids = _scope(session, user)
    conversations = session.scalars(
        select(Conversation).where(_conversations_of(agent_ids, numbers)).order_by(Conversation.id)
    ).all()
    transcripts = []
    for conversation in conversations:
        messages = session.scalars(
            select(Message).where(Message.conversation_id == conversation.id).order_by(Message.id)
        )
        transcripts.append({**_row(conversation), "messages": [_row(m) for m in messages]})
    appointments = session.scalars(
        select(Appointment)
        .where(or_(Appointment.agent_id.in_(agent_ids), Appointment.contact_e164.in_(numbers)))
        .order_by(Appointment.start_at, Appointment.id)
    )
    subjects = [user.id, *agent_ids, *number_ids]
    return {
        "user": _row(user),
        "phone_numbers": [
            _row(p)
            for p in session.scalars(select(PhoneNumber).where(PhoneNumber.user_id == user.id))
        ],
        "phone_verifications": [
            _row(v, skip=("code_hash",))
            for v in session.scalars(
                select(PhoneVerification).where(
                    or_(
                        PhoneVerification.phone_number_id.in_(number_ids),
                        PhoneVerification.user_id == user.id,
                    )
                )
            )
        ],
        "agents": [
            {**_row(a, skip=("pin_hash",)), "has_pin": a.pin_hash is not None}
            for a in session.scalars(select(Agent).where(Agent.user_id == user.id))
        ],
        "calendar_connections": [
            _row(c, skip=("encrypted_refresh_token",))
            for c in session.scalars(
                select(CalendarConnection).where(CalendarConnection.agent_id.in_(agent_ids))
            )
        ],
        "busy_blocks": [
            _row(b)
            for b in session.scalars(select(BusyBlock).where(BusyBlock.agent_id.in_(agent_ids)))
        ],
        "appointments": [_row(a) for a in appointments],
        "conversations": transcripts,
        "sms_opt_outs": [
            _row(o) for o in session.scalars(select(SmsOptOut).where(SmsOptOut.e164.in_(numbers)))
        ],
        "api_keys": [
            _row(k, skip=("key_hash",))
            for k in session.scalars(select(ApiKey).where(ApiKey.user_id == user.id))
        ],
        "audit_log": [
            _row(e, skip=("prev_hash",))
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.subject.in_(subjects)).order_by(AuditEntry.id)
            )
        ],
    }


def erase_user(session: Session, user: User) -> dict[str, int]:
    """Delete the user and everything theirs; counts per kind (no personal data)."""
    numbers, number_ids, agent_ids = _scope(session, user)
    conversation_ids = select(Conversation.id).where(_conversations_of(agent_ids, numbers))
    counts: dict[str, int] = {}

    def run(kind: str, statement: Any) -> None:
        result = session.execute(statement, execution_options={"synchronize_session": False})
        counts[kind] = cast(CursorResult[Any], result).rowcount

    run("messages", delete(Message).where(Message.conversation_id.in_(conversation_ids)))
    # Bookings they made with other users' agents stay for those users, without them.
    run(
        "appointments_anonymised",
        update(Appointment)
        .where(Appointment.contact_e164.in_(numbers), Appointment.agent_id.not_in(agent_ids))
        .values(contact_e164=None, contact_name=None, notes=None),
    )
    run("appointments", delete(Appointment).where(Appointment.agent_id.in_(agent_ids)))
    run("conversations", delete(Conversation).where(_conversations_of(agent_ids, numbers)))
    run("busy_blocks", delete(BusyBlock).where(BusyBlock.agent_id.in_(agent_ids)))
    run(
        "calendar_connections",
        delete(CalendarConnection).where(CalendarConnection.agent_id.in_(agent_ids)),
    )
    run("oauth_states", delete(OAuthState).where(OAuthState.agent_id.in_(agent_ids)))
    run(
        "phone_verifications",
        delete(PhoneVerification).where(
            or_(
                PhoneVerification.phone_number_id.in_(number_ids),
                PhoneVerification.user_id == user.id,
            )
        ),
    )
    run("phone_numbers", delete(PhoneNumber).where(PhoneNumber.user_id == user.id))
    run("agents", delete(Agent).where(Agent.user_id == user.id))
    run("api_keys", delete(ApiKey).where(ApiKey.user_id == user.id))
    run("users", delete(User).where(User.id == user.id))
    session.expunge_all()
    return counts


def export_and_record(session: Session, actor: str, user: User) -> dict[str, Any]:
    """The export, with a line in the audit trail saying who took it."""
    data = export_user(session, user)
    audit.record(session, "privacy.user_exported", actor=actor, subject=user.id)
    session.commit()
    return data


def erase_and_record(session: Session, actor: str, user: User) -> dict[str, int]:
    """Erase the user; the audit line keeps the counts per kind, never personal data."""
    user_id = user.id  # the row is gone from the session after erasure
    counts = erase_user(session, user)
    audit.record(session, "privacy.user_erased", actor=actor, subject=user_id, details=counts)
    session.commit()
    return counts
