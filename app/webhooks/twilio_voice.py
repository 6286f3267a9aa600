"""Twilio voice webhooks: an inbound call, its speech turns, status callbacks, fallback.

The call is a loop of <Gather input="speech">: Twilio transcribes what the caller says
and posts it to /gather?turn=N, which runs one turn of the conversation engine and
answers with <Say> plus the next <Gather>. This module knows HTTP, TwiML and Twilio's
form; routing, the engine and the tools do the scheduling, exactly as for SMS.

Whatever fails inside, Twilio gets valid TwiML within its 15 s: a 5xx or a timeout makes
it play "an application error has occurred" and hang up on the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from fastapi import APIRouter, Request
from sqlalchemy import String, Table, and_, bindparam, literal, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import HTTPConnection
from starlette.responses import Response

from app import commit_writes, sql_fast
from app.agent.conversations import UPCOMING_COLUMNS, ConversationService, upcoming_in
from app.agent.engine import Reply
from app.config import Settings
from app.db import UTCDateTime
from app.models import Agent, Appointment, Conversation, utcnow
from app.phone import mask, try_e164
from app.routing import (
    LOOKUP_WIDTH,
    Route,
    Unrouted,
    looked_up_at,
    lookup_joined_columns,
    lookup_numbers,
    route,
)
from app.security import audit
from app.security.caller_id import PinCheck, PinOutcome, is_attested, may_manage_existing
from app.security.idempotency import claim, respond
from app.security.pins import digits_from_speech
from app.security.ratelimit import CallerLimit
from app.services import services_of
from app.tools.registry import TOOLS
from app.tools.service import upcoming_of
from app.turn_rows import (
    CONVERSATION_COLUMNS,
    CONVERSATION_WIDTH,
    AgentLike,
    ConversationRow,
    conversation_at,
    conversation_of,
)
from app.webhooks import twilio_media  # imports this module back; used at call time only
from app.webhooks import voice_twiml as twiml_text
from app.webhooks.budget import answer_within
from app.webhooks.replies import unrouted_text
from app.webhooks.turns import memo, run_turn
from app.webhooks.twilio_common import TwilioForm, twiml

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks/twilio/voice", tags=["twilio"])

CHANNEL: Final = "voice"
GATHER_PATH = "/webhooks/twilio/voice/gather"
SILENCES_BEFORE_GOODBYE = 2
FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})

APOLOGY_RETRY = "Sorry, something went wrong on my side. Could you say that again?"
APOLOGY_HANGUP = (
    "Sorry, we're having trouble answering right now. Please call back in a few minutes. Goodbye."
)
BUSY = "You've called several times in a short while. Please try again in a few minutes. Goodbye."
NOT_HEARD = "Sorry, I didn't catch that. What would you like to do?"
NOT_HEARD_PIN = "Sorry, I didn't get your PIN. Please say it or key it in, then press pound."
SILENT_GOODBYE = "I haven't heard anything, so I'll hang up now. Call back any time. Goodbye!"
ENDED = "This call has ended. Goodbye."
PIN_PROMPT = (
    "Before I can look at or change your existing appointments, I need your PIN. "
    "Please say it or key it in, then press pound."
)
PIN_WRONG = "That PIN didn't match. Please try again."
PIN_VERIFIED = "Thank you, you're verified."
PIN_LOCKED = (
    "I couldn't verify your PIN, so I can't read out or change existing appointments on "
    "this call. I can still book a new one. What would you like to do?"
)
NO_PIN = (
    "Existing appointments can only be managed on this line with a PIN, and none is set up "
    "yet. I can still book a new one. What would you like to do?"
)
GENERIC_HINTS = (
    "appointment, book, cancel, reschedule, move, tomorrow, next week, morning, afternoon"
)
# The parts of TwiML that never change, written once.
EMPTY = twiml_text.response()
_HANGUP = twiml_text.element("Hangup")
_PAUSE = twiml_text.element("Pause", {"length": 1})
_APOLOGY_RETRY_SAY = twiml_text.element("Say", text=APOLOGY_RETRY)


# --- TwiML ---------------------------------------------------------------------------


def say_and_hang_up(text: str, agent: AgentLike | None = None) -> str:
    return twiml_text.response(_say(text, agent), _HANGUP)


def prompt(settings: Settings, agent: AgentLike, text: str, turn: int, *, pin: bool = False) -> str:
    """<Say> inside <Gather>, so a caller who starts talking cuts the prompt short."""
    attributes = {
        **_speech_attributes(settings),
        "input": "dtmf speech" if pin else "speech",
        "action": f"{settings.public_base_url}{GATHER_PATH}?turn={turn}",
        "method": "POST",
        "actionOnEmptyResult": True,
        "timeout": settings.twilio_gather_timeout_seconds,
        "language": agent.language,
        "hints": None if pin else _hints(agent),
        "finishOnKey": "#" if pin else None,
    }
    return twiml_text.response(twiml_text.element("Gather", attributes, inner=_say(text, agent)))


def _speech_attributes(settings: Settings) -> dict[str, object]:
    if settings.twilio_speech_model:
        # Twilio only honours speechTimeout="auto" with its default model.
        return {
            "speechModel": settings.twilio_speech_model,
            "speechTimeout": settings.twilio_speech_timeout_seconds,
        }
    return {"speechTimeout": "auto"}


def _say(text: str, agent: AgentLike | None) -> str:
    return twiml_text.element("Say", _voice_of(agent), text)


def _voice_of(agent: AgentLike | None) -> dict[str, object]:
    if agent is None:
        return {}
    return {"language": agent.language, "voice": agent.voice or None}


def _hints(agent: AgentLike) -> str:
    names = [str(t.get("name") or t.get("key")) for t in agent.appointment_types or []]
    return ", ".join([*names, GENERIC_HINTS])


APOLOGY_HANGUP_TWIML = say_and_hang_up(APOLOGY_HANGUP)


def greeting_for(agent: AgentLike, name: str | None) -> str:
    greeting = agent.greeting.strip() or f"Hi, this is {agent.name}."
    if name:
        greeting = f"Hi {name.split()[0]}! {greeting}"
    if not greeting.rstrip().endswith("?"):
        greeting = f"{greeting} How can I help you today?"
    return greeting


# --- running a step within Twilio's time limit -----------------------------------------


async def within_budget(
    request: Request,
    work: Callable[[Session], str],
    on_failure: str | Callable[[], str],
    what: str,
) -> Response:
    """TwiML from `work`, or `on_failure` (TwiML, or what builds it: built only when a
    turn fails) if it fails or runs past the voice budget."""
    seconds = services_of(request).settings.voice_turn_budget_seconds
    fallback = on_failure if callable(on_failure) else lambda: on_failure
    answer = await answer_within(request, work, seconds, f"voice {what}", fallback)
    return twiml(answer)


# --- the call --------------------------------------------------------------------------


@dataclass
class Call:
    """One webhook's view of the call: the request (or a media stream's WebSocket), its
    session and the verified form."""

    request: HTTPConnection
    session: Session
    form: FormData

    @property
    def settings(self) -> Settings:
        settings: Settings = services_of(self.request).settings
        return settings

    @property
    def sid(self) -> str:
        return str(self.form.get("CallSid") or "")

    @property
    def parties(self) -> tuple[str, str]:
        """(the person, our line). On a call we placed (a reminder call the person
        stayed on to talk to the agent) Twilio's From is our line and To the person."""
        ours_first = str(self.form.get("Direction") or "").startswith("outbound")
        person, line = str(self.form.get("From", "")), str(self.form.get("To", ""))
        return (line, person) if ours_first else (person, line)

    @property
    def caller(self) -> str | None:
        return try_e164(self.parties[0], self.settings.default_region)

    def route(self) -> Route | Unrouted:
        person, line = self.parties
        return route(self.session, person, line, self.settings.default_region)

    def service(self) -> ConversationService:
        state = services_of(self.request)
        return ConversationService(
            self.session, state.engine, state.calendar_factory, state.clock()
        )

    def conversation(self) -> ConversationRow | None:
        row = sql_fast.read(self.session, _CALL_CONVERSATION, {"call_sid": self.sid}).first()
        return conversation_of(self.session, None if row is None else conversation_at(row, 0))

    def conversation_and_route(
        self, service: ConversationService
    ) -> tuple[ConversationRow | None, Route | Unrouted]:
        """Both in one round trip: the conversation with the routing lookup's rows, and
        the caller's upcoming appointments with the agent each number leads to (kept in
        `service.upcoming` for the turn's list_appointments, as an SMS turn's are)."""
        person, line = self.parties
        region = self.settings.default_region
        numbers = lookup_numbers(person, line, region)
        if numbers is None:  # no number to look up: route() refuses the caller
            return self.conversation(), route(self.session, person, line, region)
        # A Core statement on the session's cursor (app/sql_fast.py), read by position:
        # the conversation's columns, a number's routing row and agent, an appointment.
        params = {"call_sid": self.sid, **numbers, "upcoming_now": service.now}
        rows = sql_fast.read(self.session, _CALL_WITH_LOOKUP, params).rows
        conversation = conversation_of(self.session, conversation_at(rows[0], 0))
        by_number = {row[CONVERSATION_WIDTH]: row for row in rows}  # a number's rows repeat
        looked_up = [looked_up_at(row, CONVERSATION_WIDTH) for row in by_number.values()]
        routed = route(self.session, person, line, region, looked_up=looked_up)
        if isinstance(routed, Route):
            service.upcoming = upcoming_in(self.session, rows, _UPCOMING_AT, routed.agent.id)
        return conversation, routed

    def audit(self, action: str, **details: object) -> None:
        audit.record(
            self.session,
            action,
            actor="twilio",
            subject=self.sid or None,
            details={"channel": CHANNEL, "from": mask(self.caller), **details},
        )


