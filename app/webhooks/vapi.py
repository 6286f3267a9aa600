"""VAPI server URL: every server message of a VAPI call arrives at POST /webhooks/vapi.

- assistant-request: route the caller (and the dialled number) to an agent and answer with
  a transient assistant built for them, or {"error": "<spoken text>"}.
- tool-calls: run our scheduling tools for the routed agent and caller; HTTP 200 with one
  result or error string per call, in order. Each toolCallId runs once.
- status-update, end-of-call-report, hang: kept on the conversation (channel "vapi",
  external_id = VAPI's call id). Anything else is acknowledged.

This module speaks VAPI's protocol (its formats are read in `vapi_payload.py`); routing,
the tools and the audit log do the rest, as for Twilio.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Row, Select, bindparam, case, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from app import sql_fast
from app.agent.conversations import ConversationService
from app.calendar.backend import CalendarBackend, may_be_external
from app.calendar.turn_reads import ReadNeeded
from app.config import Settings
from app.db import read_only
from app.models import (
    Agent,
    Appointment,
    Conversation,
    User,
    utcnow,
)
from app.notifications.plan import Planning, planning_of, with_planning
from app.phone import mask, try_e164
from app.routing import LookedUp, Route, Unrouted, numbers_of, route
from app.security import audit
from app.security.caller_id import PinCheck, PinOutcome, may_manage_existing
from app.security.idempotency import Claim, ClaimRequest, claim, claim_insert, respond
from app.security.ratelimit import CallerLimit
from app.security.vapi_auth import VapiBody
from app.services import services_of
from app.tools.registry import parse_arguments, run_tool
from app.tools.service import SchedulingTools, ToolContext
from app.turn_rows import (
    AgentLike,
    ConversationLike,
    ConversationRow,
    conversation_of,
    new_conversation,
)
from app.webhooks.budget import answer_within
from app.webhooks.replies import unrouted_text
from app.webhooks.turns import memo, run_turn
from app.webhooks.vapi_assistant import VERIFY_PIN, build_assistant
from app.webhooks.vapi_payload import (
    ToolCall,
    as_dict,
    first,
    message_of,
    tool_calls_of,
)
from app.webhooks.vapi_rows import ReadAhead, read_ahead_statement

log = logging.getLogger(__name__)
router = APIRouter(tags=["vapi"])

CHANNEL = "vapi"
BUSY = "You've called several times in a short while. Please try again in a few minutes."
CANNOT_ANSWER = "Sorry, I can't take your call right now. Please try again in a few minutes."
TOOL_FAILED = "The scheduling system had a problem with that; please try again in a moment."
# Past the budget the work may still commit: say so, never "failed".
STILL_CONFIRMING = (
    "Still confirming that with the calendar: it may already be done. Call "
    "list_appointments in a moment to see, before trying again."
)
PREFETCHED = frozenset({"book_appointment", "reschedule_appointment"})
CHANGES = PREFETCHED | {"cancel_appointment"}
PIN_RESULTS = {
    PinOutcome.VERIFIED: "PIN verified: existing appointments may now be listed, moved or "
    "cancelled on this call.",
    PinOutcome.WRONG: "That PIN is wrong. Ask the caller to try again.",
    PinOutcome.LOCKED: "Too many wrong PINs: existing appointments cannot be managed on this "
    "call. New bookings still work.",
    PinOutcome.NO_PIN: "No PIN is set up for this line, so existing appointments cannot be "
    "managed by phone. New bookings still work.",
}


@dataclass
class VapiCall:
    """One server message and what it refers to: the call, the caller, the agent."""

    request: Request
    session: Session
    message: dict[str, Any]
    _route: Route | Unrouted | None = field(default=None, init=False)
    _calendar: CalendarBackend | None = field(default=None, init=False)
    # The routing rows and the call's conversation (a 1-tuple: it may be None), when
    # read ahead with the tool call's claim (`claim_tool_call`), and the rows they were
    # read from (each agent's notification settings and the caller's known name).
    _looked_up: list[LookedUp] | None = field(default=None, init=False)
    _read_rows: Sequence[Any] = field(default=(), init=False)
    _found: tuple[ConversationLike | None] | None = field(default=None, init=False)

    @property
    def settings(self) -> Settings:
        settings: Settings = services_of(self.request).settings
        return settings

    @property
    def call(self) -> dict[str, Any]:
        return as_dict(self.message.get("call"))

    @property
    def call_id(self) -> str:
        return str(self.call.get("id") or "")[:128]

    @property
    def caller_raw(self) -> str:
        customer = as_dict(self.message.get("customer")) or as_dict(self.call.get("customer"))
        return str(customer.get("number") or "")

    @property
    def caller(self) -> str | None:
        return try_e164(self.caller_raw, self.settings.default_region)

    @property
    def dialled_raw(self) -> str:
        number = as_dict(self.message.get("phoneNumber")) or as_dict(self.call.get("phoneNumber"))
        return str(number.get("number") or "")

    def forget(self) -> None:
        """Drop what was read in an earlier transaction of this message."""
        self._route = None
        self._calendar = None
        self._looked_up = None
        self._read_rows = ()
        self._found = None

    def calendar(self, agent: AgentLike) -> CalendarBackend:
        if self._calendar is None:
            self._calendar = services_of(self.request).calendar_factory(self.session, agent)
        return self._calendar

    def route(self) -> Route | Unrouted:
        if self._route is None:
            self._route = route(
                self.session,
                self.caller_raw,
                self.dialled_raw,
                self.settings.default_region,
                # Routing reads its rows by attribute, as LookedUp's.
                looked_up=cast("Sequence[Row[Any]] | None", self._looked_up),
            )
        return self._route

    def read_ahead(self, rows: Sequence[Any], layout: ReadAhead) -> None:
        """Keep the routing rows and the conversation read with the claim (plain rows:
        the conversation is written back at commit if the call changes it)."""
        self._looked_up = [layout.looked_up(row) for row in rows]
        self._read_rows = rows
        found = layout.conversation(rows[0]) if self.call_id else None
        self._found = (conversation_of(self.session, found),)

    def _read_along(self, agent: AgentLike) -> Any | None:
        """The row read ahead with the claim that leads to `agent`."""
        return next(
            (
                row
                for looked, row in zip(self._looked_up or (), self._read_rows, strict=False)
                if looked.Agent is agent
            ),
            None,
        )

    def planning(self, agent: AgentLike) -> Planning | None:
        """The agent's notification settings, when read ahead with its route."""
        row = self._read_along(agent)
        return None if row is None else planning_of(row)

    def known_name(self, routed: Route) -> str | None:
        """The caller's known name for a new conversation, read ahead when it could be."""
        row = self._read_along(routed.agent)
        if row is None:
            return self.service().known_name(routed)
        name: str | None = row.owner_name if routed.caller_is_owner else row.contact_name
        return name

    def service(self) -> ConversationService:
        state = services_of(self.request)
        return ConversationService(
            self.session, state.engine, state.calendar_factory, state.clock()
        )

    def conversation(self, create: bool = True) -> ConversationLike | None:
        """The call's conversation; a new one is opened when `create` (a plain row,
        written at commit or by the booking that refers to it: `unwritten`)."""
        if not self.call_id:
            return None
        if self._found is not None:
            found = self._found[0]
        else:
            found = self.session.scalar(
                select(Conversation).where(
                    Conversation.channel == CHANNEL, Conversation.external_id == self.call_id
                )
            )
        if found is not None or not create:
            return found
        routed = self.route()
        if isinstance(routed, Route):
            return self._open(routed)
        bare = Conversation(channel=CHANNEL, external_id=self.call_id, caller_e164=self.caller)
        bare.state, bare.details = {}, {}
        self.session.add(bare)
        self.session.flush()
        return bare

    def _open(self, routed: Route) -> ConversationRow:
        """The call's new conversation, as ConversationService.open makes one (the
        caller's known name kept); known absent already, so not looked for again. A
        plain row, inserted with the last writes (app/turn_rows.py) unless a booking
        writes it first."""
        conversation = new_conversation(
            self.session,
            channel=CHANNEL,
            external_id=self.call_id,
            caller_e164=routed.caller,
            agent_id=routed.agent.id,
            details={"caller_name": self.known_name(routed)},
        )
        self._found = (conversation,)
        return conversation

    @staticmethod
    def unwritten(conversation: ConversationLike | None) -> ConversationRow | None:
        """The call's new conversation when it is not written yet, for the booking to
        write with its own INSERT (`ToolContext.new_conversation`): the booking refers
        to it. None when there is none (no conversation, or one already written)."""
        if isinstance(conversation, ConversationRow) and conversation.stored is None:
            return conversation
        return None

    def audit(self, action: str, **details: object) -> None:
        audit.record(
            self.session,
            action,
            actor="vapi",
            subject=self.call_id or None,
            details={"channel": CHANNEL, "from": mask(self.caller), **details},
        )


