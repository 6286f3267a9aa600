"""Twilio Media Streams: the WebSocket of a streamed call, and its way back to <Gather>.

An agent with voice_mode "stream" (and DEEPGRAM_API_KEY set) answers the inbound call with
<Connect><Stream> to wss://<PUBLIC_BASE_URL host>/webhooks/twilio/media, followed by a
<Redirect> here to /resume: when the stream ends for any reason but a hang-up, Twilio goes
on with that redirect, so a Deepgram failure becomes a <Gather> call, never dead air.

Who may open a stream: Twilio's signature on the upgrade request (X-Twilio-Signature over
the wss URL), and then, in the `start` message, the short-lived token from the TwiML bound
to the CallSid, used once. Anything else is closed before audio flows.

This module knows Twilio's messages and TwiML; app/voice/ does the turn-taking, and every
engine turn is the Gather path's own step (twilio_voice.take_turn), so routing, the PIN
policy, idempotency and the transcript are the same on both transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, Request, WebSocket
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response
from starlette.websockets import WebSocketDisconnect, WebSocketState
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.voice_response import Connect, VoiceResponse

from app.agent.unheard import withdraw_unheard
from app.config import Settings
from app.models import Agent, Conversation, Message, User
from app.routing import Unrouted
from app.security import audit
from app.security.idempotency import claim
from app.security.stream_token import StreamTokens, TokenRejected
from app.services import services_of
from app.turn_rows import AgentLike
from app.voice.call import Foresee, Outcome, Said, StreamCall, freeze_when_warm
from app.voice.deepgram import Deepgram, DeepgramUnavailable, ListenOptions
from app.webhooks import twilio_voice as voice
from app.webhooks.twilio_common import TwilioForm

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks/twilio/media", tags=["twilio"])

MEDIA_PATH = "/webhooks/twilio/media"
RESUME_PATH = "/webhooks/twilio/media/resume"
START_TIMEOUT_SECONDS = 5.0
POLICY_VIOLATION = 1008
INTERRUPTED = "[interrupted]"
RESUMED = "Sorry, the line broke up for a moment. Could you say that again?"
# Threads for streamed calls' engine turns: more than turns are ever at once in a process
# (a turn waiting on a calendar's API holds one), created only as they are needed.
TURN_THREADS = 32
T = TypeVar("T")


# --- the answer to the inbound call ------------------------------------------------------


def streams(agent: AgentLike, deepgram: Deepgram | None) -> bool:
    """Stream only agents that asked for it, and only when Deepgram is configured."""
    return agent.voice_mode == "stream" and deepgram is not None


def tokens(settings: Settings) -> StreamTokens:
    return StreamTokens(
        settings.app_secret_key.get_secret_value().encode(), settings.stream_token_seconds
    )


def media_url(settings: Settings) -> str:
    base = settings.public_base_url
    scheme, _, rest = base.partition("://")
    return f"{'ws' if scheme == 'http' else 'wss'}://{rest}{MEDIA_PATH}"


def connect_stream(settings: Settings, call_sid: str) -> str:
    """<Connect><Stream> with the call's token, then the way back if the stream ends."""
    document = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=media_url(settings))
    stream.parameter(name="token", value=tokens(settings).issue(call_sid, time.time()))
    document.append(connect)
    document.redirect(f"{settings.public_base_url}{RESUME_PATH}", method="POST")
    return str(document)


# --- back to <Gather> --------------------------------------------------------------------


@router.post("/resume", summary="The stream ended: go on with <Gather>, or hang up")
async def resume(request: Request, form: TwilioForm) -> Response:
    return await voice.within_budget(
        request,
        lambda session: resume_call(voice.Call(request, session, form)),
        voice.say_and_hang_up(voice.APOLOGY_HANGUP),
        "stream resume",
    )


def resume_call(call: voice.Call) -> str:
    event = claim(call.session, "twilio", f"{call.sid}:resume", "voice-resume")
    if not event.is_new:
        return event.previous_response or voice.say_and_hang_up(voice.ENDED)
    response = _resume(call)
    assert event.event is not None
    event.event.response = response
    call.session.commit()
    return response