# Built once: a turn passes only the call's sid (and the numbers to route).
# The conversations table, where a call is a conversation.
_CALLS = cast(Table, Conversation.__table__)
_OF_THE_CALL = and_(_CALLS.c.channel == CHANNEL, _CALLS.c.external_id == bindparam("call_sid"))
_CALL_CONVERSATION = select(*CONVERSATION_COLUMNS).where(_OF_THE_CALL)
_APPOINTMENTS = cast(Table, Appointment.__table__)
# Each number's agent's upcoming appointments with the caller (`upcoming_of`).
_CALL_WITH_LOOKUP = (
    lookup_joined_columns(
        select(*CONVERSATION_COLUMNS)
        .select_from(select(literal(1).label("one")).subquery())
        .outerjoin(_CALLS, _OF_THE_CALL)
    )
    .add_columns(*UPCOMING_COLUMNS)
    .outerjoin(
        _APPOINTMENTS,
        upcoming_of(
            cast(Table, Agent.__table__).c.id,
            bindparam("caller_number", type_=String()),
            bindparam("upcoming_now", type_=UTCDateTime()),
        ),
    )
    .order_by(_APPOINTMENTS.c.start_at)
)
_UPCOMING_AT = CONVERSATION_WIDTH + LOOKUP_WIDTH