# --- the endpoint ----------------------------------------------------------------------


@router.post("/webhooks/vapi", summary="VAPI server URL (all server messages)")
async def vapi_server_message(request: Request, body: VapiBody) -> JSONResponse:
    if body.problem is not None:
        return JSONResponse({"error": body.problem}, status_code=400)
    message = message_of(body.payload)
    kind = str(message.get("type") or "")
    handler = HANDLERS.get(kind)
    if handler is None:
        return JSONResponse({})  # a message we don't use: acknowledged
    work, on_failure = handler
    answer = await run_budgeted(request, message, work, on_failure, kind)
    if kind == "assistant-request" and "assistant" in answer:
        # Recording the call is not needed for the answer: do it once VAPI has it.
        return JSONResponse(answer, background=BackgroundTask(_record_call, request, message))
    return JSONResponse(answer)


Handler = Callable[[VapiCall], dict[str, Any]]


async def run_budgeted(
    request: Request,
    message: dict[str, Any],
    work: Handler,
    on_failure: Callable[[dict[str, Any]], dict[str, Any]],
    what: str,
) -> dict[str, Any]:
    seconds = services_of(request).settings.vapi_budget_seconds
    return await answer_within(
        request,
        lambda s: work(VapiCall(request, s, message)),
        seconds,
        f"VAPI {what}",
        lambda: on_failure(message),
    )


