"""The offline conversation engine: deterministic rules, no network, no model.

One turn: read the message (app/agent/understanding.py, app/agent/dates.py), decide
from it and the dialogue state what to do, act only through the scheduling tools, and
word the answer for the channel (app/agent/phrasing.py).

Dialogue state lives only in `Turn.state` (plain JSON), so a new engine instance given
the saved state continues the same dialogue. Its keys:
  intent      "book" | "move" | "cancel" | None: the request being worked on
  type        appointment type key (booking)
  day, at, part   what the caller asked for: ISO date, "HH:MM", part of the day
  offers      ISO local datetimes just offered
  proposal    the ISO local datetime awaiting a yes
  awaiting    "type" | "name" | "choice" | "confirm" | "which" | "when" | "verification"
  target      the appointment being moved or cancelled {id, start, end, type, type_name}
  candidates  appointments the caller may pick from (after a list or "which one?")
  move_to     the new time said with "move ..." while we ask which appointment
  name        the caller's name, once given
  last        id of the appointment booked or moved last ("cancel it" refers to it)
  served      something was done for the caller (goodbye then ends the call)
  pending_text    the request that needs identity verification before it can run
  verification_required   True while that request waits (the voice layer asks the PIN)
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.agent import phrasing as say
from app.agent.catalog import CATALOGUES, FOREIGN, detect_language, wording
from app.agent.dates import fold, part_of
from app.agent.engine import Reply, Turn
from app.agent.profile import faq_answer, hours_lines
from app.agent.state import FLOW_KEYS, dump_state, load_state
from app.agent.understanding import Message, find_choice, find_name, read
from app.calendar.availability import BusyIndex, Unavailable, check_slot
from app.models import Agent
from app.tools.registry import run_tool
from app.tools.schemas import ToolResult

log = logging.getLogger(__name__)

DAY_ABBREVIATIONS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SPANISH_DAY_ABBREVIATIONS = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")
# An English sentence in a Spanish conversation switches it back (not a lone "ok").
ENGLISH_ONLY = re.compile(
    r"\b(?:i'd like|i want|i need|can i|could i|appointment|tomorrow|cancel my|book me|"
    r"what time|do you have)\b"
)


def agent_language(agent: Agent) -> str:
    """The profile's language ("es-MX" → "es"); English for anything we do not speak."""
    code = (agent.language or "en").split("-")[0].lower()
    return code if code in CATALOGUES else "en"


OFFER_COUNT = 3
OFFER_GAP = timedelta(minutes=60)


class OfflineEngine:
    """Rules engine implementing app.agent.engine.Engine."""

    def respond(self, turn: Turn) -> Reply:
        dialogue = _Dialogue(turn)
        try:
            text = dialogue.run()
        except SQLAlchemyError:
            raise  # the transaction is broken: the webhook rolls back and apologises
        except Exception:
            # A rule that trips over an odd message must not cost the caller the call:
            # log it, drop the request in progress and answer with the hint.
            log.exception("offline engine failed on a turn; starting the request over")
            dialogue = _Dialogue(turn)
            dialogue.clear_flow()
            text = dialogue.hint()
        return Reply(
            text=say.fit(text, turn.channel),
            state=dump_state(dialogue.state),
            end_conversation=dialogue.end,
            tool_calls=dialogue.calls,
        )