@router.post("/inbound", summary="Inbound call (Twilio voice webhook)")
async def inbound_call(request: Request, form: TwilioForm) -> Response:
    return await within_budget(
        request,
        lambda session: answer_call(Call(request, session, form)),
        APOLOGY_HANGUP_TWIML,
        "call",
    )


def answer_call(call: Call) -> str:
    if not call.sid:
        return APOLOGY_HANGUP_TWIML
    event = claim(call.session, "twilio", f"{call.sid}:call", "voice-call")
    if not event.is_new:
        log.info("call %s webhook is a retry; answering as before", call.sid)
        return event.previous_response or APOLOGY_HANGUP_TWIML
    response = _greet(call)
    respond(call.session, event, response)
    call.audit("webhook.accepted", stir_verstat=str(call.form.get("StirVerstat") or "absent"))
    call.session.commit()
    return response


def _greet(call: Call) -> str:
    settings = call.settings
    caller = call.caller
    limit = CallerLimit(services_of(call.request).limiter, settings.rate_limit_webhook, CHANNEL)
    if caller is not None and not limit.allow(caller):
        call.audit("ratelimit.refused")
        return say_and_hang_up(BUSY)
    routed = call.route()
    if isinstance(routed, Unrouted):
        call.audit("routing.failed", reason=routed.reason.value)
        return say_and_hang_up(unrouted_text(routed, settings))
    service = call.service()
    conversation = service.open(CHANNEL, call.sid, routed)
    details = conversation.details or {}
    voice_state = initial_voice_state(call)
    streamed = twilio_media.streams(routed.agent, services_of(call.request).deepgram)
    if streamed:
        # The stream greets the caller; it routes each turn with the dialled number.
        voice_state["to"] = str(call.form.get("To", ""))
    conversation.details = {**details, "voice": voice_state}
    if streamed:
        return twilio_media.connect_stream(settings, call.sid)
    greeting = greeting_for(routed.agent, _known_name(service, routed, details))
    service.record(conversation, "out", greeting)
    return prompt(settings, routed.agent, greeting, turn=1)