# --- assistant-request -------------------------------------------------------------------


def assistant_request(vapi: VapiCall) -> dict[str, Any]:
    caller = vapi.caller
    limit = CallerLimit(
        services_of(vapi.request).limiter, vapi.settings.rate_limit_webhook, CHANNEL
    )
    if caller is not None and not limit.allow(caller):
        vapi.audit("ratelimit.refused")
        vapi.session.commit()
        return {"error": BUSY}
    with read_only(vapi.session):
        routed = vapi.route()
        if isinstance(routed, Route):
            name = vapi.service().known_name(routed)
            now = services_of(vapi.request).clock()
            return {"assistant": build_assistant(vapi.settings, routed.agent, name, now)}
    vapi.session.rollback()
    vapi.audit("routing.failed", reason=routed.reason.value)
    vapi.session.commit()
    return {"error": unrouted_text(routed, vapi.settings)}


def _record_call(request: Request, message: dict[str, Any]) -> None:
    """Open the call's conversation and audit the assistant handed out (after the answer)."""
    try:
        with services_of(request).session_factory() as session:
            vapi = VapiCall(request, session, message)
            conversation = vapi.conversation()
            routed = vapi.route()
            agent_id = routed.agent.id if isinstance(routed, Route) else None
            vapi.audit("webhook.accepted", kind="assistant-request", agent_id=agent_id)
            session.commit()
            log.debug("VAPI call %s opened as %s", vapi.call_id, conversation and conversation.id)
    except IntegrityError:  # VAPI asked twice at once; the other request opened it
        pass
    except Exception:
        log.exception("VAPI call %s not recorded", as_dict(message.get("call")).get("id"))