def _resume(call: voice.Call) -> str:
    conversation = call.conversation()
    routed = call.route()
    if conversation is None or isinstance(routed, Unrouted):
        return voice.say_and_hang_up(voice.ENDED)
    if conversation.status == "ended":
        # The agent said goodbye on the stream: nothing more to say.
        return str(VoiceResponse().hangup())
    state: dict[str, Any] = dict((conversation.details or {}).get("voice") or {})
    turn = int(state.get("turn") or 0) + 1
    service = call.service()
    spoke_before = call.session.scalar(
        select(Message.id).where(
            Message.conversation_id == conversation.id, Message.direction == "out"
        )
    )
    # Deepgram failed before the greeting: greet now, as the Gather path does.
    text = RESUMED if spoke_before else voice.greeting_for(routed.agent, service.known_name(routed))
    service.record(conversation, "out", text)
    return voice.prompt(
        call.settings, routed.agent, text, turn, pin=bool(state.get("awaiting_pin"))
    )


# --- the media stream ------------------------------------------------------------------


@router.websocket("")
async def media_stream(websocket: WebSocket) -> None:
    settings: Settings = services_of(websocket).settings
    if not upgrade_signed(websocket, settings):
        await _audit(websocket, "", "webhook.rejected", reason="stream upgrade not signed")
        await websocket.close(code=POLICY_VIOLATION)  # before accept: HTTP 403
        return
    await websocket.accept()
    start = await _start_message(websocket)
    if start is None:
        await _refuse(websocket, "", "no start message")
        return
    call_sid = str(start.get("callSid") or "")
    token = str((start.get("customParameters") or {}).get("token") or "")
    try:
        tokens(settings).verify(token, call_sid, time.time())
    except TokenRejected as exc:
        await _refuse(websocket, call_sid, exc.reason)
        return
    dialogue = CallDialogue(websocket, call_sid)
    options = await dialogue.open()
    if options is None:
        await _refuse(websocket, call_sid, "stream already opened for this call")
        return
    outcome = await _converse(websocket, dialogue, options, str(start.get("streamSid") or ""))
    if outcome is Outcome.FALLBACK:
        await _audit(websocket, call_sid, "voice.stream_fallback", reason=dialogue.failure)
    await dialogue.settle()
    # Twilio then follows the <Redirect> after <Connect>: /resume.
    await _close(websocket)
    freeze_when_warm()


async def _close(websocket: WebSocket, code: int = 1000) -> None:
    """Close unless the caller's side is already gone (a hang-up closes it first)."""
    if websocket.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.close(code=code)


def _sender(websocket: WebSocket) -> Callable[[str], Awaitable[None]]:
    """send_text that stays quiet once the caller hung up: the reader sees the hang-up."""

    async def send(message: str) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.send_text(message)

    return send


async def _converse(
    websocket: WebSocket, dialogue: CallDialogue, options: ListenOptions, stream_sid: str
) -> Outcome:
    deepgram = services_of(websocket).deepgram
    settings: Settings = services_of(websocket).settings
    if deepgram is None:  # a signed upgrade, but this deployment has no Deepgram key
        dialogue.failure = "deepgram is not configured"
        return Outcome.FALLBACK
    try:
        async with deepgram.listen(options) as listener:
            greeting = await dialogue.greet()
            call = StreamCall(
                stream_sid,
                _sender(websocket),
                listener,
                deepgram.speak,
                dialogue,
                settings.stream_silence_seconds,
            )
            websocket.state.stream_call = call  # benchmarks read its turn latencies
            outcome = await call.run(greeting, twilio_messages(websocket))
            dialogue.failure = "deepgram dropped mid-call"
            return outcome
    except DeepgramUnavailable as exc:
        dialogue.failure = str(exc)
        return Outcome.FALLBACK


def upgrade_signed(websocket: WebSocket, settings: Settings) -> bool:
    """Twilio signs the upgrade's wss URL (no body) with the account's auth token."""
    signature = websocket.headers.get("x-twilio-signature")
    if not signature:
        return False
    url = media_url(settings)
    if websocket.url.query:
        url = f"{url}?{websocket.url.query}"
    validator = RequestValidator(settings.twilio_auth_token.get_secret_value())
    algorithm = get_signature_algorithm(
        websocket.headers.get("x-twilio-webhooks-signature-settings")
    )
    return bool(validator.validate(url, {}, signature, algorithm))


async def _start_message(websocket: WebSocket) -> dict[str, Any] | None:
    """The `start` message (after `connected`), within a few seconds."""
    with anyio.move_on_after(START_TIMEOUT_SECONDS):
        async for message in twilio_messages(websocket):
            if message.get("event") == "start":
                start = message.get("start")
                return start if isinstance(start, dict) else None
            if message.get("event") != "connected":
                return None
    return None