def _known_name(service: ConversationService, routed: Route, details: dict[str, Any]) -> str | None:
    """The caller's known name. open() read it with a new conversation, in the same round
    trip, into its details: asking again cost a query, and the flush of the pending
    conversation before it. Only a conversation made before the call was answered (by
    a status callback) lacks it."""
    if "caller_name" in details:
        name: str | None = details["caller_name"]
        return name
    return service.known_name(routed)


def initial_voice_state(call: Call) -> dict[str, Any]:
    """A call's own state at its start: caller-ID attestation decides, with the PIN,
    whether existing appointments may be read or changed."""
    verstat = str(call.form.get("StirVerstat") or "")
    return {
        "turn": 0,
        "silences": 0,
        "stir_verstat": verstat or None,
        "attested": is_attested(verstat),
        "pin_verified": False,
        "pin_attempts": 0,
    }


@router.post("/gather", summary="Speech (or keypad) result of one <Gather>: one turn")
async def gather_result(request: Request, form: TwilioForm, turn: str = "1") -> Response:
    # The turn number is ours (in the action URL Twilio signed); never a 422 to Twilio.
    number = max(_int(turn, default=1), 1)
    return await within_budget(
        request,
        lambda session: take_turn(Call(request, session, form), number),
        lambda: _retry_prompt(request, number),
        f"turn {number}",
    )


def _retry_prompt(request: Request, turn: int) -> str:
    """What the caller hears when a turn fails: an apology, and the next turn's Gather,
    built without the database (which may be what failed)."""
    return retry_prompt(services_of(request).settings, turn)


def retry_prompt(settings: Settings, turn: int) -> str:
    attributes = {
        "input": "speech",
        "action": f"{settings.public_base_url}{GATHER_PATH}?turn={turn + 1}",
        "method": "POST",
        "actionOnEmptyResult": True,
        "timeout": settings.twilio_gather_timeout_seconds,
    }
    return twiml_text.response(twiml_text.element("Gather", attributes, inner=_APOLOGY_RETRY_SAY))


def take_turn(call: Call, turn: int, before_commit: Callable[[str], None] | None = None) -> str:
    """One turn (Gather or a media stream's), with no calendar call while its write
    transaction is open (app/webhooks/turns.py). `before_commit` sees the answer just
    before the turn commits it (a media stream starts synthesis then; it speaks only
    an answer that take_turn returned, so only a committed one)."""
    return run_turn(call.session, lambda _: _take_turn(call, turn, before_commit))


def _take_turn(call: Call, turn: int, before_commit: Callable[[str], None] | None) -> str:
    if not call.sid:
        return say_and_hang_up(ENDED)
    event = claim(call.session, "twilio", f"{call.sid}:turn:{turn}", "voice-turn")
    if not event.is_new:
        # Twilio retried this callback: the turn ran once already, answer as then.
        log.info("call %s turn %d is a retry; answering as before", call.sid, turn)
        return event.previous_response or _hold(call.settings, turn)
    response = _turn(call, turn)
    respond(call.session, event, response)
    if before_commit is not None:
        before_commit(response)
    call.session.commit()
    return response


def _hold(settings: Settings, turn: int) -> str:
    """The first delivery of this turn is still running: come back for its answer."""
    url = f"{settings.public_base_url}{GATHER_PATH}?turn={turn}"
    return twiml_text.response(_PAUSE, twiml_text.element("Redirect", {"method": "POST"}, url))


def _turn(call: Call, turn: int) -> str:
    service = call.service()
    conversation, routed = call.conversation_and_route(service)
    if conversation is None or isinstance(routed, Unrouted):
        return say_and_hang_up(ENDED)
    if conversation.status == "ended":
        return say_and_hang_up(ENDED, routed.agent)
    state: dict[str, Any] = dict((conversation.details or {}).get("voice") or {})
    state["turn"] = turn
    dialogue = Dialogue(call, service, conversation, routed, state, turn)
    heard = str(call.form.get("SpeechResult") or "").strip()
    heard = heard or str(call.form.get("Digits") or "").strip()
    if not heard:
        response = dialogue.silence()
    elif state.get("awaiting_pin") and digits_from_speech(heard):
        response = dialogue.pin(heard)
    else:
        state.pop("awaiting_pin", None)
        state.pop("pending", None)
        response = dialogue.converse(heard)
    # A new dict, so the JSON column is seen as changed.
    conversation.details = {**(conversation.details or {}), "voice": state}
    return response