def _cannot_answer(_: dict[str, Any]) -> dict[str, Any]:
    return {"error": CANNOT_ANSWER}


# --- tool-calls --------------------------------------------------------------------------


def tool_calls(vapi: VapiCall) -> dict[str, Any]:
    results = run_tool_calls(vapi, tool_calls_of(vapi.message))
    return {"results": results}


def function_call(vapi: VapiCall) -> dict[str, Any]:
    """The legacy "function-call" message: one call, answered {"result": "..."}."""
    results = run_tool_calls(vapi, tool_calls_of(vapi.message))
    if not results:
        return {"result": "No function call in the message."}
    entry = results[0]
    return {"result": entry.get("result") or entry.get("error") or ""}


def _failed_function_call(_: dict[str, Any]) -> dict[str, Any]:
    return {"result": TOOL_FAILED}


def failed_results(message: dict[str, Any]) -> dict[str, Any]:
    """The answer when the tool calls did not finish within the budget (or failed).

    A call that changes appointments may still commit after we answer, so its answer
    says it is being confirmed; a retry of the same toolCallId gets the stored result."""
    return {
        "results": [
            {
                "toolCallId": c.id,
                "name": c.name,
                "error": STILL_CONFIRMING if c.name in CHANGES else TOOL_FAILED,
            }
            for c in tool_calls_of(message)
        ]
    }


def run_tool_calls(vapi: VapiCall, calls: list[ToolCall]) -> list[dict[str, str]]:
    """One result per call, in order; each toolCallId runs once (a repeat gets the
    stored result); a call that fails inside gets an error and leaves the others be.

    Each call commits on its own, and the external calendar is asked before its write
    transaction begins, so no call holds the database's write turn through an HTTP
    call, and each answer describes what has committed."""
    return [_one_call(vapi, call) for call in calls]


def _one_call(vapi: VapiCall, call: ToolCall) -> dict[str, str]:
    """Google is read before the write transaction (_prefetch) and, for any window the
    call still lacks (alternatives to a taken time, a day checked), between attempts of
    it with none open (app/webhooks/turns.py)."""
    return run_turn(
        vapi.session,
        lambda _: _run_and_commit(vapi, call),
        before=lambda _: _prefetch(vapi, call),
    )


def _run_and_commit(vapi: VapiCall, call: ToolCall) -> dict[str, str]:
    vapi.forget()  # each attempt routes and builds its calendar in its own transaction
    entry = _run_once(vapi, call)
    vapi.session.commit()
    return entry


def _prefetch(vapi: VapiCall, call: ToolCall) -> None:
    """Read what the call will check (free/busy) in a read-only transaction. The
    built-in calendar is read inside the write transaction itself: with no external
    calendar there is nothing to read ahead, and no transaction is spent on it."""
    if call.name not in PREFETCHED or not call.id:
        return
    if not may_be_external(services_of(vapi.request).calendar_factory):
        return
    try:
        with read_only(vapi.session):
            routed = vapi.route()
            if isinstance(routed, Route) and vapi.calendar(routed.agent).name != "local":
                tools = _tools(vapi, routed, vapi.conversation(create=False))
                tools.prefetch(call.name, parse_arguments(call.arguments))
    except Exception:
        log.debug("VAPI prefetch for %s skipped", call.name, exc_info=True)
    finally:
        vapi.session.rollback()


def _run_once(vapi: VapiCall, call: ToolCall) -> dict[str, str]:
    """The call in its own transaction (nothing else is in it): a failure rolls the
    whole of it back, claim included, so a retry of the toolCallId runs it again."""
    if not call.id:
        return _entry(call, False, "The tool call has no id.")
    try:
        event = claim_tool_call(vapi, call)
        if not event.is_new:
            return _stored(call, event.previous_response)
        entry = _execute(vapi, call)
        respond(vapi.session, event, json.dumps(entry))
        return entry
    except ReadNeeded:
        raise  # rolled back and run again once the calendar is read (webhooks/turns.py)
    except Exception:
        log.exception("VAPI tool call %s (%s) failed", call.id, call.name)
        vapi.session.rollback()
        return _entry(call, False, TOOL_FAILED)