async def twilio_messages(websocket: WebSocket) -> AsyncIterator[dict[str, Any]]:
    """Twilio's messages, until it hangs up. The ASGI messages are read as they come
    (receive, not receive_text: one layer less for each of a call's 50 frames a second);
    Twilio sends only text, anything else is ignored."""
    receive = websocket.receive
    try:
        while True:
            event = await receive()
            text = event.get("text")
            if text is None:
                if event["type"] == "websocket.disconnect":
                    return
                continue
            try:
                message = json.loads(text)
            except ValueError:
                log.warning("media stream: a message that is not JSON, ignored")
                continue
            if isinstance(message, dict):
                yield message
    except RuntimeError:  # the stream was already over
        return


async def _refuse(websocket: WebSocket, call_sid: str, reason: str) -> None:
    log.warning("media stream refused: %s", reason)
    await _audit(websocket, call_sid, "webhook.rejected", reason=reason)
    await _close(websocket, POLICY_VIOLATION)


async def _audit(websocket: WebSocket, call_sid: str, action: str, **details: object) -> None:
    def write(session: Session) -> None:
        audit.record(
            session,
            action,
            actor="twilio",
            subject=call_sid or MEDIA_PATH,
            details={"channel": "voice-stream", **details},
        )
        session.commit()

    try:
        await _in_thread(websocket, write)
    except Exception:
        log.exception("media stream audit entry %s not written", action)


async def _in_thread(websocket: WebSocket, work: Callable[[Session], T]) -> T:
    return await anyio.to_thread.run_sync(_in_session(websocket, work))


def _in_session(websocket: WebSocket, work: Callable[[Session], T]) -> Callable[[], T]:
    """`work` with a session of its own, in the caller's context (a worker thread sees
    the request's context variables, as with anyio's threads)."""
    context = contextvars.copy_context()

    def run() -> T:
        with services_of(websocket).session_factory() as session:
            try:
                return work(session)
            except Exception:
                session.rollback()
                raise

    return lambda: context.run(run)


_turn_threads = ThreadPoolExecutor(TURN_THREADS, thread_name_prefix="streamed-turn")


