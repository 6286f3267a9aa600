"""Twilio webhooks for outbound notifications: status callbacks and reminder-call keys.

Status callbacks (messages and calls) move a notification's status forward only
(sent → delivered/undelivered/failed), so a late or retried callback never regresses
it. A reminder call's keypress is claimed once per call and step, like voice turns:
1 confirms attendance, 2 asks to confirm the cancellation and 2 again cancels through
the scheduling tools, 3 connects the person to the agent: the call goes on as an inbound
Gather call (app/webhooks/twilio_voice.py) about the reminded appointment, with the
caller-ID/PIN policy of any inbound call. Every answer is valid TwiML.
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response
from twilio.twiml.voice_response import Gather, VoiceResponse

from app.deps import ServicesDep, SessionDep
from app.models import Agent, Appointment, AppointmentStatus, Notification
from app.notifications import replies
from app.notifications.plan import when_text
from app.routing import Unrouted
from app.security.idempotency import claim
from app.services import services_of
from app.tools.schemas import CancelAppointmentArgs
from app.tools.service import SchedulingTools, ToolContext
from app.turn_rows import AgentLike
from app.webhooks import twilio_voice
from app.webhooks.twilio_common import TwilioForm, twiml

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks/twilio/notifications", tags=["twilio"])

# Twilio's message and call statuses → ours, with a rank so updates only move forward.
STATUS_MAP = {
    "queued": "sent",
    "accepted": "sent",
    "sending": "sent",
    "sent": "sent",
    "ringing": "sent",
    "in-progress": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "completed": "delivered",
    "undelivered": "undelivered",
    "busy": "undelivered",
    "no-answer": "undelivered",
    "canceled": "undelivered",
    "failed": "failed",
}
RANK = {"sending": 0, "unknown": 0, "sent": 1, "delivered": 2, "undelivered": 2, "failed": 2}
APOLOGY = "Sorry, something went wrong on our side. Please call or text us instead. Goodbye."


@router.post("/status", summary="Status callback for outbound notifications")
def notification_status(form: TwilioForm, session: SessionDep, services: ServicesDep) -> Response:
    sid = str(form.get("MessageSid") or form.get("CallSid") or "")
    raw = str(form.get("MessageStatus") or form.get("CallStatus") or "").lower()
    status = STATUS_MAP.get(raw)
    row = (
        session.scalar(select(Notification).where(Notification.provider_sid == sid))
        if sid
        else None
    )
    if row is not None and status is not None and RANK[status] > RANK.get(row.status, 3):
        row.status = status
        row.status_at = services.clock()
        code = form.get("ErrorCode")
        row.reason = f"twilio error {code}" if code else row.reason
        session.commit()
    return twiml(VoiceResponse())


@router.post("/call/{notification_id}/gather", summary="Reminder call keypress")
def reminder_call_key(
    notification_id: str, form: TwilioForm, session: SessionDep, request: Request, step: str = ""
) -> Response:
    call_sid = str(form.get("CallSid") or "")
    try:
        event = claim(session, "twilio", f"{call_sid}:{notification_id}:{step}", "reminder-key")
        if not event.is_new:
            return twiml(event.previous_response or VoiceResponse())
        answer = _answer(session, request, form, notification_id, step)
        assert event.event is not None
        event.event.response = answer
        session.commit()
        return twiml(answer)
    except Exception:
        session.rollback()
        log.exception("reminder call key for %s failed", notification_id)
        response = VoiceResponse()
        response.say(APOLOGY)
        return twiml(response)


def _answer(
    session: Session, request: Request, form: FormData, notification_id: str, step: str
) -> str:
    digits = str(form.get("Digits") or "")
    response = VoiceResponse()
    row = session.get(Notification, notification_id)
    appointment = (
        session.get(Appointment, row.appointment_id) if row and row.appointment_id else None
    )
    agent = session.get(Agent, row.agent_id) if row else None
    now: datetime = services_of(request).clock()
    if (
        row is None
        or appointment is None
        or agent is None
        or appointment.status != AppointmentStatus.CONFIRMED
    ):
        response.say("That appointment is no longer booked. Goodbye.")
        return str(response)
    when = when_text(appointment.start_at, ZoneInfo(agent.timezone))
    if digits == "1" and not step:
        replies.confirm_attendance(session, appointment, now, via="call")
        response.say(f"Thank you. You're confirmed for {when}. Goodbye.")
    elif digits == "2" and not step:
        gather = Gather(num_digits=1, action=_url(request, notification_id, "cancel"), timeout=8)
        gather.say(f"To cancel your appointment on {when}, press 2 again. To keep it, hang up.")
        response.append(gather)
        response.say("Your appointment is kept. Goodbye.")
    elif digits == "2" and step == "cancel":
        response.say(_cancel(session, request, agent, appointment, row.to_e164, now))
    elif digits == "3" and not step:
        return _talk_to_agent(twilio_voice.Call(request, session, form), appointment, when)
    else:
        response.say("Your appointment is kept. Goodbye.")
    return str(response)


def _talk_to_agent(call: twilio_voice.Call, appointment: Appointment, when: str) -> str:
    """Key 3: this call becomes an inbound call to the agent (routed, attested and
    PIN-checked as one), whose conversation knows the appointment, as an SMS reply does."""
    routed = call.route()
    if isinstance(routed, Unrouted) or routed.agent.id != appointment.agent_id:
        return twilio_voice.say_and_hang_up(
            "Sorry, I can't connect you from this call. Please call us back. Goodbye."
        )
    service = call.service()
    conversation = service.open(twilio_voice.CHANNEL, call.sid, routed)
    conversation.state = {replies.ABOUT: appointment.id}
    conversation.details = {
        **(conversation.details or {}),
        "voice": twilio_voice.initial_voice_state(call),
        "reminder_call": True,
    }
    opening = f"You're through to {routed.agent.name}. About your appointment on {when}: "
    opening += "what would you like to do?"
    service.record(conversation, "out", opening)
    call.audit("reminder_call.connected", appointment_id=appointment.id)
    return twilio_voice.prompt(call.settings, routed.agent, opening, turn=1)


def _cancel(
    session: Session,
    request: Request,
    agent: AgentLike,
    appointment: Appointment,
    person: str,
    now: datetime,
) -> str:
    tools = SchedulingTools(
        ToolContext(
            session=session,
            agent=agent,
            calendar=services_of(request).calendar_factory(session, agent),
            now=now,
            caller=person,
            channel="voice",
        )
    )
    result = tools.cancel_appointment(CancelAppointmentArgs(appointment_id=appointment.id))
    if not result.ok:
        return "Sorry, I couldn't cancel it. Please call or text us. Goodbye."
    return f"{result.message} Goodbye."


def _url(request: Request, notification_id: str, step: str) -> str:
    base = services_of(request).settings.public_base_url
    return f"{base}/webhooks/twilio/notifications/call/{notification_id}/gather?step={step}"
