"""The LLM conversation engine: a model on any OpenAI-compatible endpoint (Chat
Completions with tools, the API every compatible server speaks) holds the dialogue;
the offline engine answers any turn the model cannot.

One turn: if a change awaits the person's yes and this message is one, run it (in code,
app/agent/llm_tools.py); then give the model the agent's prompt (app/agent/prompt.py),
the trimmed transcript and the message, and run its tool calls through the guardrails
for a bounded number of rounds within the channel's budget. Timeout, API error, rate
limit, refusal, malformed arguments or a spent budget: the offline engine answers this
turn, and Reply.meta says why (audit log, metrics, admin view).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import openai
from openai import OpenAI
from openai.types.chat import ChatCompletion

from app.agent import confirm, llm_guard
from app.agent.engine import Engine, Reply, Turn
from app.agent.llm_tools import MalformedArguments, Memory, ToolBox, VerificationNeeded, model_tools
from app.agent.offline import OfflineEngine
from app.agent.phrasing import fit
from app.agent.prompt import system_prompt
from app.agent.state import ABOUT_APPOINTMENT
from app.calendar.turn_reads import ReadNeeded, TurnReads, turn_reads
from app.config import Settings

HISTORY_MESSAGES = 40
# Below this much budget left, another model request would only time out.
MIN_REQUEST_SECONDS = 0.05
CHARS_PER_TOKEN = 4
MODEL_SHARE = 0.7
# State keys outside "llm" that outlive a request (the offline engine's too).
LASTING_KEYS = ("name", "last", "served")
VERIFY = {
    "voice": "Before I can do that, I need to verify it's you with your PIN.",
    "sms": "For your security I need to verify it's you (your PIN) before I can do that.",
}
NOT_FOR_THE_EAR = re.compile(r"https?://\S+|\b(?:slot|apt)_[A-Za-z0-9]+\b|[*#_`]+")
IDS = re.compile(r"\s*\((?:id|slot_id|appointment_id)[: ][^)]*\)|\b(?:slot|apt)_[A-Za-z0-9]+\b")
# Row ids (app/models.py new_id) are random: a row written in one attempt of a turn has
# another id in the next, so a request is known by its body with ids numbered in order.
ROW_ID = re.compile(r"\b[a-z]{2,8}_[0-9a-f]{16}\b")
# Model requests one turn may fetch across its attempts: one per tool round, and one more
# for a prompt a racing commit changed between attempts.
SPARE_ROUNDS = 1


class Fallback(Exception):
    """This turn goes to the offline engine, for the reason given."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Usage:
    prompt: int = 0
    completion: int = 0
    model_seconds: float = 0.0
    rounds: int = 0


@dataclass
class Answer:
    """One model request's outcome, kept for every attempt of the turn."""

    seconds: float
    # The ChatCompletion as JSON, with the row ids the request named (in order).
    response: str | None = None
    ids: list[str] = field(default_factory=list)
    # Why the turn falls back (a Fallback reason) when the request failed.
    failure: str | None = None