def claim_tool_call(vapi: VapiCall, call: ToolCall) -> Claim:
    """Claim the toolCallId and read what running it needs first (the caller's route,
    the call's conversation): on PostgreSQL in the claim's own round trip (its INSERT
    a CTE of the read), on SQLite in one statement after it. Reading ahead is harmless:
    a repeat (no new row) uses none of it, and the call runs as if it read them itself."""
    request = ClaimRequest(
        "vapi", _claim_id(vapi, call), "tool-call", {"name": call.name}, utcnow()
    )
    session = vapi.session
    dialect = session.get_bind().dialect.name
    claim_values = request.params()
    caller = vapi.caller
    if caller is None:  # routing needs no lookup to refuse it
        return request.result(session, _claim_alone(session, dialect, claim_values))
    numbers = numbers_of(caller, try_e164(vapi.dialled_raw, vapi.settings.default_region))
    parameters = {**numbers, "call_id": vapi.call_id, "caller": caller}
    if dialect != "postgresql":  # no INSERT in a CTE
        claimed = request.result(session, _claim_alone(session, dialect, claim_values))
        if claimed.is_new:
            statement, layout = _read_ahead(with_claim=False)
            vapi.read_ahead(sql_fast.execute(session, statement, parameters).rows, layout)
        return claimed
    statement, layout = _read_ahead(with_claim=True)
    rows = sql_fast.execute(session, statement, {**claim_values, **parameters}).rows
    claimed = request.result(session, rows[0].claim_id)
    if claimed.is_new:
        vapi.read_ahead(rows, layout)
    return claimed


def _claim_alone(session: Session, dialect: str, values: dict[str, Any]) -> int | None:
    """The claim's INSERT on its own, compiled once and sent on the session's cursor
    (app/sql_fast.py)."""
    claimed: int | None = sql_fast.execute(session, claim_insert(dialect), values).scalar()
    return claimed


@cache
def _read_ahead(with_claim: bool) -> tuple[Select[Any], ReadAhead]:
    """The routing lookup (app/routing.py) with the call's conversation, and what a
    booking's notifications and a new conversation need of each agent found: one row
    at least, plain columns (app/webhooks/vapi_rows.py). `with_claim` (PostgreSQL):
    the claim's INSERT as a CTE of it, its id the row's first column. Built once."""
    claimed = claim_insert("postgresql").cte("claimed") if with_claim else None
    statement, layout = read_ahead_statement(CHANNEL, claimed)
    return _with_known_names(with_planning(statement)), layout


def _with_known_names(statement: Select[Any]) -> Select[Any]:
    """`statement` (the lookup, with the call's conversation) with what a new
    conversation keeps as the caller's name for each agent found, read only when the
    call has no conversation yet: the owner's name (the caller owns the agent), else
    the newest name the caller booked under (ConversationService.known_name)."""
    owner = select(User.name).where(User.id == Agent.user_id)
    booked = (
        select(Appointment.contact_name)
        .where(
            Appointment.agent_id == Agent.id,
            Appointment.contact_e164 == bindparam("caller"),
            Appointment.contact_name.is_not(None),
        )
        .order_by(Appointment.created_at.desc())
        .limit(1)
    )
    new = Conversation.id.is_(None)
    return statement.add_columns(
        case((new, owner.correlate(Agent).scalar_subquery())).label("owner_name"),
        case((new, booked.correlate(Agent).scalar_subquery())).label("contact_name"),
    )