def _answer_of(job: Future[T]) -> asyncio.Future[T]:
    """The job's outcome on the loop, handed over in one callback (a loop iteration):
    anyio's threads, a task and a shield took four, and each iteration may wait up to the
    GIL switch interval while another call's turn runs Python in its thread. Cancelling
    the answer leaves the job running."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def hand_over() -> None:
        if answer.cancelled():
            return
        if job.cancelled():  # never started: the process is shutting down
            answer.cancel()
        elif (error := job.exception()) is not None:
            answer.set_exception(error)
        else:
            answer.set_result(job.result())

    def report(_: Future[T]) -> None:  # in the worker thread, or here if already done
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(hand_over)

    job.add_done_callback(report)
    return answer


# --- engine turns, through the Gather path's own step -------------------------------------


class CallDialogue:
    """The conversation behind one stream. Each turn runs twilio_voice.take_turn in a
    worker thread (claimed once per turn, committed with its transcript) and reads what
    to say from the TwiML it returns."""

    def __init__(self, websocket: WebSocket, call_sid: str) -> None:
        self.websocket = websocket
        self.call_sid = call_sid
        self.form = FormData([("CallSid", call_sid)])
        self.turn_number = 0
        self.failure = ""
        self.in_flight: Future[str] | None = None
        self.turn_cpu_seconds: list[float] = []

    async def settle(self) -> None:
        """Let a turn still running commit before Twilio moves on to /resume, so the
        Gather turns that follow are numbered after it."""
        job = self.in_flight
        if job is None or job.done():
            return
        seconds = services_of(self.websocket).settings.voice_turn_budget_seconds
        with anyio.move_on_after(seconds), contextlib.suppress(Exception):
            await _answer_of(job)

    def _call(self, session: Session) -> voice.Call:
        return voice.Call(self.websocket, session, self.form)

    async def open(self) -> ListenOptions | None:
        """Claim the stream (once per call) and learn who is calling whom."""
        return await _in_thread(self.websocket, self._open)

    def _open(self, session: Session) -> ListenOptions | None:
        if not claim(session, "twilio", f"{self.call_sid}:stream", "voice-stream").is_new:
            return None
        conversation = session.scalar(
            select(Conversation).where(
                Conversation.channel == voice.CHANNEL, Conversation.external_id == self.call_sid
            )
        )
        agent = session.get(Agent, conversation.agent_id) if conversation else None
        if conversation is None or agent is None or conversation.status == "ended":
            session.rollback()
            return None
        state = (conversation.details or {}).get("voice") or {}
        # The Gather path routes each turn from the form: give it the call's own numbers.
        self.form = FormData(
            [
                ("CallSid", self.call_sid),
                ("From", conversation.caller_e164 or ""),
                ("To", state.get("to") or ""),
            ]
        )
        self.turn_number = int(state.get("turn") or 0)
        session.commit()
        return ListenOptions(language=agent.language, keyterms=keyterms(session, agent))

    async def greet(self) -> Said:
        return await _in_thread(self.websocket, self._greet)

    def _greet(self, session: Session) -> Said:
        call = self._call(session)
        routed = call.route()
        conversation = call.conversation()
        if isinstance(routed, Unrouted) or conversation is None:
            return Said(voice.ENDED, hang_up=True)
        service = call.service()
        greeting = voice.greeting_for(routed.agent, service.known_name(routed))
        service.record(conversation, "out", greeting)
        session.commit()
        return Said(greeting)

    async def turn(self, heard: str, foreseen: Foresee) -> Said:
        self.turn_number += 1
        number = self.turn_number
        seconds = services_of(self.websocket).settings.voice_turn_budget_seconds
        form = FormData([*self.form.multi_items(), ("SpeechResult", heard)])
        ahead = _on_loop(foreseen)
        job = _turn_threads.submit(
            _in_session(
                self.websocket, lambda session: self._take_turn(session, form, number, ahead)
            )
        )
        # Not cancelled with the call: settle() lets it commit before /resume.
        self.in_flight = job
        try:
            async with asyncio.timeout(seconds):
                twiml = await _answer_of(job)
        except Exception:
            log.exception("stream %s turn %d failed", self.call_sid, number)
            return Said(voice.APOLOGY_RETRY)
        return said_in(twiml)

    def _take_turn(
        self, session: Session, form: FormData, number: int, ahead: Callable[[str], None]
    ) -> str:
        started = time.thread_time()
        try:
            return voice.take_turn(voice.Call(self.websocket, session, form), number, ahead)
        finally:
            # The worker thread's own CPU: what a turn costs the process (benchmarks).
            self.turn_cpu_seconds.append(time.thread_time() - started)

    async def interrupted(self, heard: str, question_heard: bool) -> None:
        """Keep in the transcript only what the caller heard of the last reply, and
        withdraw a proposal whose question was cut off before the caller's next turn."""
        try:
            await _in_thread(
                self.websocket,
                lambda session: self._interrupted(session, heard, question_heard),
            )
        except Exception:
            log.exception("stream %s: barge-in not recorded", self.call_sid)

    def _interrupted(self, session: Session, heard: str, question_heard: bool) -> None:
        conversation = self._call(session).conversation()
        if conversation is None:
            return
        last = session.scalar(
            select(Message)
            .where(Message.conversation_id == conversation.id, Message.direction == "out")
            .order_by(Message.id.desc())
            .limit(1)
        )
        if last is not None:
            last.body = f"{heard} {INTERRUPTED}".strip()
        details = dict(conversation.details or {})
        voice_state = dict(details.get("voice") or {})
        clock = services_of(self.websocket).clock
        barge_in = {"at": clock().isoformat(), "heard": heard, "question_heard": question_heard}
        barge_ins = [*voice_state.get("barge_ins", []), barge_in]
        conversation.details = {**details, "voice": {**voice_state, "barge_ins": barge_ins}}
        if not question_heard:
            conversation.state = withdraw_unheard(dict(conversation.state or {}))
        session.commit()


def _on_loop(foreseen: Foresee) -> Callable[[str], None]:
    """take_turn's before_commit, in the worker thread: the answer about to be committed,
    read there and handed to the loop, whose synthesis then overlaps the commit. Only a
    head start: a failure here costs the turn nothing."""
    loop = asyncio.get_running_loop()

    def ahead(twiml: str) -> None:
        try:
            loop.call_soon_threadsafe(foreseen, said_in(twiml))
        except Exception:  # the call ended (its loop closed) or the answer is unreadable
            log.debug("a streamed turn's answer not foreseen", exc_info=True)

    return ahead


def said_in(twiml: str) -> Said:
    """What a Gather-path answer says, and whether it ends the call."""
    root = ET.fromstring(twiml)
    text = " ".join((say.text or "").strip() for say in root.iter("Say")).strip()
    hang_up = root.find("Hangup") is not None or root.find("Gather") is None
    return Said(text or voice.APOLOGY_RETRY, hang_up=hang_up)


def keyterms(session: Session, agent: AgentLike) -> tuple[str, ...]:
    """Words the recogniser should expect: appointment type names and the owner's name."""
    names = [str(t.get("name") or t.get("key") or "") for t in agent.appointment_types or []]
    owner = session.get(User, agent.user_id)
    if owner is not None and owner.name:
        names.append(owner.name)
    return tuple(dict.fromkeys(name for name in names if name))