def request_key(body: dict[str, Any]) -> tuple[str, list[str]]:
    """The request's identity across attempts, and the row ids it names."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    ids = list(dict.fromkeys(ROW_ID.findall(text)))
    numbered = {row_id: f"#{n}" for n, row_id in enumerate(ids)}
    text = ROW_ID.sub(lambda m: numbered[m.group(0)], text)
    return hashlib.sha256(text.encode()).hexdigest(), ids


@dataclass
class Options:
    model: str
    temperature: float
    timeout: float
    budgets: dict[str, float]
    max_rounds: int
    max_output_tokens: int
    history_tokens: int
    # OpenAI's own API wants max_completion_tokens; compatible servers know max_tokens.
    completion_tokens_param: str = "max_tokens"

    @classmethod
    def from_settings(cls, settings: Settings) -> Options:
        base = settings.openai_base_url or ""
        return cls(
            model=settings.openai_model,
            temperature=settings.openai_temperature,
            timeout=settings.openai_timeout_seconds,
            # Never more than MODEL_SHARE of the webhook's own budget: the offline
            # engine must still have time to answer when the model does not.
            budgets={
                "sms": min(
                    settings.openai_sms_budget_seconds,
                    settings.sms_turn_budget_seconds * MODEL_SHARE,
                ),
                "voice": min(
                    settings.openai_voice_budget_seconds,
                    settings.voice_turn_budget_seconds * MODEL_SHARE,
                ),
            },
            max_rounds=settings.openai_max_tool_rounds,
            max_output_tokens=settings.openai_max_output_tokens,
            history_tokens=settings.openai_history_tokens,
            completion_tokens_param=(
                "max_completion_tokens" if not base or "api.openai.com" in base else "max_tokens"
            ),
        )


def make_client(settings: Settings, http_client: httpx.Client | None = None) -> OpenAI:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    if not key and not settings.openai_base_url:
        raise ValueError("CONVERSATION_ENGINE=openai needs OPENAI_API_KEY or OPENAI_BASE_URL")
    return OpenAI(
        # A local server (vLLM, Ollama, the fake) takes any key.
        api_key=key or "unused",
        base_url=settings.openai_base_url,
        # Retries would spend the turn's budget; the offline engine is the retry.
        max_retries=0,
        timeout=settings.openai_timeout_seconds,
        # httpx (not the SDK's default transport): pooled, and mockable with respx.
        http_client=http_client or httpx.Client(timeout=settings.openai_timeout_seconds),  # type: ignore[arg-type]  # openai 3 takes an httpx 0.x client too (openai/_httpx2.py)
    )


class LlmEngine:
    """Engine (app/agent/engine.py) on an OpenAI-compatible model."""

    history_messages = HISTORY_MESSAGES

    def __init__(self, client: OpenAI, options: Options, fallback: Engine | None = None) -> None:
        self.client = client
        self.options = options
        self.fallback = fallback or OfflineEngine()

    @classmethod
    def from_settings(
        cls, settings: Settings, http_client: httpx.Client | None = None
    ) -> LlmEngine:
        return cls(make_client(settings, http_client), Options.from_settings(settings))

    def respond(self, turn: Turn) -> Reply:
        return _LlmTurn(self, turn).run()


@dataclass
class _LlmTurn:
    engine: LlmEngine
    turn: Turn
    usage: Usage = field(default_factory=Usage)
    executed: dict[str, Any] | None = None
    executed_pending: dict[str, Any] | None = None
    guards: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Under TurnReads (a webhook turn) the turn may run several times; its start
        # (the budget) and its clock (the prompt) are those of its first attempt.
        self.reads: TurnReads | None = turn_reads(self.turn.tools.ctx.session)
        pinned = self.reads.model if self.reads is not None else {}
        self.started: float = pinned.setdefault("started", time.perf_counter())
        self.now: datetime = pinned.setdefault("now", self.turn.now)
        self.state = dict(self.turn.state or {})
        self.memory = Memory.load(self.state.get("llm") or {})
        if self.memory.pending:
            # Prepared in an earlier turn: the person has seen the question since.
            self.memory.pending = {**self.memory.pending, "prepared_now": False}
        schedule = self.turn.tools.schedule
        local_now = self.now.astimezone(schedule.zone)
        doubt = llm_guard.day_doubt(self.turn.text, local_now.date())
        said = llm_guard.words_read(self.turn.text, local_now, schedule)
        if doubt is None and said.when.unreadable:
            doubt = f"the person named a day that cannot be read ({said.when.unreadable!r})"
        if said.intent in ("book", "move", "cancel"):
            self.memory.asked = said.intent
        self.box = ToolBox(self.turn.tools, self.memory, doubt, said)
        budget = self.engine.options.budgets.get(self.turn.channel, 5.0)
        self.deadline = self.started + budget

    def run(self) -> Reply:
        llm_state = self.state.get("llm") or {}
        if llm_state.get("offline_flow") and self.state.get("awaiting"):
            # The offline engine asked the last question (a fallback turn): it hears the answer.
            return self.offline(reason=None)
        try:
            notes = self.confirmation_notes()
            text = self.converse(notes)
        except VerificationNeeded:
            return self.needs_verification()
        except Fallback as fallback:
            return self.offline(reason=fallback.reason)
        return self.finish(text)

    # --- the person's answer to a pending change ---------------------------------------

    def confirmation_notes(self) -> list[str]:
        pending = self.memory.pending
        if pending is None:
            return []
        if pending.get("choose_with"):
            return self.choice_notes(pending)
        answer = confirm.answer(self.turn.text)
        if answer is confirm.Answer.YES:
            self.executed_pending = pending
            self.executed = self.box.run_pending()
            return [
                f"The person said yes, so the system ran: {pending['summary']}. Result: "
                f"{json.dumps(self.executed)}. Tell them the outcome; if it failed, help them "
                "pick another time."
            ]
        if answer is confirm.Answer.NO:
            self.memory.pending = None
            return [f"The person said no to: {pending['summary']}. Nothing was done."]
        # A yes must answer the question just asked: a later "yes" to something else
        # must not run a change the person moved on from.
        self.memory.pending = None
        return [
            f"The person did not confirm: {pending['summary']}. Nothing was done; prepare "
            "it again if they still want it."
        ]

    def choice_notes(self, pending: dict[str, Any]) -> list[str]:
        """The answer to "replace it, or in addition?" (a booking of a type the person
        holds): both runs the booking; instead prepares the move, which they confirm; a
        bare yes answers neither, so the question stands."""
        held = pending["choose_with"]
        picked = confirm.choice(self.turn.text)
        if picked is confirm.Choice.BOTH:
            self.executed_pending = pending
            self.executed = self.box.run_pending()
            return [
                f"The person chose to keep both, so the system ran: {pending['summary']}. "
                f"Result: {json.dumps(self.executed)}. Tell them the outcome."
            ]
        if picked is confirm.Choice.INSTEAD:
            self.memory.pending = self.box.as_move(pending)
            return [
                f"The person wants to move their {held['type_name']} on {held['when']} "
                "instead; the system asks them to confirm that move. Do not call tools."
            ]
        if confirm.answer(self.turn.text) is confirm.Answer.YES:
            self.memory.pending = {**pending, "prepared_now": True}
            return [
                "The person said yes, but the question was whether the new appointment "
                "replaces the one they hold or is in addition to it; the system asks again."
            ]
        self.memory.pending = None
        return [f"The person did not choose: {pending['summary']}. Nothing was done."]

    # --- the model ---------------------------------------------------------------------

    def converse(self, notes: list[str]) -> str:
        messages = self.messages(notes)
        for _ in range(self.engine.options.max_rounds):
            message = self.ask(messages)
            calls = message.tool_calls or []
            if not calls:
                text = (message.content or "").strip()
                if not text:
                    raise Fallback("empty_reply")
                return text
            messages.append(message.model_dump(exclude_none=True, exclude_unset=True))
            for call in calls:
                function = getattr(call, "function", None)
                if function is None:
                    raise Fallback("unsupported_tool_call")
                try:
                    result = self.box.call(function.name, function.arguments)
                except MalformedArguments:
                    raise Fallback("malformed_arguments") from None
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)}
                )
        raise Fallback("max_tool_rounds")

    def ask(self, messages: list[dict[str, Any]]) -> Any:
        options = self.engine.options
        body = {
            "model": options.model,
            "messages": messages,
            "tools": model_tools(),
            "temperature": options.temperature,
            options.completion_tokens_param: options.max_output_tokens,
        }
        reads = self.reads
        response = self.post(body) if reads is None else self.remembered(reads, body)
        self.usage.rounds += 1
        if response.usage is not None:
            self.usage.prompt += response.usage.prompt_tokens or 0
            self.usage.completion += response.usage.completion_tokens or 0
        if not response.choices:
            raise Fallback("empty_reply")
        choice = response.choices[0]
        if choice.finish_reason == "content_filter" or choice.message.refusal:
            raise Fallback("refusal")
        return choice.message

    def remembered(self, reads: TurnReads, body: dict[str, Any]) -> ChatCompletion:
        """The model's answer to this exact request, fetched between the turn's attempts
        with no transaction open (app/webhooks/turns.py): never inside the write
        transaction, where the database would wait on the model. A failure is kept too,
        so the turn falls back (and says why) once, whatever its attempts."""
        key, ids = request_key(body)
        answer: Answer | None = reads.model.get(key)
        if answer is None:
            if self.deadline - time.perf_counter() < MIN_REQUEST_SECONDS:
                raise Fallback("budget")
            if "model" in reads.spent:
                raise Fallback("fetch_rounds")
            raise ReadNeeded(
                "a model answer",
                lambda: reads.model.__setitem__(key, self.fetch(body, ids)),
                kind="model",
                rounds=self.engine.options.max_rounds + SPARE_ROUNDS,
            )
        self.usage.model_seconds += answer.seconds
        if answer.failure is not None:
            raise Fallback(answer.failure)
        assert answer.response is not None
        text = answer.response
        for old, new in zip(answer.ids, ids, strict=False):
            # The rows this attempt wrote again, under their new ids.
            text = text.replace(old, new)
        return ChatCompletion.model_validate_json(text)

    def fetch(self, body: dict[str, Any], ids: list[str]) -> Answer:
        """Run with no transaction open: the request, and what became of it."""
        started = time.perf_counter()
        try:
            response = self.post(body, count_time=False)
        except Fallback as failed:
            return Answer(time.perf_counter() - started, failure=failed.reason)
        return Answer(
            time.perf_counter() - started,
            response=response.model_dump_json(exclude_unset=True),
            ids=ids,
        )

    def post(self, body: dict[str, Any], count_time: bool = True) -> ChatCompletion:
        options = self.engine.options
        remaining = self.deadline - time.perf_counter()
        if remaining < MIN_REQUEST_SECONDS:
            raise Fallback("budget")
        started = time.perf_counter()
        try:
            # The client's own post: auth, base URL, error types and timeouts of the
            # official package, without create()'s per-call TypedDict transform of the
            # tool schemas (milliseconds of CPU a turn; the body here is plain JSON).
            return self.engine.client.post(
                "/chat/completions",
                cast_to=ChatCompletion,
                body=body,
                options={"timeout": min(options.timeout, remaining)},
            )
        except openai.APITimeoutError:
            raise Fallback("timeout") from None
        except openai.RateLimitError:
            raise Fallback("rate_limited") from None
        except openai.APIStatusError as exc:
            raise Fallback(f"api_error_{exc.status_code}") from None
        except openai.APIConnectionError:
            raise Fallback("connection_error") from None
        except openai.OpenAIError:
            raise Fallback("api_error") from None
        finally:
            if count_time:
                self.usage.model_seconds += time.perf_counter() - started

    def messages(self, notes: list[str]) -> list[dict[str, Any]]:
        turn = self.turn
        system = system_prompt(turn.agent, self.now, turn.channel)
        context = self.context()
        if context:
            system = f"{system}\n{context}"
        if notes:
            # In the one leading system message: many chat templates (vLLM, Ollama) take
            # no system message after the first.
            system += "\nThis turn (from the system, not the person):\n" + "\n".join(notes)
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
        messages += self.history()
        messages.append({"role": "user", "content": turn.text or "(silence)"})
        return messages

    def context(self) -> str:
        """What the system knows from this conversation's tools (never the person's words)."""
        lines = []
        name = self.turn.caller_name or self.state.get("name")
        if name:
            lines.append(f"The person's name on file: {name}.")
        if self.memory.slots:
            offered = "; ".join(
                f"{key} = {slot['when']} ({slot['type']})"
                for key, slot in list(self.memory.slots.items())[-10:]
            )
            lines.append(f"Slots check_availability returned: {offered}.")
        if self.memory.appointments:
            seen = "; ".join(
                f"{key} = {a['type_name']} {a['when']}"
                for key, a in self.memory.appointments.items()
            )
            lines.append(f"The person's appointments seen: {seen}.")
        about = self.state.get(ABOUT_APPOINTMENT)
        if about:
            # A reply to a reminder (app/notifications/replies.py): "cancel", "move it" or
            # "yes" with no other reference mean the reminded appointment.
            lines.append(
                f"This conversation answers a reminder about appointment {about}: unless the "
                "person names another, cancel, move or confirm mean that one "
                "(list_appointments gives its details)."
            )
        if not lines:
            return ""
        return "Conversation facts (from the system):\n" + "\n".join(lines)

    def history(self) -> list[dict[str, Any]]:
        """The transcript, newest kept first, within the token budget."""
        budget = self.engine.options.history_tokens * CHARS_PER_TOKEN
        kept: list[dict[str, Any]] = []
        for direction, body in reversed(self.turn.history):
            budget -= len(body) + 4 * CHARS_PER_TOKEN
            if budget < 0:
                break
            kept.append({"role": "user" if direction == "in" else "assistant", "content": body})
        return list(reversed(kept))

    # --- endings -----------------------------------------------------------------------

    def finish(self, text: str) -> Reply:
        channel = self.turn.channel
        # No ids or links read aloud; no ids in a text either (they mean nothing to people).
        text = NOT_FOR_THE_EAR.sub("", text) if channel == "voice" else IDS.sub("", text)
        text = self.guarded(" ".join(text.split()))
        end = confirm.is_goodbye(self.turn.text) and self.memory.pending is None
        return Reply(
            text=fit(" ".join(text.split()), channel),
            state=self.saved_state(),
            end_conversation=end,
            tool_calls=self.box.calls,
            meta=self.meta(None),
        )

    def guarded(self, text: str) -> str:
        """The model's text, made true in code (app/agent/llm_guard.py): its claims only
        where a change committed, the engine's own words for what committed this turn
        and for the question a prepared change waits on, and a day question beside
        times the model found without one."""
        lang = self.lang
        executed = self.executed or {}
        now_done = executed.get("action") if executed.get("ok") else None
        earlier = [
            llm_guard.Done(d["action"], datetime.fromisoformat(d["start"]))
            for d in self.memory.done
        ]
        text, dropped = llm_guard.truthful(text, now_done, earlier)
        self.guards = ["claim_dropped"] if dropped else []
        pending = self.memory.pending
        asking = pending is not None and bool(pending.get("prepared_now"))
        if dropped and self.executed is None and not asking:
            text = f"{text} {llm_guard.TEXTS[lang]['nothing']}".strip()
        if self.executed is not None and not self.states_outcome(text, now_done):
            text = f"{self.outcome_text()} {text}".strip()
        if pending is not None and asking:
            # The person says yes to the engine's words, not to the model's paraphrase.
            question = self.question(pending)
            return f"{llm_guard.without_questions_or_times(text)} {question}".strip()
        text, proposed = llm_guard.without_proposals(text)
        if proposed:
            self.guards.append("proposal_dropped")
            text = f"{text} {llm_guard.TEXTS[lang]['which']}".strip()
        if self.box.soonest and llm_guard.TIME_WORD.search(text):
            # The model chose no day: say these are the soonest and ask for the day,
            # so a default day never passes for the one the person asked.
            self.guards.append("soonest_marked")
            asked = [s for s in llm_guard.sentences(text) if not s.endswith("?")]
            text = " ".join([*asked, llm_guard.TEXTS[lang]["soonest"]])
        return text or llm_guard.TEXTS[lang]["nothing"]

    def states_outcome(self, text: str, now_done: str | None) -> bool:
        """The model's (already checked) text says what this turn's commit did."""
        if now_done is None:
            return False
        said = set().union(*(llm_guard.claims(s) for s in llm_guard.sentences(text)))
        return bool(said & (llm_guard.TRUE_CLAIMS[now_done] - {"any"}))

    def question(self, pending: dict[str, Any]) -> str:
        action = pending.get("action")
        if action is None or (action != "book" and not pending.get("old_start")):
            # Prepared before the engine kept what it names (an older state).
            ask = f"Shall I {pending['summary']}?"
            return ask + (" Reply YES to confirm." if self.turn.channel == "sms" else "")
        said = [self.turn.text] + [body for way, body in self.turn.history[-6:] if way == "in"]
        # A move asked for in any words the code reads ("can we do it another day?")
        # counts as well as the phrases confirm knows.
        moving = confirm.speaks_of_moving(said) or self.memory.asked == "move"
        held = self.box.also_held(pending, every=moving)
        if held and not confirm.asks_for_another(self.turn.text):
            # Instead of, or in addition to? A yes could not say: ask for the choice.
            pending["choose_with"] = held[0]
            return llm_guard.choice_question(pending, held[0], self.turn.channel, self.lang)
        return llm_guard.proposal(pending, self.turn.channel, self.lang, held)

    @property
    def lang(self) -> str:
        return llm_guard.lang_of(self.turn.agent.language)

    def needs_verification(self) -> Reply:
        """As the offline engine does: say so, and leave the PIN to the phone layer."""
        self.memory.pending = None
        state = self.saved_state()
        state["verification_required"] = True
        state["pending_text"] = self.turn.text
        return Reply(
            text=VERIFY[self.turn.channel],
            state=state,
            tool_calls=self.box.calls,
            meta=self.meta(None),
        )

    def offline(self, reason: str | None) -> Reply:
        if self.memory.pending and self.memory.pending.get("prepared_now"):
            self.memory.pending = None  # the person never heard that question
        if self.executed is not None:
            # The person's yes already ran; tell them its result, not a fresh offline turn.
            return Reply(
                text=fit(self.outcome_text(), self.turn.channel),
                state=self.saved_state(),
                tool_calls=self.box.calls,
                meta=self.meta(reason),
            )
        state = {**self.state, "llm": self.memory.dump()}
        reply = self.engine.fallback.respond(
            Turn(
                text=self.turn.text,
                channel=self.turn.channel,
                now=self.turn.now,
                agent=self.turn.agent,
                tools=self.turn.tools,
                state=state,
                caller_name=self.turn.caller_name,
                history=self.turn.history,
            )
        )
        llm_state = dict(reply.state.get("llm") or state["llm"])
        llm_state["offline_flow"] = bool(reply.state.get("awaiting"))
        return Reply(
            text=reply.text,
            state={**reply.state, "llm": llm_state},
            end_conversation=reply.end_conversation,
            tool_calls=self.box.calls + reply.tool_calls,
            meta=self.meta(reason, answered_by="offline"),
        )

    def outcome_text(self) -> str:
        executed = self.executed or {}
        pending = self.executed_pending or {}
        if "action" in pending:
            alternatives = [
                datetime.fromisoformat(self.memory.slots[a["slot_id"]]["start"])
                for a in executed.get("alternatives") or []
                if a["slot_id"] in self.memory.slots
            ]
            text = llm_guard.outcome(pending, executed, alternatives, self.turn.channel, self.lang)
            return IDS.sub("", text).strip()
        message = IDS.sub("", str(executed.get("message", ""))).strip()
        nearby = executed.get("alternatives") or []
        if nearby and "Nearby" not in message:
            message += " Free nearby: " + ", ".join(a["when"] for a in nearby) + "."
        return message

    def saved_state(self) -> dict[str, Any]:
        # Offline request keys from an earlier fallback turn are done with: the model
        # answered, so only what outlives a request stays beside the engine's memory.
        state = {k: self.state[k] for k in LASTING_KEYS if k in self.state}
        state["llm"] = self.memory.dump()
        return state

    def meta(self, reason: str | None, answered_by: str = "model") -> dict[str, Any]:
        options = self.engine.options
        return {
            "engine": "openai",
            "model": options.model,
            "channel": self.turn.channel,
            "answered_by": answered_by,
            "fallback": reason,
            "guards": self.guards,
            "rounds": self.usage.rounds,
            "usage": {"prompt": self.usage.prompt, "completion": self.usage.completion},
            "model_ms": round(self.usage.model_seconds * 1000, 1),
            "turn_ms": round((time.perf_counter() - self.started) * 1000, 1),
        }