def _claim_id(vapi: VapiCall, call: ToolCall) -> str:
    """The toolCallId, scoped to the caller: a retry (same call, same caller) finds the
    stored answer; someone else posting that id gets their own, never this one."""
    caller = hashlib.sha256(vapi.caller_raw.encode()).hexdigest()[:16]
    return f"{call.id[:100]}|{caller}"


def _stored(call: ToolCall, previous: str | None) -> dict[str, str]:
    if previous is None:
        return _entry(call, False, "This tool call is still running; try again in a moment.")
    stored: dict[str, str] = json.loads(previous)
    return stored


def _entry(call: ToolCall, ok: bool, text: str) -> dict[str, str]:
    return {"toolCallId": call.id, "name": call.name, ("result" if ok else "error"): _line(text)}


def _line(text: str) -> str:
    return " ".join(text.split())


def _execute(vapi: VapiCall, call: ToolCall) -> dict[str, str]:
    routed = vapi.route()
    if isinstance(routed, Unrouted):
        return _entry(call, False, unrouted_text(routed, vapi.settings))
    try:
        arguments = parse_arguments(call.arguments)
    except ValueError as exc:
        return _entry(call, False, f"Invalid arguments for {call.name}: {exc}")
    conversation = vapi.conversation()
    if call.name == VERIFY_PIN:
        return _verify_pin(vapi, call, routed, conversation, arguments)
    held = vapi.unwritten(conversation) if call.name == "book_appointment" else None
    tools = _tools(vapi, routed, conversation, held)
    # VAPI may resend a tool call: the same toolCallId from the same caller books once.
    result = run_tool(tools, call.name, arguments, request_key=call.id[:128])
    if conversation is not None:
        vapi.service().record(
            conversation,
            "out",
            result.one_line(),
            tool_calls=[
                {"name": call.name, "arguments": arguments, "ok": result.ok, "result": result.data}
            ],
            external_id=call.id[:64],
        )
    return _entry(call, result.ok, result.one_line())


def _call_state(conversation: ConversationLike | None) -> dict[str, Any]:
    if conversation is None:
        return {}
    return dict((conversation.details or {}).get("vapi") or {})


def _tools(
    vapi: VapiCall,
    routed: Route,
    conversation: ConversationLike | None,
    unwritten: ConversationRow | None = None,
) -> SchedulingTools:
    # One calendar per call message: the free/busy read before the write transaction
    # is the one the booking checks inside it.
    # VAPI passes no STIR/SHAKEN verdict: the caller ID counts as unattested.
    verified = bool(_call_state(conversation).get("pin_verified"))
    state = services_of(vapi.request)
    return SchedulingTools(
        ToolContext(
            session=vapi.session,
            agent=routed.agent,
            calendar=vapi.calendar(routed.agent),
            now=state.clock(),
            caller=routed.caller,
            channel=CHANNEL,
            conversation_id=conversation.id if conversation is not None else None,
            may_manage_existing=may_manage_existing(routed.agent, False, verified),
            planning=vapi.planning(routed.agent),
            new_conversation=unwritten,
        )
    )


def _verify_pin(
    vapi: VapiCall,
    call: ToolCall,
    routed: Route,
    conversation: ConversationLike | None,
    arguments: dict[str, Any],
) -> dict[str, str]:
    if conversation is None:
        return _entry(call, False, "verify_pin needs the call it belongs to.")
    settings = vapi.settings
    state = _call_state(conversation)
    check = PinCheck(
        session=vapi.session,
        agent=routed.agent,
        caller=routed.caller,
        call_state=state,
        caller_limit=CallerLimit(
            services_of(vapi.request).limiter,
            settings.rate_limit_pin,
            "pin",
            memo=memo(vapi.session),
        ),
        max_attempts=settings.pin_max_attempts_per_call,
        actor=f"vapi:{vapi.call_id}",
    )
    outcome = check.attempt(str(arguments.get("pin") or ""))
    conversation.details = {**(conversation.details or {}), "vapi": state}
    return _entry(call, outcome is PinOutcome.VERIFIED, PIN_RESULTS[outcome])


