"""Replies to reminders: who was reminded of what, and attendance confirmation.

When a reminder SMS goes out, the person's SMS conversation with the agent is reset to
`{"about_appointment": <id>}` and the reminder joins its transcript. `about_appointment`
is the documented field engines read: the appointment the next message is most likely
about (so "cancel" or "move" start those dialogues for it, with the usual confirmation).
A plain confirmation ("C", "yes", "see you then") is answered here, not by the engine:
it records attendance confirmed and says so only after the row is written.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ScalarSelect, bindparam, literal, select
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import Gather, VoiceResponse

from app.models import (
    Appointment,
    AppointmentStatus,
    Attendance,
    Conversation,
    Message,
    Notification,
    new_id,
)
from app.notifications.plan import when_text
from app.security import audit
from app.turn_rows import AgentLike, ConversationLike

ABOUT = "about_appointment"
CONFIRMATIONS = {
    "c",
    "y",
    "yes",
    "yep",
    "yeah",
    "confirm",
    "confirmed",
    "see you then",
    "i'll be there",
    "ill be there",
    "i will be there",
    "yes see you then",
}
# A reminder is what a reply is about for this long after it was sent.
REPLY_WINDOW = timedelta(hours=36)
SENT = ("sent", "delivered", "unknown")


def is_confirmation(text: str) -> bool:
    words = re.sub(r"[^a-z' ]+", " ", text.lower()).split()
    return " ".join(words) in CONFIRMATIONS


def sms_conversation_key(agent_id: str, person: str) -> str:
    return f"{agent_id}:{person}"


def remember_reminders(session: Session, sent: list[Notification], now: datetime) -> None:
    """After reminder SMSes went out: each person's conversation is now about its
    appointment, and holds the reminder. One query for all of a batch's conversations."""
    latest = {sms_conversation_key(row.agent_id, row.to_e164): row for row in sent}
    if not latest:
        return
    found = {
        conversation.external_id: conversation
        for conversation in session.scalars(
            select(Conversation).where(
                Conversation.channel == "sms", Conversation.external_id.in_(latest)
            )
        )
    }
    for key, row in latest.items():
        conversation = found.get(key)
        if conversation is None:
            conversation = Conversation(
                id=new_id("cnv"),
                channel="sms",
                external_id=key,
                caller_e164=row.to_e164,
                agent_id=row.agent_id,
            )
            session.add(conversation)
            found[key] = conversation
        conversation.state = {ABOUT: row.appointment_id}
        conversation.details = {**(conversation.details or {}), "last_turn_at": now.isoformat()}
    session.add_all(
        Message(
            conversation_id=found[sms_conversation_key(row.agent_id, row.to_e164)].id,
            direction="out",
            body=row.body,
            external_id=row.provider_sid,
        )
        for row in sent
    )


# Built once: a turn passes only its parameters (statement construction per turn was a
# measurable share of a turn's CPU).
_REMINDED = (
    select(Appointment.id)
    .join(Notification, Notification.appointment_id == Appointment.id)
    .where(
        Notification.agent_id == bindparam("reminded_agent_id"),
        Notification.to_e164 == bindparam("reminded_person"),
        # Lists of literals, not one expanding parameter each: an expanding IN is
        # rendered again at every execution.
        Notification.kind.in_([literal(kind) for kind in ("reminder", "reminder_call")]),
        Notification.status.in_([literal(status) for status in SENT]),
        Notification.sent_at >= bindparam("reminded_since"),
        Appointment.status == AppointmentStatus.CONFIRMED,
        Appointment.end_at > bindparam("reminded_now"),
    )
    .order_by(Notification.sent_at.desc())
    .limit(1)
    .scalar_subquery()
)


def reminded_appointment_id(
    agent_id: str, person: str, now: datetime
) -> tuple[ScalarSelect[str], dict[str, Any]]:
    """The id of the upcoming appointment a recent reminder to this person was about: a
    scalar subquery and its parameters, so a webhook can read it with the conversation."""
    params = {
        "reminded_agent_id": agent_id,
        "reminded_person": person,
        "reminded_since": now - REPLY_WINDOW,
        "reminded_now": now,
    }
    return _REMINDED, params


def confirm_attendance(session: Session, appointment: Appointment, now: datetime, via: str) -> None:
    attendance = session.get(Attendance, appointment.id)
    if attendance is None:
        attendance = Attendance(appointment_id=appointment.id)
        session.add(attendance)
    if attendance.confirmed_at is None:
        attendance.confirmed_at = now
        attendance.confirmed_via = via
        audit.record(
            session,
            "appointment.attendance_confirmed",
            actor=f"{via}:{appointment.contact_e164 or 'unknown'}",
            subject=appointment.id,
            details={"agent_id": appointment.agent_id, "via": via},
        )
    session.flush()


def answer_sms(
    session: Session,
    conversation: ConversationLike,
    agent: AgentLike,
    text: str,
    now: datetime,
    reminded_id: str | None,
) -> str | None:
    """Answer a reply to a reminder ourselves when it is a confirmation; otherwise point
    the engine at the appointment (state[about_appointment]) and return None.
    `reminded_id`: what `reminded_appointment_id` found for the conversation's caller."""
    if not conversation.caller_e164 or reminded_id is None:
        return None
    appointment = session.get(Appointment, reminded_id)
    if appointment is None:
        return None
    state = dict(conversation.state or {})
    mid_dialogue = any(key != ABOUT for key in state)
    if not mid_dialogue and is_confirmation(text):
        confirm_attendance(session, appointment, now, via="sms")
        when = when_text(appointment.start_at, ZoneInfo(agent.timezone))
        return f"Thanks, you're confirmed for {when}. See you then!"
    conversation.state = {**state, ABOUT: appointment.id}
    return None


def call_twiml(notification_id: str, text: str, action_base: str) -> str:
    """A reminder call: say it, then one keypress (1 confirm, 2 cancel, 3 the agent)."""
    response = VoiceResponse()
    gather = Gather(
        num_digits=1, action=f"{action_base}/{notification_id}/gather", method="POST", timeout=8
    )
    gather.say(f"{text} Press 1 to confirm, 2 to cancel, or 3 to talk to the agent.")
    response.append(gather)
    response.say("We didn't get a choice. Goodbye.")
    return str(response)