@dataclass
class Dialogue:
    """One turn of a routed call: silence, a PIN, or something for the engine."""

    call: Call
    service: ConversationService
    conversation: ConversationRow
    routed: Route
    state: dict[str, Any]
    turn: int

    @property
    def agent(self) -> AgentLike:
        return self.routed.agent

    def next_prompt(self, text: str, *, pin: bool = False) -> str:
        return prompt(self.call.settings, self.agent, text, self.turn + 1, pin=pin)

    def say(self, text: str, *, pin: bool = False) -> str:
        self.service.record(self.conversation, "out", text)
        return self.next_prompt(text, pin=pin)

    def silence(self) -> str:
        self.state["silences"] = int(self.state.get("silences", 0)) + 1
        if self.state["silences"] >= SILENCES_BEFORE_GOODBYE:
            self.service.record(self.conversation, "out", SILENT_GOODBYE)
            self.conversation.status = "ended"
            return say_and_hang_up(SILENT_GOODBYE, self.agent)
        awaiting_pin = bool(self.state.get("awaiting_pin"))
        return self.next_prompt(NOT_HEARD_PIN if awaiting_pin else NOT_HEARD, pin=awaiting_pin)

    def converse(self, text: str, *, preface: str = "") -> str:
        self.state["silences"] = 0
        may_manage = may_manage_existing(
            self.agent, bool(self.state.get("attested")), bool(self.state.get("pin_verified"))
        )
        reply = self.service.take_turn(
            self.conversation,
            self.routed,
            text,
            channel=CHANNEL,
            may_manage_existing=may_manage,
            inbound_external_id=f"{self.call.sid}:{self.turn}",
        )
        if not may_manage and refused_for_verification(reply):
            return self.ask_pin(text)
        spoken = f"{preface} {reply.text}".strip()
        if reply.end_conversation:
            return say_and_hang_up(spoken, self.agent)
        return self.next_prompt(spoken)

    def ask_pin(self, pending: str) -> str:
        if not self.agent.pin_hash:
            return self.say(NO_PIN)
        self.state["awaiting_pin"] = True
        # What the caller asked for, run again once the PIN checks out.
        self.state["pending"] = pending
        return self.say(PIN_PROMPT, pin=True)

    def pin(self, heard: str) -> str:
        self.state["silences"] = 0
        # The transcript never holds the PIN itself.
        self.service.record(self.conversation, "in", "[PIN]", external_id=f"{self.call.sid}:pin")
        settings = self.call.settings
        check = PinCheck(
            session=self.call.session,
            agent=self.agent,
            caller=self.routed.caller,
            call_state=self.state,
            caller_limit=CallerLimit(
                services_of(self.call.request).limiter,
                settings.rate_limit_pin,
                "pin",
                memo=memo(self.call.session),
            ),
            max_attempts=settings.pin_max_attempts_per_call,
            actor=f"twilio:{self.call.sid}",
        )
        outcome = check.attempt(heard)
        if outcome is PinOutcome.WRONG:
            return self.say(PIN_WRONG, pin=True)
        self.state.pop("awaiting_pin", None)
        pending = self.state.pop("pending", None)
        if outcome is PinOutcome.LOCKED:
            return self.say(PIN_LOCKED)
        if outcome is PinOutcome.NO_PIN:
            return self.say(NO_PIN)
        if not pending:
            return self.say(f"{PIN_VERIFIED} What would you like to do?")
        return self.converse(pending, preface=PIN_VERIFIED)


def refused_for_verification(reply: Reply) -> bool:
    """The engine tried a tool on existing appointments, which the tool layer refused
    because this caller is not verified (the refusal is the first thing those tools
    check, so a failed call to one of them, unverified, is that refusal)."""
    for call in reply.tool_calls or []:
        spec = TOOLS.get(str(call.get("name")))
        if spec is not None and spec.touches_existing and not call.get("ok", False):
            return True
    return False