# --- reports -----------------------------------------------------------------------------


def _timestamp(value: Any) -> float | None:
    """VAPI timestamps are epoch milliseconds or ISO strings, depending on the era."""
    if isinstance(value, int | float):
        return float(value) / 1000
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _scrubbed(value: Any) -> Any:
    # Transcripts and summaries may quote phone numbers: keep them masked at rest.
    return audit.scrub(value) if value is not None else None


def status_update(vapi: VapiCall) -> dict[str, Any]:
    conversation = vapi.conversation()
    if conversation is None:
        return {}
    status = str(vapi.message.get("status") or "")
    at = _timestamp(vapi.message.get("timestamp"))
    details = dict(conversation.details or {})
    stored = as_dict(details.get("call_status"))
    stored_at = stored.get("at")
    if status and (at is None or stored_at is None or at >= stored_at):
        details["call_status"] = {
            "status": status,
            "at": at,
            "ended_reason": vapi.message.get("endedReason"),
        }
        conversation.details = details
        if status == "ended":
            conversation.status = "ended"
    vapi.session.commit()
    return {}


def end_of_call_report(vapi: VapiCall) -> dict[str, Any]:
    conversation = vapi.conversation()
    if conversation is None:
        return {}
    event = claim(vapi.session, "vapi", f"report:{vapi.call_id}", "end-of-call-report")
    if not event.is_new:
        return {}
    message = vapi.message
    artifact = as_dict(message.get("artifact"))
    analysis = as_dict(message.get("analysis"))
    messages = artifact.get("messages") or message.get("messages") or []
    report = {
        "ended_reason": message.get("endedReason"),
        "summary": _scrubbed(first(analysis.get("summary"), message.get("summary"))),
        "transcript": _scrubbed(first(artifact.get("transcript"), message.get("transcript"))),
        "recording_url": first(artifact.get("recordingUrl"), message.get("recordingUrl")),
        "stereo_recording_url": first(
            artifact.get("stereoRecordingUrl"), message.get("stereoRecordingUrl")
        ),
        "success_evaluation": analysis.get("successEvaluation"),
        "cost": message.get("cost"),
        "started_at": message.get("startedAt"),
        "ended_at": message.get("endedAt"),
        "message_count": len(messages) if isinstance(messages, list) else 0,
        "received_at": datetime.now(UTC).isoformat(),
    }
    conversation.details = {**(conversation.details or {}), "report": report}
    conversation.status = "ended"
    vapi.audit("call.reported", ended_reason=str(report["ended_reason"] or "unknown"))
    vapi.session.commit()
    return {}


def hang(vapi: VapiCall) -> dict[str, Any]:
    conversation = vapi.conversation()
    if conversation is None:
        return {}
    details = dict(conversation.details or {})
    hangs = list(details.get("hangs") or [])
    hangs.append({"at": _timestamp(vapi.message.get("timestamp"))})
    details["hangs"] = hangs[-20:]
    conversation.details = details
    vapi.session.commit()
    return {}


def _acknowledge(_: dict[str, Any]) -> dict[str, Any]:
    return {}


HANDLERS: dict[str, tuple[Handler, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "assistant-request": (assistant_request, _cannot_answer),
    "tool-calls": (tool_calls, failed_results),
    "function-call": (function_call, _failed_function_call),
    "status-update": (status_update, _acknowledge),
    "end-of-call-report": (end_of_call_report, _acknowledge),
    "hang": (hang, _acknowledge),
}


# --- benchmark baseline --------------------------------------------------------------------

bench_router = APIRouter(prefix="/_bench", tags=["bench"], include_in_schema=False)


@bench_router.post("/json")
async def bench_json(request: Request) -> JSONResponse:
    """A bare JSON endpoint: the baseline the VAPI benchmarks compare against (only
    mounted with BENCH_ENDPOINTS=true)."""
    body = await request.body()
    return JSONResponse({"results": [{"toolCallId": "bare", "result": f"{len(body)} bytes"}]})