class _Dialogue:
    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.channel = turn.channel
        self.schedule = turn.tools.schedule
        self.zone = self.schedule.zone
        self.now = turn.now.astimezone(self.zone)
        self.state: dict[str, Any] = dict(load_state(turn.state))
        self.calls: list[dict[str, Any]] = []
        self.end = False
        self.lang: str = self.state.get("lang") or agent_language(turn.agent)

    # --- wording -------------------------------------------------------------------

    def t(self, key: str, **values: object) -> str:
        return wording(self.lang, self.channel, key, **values)

    def join(self, items: list[str], word: str) -> str:
        return say.join_or(items, word, self.lang)

    def article(self, name: str) -> str:
        return say.article(name, self.lang)

    def numbered(self, items: list[str]) -> str:
        return say.numbered(items, self.channel, self.lang)

    def when_text(self, moment: datetime) -> str:
        return say.when(moment, self.channel, self.lang)

    def day_text(self, day: date) -> str:
        return say.day_text(day, self.channel, self.lang)

    def clock(self, moment: datetime) -> str:
        return say.clock(moment, self.channel, self.lang)

    def slot_list(self, slots: list[datetime]) -> str:
        return say.slot_list(slots, self.channel, self.lang)

    def part_word(self, part: str) -> str:
        if self.lang == "es":
            return {"morning": "mañana", "afternoon": "tarde", "evening": "noche"}[part]
        return part

    # --- tools -----------------------------------------------------------------------

    def tool(self, tool_name: str, **arguments: Any) -> ToolResult:
        arguments = {k: v for k, v in arguments.items() if v is not None}
        result = run_tool(self.turn.tools, tool_name, arguments)
        self.calls.append(
            {
                "name": tool_name,
                "arguments": arguments,
                "ok": result.ok,
                "result": result.one_line(),
            }
        )
        return result

    def slots(self, **arguments: Any) -> list[datetime]:
        result = self.tool("check_availability", **arguments)
        if not result.ok:
            return []
        return [datetime.fromisoformat(s).astimezone(self.zone) for s in result.data["slots"]]

    # --- state helpers ---------------------------------------------------------------

    def clear_flow(self) -> None:
        for key in FLOW_KEYS:
            self.state.pop(key, None)

    @property
    def types(self) -> list[Any]:
        return list(self.schedule.types)

    def type_key(self) -> str | None:
        if self.state.get("type"):
            return str(self.state["type"])
        if self.state.get("target"):
            return str(self.state["target"]["type"])
        return self.types[0].key if len(self.types) == 1 else None

    def type_name(self, key: str | None = None) -> str:
        key = key or self.type_key()
        kind = self.schedule.type_named(key) if key else None
        return kind.name if kind else (key or "appointment")

    def unknown_type(self, thing: str) -> str:
        return self.t("unknown_type", thing=self.article(thing), types=self.type_names())

    def type_names(self) -> str:
        return self.join([self.article(t.name) for t in self.types], "or")

    def read(self, text: str) -> Message:
        return read(text, self.now, self.schedule.hours, self.types)

    def local(self, iso: str) -> datetime:
        return datetime.fromisoformat(iso).astimezone(self.zone)

    def at_local(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, self.zone)

    def name_known(self) -> str | None:
        return self.turn.caller_name or self.state.get("name")

    def merge_when(self, message: Message, keep_time: bool = True) -> None:
        """Fold a (new) date/time into the request; a new day keeps the time asked."""
        when = message.when
        if when.day is not None:
            self.state["day"] = when.day.isoformat()
            if when.at is None and when.part is None and not keep_time:
                self.state.pop("at", None)
                self.state.pop("part", None)
        if when.at is not None:
            self.state["at"] = when.at.strftime("%H:%M")
            self.state.pop("part", None)
        if when.part is not None:
            self.state["part"] = when.part
            if when.at is None:
                self.state.pop("at", None)
        for key in ("after", "before"):
            bound = getattr(when, key)
            if bound is not None:
                self.state[key] = bound.strftime("%H:%M")
                self.state.pop("at", None)
        if when.until is not None:
            self.state["until"] = when.until.isoformat()
        elif when.day is not None:
            self.state.pop("until", None)

    # --- the turn --------------------------------------------------------------------

    def run(self) -> str:
        raw = (self.turn.text or "").strip()
        if not raw:
            return self.hint(greeting=True)
        self.state.pop("verification_required", None)
        foreign = self.pick_language(raw)
        if foreign is not None:
            return foreign
        message = self.read(raw)
        if message.reset:
            return self.reset()
        if message.name and self.state.get("awaiting") != "name":
            self.state["name"] = message.name
        awaiting = self.state.get("awaiting")
        if self.is_goodbye(message, awaiting):
            return self.goodbye()
        if message.rest:
            self.state["queued"] = message.rest
        reply = self.answer(message, awaiting)
        return self.then_queued(reply, fresh=bool(message.rest))

    def pick_language(self, raw: str) -> str | None:
        """Spanish or English, whichever the person writes (and keep it); a language we
        recognise but do not speak gets one line in it saying what the agent can do."""
        spoken = detect_language(fold(raw))
        if spoken in CATALOGUES:
            self.lang = spoken
        elif spoken is not None:
            return FOREIGN[spoken]
        elif self.lang != "en" and ENGLISH_ONLY.search(fold(raw)):
            self.lang = "en"
        self.state["lang"] = self.lang
        return None

    def answer(self, message: Message, awaiting: str | None) -> str:
        if message.intent == "info":
            return self.info(message)
        if message.when.unreadable and message.intent not in ("list",):
            return self.ask_day(message)
        handled = self.continue_flow(message, awaiting)
        if handled is not None:
            return handled
        return self.start(message)

    def then_queued(self, reply: str, fresh: bool) -> str:
        """The second request of a two-request message: run once the first is done, or
        acknowledged while the first waits for an answer."""
        queued = self.state.get("queued")
        if not queued:
            return reply
        if self.state.get("awaiting"):
            return self.t("then_rest", reply=reply, rest=queued) if fresh else reply
        self.state.pop("queued", None)
        follow = self.answer(self.read(str(queued)), None)
        return self.t("now_rest", reply=reply, rest=queued, follow=follow)

    def reset(self) -> str:
        """ "Never mind": drop what is in progress and say truthfully what still stands."""
        intent, target = self.state.get("intent"), self.state.get("target")
        was_flowing = intent is not None
        self.clear_flow()
        self.state.pop("queued", None)
        if intent in ("move", "cancel") and target:
            return self.ask_more(self.t("left_as_is", what=self.yours(target)))
        booked = self.last_booked()
        if booked is not None:
            lead = self.t("dropped" if was_flowing else "nothing_in_progress")
            what = self.yours(booked)
            return self.ask_more(self.t("still_booked", lead=lead, What=what[0].upper() + what[1:]))
        if was_flowing:
            return self.ask_more(self.t("dropped_nothing_booked"))
        return self.ask_more(self.t("nothing_open"))

    def last_booked(self) -> dict[str, Any] | None:
        last = self.state.get("last")
        if not last:
            return None
        result = self.tool("list_appointments")
        if not result.ok:
            return None
        for appointment in result.data["appointments"]:
            if appointment["id"] == last:
                return dict(appointment)
        return None

    def ask_day(self, message: Message) -> str:
        """A day we could not read is asked about; what we could read is kept."""
        said = message.when.unreadable
        if message.intent in ("cancel", "move") or self.state.get("intent") in ("cancel", "move"):
            self.clear_flow()
            return self.t("which_day", said=said)
        kept_type = message.type_key or (
            self.state.get("type") if self.state.get("intent") == "book" else None
        )
        self.clear_flow()
        self.state["intent"] = "book"
        if kept_type:
            self.state["type"] = kept_type
        if message.when.at is not None:
            self.state["at"] = message.when.at.strftime("%H:%M")
        if message.when.part is not None:
            self.state["part"] = message.when.part
        self.state.pop("offers", None)
        self.state.pop("proposal", None)
        self.state["awaiting"] = "when"
        return self.t("which_day", said=said)

    def info(self, message: Message) -> str:
        """Hours, address, services, prices: from the profile; the request in progress
        (if any) stays and its question is asked again."""
        answer = self.profile_answer(message)
        awaiting = self.state.get("awaiting")
        if awaiting == "confirm":
            return f"{answer} {self.confirm_question()}"
        if awaiting == "choice" and self.state.get("offers"):
            offers = [self.local(o) for o in self.state["offers"]]
            return self.t("which_time_pending", answer=answer, offers=self.offer_list_text(offers))
        return self.ask_more(answer)

    def is_goodbye(self, message: Message, awaiting: str | None) -> bool:
        if message.goodbye and not (message.intent or message.when.day or message.when.at):
            return True
        # "thanks" alone closes the conversation once nothing is left open.
        return message.thanks and awaiting is None and message.intent is None

    def continue_flow(self, message: Message, awaiting: str | None) -> str | None:
        """Answer to what we asked last turn; None when the message is something new."""
        if awaiting == "name":
            return self.on_name(message)
        if awaiting == "type":
            return self.on_type(message)
        if awaiting == "which":
            return self.on_which(message)
        if awaiting == "instead":
            return self.on_instead(message)
        if awaiting == "verification" and message.intent is None and not message.name:
            return self.resume(message)
        if awaiting == "when":
            return self.on_when(message)
        if awaiting in ("choice", "confirm"):
            return self.on_offer(message, awaiting)
        return None

    def start(self, message: Message) -> str:
        intent = message.intent
        if intent == "list":
            return self.list_appointments(message)
        if intent in ("cancel", "move"):
            return self.start_change(message, intent)
        if intent == "book" or message.type_key or not message.when.empty:
            return self.start_booking(message)
        if message.name and self.state.get("name") == message.name:
            return self.ask_more(self.t("thanks_name", first=message.name.split()[0]))
        if message.yes or message.no:
            return self.hint()
        return self.hint(greeting=message.greeting)

    def profile_answer(self, message: Message) -> str:
        agent = self.turn.agent
        topic = message.topic
        faq = faq_answer(message.text, agent.faq or [])
        if faq is not None and topic in (None, "prices", "services"):
            return faq
        if topic == "hours":
            names = DAY_ABBREVIATIONS if self.lang == "en" else SPANISH_DAY_ABBREVIATIONS
            lines = hours_lines(dict(self.schedule.hours), names)
            if not lines:
                return self.t("no_hours")
            return self.t("hours", hours="; ".join(lines), zone=self.zone_name())
        if topic == "address":
            if agent.address:
                return self.t("address", address=agent.address.strip().rstrip("."))
            return self.t("no_address")
        if topic in ("services", "prices"):
            kinds = "; ".join(f"{t.name} ({t.duration_minutes} min)" for t in self.types)
            described = (agent.services_description or "").strip()
            if topic == "prices" and not described:
                return self.t("no_prices", types=self.type_names())
            return self.t("services", described=described, kinds=kinds)
        return self.t("no_answer", capabilities=self.t("capabilities"))

    def zone_name(self) -> str:
        return str(self.zone.key).split("/")[-1].replace("_", " ")

    # --- answers to our questions ----------------------------------------------------

    def on_name(self, message: Message) -> str | None:
        name = message.name or find_name(message.raw, loose=True)
        if name is None:
            wants_other_time = (
                not message.when.empty
                or message.no
                or message.later
                or message.earlier
                or message.choice is not None
            )
            if wants_other_time and self.state.get("offers"):
                return self.on_offer(message, "choice")
            if message.intent is not None or wants_other_time:
                self.state.pop("awaiting", None)
                return self.continue_flow(message, None) or self.start(message)
            return self.t("ask_name_again")
        self.state["name"] = name
        return self.ask_confirm(prefix=self.t("thanks_name", first=name.split()[0]))

    def on_type(self, message: Message) -> str | None:
        if message.type_key:
            self.state["type"] = message.type_key
            self.state.pop("awaiting", None)
            self.merge_when(message)
            return self.seek()
        if message.intent in ("list", "cancel", "move"):
            self.clear_flow()
            return None
        if message.unknown_type:
            return self.unknown_type(message.unknown_type)
        if message.when.empty:
            return self.t("which_type", types=self.type_names())
        self.merge_when(message)
        return self.t("is_that_for", types=self.type_names())

    def confirm_cancel_all(self, appointments: list[dict[str, Any]]) -> str:
        if len(appointments) == 1:
            self.state["target"] = appointments[0]
            return self.ask_confirm()
        self.state["targets"] = appointments
        self.state["target"] = appointments[0]
        self.state.pop("candidates", None)
        self.state["awaiting"] = "confirm"
        return self.confirm_question()

    def on_which(self, message: Message) -> str | None:
        candidates = self.state.get("candidates") or []
        if self.state.get("intent") == "cancel" and message.every and candidates:
            return self.confirm_cancel_all(candidates)
        picked = self.pick_appointment(message, candidates)
        if picked is None and message.yes and len(candidates) == 1:
            picked = candidates[0]
        if picked is None:
            if message.intent in ("list", "book") or (message.intent and not candidates):
                self.clear_flow()
                return None
            listed = self.numbered([self.describe_appointment(c) for c in candidates])
            return self.t("which_appointment", listed=listed)
        self.state["target"] = picked
        self.state.pop("candidates", None)
        self.state.pop("awaiting", None)
        if self.state.get("intent") == "cancel":
            return self.ask_confirm()
        move_to = self.state.pop("move_to", None)
        destination = self.read(move_to) if move_to else None
        return self.seek_move(destination)

    def on_when(self, message: Message) -> str | None:
        if message.when.empty and not message.later and not message.earlier:
            if message.intent is not None:
                self.clear_flow()
                return None
            return self.t("when_instead", example=self.example())
        self.state.pop("awaiting", None)
        if self.state.get("intent") == "move":
            return self.seek_move(message)
        self.merge_when(message)
        return self.seek()

    def on_offer(self, message: Message, awaiting: str) -> str | None:
        intent = self.state.get("intent")
        offers = [self.local(o) for o in self.state.get("offers") or []]
        # Something else entirely: a list, or a change to an existing appointment.
        if message.intent == "list":
            self.clear_flow()
            return None
        if intent == "book" and message.intent in ("cancel", "move"):
            if message.mentions_existing:
                self.clear_flow()
                return None
            if message.intent == "cancel":
                self.clear_flow()
                return self.ask_more(self.t("wont_book"))
            # "change it to Wednesday" while booking: a change of mind, read below.
        elif message.intent in ("cancel", "move") and message.intent != intent:
            self.clear_flow()
            return None

        if (
            awaiting == "confirm"
            and message.yes
            and message.when.empty
            and not (message.later or message.earlier)
        ):
            return self.execute()
        if message.when.shift_minutes is not None and (offers or self.state.get("proposal")):
            base = self.local(self.state.get("proposal") or offers[0].isoformat())
            wanted = base + timedelta(minutes=message.when.shift_minutes)
            self.state["day"], self.state["at"] = (
                wanted.date().isoformat(),
                wanted.strftime("%H:%M"),
            )
            target = self.state.get("target")
            key = target["type"] if target else self.type_key()
            return self.seek_exact(wanted, key) if key else self.seek()
        chosen = self.chosen_offer(message, offers)
        if chosen is not None:
            self.state["proposal"] = chosen.isoformat()
            return self.ask_confirm()
        if message.later or message.earlier:
            return self.shift(later=message.later)
        if message.type_key and intent == "book" and message.type_key != self.state.get("type"):
            self.state["type"] = message.type_key
            self.merge_when(message)
            return self.seek()
        if not message.when.empty:
            # A change of mind: "actually make it Wednesday", "how about 10:30".
            if intent == "move":
                return self.seek_move(message)
            self.merge_when(message)
            if message.when.day is None and message.when.at is not None and offers:
                self.state["day"] = offers[0].date().isoformat()
            return self.seek()
        if message.yes and awaiting == "choice":
            if len(offers) == 1:
                self.state["proposal"] = offers[0].isoformat()
                return self.ask_confirm()
            return self.t("which_time", offers=self.offer_list_text(offers))
        if message.no and intent == "cancel":
            return self.keep_target()
        if message.no:
            return self.decline(offers)
        if message.unknown_type and intent == "book":
            return self.unknown_type(message.unknown_type)
        if message.intent is not None:
            self.clear_flow()
            return None
        if awaiting == "confirm":
            return self.t("didnt_get_confirm", question=self.confirm_question())
        return self.t("which_time_short", offers=self.offer_list_text(offers))

    def chosen_offer(self, message: Message, offers: list[datetime]) -> datetime | None:
        if not offers:
            return None
        if message.number is not None:
            by_hour = [o for o in offers if o.hour % 12 == message.number % 12 and o.minute == 0]
            if by_hour:
                return by_hour[0]
            if 1 <= message.number <= len(offers):
                return offers[message.number - 1]
        at = message.when.at
        if at is not None and message.when.day in (None, offers[0].date()):
            for offer in offers:
                if offer.time() == at:
                    return offer
            return None
        if message.choice is not None and message.when.day is None:
            if message.choice == -1:
                return offers[-1]
            if message.choice < len(offers):
                return offers[message.choice]
        return None

    # --- booking -----------------------------------------------------------------------

    def start_booking(self, message: Message) -> str:
        if self.state.get("intent") != "book":
            self.clear_flow()
            self.state["intent"] = "book"
        if message.type_key:
            self.state["type"] = message.type_key
        self.merge_when(message, keep_time=False)
        if message.unknown_type and not message.type_key:
            self.state["awaiting"] = "type"
            return self.unknown_type(message.unknown_type)
        held = self.held_conflict(message)
        if held is not None:
            return held
        return self.seek()

    def held_conflict(self, message: Message) -> str | None:
        """The caller's own appointments, known to the booking: asking about your own slot
        is a list; a second appointment on a day you hold one is asked about."""
        when = message.when
        wants_shift = when.shift_minutes is not None or message.earlier or message.later
        if when.day is None and when.at is None and not wants_shift:
            return None
        mine = self.my_appointments(message.raw)
        if not mine:
            return None
        day = when.day or (self.day_for_time(when.at) if when.at else None)
        same_day = [a for a in mine if day is None or self.local(a["start"]).date() == day]
        if wants_shift and day is None:
            same_day = [a for a in mine if a["id"] == self.state.get("last")] or mine[:1]
        if not same_day:
            return None
        if when.at is not None and day is not None:
            wanted = self.at_local(day, when.at)
            for appointment in same_day:
                start, end = self.local(appointment["start"]), self.local(appointment["end"])
                if start <= wanted < end:
                    self.clear_flow()
                    self.state["served"] = True
                    described = self.describe_appointment(appointment)
                    return self.ask_more(self.t("you_are_booked", described=described))
        if message.in_addition:
            return None
        held = same_day[0]
        self.state["held"] = held
        self.state["held_start"] = held["start"]
        if when.shift_minutes is not None:
            self.state["shift"] = when.shift_minutes
        elif wants_shift:
            self.state["shift"] = "later" if message.later else "earlier"
        if message.instead:
            return self.replace_held()
        self.state["awaiting"] = "instead"
        what = self.describe_appointment(held)
        return self.t("instead_or_addition", what=what)

    def on_instead(self, message: Message) -> str | None:
        if message.instead or message.intent == "move":
            return self.replace_held()
        if message.in_addition:
            self.state.pop("awaiting", None)
            held = self.state.pop("held")
            self.state["held_start"] = held["start"]
            shift = self.state.pop("shift", None)
            if isinstance(shift, str) and not self.state.get("at"):
                self.state["offers"] = [self.local(self.state.pop("held_start")).isoformat()]
                return self.shift(later=shift == "later")
            return self.seek()
        if message.intent in ("list", "cancel") or message.reset:
            self.clear_flow()
            return None
        held = self.state["held"]
        return self.t("instead_or_addition_again", kind=held["type_name"])

    def replace_held(self) -> str:
        """ "Instead": the held appointment is moved, never doubled."""
        held = self.state.pop("held")
        shift = self.state.pop("shift", None)
        self.state.pop("awaiting", None)
        self.state["intent"] = "move"
        self.state["target"] = held
        current = self.local(held["start"])
        if isinstance(shift, str) and not self.state.get("at"):
            # "Earlier" / "later" without an amount: a few times on that side.
            self.state["offers"] = [current.isoformat()]
            return self.shift(later=shift == "later")
        if isinstance(shift, int) and not self.state.get("at"):
            return self.seek_exact(current + timedelta(minutes=shift), held["type"])
        day = date.fromisoformat(self.state["day"]) if self.state.get("day") else current.date()
        if self.state.get("at"):
            return self.seek_exact(
                self.at_local(day, time.fromisoformat(self.state["at"])), held["type"]
            )
        return self.seek_day(day, self.state.get("part"), held["type"])

    def seek(self) -> str:
        """Find times for the request in state and offer or propose them."""
        key = self.type_key()
        if key is None and not self.types:
            self.clear_flow()
            return self.t("no_types")
        if key is None:
            self.state["awaiting"] = "type"
            return self.t("is_that_for", types=self.type_names())
        day = date.fromisoformat(self.state["day"]) if self.state.get("day") else None
        at = time.fromisoformat(self.state["at"]) if self.state.get("at") else None
        part = self.state.get("part")
        refused = self.out_of_range(day)
        if refused is not None:
            return refused
        if self.state.get("after") or self.state.get("before") or self.state.get("until"):
            return self.seek_range(day, part, key)
        if at is not None:
            if day is None:
                day = self.day_for_time(at)
                self.state["day"] = day.isoformat()
            return self.seek_exact(self.at_local(day, at), key)
        return self.seek_day(day, part, key)

    def out_of_range(self, day: date | None) -> str | None:
        """A past day is refused as past, a day past the horizon as such: never moved."""
        if day is None:
            return None
        today = self.now.date()
        if day < today:
            self.state.pop("day", None)
            self.state["awaiting"] = "when"
            return self.t("passed", day=self.day_text(day))
        last = (self.now + self.schedule.horizon).date()
        if day > last:
            self.state.pop("day", None)
            self.state["awaiting"] = "when"
            return self.t(
                "beyond_horizon",
                day=self.day_text(day),
                days=self.schedule.horizon.days,
                last=self.day_text(last),
            )
        return None

    def seek_range(self, day: date | None, part: str | None, key: str) -> str:
        """ "after 3 this week", "before noon on Friday": the first days with room."""
        after = time.fromisoformat(self.state["after"]) if self.state.get("after") else None
        before = time.fromisoformat(self.state["before"]) if self.state.get("before") else None
        first = day or self.now.date()
        until = date.fromisoformat(self.state["until"]) if self.state.get("until") else None
        last = until or (first if day is not None else first + timedelta(days=13))
        last = min(last, (self.now + self.schedule.horizon).date())
        current = first
        while current <= last:
            found = [
                s
                for s in self.slots(
                    date=current.isoformat(),
                    appointment_type=key,
                    part_of_day=part,
                    after=self.at_local(current, after).isoformat() if after else None,
                    limit=20,
                )
                if (after is None or s.time() >= after) and (before is None or s.time() < before)
            ]
            if found:
                return self.offer(self.spread(found))
            current += timedelta(days=1)
        bounds = []
        if after is not None:
            bounds.append(self.t("after_time", time=self.clock(self.at_local(first, after))))
        if before is not None:
            bounds.append(self.t("before_time", time=self.clock(self.at_local(first, before))))
        span = self.day_text(first)
        if last != first:
            span = self.t("range_span", first=span, last=self.day_text(last))
        for key_ in ("after", "before", "until"):
            self.state.pop(key_, None)
        joined = self.join(bounds, "and")
        return self.offer([], prefix=self.t("nothing_free_range", bounds=joined, span=span))

    def day_for_time(self, at: time) -> date:
        today = self.now.date()
        if self.at_local(today, at) >= self.now + self.schedule.min_notice:
            return today
        return today + timedelta(days=1)

    def seek_exact(self, wanted: datetime, key: str) -> str:
        window_start = max(wanted - timedelta(hours=3), self.at_local(wanted.date(), time(0)))
        free = self.slots(
            date=wanted.date().isoformat(),
            appointment_type=key,
            after=window_start.isoformat(),
            limit=20,
        )
        if wanted in free or self.overlaps_own(wanted, key):
            self.state["offers"] = [wanted.isoformat()]
            self.state["proposal"] = wanted.isoformat()
            return self.ask_confirm(free_now=True)
        reason = self.why_not(wanted, key)
        if len(self.spread(free)) < OFFER_COUNT and window_start.time() != time(0):
            # Late in the day (or after closing): look at the whole day for neighbours.
            earlier = self.slots(date=wanted.date().isoformat(), appointment_type=key, limit=20)
            free = sorted(set(free) | set(earlier))
        nearby = self.spread(sorted(free, key=lambda s: abs(s - wanted)))
        if not nearby:
            nearby = self.soonest_after(
                self.at_local(wanted.date() + timedelta(days=1), time(0)), key
            )
        return self.offer(
            nearby, prefix=self.t("sorry_when_reason", when=self.when_text(wanted), reason=reason)
        )

    def seek_day(self, day: date | None, part: str | None, key: str) -> str:
        if day is None:
            found = self.slots(appointment_type=key, part_of_day=part, limit=20)
            return self.offer(self.spread(found), none_text=self.nothing_soon(part))
        if day < self.now.date():
            return self.t("passed", day=self.day_text(day))
        found = self.slots(date=day.isoformat(), appointment_type=key, part_of_day=part, limit=20)
        if found:
            return self.offer(self.spread(found))
        later = self.soonest_after(self.at_local(day + timedelta(days=1), time(0)), key, part)
        what = self.day_text(day) + (f" {self.part_word(part)}" if part else "")
        return self.offer(later, prefix=self.t("nothing_free_day", what=what))

    def soonest_after(self, moment: datetime, key: str, part: str | None = None) -> list[datetime]:
        found = self.slots(
            appointment_type=key, part_of_day=part, after=moment.isoformat(), limit=20
        )
        return self.spread(found)

    def spread(self, slots: list[datetime], backwards: bool = False) -> list[datetime]:
        """Up to three times an hour or more apart: 9, 10 and 11, not 9, 9:15 and 9:30."""
        ordered = list(reversed(slots)) if backwards else list(slots)  # nearest first
        picked: list[datetime] = []
        for slot in ordered:
            if all(abs(slot - p) >= OFFER_GAP for p in picked):
                picked.append(slot)
            if len(picked) == OFFER_COUNT:
                break
        return sorted(picked)

    def offer(self, slots: list[datetime], prefix: str = "", none_text: str | None = None) -> str:
        if not slots:
            self.state.pop("offers", None)
            self.state.pop("proposal", None)
            self.state["awaiting"] = "when"
            text = none_text or self.t("no_time_near")
            return self.t("another_day", prefix=prefix, text=text).strip()
        self.state["offers"] = [s.isoformat() for s in slots]
        self.state.pop("proposal", None)
        if len(slots) == 1:
            self.state["proposal"] = slots[0].isoformat()
            return self.ask_confirm(prefix=prefix, free_now=True)
        self.state["awaiting"] = "choice"
        body = self.t("offers", kind=self.type_name(), slots=self.slot_list(slots))
        return f"{prefix} {body}".strip()

    def offer_list_text(self, offers: list[datetime]) -> str:
        return self.slot_list(offers) + "?"

    def nothing_soon(self, part: str | None) -> str:
        if part:
            return self.t("nothing_soon_part", part=self.part_word(part))
        return self.t("nothing_soon")

    def why_not(self, wanted: datetime, key: str) -> str:
        kind = self.schedule.type_named(key)
        if kind is None:
            return self.t("not_available")
        reason = check_slot(self.schedule, kind, BusyIndex([]), now=self.turn.now, start=wanted)
        if reason is None:
            return self.t("is_taken")
        if reason is Unavailable.CLOSED:
            return self.t("outside_hours", hours=self.hours_text(wanted.date()))
        if reason in (Unavailable.TOO_SOON, Unavailable.IN_PAST):
            return self.t("too_soon")
        if reason is Unavailable.PAST_HORIZON:
            return self.t("too_far")
        return self.t("not_available")

    def hours_text(self, day: date) -> str:
        windows = self.schedule.hours.get(day.weekday(), ())
        weekday = f"{day:%A}" if self.lang == "en" else say.ES_DAYS[day.weekday()]
        if not windows:
            return self.t("closed_on", weekday=weekday)
        spans = [
            f"{say.clock(self.at_local(day, opens), 'voice', self.lang)}"
            f"-{say.clock(self.at_local(day, closes), 'voice', self.lang)}"
            for opens, closes in windows
        ]
        return self.t("open_on", weekday=weekday, spans=self.join(spans, "and"))

    def overlaps_own(self, wanted: datetime, key: str) -> bool:
        """Moving an appointment a little: its own current time must not count as busy."""
        target = self.state.get("target")
        kind = self.schedule.type_named(key)
        if self.state.get("intent") != "move" or not target or kind is None:
            return False
        return kind.blocked(wanted).overlaps(kind.blocked(self.local(target["start"])))

    def shift(self, later: bool) -> str:
        key = self.type_key()
        if key is None:
            return self.seek()
        known = [self.local(o) for o in self.state.get("offers") or []]
        if self.state.get("proposal"):
            known.append(self.local(self.state["proposal"]))
        if not known:
            return self.seek()
        part = self.state.get("part")
        if later:
            reference = max(known)
            found = self.slots(
                date=reference.date().isoformat(),
                appointment_type=key,
                after=(reference + timedelta(minutes=1)).isoformat(),
                limit=20,
            )
            picked = self.spread([s for s in found if s >= reference + timedelta(minutes=30)])
            if not picked:
                picked = self.soonest_after(
                    self.at_local(reference.date() + timedelta(days=1), time(0)), key, part
                )
            return self.offer(picked, prefix="", none_text=self.t("nothing_later"))
        reference = min(known)
        same_day = self.slots(date=reference.date().isoformat(), appointment_type=key, limit=20)
        picked = self.spread(
            [s for s in same_day if s <= reference - timedelta(minutes=30)], backwards=True
        )
        if picked:
            return self.offer(picked)
        soonest = [s for s in self.slots(appointment_type=key, limit=20) if s < reference]
        if soonest:
            return self.offer(self.spread(soonest))
        if self.state.get("proposal"):
            return self.t("nothing_earlier", question=self.confirm_question())
        return self.t("nothing_earlier", question=self.offer_list_text(sorted(known)))

    def keep_target(self) -> str:
        targets = self.state.get("targets") or [self.state.get("target")]
        self.clear_flow()
        self.state.pop("queued", None)
        kept = self.join([self.describe_appointment(t) for t in targets if t], "and")
        return self.ask_more(self.t("kept", kept=kept))

    def decline(self, offers: list[datetime]) -> str:
        proposal = self.state.get("proposal")
        others = [o for o in offers if o.isoformat() != proposal]
        if proposal and others:
            self.state.pop("proposal", None)
            return self.offer(others, prefix=self.t("ok"))
        self.state.pop("proposal", None)
        self.state["awaiting"] = "when"
        return self.t("suit_better", example=self.example())

    def ask_confirm(self, prefix: str = "", free_now: bool = False) -> str:
        intent = self.state.get("intent")
        if intent == "book" and not self.name_known():
            self.state["awaiting"] = "name"
            moment = self.local(self.state["proposal"])
            lead = self.t("is_free", when=self.when_text(moment)) if free_now else self.t("great")
            return self.t("ask_name", prefix=prefix, lead=lead).strip()
        self.state["awaiting"] = "confirm"
        return f"{prefix} {self.confirm_question()}".strip()

    def confirm_question(self) -> str:
        intent = self.state.get("intent")
        if intent == "cancel" and self.state.get("targets"):
            targets = self.state["targets"]
            listed = self.join([self.describe_appointment(t) for t in targets], "and")
            return self.t("confirm_cancel_all", count=len(targets), listed=listed)
        if intent == "cancel":
            return self.t("confirm_cancel", what=self.yours(self.state["target"]))
        moment = self.local(self.state["proposal"])
        if intent == "move":
            target = self.state["target"]
            old = self.local(target["start"])
            return self.t(
                "confirm_move",
                kind=target["type_name"],
                old=self.when_text(old),
                new=self.when_text(moment),
            )
        kind = self.article(self.type_name())
        return self.t("confirm_book", kind=kind, when=self.when_text(moment))

    def execute(self) -> str:
        intent = self.state.get("intent")
        if intent == "cancel":
            return self.do_cancel()
        if intent == "move":
            return self.do_move()
        return self.do_book()

    def do_book(self) -> str:
        moment = self.local(self.state["proposal"])
        result = self.tool(
            "book_appointment",
            start=moment.isoformat(),
            appointment_type=self.type_key(),
            name=self.name_known(),
        )
        if not result.ok:
            return self.refused(result, moment)
        appointment = result.data["appointment"]
        self.clear_flow()
        self.state["last"] = appointment["id"]
        self.state["served"] = True
        booked = self.local(appointment["start"])
        kind = appointment["type_name"]
        return self.ask_more(
            self.t("booked", kind=kind, a_kind=self.article(kind), when=self.when_text(booked))
        )

    def refused(self, result: ToolResult, moment: datetime) -> str:
        error = result.data.get("error")
        if error == "verification_required":
            return self.needs_verification()
        alternatives = [self.local(a) for a in result.data.get("alternatives") or []]
        if alternatives:
            return self.offer(
                alternatives[:OFFER_COUNT],
                prefix=self.t("just_taken", when=self.when_text(moment)),
            )
        if error == "not_found":
            self.clear_flow()
            return self.ask_more(self.t("not_found"))
        self.clear_flow()
        return self.ask_more(self.t("failed", reason=self.plain(result.message)))

    def plain(self, message: str) -> str:
        """A tool message without ids, for a person."""
        message = re.sub(r"\s*\(id [^)]*\)", "", message)
        return message if message.endswith(".") else message + "."

    # --- moving and cancelling -------------------------------------------------------

    def start_change(self, message: Message, intent: str) -> str:
        self.clear_flow()
        self.state["intent"] = intent
        source, destination = self.split_move(message) if intent == "move" else (message, None)
        appointments = self.my_appointments(message.raw)
        if appointments is None:
            return self.needs_verification()
        if not appointments:
            self.clear_flow()
            return self.ask_more(self.t("no_upcoming"))
        if intent == "cancel" and message.every:
            matching = self.matching(source, appointments) if not source.when.empty else []
            return self.confirm_cancel_all(matching or appointments)
        picked = self.pick_appointment(source, appointments, default=True)
        if picked is None:
            matching = self.matching(source, appointments)
            self.state["candidates"] = matching or appointments
            self.state["awaiting"] = "which"
            if destination is not None:
                self.state["move_to"] = destination.raw
            listed = self.numbered([self.describe_appointment(a) for a in self.state["candidates"]])
            lead = self.t("which_one")
            if not matching and source.when.day is not None:
                lead = self.t("none_on_day", day=self.day_text(source.when.day))
            return f"{lead} {listed}"
        self.state["target"] = picked
        if intent == "cancel":
            return self.ask_confirm()
        return self.seek_move(destination)

    def split_move(self, message: Message) -> tuple[Message, Message | None]:
        """'move my Friday appointment to 4pm': Friday picks the appointment, 4pm is new."""
        parts = re.split(r"\b(?:to|for|until|till)\b", message.raw, maxsplit=1, flags=re.IGNORECASE)
        if len(parts) == 2:
            before = self.read(parts[0])
            after = self.read(parts[1])
            return before, after
        blank = self.read("")
        if message.mentions_existing and "appointment" in message.text:
            return message, None
        return blank, message

    def seek_move(self, destination: Message | None) -> str:
        target = self.state["target"]
        current = self.local(target["start"])
        if destination is not None and destination.when.shift_minutes is not None:
            wanted = current + timedelta(minutes=destination.when.shift_minutes)
            self.state["day"], self.state["at"] = (
                wanted.date().isoformat(),
                wanted.strftime("%H:%M"),
            )
            return self.seek_exact(wanted, target["type"])
        if destination is not None and not destination.when.empty:
            when = destination.when
            refused = self.out_of_range(when.day)
            if refused is not None:
                return refused
            if when.at is not None:
                day = when.day or (
                    date.fromisoformat(self.state["day"])
                    if self.state.get("day")
                    else current.date()
                )
                self.state["day"], self.state["at"] = day.isoformat(), when.at.strftime("%H:%M")
                return self.seek_exact(self.at_local(day, when.at), target["type"])
            if when.day is not None:
                self.state["day"] = when.day.isoformat()
                if when.part is None:
                    same_time = self.at_local(when.day, current.time())
                    free = self.slots(
                        date=when.day.isoformat(),
                        appointment_type=target["type"],
                        after=same_time.isoformat(),
                        limit=1,
                    )
                    if free and free[0] == same_time:
                        self.state["offers"] = [same_time.isoformat()]
                        self.state["proposal"] = same_time.isoformat()
                        return self.ask_confirm()
                return self.seek_day(when.day, when.part, target["type"])
            if when.part is not None:
                day = (
                    date.fromisoformat(self.state["day"])
                    if self.state.get("day")
                    else current.date()
                )
                return self.seek_day(day, when.part, target["type"])
        if destination is not None and (destination.later or destination.earlier):
            self.state["offers"] = [current.isoformat()]
            return self.shift(later=destination.later)
        self.state["awaiting"] = "when"
        return self.t("move_when", what=self.yours(target))

    def do_move(self) -> str:
        target = self.state["target"]
        moment = self.local(self.state["proposal"])
        result = self.tool(
            "reschedule_appointment", appointment_id=target["id"], new_start=moment.isoformat()
        )
        if not result.ok:
            return self.refused(result, moment)
        appointment = result.data["appointment"]
        self.clear_flow()
        self.state["last"] = appointment["id"]
        self.state["served"] = True
        moved = self.local(appointment["start"])
        return self.ask_more(
            self.t("moved", kind=appointment["type_name"], when=self.when_text(moved))
        )

    def do_cancel_all(self) -> str:
        """Each cancellation is a tool call; the reply names only those that committed."""
        done, failed = [], []
        for target in self.state["targets"]:
            result = self.tool("cancel_appointment", appointment_id=target["id"])
            (done if result.ok else failed).append(target)
        refused = any(not c["ok"] and "verification" in str(c["result"]) for c in self.calls)
        if refused and not done:
            return self.needs_verification()
        self.clear_flow()
        self.state["served"] = True
        if self.state.get("last") in {t["id"] for t in done}:
            self.state.pop("last", None)
        parts = []
        if done:
            listed = self.join([self.describe_appointment(t) for t in done], "and")
            parts.append(self.t("cancelled", what=listed))
        if failed:
            listed = self.join([self.describe_appointment(t) for t in failed], "and")
            parts.append(self.t("could_not_cancel", what=listed))
        return self.ask_more(" ".join(parts))

    def do_cancel(self) -> str:
        if self.state.get("targets"):
            return self.do_cancel_all()
        target = self.state["target"]
        result = self.tool("cancel_appointment", appointment_id=target["id"])
        if not result.ok:
            return self.refused(result, self.local(target["start"]))
        self.clear_flow()
        if self.state.get("last") == target["id"]:
            self.state.pop("last", None)
        self.state["served"] = True
        return self.ask_more(self.t("cancelled", what=self.yours(target)))

    def my_appointments(self, pending_text: str) -> list[dict[str, Any]] | None:
        result = self.tool("list_appointments")
        if not result.ok:
            if result.data.get("error") == "verification_required":
                self.state["pending_text"] = pending_text
                return None
            return []
        return [
            {
                "id": a["id"],
                "start": a["start"],
                "end": a["end"],
                "type": a["type"],
                "type_name": a["type_name"],
            }
            for a in result.data["appointments"]
        ]

    def matching(
        self, message: Message, appointments: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        when = message.when
        found = appointments
        if when.day is not None:
            found = [a for a in found if self.local(a["start"]).date() == when.day]
        if when.at is not None:
            found = [a for a in found if self.local(a["start"]).time() == when.at]
        if when.part is not None:
            found = [a for a in found if part_of(self.local(a["start"]).time()) == when.part]
        if message.type_key is not None:
            found = [a for a in found if a["type"] == message.type_key]
        return found

    def pick_appointment(
        self, message: Message, appointments: list[dict[str, Any]], default: bool = False
    ) -> dict[str, Any] | None:
        if not appointments:
            return None
        choice = message.choice if message.choice is not None else find_choice(message.text)
        if (
            choice is None
            and message.number is not None
            and 1 <= message.number <= len(appointments)
        ):
            choice = message.number - 1
        if choice is not None and message.when.day is None:
            return appointments[choice] if choice < len(appointments) else None
        narrowed = message.when.day or message.when.at or message.when.part or message.type_key
        if narrowed:
            found = self.matching(message, appointments)
            return found[0] if len(found) == 1 else None
        if not default:
            return None
        last = self.state.get("last")
        for appointment in appointments:
            if appointment["id"] == last:
                return appointment
        return appointments[0] if len(appointments) == 1 else None

    def list_appointments(self, message: Message | None = None) -> str:
        self.clear_flow()
        appointments = self.my_appointments("what appointments do I have")
        if appointments is None:
            return self.needs_verification()
        self.state["served"] = True
        if not appointments:
            return self.ask_more(self.t("no_upcoming"))
        if message is not None and (message.when.day or message.when.at or message.when.part):
            return self.list_matching(message, appointments)
        self.state["candidates"] = appointments
        described = [self.describe_appointment(a) for a in appointments[:5]]
        if len(appointments) == 1:
            return self.ask_more(self.t("you_have_one", described=described[0]))
        listed = self.join(described, "and") if self.channel == "voice" else "; ".join(described)
        return self.ask_more(self.t("you_have_many", count=len(appointments), listed=listed))

    def list_matching(self, message: Message, appointments: list[dict[str, Any]]) -> str:
        """ "Am I still on for 3 tomorrow?": a yes or no about that slot, then the rest."""
        found = self.matching(message, appointments)
        if found:
            described = self.join([self.describe_appointment(a) for a in found], "and")
            return self.ask_more(self.t("yes_booked", described=described))
        when = message.when
        asked = []
        if when.day is not None:
            asked.append(self.t("asked_day", day=self.day_text(when.day)))
        if when.at is not None:
            moment = self.at_local(self.now.date(), when.at)
            asked.append(self.t("asked_time", time=self.clock(moment)))
        if when.part is not None:
            asked.append(self.t("asked_part", part=self.part_word(when.part)))
        described = self.join([self.describe_appointment(a) for a in appointments[:5]], "and")
        return self.ask_more(self.t("not_seen", asked=" ".join(asked), described=described))

    def describe_appointment(self, appointment: dict[str, Any]) -> str:
        return self.t(
            "a_kind_on",
            a_kind=self.article(appointment["type_name"]),
            on=self.on_day(appointment["start"]),
        )

    def yours(self, appointment: dict[str, Any]) -> str:
        """ "your haircut on Tue Nov 24 at 3:00 PM"."""
        return self.t(
            "your_kind", kind=appointment["type_name"], on=self.on_day(appointment["start"])
        )

    def on_day(self, start: str) -> str:
        return self.t("on_moment", when=self.when_text(self.local(start)))

    # --- verification, endings, hints -------------------------------------------------

    def needs_verification(self) -> str:
        self.state["awaiting"] = "verification"
        self.state["verification_required"] = True
        self.state.setdefault("pending_text", self.turn.text)
        return self.t("verify")

    def resume(self, message: Message) -> str:
        pending = str(self.state.get("pending_text") or "")
        self.clear_flow()
        if not pending:
            return self.hint()
        again = self.read(pending)
        reply = self.start(again)
        if self.state.get("awaiting") == "verification":
            self.state["pending_text"] = pending
        return reply

    def goodbye(self) -> str:
        self.clear_flow()
        self.end = True
        self.state.pop("served", None)
        return self.t("goodbye")

    def ask_more(self, text: str) -> str:
        return self.t("anything_else", text=text)

    def example(self) -> str:
        kind = self.types[0].name if self.types else "appointment"
        # Mid-request only the time is missing; otherwise show a whole request.
        phrase = (
            self.t("example_time")
            if self.state.get("intent")
            else self.t("example_request", a_kind=self.article(kind))
        )
        return self.t("example", phrase=phrase)

    def hint(self, greeting: bool = False) -> str:
        lead = self.t("hi" if greeting else "didnt_get")
        return self.t("hint", lead=lead, example=self.example())