# --- status callbacks and fallback -------------------------------------------------------


@router.post("/status", summary="Call status callback")
async def call_status(request: Request, form: TwilioForm) -> Response:
    # Like every voice webhook, one hop to a worker thread with its own session (a sync
    # endpoint with a session dependency took three: the dependency's entry and exit, and
    # the endpoint). Whatever happens, Twilio gets the empty answer.
    settings = services_of(request).settings
    return await within_budget(
        request, lambda session: _status_answer(session, settings, form), EMPTY, "call status"
    )


def _status_answer(session: Session, settings: Settings, form: FormData) -> str:
    try:
        _record_status(session, settings, form)
    except Exception:
        session.rollback()
        log.exception("call status for %s not recorded", form.get("CallSid") or "(no sid)")
    return EMPTY


def _record_status(session: Session, settings: Settings, form: FormData) -> None:
    sid = str(form.get("CallSid") or "")
    status = str(form.get("CallStatus") or "")
    if not sid or not status:
        return
    sequence = _int(form.get("SequenceNumber"), default=-1)
    event = claim(session, "twilio", f"callstatus:{sid}:{sequence}:{status}", "call-status")
    if not event.is_new:
        return
    # The row's id and details as columns, locked: no entity and no unit of work for a
    # change to two columns.
    found = session.execute(_CALL_DETAILS_FOR_UPDATE, {"call_sid": sid}).first()
    if found is None:
        _record_unanswered_status(session, settings, form, sid, status, sequence)
    else:
        details = dict(found.details or {})
        if _is_newer(details.get("call_status"), status, sequence):
            details["call_status"] = _status_of(form, status, sequence)
            changed: dict[str, Any] = {"details": details, "updated_at": utcnow()}
            if status in FINAL_STATUSES:
                changed["status"] = "ended"
            commit_writes.update_row(session, _CONVERSATIONS, ("id", found.id), changed)
    session.commit()


def _record_unanswered_status(
    session: Session, settings: Settings, form: FormData, sid: str, status: str, sequence: int
) -> None:
    """A call we never answered (unknown caller, failure): keep its outcome anyway."""
    caller = try_e164(str(form.get("From", "")), settings.default_region)
    details = {"call_status": _status_of(form, status, sequence)}
    ended = {"status": "ended"} if status in FINAL_STATUSES else {}
    session.add(
        Conversation(
            channel=CHANNEL,
            external_id=sid,
            caller_e164=caller,
            state={},
            details=details,
            **ended,
        )
    )


def _status_of(form: FormData, status: str, sequence: int) -> dict[str, Any]:
    return {
        "status": status,
        "sequence": sequence,
        "duration_seconds": _int(form.get("CallDuration"), default=None),
        "timestamp": str(form.get("Timestamp") or "") or None,
    }


_CONVERSATIONS = cast(Table, Conversation.__table__)
_CALL_DETAILS_FOR_UPDATE = (
    select(_CONVERSATIONS.c.id, _CONVERSATIONS.c.details)
    .where(
        _CONVERSATIONS.c.channel == CHANNEL,
        _CONVERSATIONS.c.external_id == bindparam("call_sid"),
    )
    .with_for_update()
)


def _is_newer(stored: dict[str, Any] | None, status: str, sequence: int) -> bool:
    """Events may arrive out of order: an older one never overwrites a newer status,
    and nothing overwrites a final status but a later final one."""
    if not stored:
        return True
    if stored.get("status") in FINAL_STATUSES and status not in FINAL_STATUSES:
        return False
    return sequence >= int(stored.get("sequence", -1))


def _int(value: object, default: int | None) -> Any:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


@router.post("/fallback", summary="Fallback URL: Twilio calls it when our webhook failed")
async def fallback(request: Request) -> Response:
    """Always valid TwiML. It has no effect and reveals nothing, so it answers even a
    request whose signature cannot be checked (a rotated auth token is one reason the
    primary webhook fails)."""
    try:
        form = await request.form()
        log.warning(
            "twilio voice fallback: error %s on %s",
            form.get("ErrorCode") or "?",
            form.get("ErrorUrl") or "?",
        )
    except Exception:
        log.exception("twilio voice fallback: unreadable request")
    return twiml(APOLOGY_HANGUP_TWIML)
