"""Owner changes, through the same paths the admin API and callers use: cancel and move
run the scheduling tools; settings go through the admin API's schema and field rules;
phone numbers through the verification service. Every change is audit-logged."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.admin.agent_service import apply_fields as apply_agent_fields
from app.admin.notification_service import apply_reminder_settings
from app.admin.notifications import ReminderSettingsIn
from app.admin.schemas import AgentUpdate
from app.calendar.backend import CalendarFactory
from app.config import Settings
from app.models import Agent, Appointment, CalendarConnection, PhoneNumber
from app.notify import SmsSender, send_sms
from app.security import audit, verification
from app.security.verification import Outcome, SendRefused
from app.tools.schemas import CancelAppointmentArgs, RescheduleAppointmentArgs, ToolResult
from app.tools.service import SchedulingTools, ToolContext

CHANNEL = "dashboard"


def actor(user_id: str) -> str:
    return f"owner:{user_id}"


def _tools(
    session: Session, factory: CalendarFactory, agent: Agent, row: Appointment, now: datetime
) -> SchedulingTools:
    return SchedulingTools(
        ToolContext(
            session=session,
            agent=agent,
            calendar=factory(session, agent),
            now=now,
            # The tools act for the appointment's contact: the owner speaks for them.
            caller=row.contact_e164,
            channel=CHANNEL,
            conversation_id=row.conversation_id,
        )
    )


def owned_appointment(session: Session, agent: Agent, appointment_id: str) -> Appointment | None:
    row = session.get(Appointment, appointment_id)
    return row if row is not None and row.agent_id == agent.id else None


def _finish(
    session: Session, user_id: str, action: str, row: Appointment, result: ToolResult
) -> ToolResult:
    if not result.ok:
        session.rollback()  # a refused change leaves nothing half-done
    audit.record(
        session,
        action,
        actor=actor(user_id),
        subject=row.id,
        details={"ok": result.ok, "error": result.data.get("error")},
    )
    session.commit()
    return result


def cancel(
    session: Session,
    factory: CalendarFactory,
    user_id: str,
    agent: Agent,
    row: Appointment,
    now: datetime,
) -> ToolResult:
    result = _tools(session, factory, agent, row, now).cancel_appointment(
        CancelAppointmentArgs(appointment_id=row.id)
    )
    return _finish(session, user_id, "dashboard.appointment.cancel", row, result)


def move(
    session: Session,
    factory: CalendarFactory,
    user_id: str,
    agent: Agent,
    row: Appointment,
    new_start: datetime,
    now: datetime,
) -> ToolResult:
    """new_start without an offset is read in the agent's zone, as the tool does."""
    result = _tools(session, factory, agent, row, now).reschedule_appointment(
        RescheduleAppointmentArgs(appointment_id=row.id, new_start=new_start)
    )
    return _finish(session, user_id, "dashboard.appointment.move", row, result)


def save_settings(
    session: Session, user_id: str, agent: Agent, update: AgentUpdate, clear_cap: bool
) -> list[str]:
    changed = apply_agent_fields(agent, update, update.model_fields_set)
    if clear_cap and agent.daily_cap is not None:
        agent.daily_cap = None
        changed.append("daily_cap")
    audit.record(
        session,
        "dashboard.agent.updated",
        actor=actor(user_id),
        subject=agent.id,
        details={"fields": sorted(set(changed))},
    )
    session.commit()
    return changed


def save_reminders(session: Session, user_id: str, agent: Agent, body: ReminderSettingsIn) -> None:
    apply_reminder_settings(session, agent.id, body.model_dump())
    audit.record(
        session,
        "dashboard.agent.reminder_settings",
        actor=actor(user_id),
        subject=agent.id,
        details=body.model_dump(),
    )
    session.commit()


def disconnect_calendar(session: Session, user_id: str, agent: Agent) -> bool:
    row = session.scalar(select(CalendarConnection).where(CalendarConnection.agent_id == agent.id))
    if row is None:
        return False
    row.status = "disconnected"
    row.encrypted_refresh_token = None
    agent.calendar_provider = "local"
    audit.record(session, "dashboard.calendar.disconnected", actor=actor(user_id), subject=agent.id)
    session.commit()
    return True


def _policy(settings: Settings) -> verification.Policy:
    return verification.Policy(
        secret=settings.app_secret_key.get_secret_value(),
        ttl=timedelta(minutes=settings.verification_code_ttl_minutes),
        max_attempts=settings.verification_max_attempts,
    )


def add_number(
    session: Session,
    sender: SmsSender,
    settings: Settings,
    user_id: str,
    e164: str,
    now: datetime,
) -> str | None:
    """Text a code to the number; None when sent, else the reason it was not."""
    row = session.scalar(select(PhoneNumber).where(PhoneNumber.e164 == e164))
    if row is not None and row.purpose != "caller":
        return "this number is an agent line"
    if row is not None and row.user_id == user_id and row.verified_at is not None:
        return "this number is already verified"
    if row is None:
        row = PhoneNumber(e164=e164, purpose="caller", user_id=user_id)
        session.add(row)
        session.flush()
    try:
        verification.send_code(
            session,
            partial(send_sms, session, sender),
            row,
            for_user_id=user_id,
            policy=_policy(settings),
            now=now,
        )
    except SendRefused as exc:
        session.rollback()
        return exc.reason
    audit.record(
        session,
        "dashboard.phone.code_sent",
        actor=actor(user_id),
        subject=row.id,
        details={"number": e164},
    )
    session.commit()
    return None


def pending_number(session: Session, user_id: str, number_id: str) -> PhoneNumber | None:
    """A number this owner registered or is moving to themselves."""
    row = session.get(PhoneNumber, number_id)
    if row is None:
        return None
    if row.user_id == user_id:
        return row
    pending = verification.pending(session, row)
    return row if pending is not None and pending.user_id == user_id else None


def verify_number(
    session: Session, settings: Settings, user_id: str, row: PhoneNumber, code: str, now: datetime
) -> Outcome:
    outcome = verification.check_code(session, row, code, policy=_policy(settings), now=now)
    audit.record(
        session,
        "dashboard.phone.verify",
        actor=actor(user_id),
        subject=row.id,
        details={"outcome": outcome.value},
    )
    session.commit()
    return outcome
