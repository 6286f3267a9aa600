"""Rows → response bodies. Phone numbers are masked here, whatever the caller asks for."""

from __future__ import annotations

from app.admin import schemas as s
from app.models import (
    Agent,
    ApiKey,
    Appointment,
    AuditEntry,
    CalendarConnection,
    Conversation,
    Message,
    PhoneNumber,
    User,
)
from app.security.audit import scrub


def user(row: User) -> s.UserOut:
    return s.UserOut(id=row.id, name=row.name, email=row.email, created_at=row.created_at)


def phone_number(row: PhoneNumber, pending: bool = False) -> s.PhoneNumberOut:
    return s.PhoneNumberOut(
        id=row.id,
        number=s.mask(row.e164),
        purpose=row.purpose,
        user_id=row.user_id,
        agent_id=row.agent_id,
        verified=row.verified_at is not None,
        verified_at=row.verified_at,
        created_at=row.created_at,
        pending_verification=pending,
    )


def agent(row: Agent) -> s.AgentOut:
    return s.AgentOut(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        timezone=row.timezone,
        weekly_hours=row.weekly_hours or {},
        appointment_types=row.appointment_types or [],
        slot_step_minutes=row.slot_step_minutes,
        min_notice_minutes=row.min_notice_minutes,
        horizon_days=row.horizon_days,
        daily_cap=row.daily_cap,
        greeting=row.greeting,
        instructions=row.instructions,
        caller_id_policy=row.caller_id_policy,
        has_pin=row.pin_hash is not None,
        language=row.language,
        voice=row.voice,
        address=row.address,
        services_description=row.services_description,
        faq=row.faq or [],
        voice_mode=row.voice_mode,
        calendar_provider=row.calendar_provider,
        active=row.active,
        created_at=row.created_at,
    )


def appointment(row: Appointment) -> s.AppointmentOut:
    return s.AppointmentOut(
        id=row.id,
        agent_id=row.agent_id,
        appointment_type=row.appointment_type,
        start_at=row.start_at,
        end_at=row.end_at,
        status=row.status,
        contact=s.masked(row.contact_e164),
        contact_name=row.contact_name,
        channel=row.channel,
        conversation_id=row.conversation_id,
        sync_status=row.sync_status,
        created_at=row.created_at,
        cancelled_at=row.cancelled_at,
    )


def conversation(row: Conversation) -> s.ConversationOut:
    return s.ConversationOut(
        id=row.id,
        channel=row.channel,
        caller=s.masked(row.caller_e164),
        agent_id=row.agent_id,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def message(row: Message) -> s.MessageOut:
    return s.MessageOut(
        id=row.id,
        direction=row.direction,
        # What callers typed may hold numbers or a PIN: masked like the audit log.
        body=scrub(row.body),
        tool_calls=scrub(row.tool_calls) if row.tool_calls is not None else None,
        created_at=row.created_at,
    )


def calendar_connection(row: CalendarConnection) -> s.CalendarConnectionOut:
    return s.CalendarConnectionOut(
        id=row.id,
        agent_id=row.agent_id,
        provider=row.provider,
        calendar_id=row.calendar_id,
        account_email=row.account_email,
        status=row.status,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def audit_entry(row: AuditEntry) -> s.AuditEntryOut:
    return s.AuditEntryOut(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        details=row.details or {},
        hash=row.hash,
    )


def api_key(row: ApiKey) -> s.ApiKeyOut:
    return s.ApiKeyOut(
        id=row.id,
        prefix=row.prefix,
        name=row.name,
        role=row.role,
        user_id=row.user_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
