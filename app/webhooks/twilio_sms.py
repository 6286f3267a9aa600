"""Twilio SMS webhooks: inbound messages and message status callbacks.

This module knows HTTP and Twilio's form; scheduling happens in the conversation engine.
Whatever fails inside, the texter gets valid TwiML: Twilio turns a 5xx into an error
and retries, and never shows a 429 to anyone.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from app.agent.conversations import ConversationService
from app.config import Settings
from app.dashboard import sms_link
from app.deps import SessionDep, SettingsDep
from app.notifications import replies as reminder_replies
from app.phone import mask, try_e164
from app.routing import Route, Unrouted, explain, route
from app.security import audit, consent
from app.security.idempotency import claim, respond
from app.security.ratelimit import CallerLimit
from app.services import services_of
from app.webhooks import messaging_twiml
from app.webhooks.budget import answer_within
from app.webhooks.sms_intake import Intake, take_in
from app.webhooks.turns import memo, run_turn
from app.webhooks.twilio_common import TwilioForm, twiml

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks/twilio/sms", tags=["twilio"])

APOLOGY = "Sorry, something went wrong on our side. Please try again in a minute."
SLOW_DOWN = "You're sending messages faster than I can keep up. Please wait a minute and try again."
HELP_TEXT = (
    "Scheduling assistant: text what you'd like to book, move, list or cancel, "
    "e.g. 'book a consultation tomorrow at 3'. Reply STOP to opt out."
)
OPTED_IN = "You're subscribed again. Text me what you'd like to schedule."


def reply(text: str | None) -> str:
    # Written as text, byte for byte twilio's MessagingResponse (messaging_twiml.py).
    return messaging_twiml.reply(text)


@router.post("/inbound", summary="Inbound SMS (Twilio messaging webhook)")
async def inbound_sms(request: Request, form: TwilioForm) -> Response:
    settings: Settings = services_of(request).settings
    message_sid = str(form.get("MessageSid") or form.get("SmsSid") or "")

    def work(session: Session) -> str:
        # No calendar call while the turn's write transaction is open (webhooks/turns.py).
        return run_turn(session, lambda s: _handle(request, s, settings, form, message_sid))

    # One worker thread for the whole turn, with its own session and a time budget.
    answer = await answer_within(
        request,
        work,
        settings.sms_turn_budget_seconds,
        f"inbound SMS {message_sid or '(no sid)'}",
        lambda: reply(APOLOGY),
    )
    return twiml(answer)


def _handle(
    request: Request, session: Session, settings: Settings, form: FormData, message_sid: str
) -> str:
    if not message_sid:
        return reply(None)
    caller = try_e164(str(form.get("From", "")), settings.default_region)
    body = str(form.get("Body", ""))
    audit_payload = {"message_sid": message_sid, "from": mask(caller)}
    dialled = try_e164(str(form.get("To", "")), settings.default_region)
    intake = take_in(session, message_sid, caller, dialled)
    event = intake.claim
    if not event.is_new:
        log.info("SMS %s is a retry; answering as before", message_sid)
        return event.previous_response or reply(None)

    response = _respond(request, session, settings, form, intake, caller, body, message_sid)
    respond(session, event, response)
    audit.record(
        session, "webhook.accepted", actor="twilio", subject=message_sid, details=audit_payload
    )
    session.commit()
    return response


def _respond(
    request: Request,
    session: Session,
    settings: Settings,
    form: FormData,
    intake: Intake,
    caller: str | None,
    body: str,
    message_sid: str,
) -> str:
    if caller is None:
        return reply(None)
    keyword = consent.keyword_of(body, str(form.get("OptOutType") or "") or None)
    if keyword is consent.Keyword.OPT_OUT:
        consent.opt_out(session, caller)
        return reply(None)  # the carrier/Twilio confirms STOP; we stay silent from now on
    if intake.opted_out:
        if keyword is consent.Keyword.OPT_IN:
            consent.opt_in(session, caller)
            return reply(OPTED_IN)
        return reply(None)
    # Not opted out: "yes" or "start" is dialogue ("yes" confirms a booking), not opt-in.
    if keyword is consent.Keyword.HELP:
        return reply(HELP_TEXT)

    limit = CallerLimit(
        services_of(request).limiter, settings.rate_limit_webhook, "sms", memo=memo(session)
    )
    if not limit.allow(caller):
        audit.record(
            session, "ratelimit.refused", actor="twilio", subject=caller, details={"channel": "sms"}
        )
        return reply(SLOW_DOWN)

    link = sms_link.answer(
        session,
        services_of(request).sms_sender,
        settings,
        caller,
        body,
        services_of(request).clock(),
    )
    if link is not None:
        return reply(link)

    routed = route(
        session, caller, str(form.get("To", "")), settings.default_region, intake.looked_up
    )
    if isinstance(routed, Unrouted):
        audit.record(
            session,
            "routing.failed",
            actor="twilio",
            subject=caller,
            details={"reason": routed.reason.value, "channel": "sms"},
        )
        return reply(explain(routed, settings.registration_instructions))
    return reply(_converse(request, session, settings, routed, body, message_sid))


def _converse(
    request: Request,
    session: Session,
    settings: Settings,
    routed: Route,
    body: str,
    message_sid: str,
) -> str:
    service = ConversationService(
        session,
        services_of(request).engine,
        services_of(request).calendar_factory,
        services_of(request).clock(),
        idle_reset=timedelta(minutes=settings.conversation_idle_minutes),
    )
    # The appointment a recent reminder was about comes with the conversation.
    reminded = reminder_replies.reminded_appointment_id(routed.agent.id, routed.caller, service.now)
    conversation = service.open("sms", f"{routed.agent.id}:{routed.caller}", routed, reminded)
    # A reply to a reminder: a confirmation is answered there; anything else reaches the
    # engine with state["about_appointment"] set.
    # Without autoflush: a new conversation is written once, with the turn's final state,
    # instead of an INSERT here and an UPDATE at commit (one round trip less).
    with session.no_autoflush:
        confirmed = reminder_replies.answer_sms(
            session, conversation, routed.agent, body, service.now, service.read_along
        )
    if confirmed is not None:
        service.record(conversation, "in", body, external_id=message_sid)
        service.record(conversation, "out", confirmed)
        return confirmed
    result = service.take_turn(
        conversation, routed, body, channel="sms", inbound_external_id=message_sid
    )
    return result.text


@router.post("/status", summary="Message status callback")
def message_status(form: TwilioForm, session: SessionDep, settings: SettingsDep) -> Response:
    sid = str(form.get("MessageSid") or form.get("SmsSid") or "")
    status = str(form.get("MessageStatus") or form.get("SmsStatus") or "")
    if sid and status:
        payload = {
            "status": status,
            "error_code": form.get("ErrorCode"),
            "to": mask(try_e164(str(form.get("To", "")), settings.default_region)),
        }
        event = claim(session, "twilio", f"status:{sid}:{status}", "message-status", payload)
        if event.is_new:
            session.commit()
    return twiml(reply(None))


# Baseline for bench/sms_webhook.py: the same server answering static TwiML with no
# signature, routing, engine or database (mounted only when BENCH_ENDPOINTS is on).
bench_router = APIRouter(prefix="/_bench", tags=["bench"], include_in_schema=False)
_STATIC_TWIML = reply("Thanks, got it.")


@bench_router.post("/twiml")
async def bench_twiml() -> Response:
    return twiml(_STATIC_TWIML)
