"""The offline conversation engine: deterministic rules, no network, no model.

One turn: read the message (app/agent/understanding.py, app/agent/dates.py), decide
from it and the dialogue state what to do, act only through the scheduling tools, and
word the answer for the channel (app/agent/phrasing.py).

Dialogue state lives only in `Turn.state` (plain JSON, typed as
app/agent/state.py's DialogueState and upgraded by its load_state), so a new engine
instance given the saved state continues the same dialogue. The dialogue is split by
concern: dialogue.py (state, tools, wording helpers), seeking.py (finding and offering
times), appointments.py (the caller's own appointments), this module (the flow of a
turn), catalog.py (the words, per language and channel).
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import date, datetime

from sqlalchemy.exc import SQLAlchemyError

from app.agent import phrasing as say
from app.agent.appointments import OwnAppointments, split_at_destination
from app.agent.catalog import CATALOGUES, FOREIGN, detect_language
from app.agent.dates import fold, shifted
from app.agent.engine import Reply, Turn
from app.agent.profile import asks_about_service, faq_answer, field_asked, hours_lines
from app.agent.seeking import OFFER_COUNT, SlotSeeking
from app.agent.state import dump_state
from app.agent.understanding import CORRECTION, Message, find_name
from app.calendar.turn_reads import ReadNeeded
from app.tools.schemas import ToolResult

log = logging.getLogger(__name__)

# Words about booking itself, never evidence that a question is about the address or
# the services ("is there a free slot?" shares "free" with no field by accident).
BOOKING_WORDS = frozenset(
    {"free", "open", "available", "slot", "spot", "opening", "appointment", "booking", "time"}
)
# A yes that carries a question is not a yes yet.
ASKS_TOO = re.compile(r"\?|\b(?:but|how|what|why|where)\b", re.IGNORECASE)
DAY_ABBREVIATIONS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SPANISH_DAY_ABBREVIATIONS = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")
# An English sentence in a Spanish conversation switches it back (not a lone "ok").
ENGLISH_ONLY = re.compile(
    r"\b(?:i'd like|i want|i need|can i|could i|appointment|tomorrow|cancel my|book me|"
    r"what time|do you have)\b"
)


class OfflineEngine:
    """Rules engine implementing app.agent.engine.Engine."""

    def respond(self, turn: Turn) -> Reply:
        dialogue = _Dialogue(turn)
        try:
            text = dialogue.run()
        except (SQLAlchemyError, ReadNeeded):
            # The transaction is broken (the webhook rolls back and apologises), or the
            # calendar must be read outside it (the webhook runs the turn again).
            raise
        except Exception:
            # A rule that trips over an odd message must not cost the caller the call:
            # log it, drop the request in progress and answer with the hint.
            log.exception("offline engine failed on a turn; starting the request over")
            dialogue = _Dialogue(turn)
            dialogue.clear_flow()
            text = dialogue.hint()
        text = _truthful(dialogue, text)
        return Reply(
            text=say.fit(text, turn.channel),
            state=dump_state(dialogue.state),
            end_conversation=dialogue.end,
            tool_calls=dialogue.calls,
        )


# A reply worded from one of these claims what the tool beside it did: it may only be sent
# when that tool committed in this very turn.
CLAIMS = {
    "booked": "book_appointment",
    "moved": "reschedule_appointment",
    "cancelled": "cancel_appointment",
}


def _truthful(dialogue: _Dialogue, text: str) -> str:
    """The last safety net: a reply claiming a booking, move or cancellation that did not
    commit this turn is not sent; the person is told it did not finish instead."""
    committed = {call["name"] for call in dialogue.calls if call["ok"]}
    false = [key for key, tool in CLAIMS.items() if key in dialogue.said and tool not in committed]
    if not false:
        return text
    log.error("offline engine worded an uncommitted claim (%s); reply withheld", ",".join(false))
    dialogue.clear_flow()
    return dialogue.t("claim_withheld")


class _Dialogue(SlotSeeking, OwnAppointments):
    """The flow of one turn: what the message answers, what starts, what is said."""

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
            # "saturday 10 and 11": the day said first holds for the rest, even when the
            # rest runs a turn later (after the first is confirmed).
            if message.when.day is not None:
                self.state["queued_day"] = message.when.day.isoformat()
            else:
                self.state.pop("queued_day", None)
        self.first_when = message.when
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
        if message.intent is None and asks_about_service(
            message.text, self.turn.agent.services_description
        ):
            message = replace(message, intent="info", topic="services")
        elif message.intent in (None, "book") and message.when.empty and not message.yes:
            topic = self.field_asked(message)
            if topic is not None:
                message = replace(message, intent="info", topic=topic)
        if message.intent == "info":
            return self.info(message)
        if message.when.unreadable and message.intent not in ("list",):
            return self.ask_day(message)
        if message.day_ref and message.when.day is None and not self.state.get("day"):
            # "that afternoon" with no day said before it: asked, never taken as today.
            return self.ask_day(
                replace(message, when=replace(message.when, unreadable=message.day_ref))
            )
        corrected = self.correct_last(message, awaiting)
        if corrected is not None:
            return corrected
        handled = self.continue_flow(message, awaiting)
        if handled is not None:
            return handled
        if message.intent is None and message.instead_of:
            message = replace(message, intent="move")  # nothing in progress: a held one
        return self.start(message)

    def field_asked(self, message: Message) -> str | None:
        """A yes/no question about the address or the services, however worded; the
        agent's type names and booking words are no evidence of either."""
        agent = self.turn.agent
        ignore = set(BOOKING_WORDS)
        for kind in self.types:
            ignore.update([*fold(kind.name).split(), kind.key.lower()])
        fields = {"address": agent.address, "services": agent.services_description}
        return field_asked(message.text, message.raw, fields, ignore)

    def correct_last(self, message: Message, awaiting: str | None) -> str | None:
        """ "oh I meant Thursday" right after a booking: a move of that booking is proposed
        (never a second booking beside it)."""
        last = self.state.get("last")
        if (
            not last
            or awaiting is not None
            or message.when.empty
            or message.intent not in (None, "book")
            or CORRECTION.search(message.text) is None
        ):
            return None
        held = next((a for a in self.my_appointments(message.raw) or [] if a["id"] == last), None)
        if held is None:
            return None
        self.clear_flow()
        self.state["intent"] = "move"
        self.state["target"] = held
        return self.seek_move(message)

    def then_queued(self, reply: str, fresh: bool) -> str:
        """The second request of a two-request message: run once the first is done, or
        acknowledged while the first waits for an answer."""
        queued = self.state.get("queued")
        if not queued:
            return reply
        awaiting = self.state.get("awaiting")
        if awaiting:
            if not fresh:
                return reply
            # A proposal keeps its yes/no question first; any other question goes last,
            # after the acknowledgement, so the person sees what to answer now.
            key = "then_rest" if awaiting == "confirm" else "rest_first"
            return self.t(key, reply=reply, rest=queued)
        self.state.pop("queued", None)
        queued_day = self.state.pop("queued_day", None)
        # "cancel friday and book wednesday instead": the new booking is of the same kind.
        self.carried_type = self.handled_type
        follow_message = self.read(str(queued))
        first = self.first_when
        first_day = first.day if first is not None and first.day is not None else None
        if first_day is None and queued_day:
            first_day = date.fromisoformat(str(queued_day))
        if (
            follow_message.when.day is None
            and not follow_message.when.unreadable
            and first_day is not None
        ):
            # "are you open saturday? if so a haircut at 11": the day carries over.
            when = replace(follow_message.when, day=first_day)
            follow_message = replace(follow_message, when=when)
        self.sibling = self.booked_now
        follow = self.answer(follow_message, None)
        return self.t("now_rest", reply=reply, rest=queued, follow=follow)

    def reset(self) -> str:
        """ "Never mind": drop what is in progress and say truthfully what still stands."""
        intent, target = self.state.get("intent"), self.state.get("target")
        was_flowing = intent is not None
        self.clear_flow()
        self.state.pop("queued", None)
        self.state.pop("queued_day", None)
        if intent in ("move", "cancel") and target:
            return self.ask_more(self.t("left_as_is", what=self.yours(target)))
        booked = self.last_booked()
        if booked is not None:
            lead = self.t("dropped" if was_flowing else "nothing_in_progress")
            what = self.yours(booked)
            return self.ask_more(self.t("still_booked", lead=lead, What=what[0].upper() + what[1:]))
        if intent in ("move", "cancel"):
            # "never mind" while picking which one: nothing was moved or cancelled.
            return self.ask_more(self.t("dropped_nothing_changed"))
        if was_flowing:
            return self.ask_more(self.t("dropped_nothing_booked"))
        return self.ask_more(self.t("nothing_open"))

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
            self.state["at"] = say.hh_mm(message.when.at)
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
        if self.time_only_change(message):
            intent = "move"  # "can it be 11?" from someone holding one appointment
        if intent == "list":
            return self.list_appointments(message)
        if intent in ("cancel", "move"):
            return self.start_change(message, intent)
        if intent == "book" or message.type_key or not message.when.empty:
            return self.start_booking(message)
        if message.name and self.state.get("name") == message.name:
            return self.t("thanks_name_ask", first=message.name.split()[0])
        if message.yes or message.no:
            return self.hint()
        faq = faq_answer(message.text, self.turn.agent.faq or [])
        if faq is not None:
            return self.ask_more(faq)
        return self.hint(greeting=message.greeting)

    def time_only_change(self, message: Message) -> bool:
        """A time with no day, no kind and no request word, from a caller who holds exactly
        one appointment: a change of that appointment's time, never a second booking."""
        when = message.when
        if message.intent is not None or message.type_key or when.at is None or when.day:
            return False
        mine = self.my_appointments(message.raw)
        return mine is not None and len(mine) == 1

    def profile_answer(self, message: Message) -> str:
        agent = self.turn.agent
        topic = message.topic
        faq = faq_answer(
            message.text,
            agent.faq or [],
            topic,
        )
        if faq is not None:
            return faq
        if topic == "hours" and message.when.day is not None:
            day = message.when.day
            windows = self.schedule.hours.get(day.weekday(), ())
            # The date asked is named back: "the 30th" is answered as Sat Jan 30.
            named = self.day_text(day)
            if not windows:
                return self.t("closed_day", weekdays=say.weekdays(day, self.lang), day=named)
            return self.t("open_day", hours=self.hours_text(day), day=named)
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

    def on_which(self, message: Message) -> str | None:
        candidates = self.state.get("candidates") or []
        if self.state.get("intent") == "cancel" and message.every and candidates:
            return self.confirm_cancel_all(candidates)
        destination = None
        if self.state.get("intent") == "move":
            parts = split_at_destination(message.raw)
            if len(parts) == 2:
                # "the friday one, to monday at 10": which one, then where to.
                message, destination = self.read(parts[0]), self.read(parts[1])
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
        if destination is None and move_to:
            destination = self.read(move_to)
        return self.seek_move(destination)

    def on_when(self, message: Message) -> str | None:
        if message.when.empty and not message.later and not message.earlier:
            if message.intent is not None:
                self.clear_flow()
                return None
            return self.t("when_instead", example=self.example())
        self.state.pop("awaiting", None)
        if self.state.get("intent") == "move":
            # "the thursday one to friday at 1": only what follows "to" is the new time.
            _, destination = self.split_move(message)
            return self.seek_move(destination or message)
        self.merge_when(message)
        return self.held_conflict(message) or self.seek()

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
            message.yes
            and ASKS_TOO.search(message.raw)
            and len(message.text.split()) > 2
            and message.when.empty
            and not (message.later or message.earlier)
        ):
            # "ok but how long does it take?": a question, not a yes; answer and ask again.
            # "ok but can it be 2 instead?" names a time: a change, read below.
            return self.info(message)
        if awaiting == "confirm" and message.yes and self.state.get("confirm_unheard"):
            # The caller cut in before the question was played (streamed voice): a yes
            # cannot answer what was not heard, so the question is said again in full.
            return self.t("restate_confirm", question=self.confirm_question())
        if intent == "cancel" and not (awaiting == "confirm" and message.yes and not message.no):
            return self.on_cancel_answer(message)
        if (
            awaiting == "confirm"
            and message.yes
            and message.when.empty
            and not (message.later or message.earlier)
        ):
            return self.execute()
        if message.when.shift_minutes is not None and (offers or self.state.get("proposal")):
            base = self.local(self.state.get("proposal") or offers[0].isoformat())
            wanted = shifted(base, message.when)
            self.state["day"], self.state["at"] = (
                wanted.date().isoformat(),
                say.hh_mm(wanted),
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
            # A new day may be one the caller already holds: asked, never doubled.
            return self.held_conflict(message) or self.seek()
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
        same_kind = message.type_key is not None and message.type_key == self.type_key()
        if awaiting == "confirm" and message.when.empty and same_kind:
            # "consultation" to "Book a consultation …?": the kind it already has; the
            # question is asked again rather than the request started over.
            return self.t("didnt_get_confirm", question=self.confirm_question())
        if message.intent is not None:
            self.clear_flow()
            return None
        if awaiting == "confirm":
            return self.t("didnt_get_confirm", question=self.confirm_question())
        return self.t("which_time_short", offers=self.offer_list_text(offers))

    def on_cancel_answer(self, message: Message) -> str | None:
        """Anything but a yes to "Cancel X?": never a slot search. A new day, type or
        choice picks again; a plain no keeps the appointment."""
        if not message.when.empty or message.type_key or message.choice is not None:
            return self.start_change(message, "cancel")
        if message.no:
            return self.keep_target()
        if message.intent is not None:
            self.clear_flow()
            return None
        return self.t("didnt_get_confirm", question=self.confirm_question())

    def start_booking(self, message: Message) -> str:
        if self.state.get("intent") != "book":
            self.clear_flow()
            self.state["intent"] = "book"
        if message.type_key or self.carried_type:
            self.state["type"] = message.type_key or self.carried_type
        self.merge_when(message, keep_time=False)
        if message.unknown_type and not message.type_key:
            self.state["awaiting"] = "type"
            return self.unknown_type(message.unknown_type)
        held = self.held_conflict(message)
        if held is not None:
            return held
        return self.seek()

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
        # Every path that says the question says it in full: a yes may answer it again
        # (if this one is cut off too, the stream marks it unheard once more).
        self.state.pop("confirm_unheard", None)
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
        target = self.state.get("target")
        self.handled_type = target["type"] if target else self.type_key()
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
        self.booked_now = appointment["id"]
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

    def hint(self, greeting: bool = False) -> str:
        lead = self.t("hi" if greeting else "didnt_get")
        return self.t("hint", lead=lead, example=self.example())
