"""The caller's own appointments: listed, picked ("the Friday one", "both"), moved and
cancelled, and known to every booking (asking about your own slot is a list; a second
appointment on a day you hold one is asked about: instead, or in addition?)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, time, timedelta
from typing import Any

from app.agent import phrasing as say
from app.agent.dates import part_of, shifted
from app.agent.dialogue import DialogueBase
from app.agent.understanding import Message, find_choice

# Said outright that the new appointment is besides the one held.
ALSO = re.compile(
    r"\b(?:in addition|as well|also|add|extra|besides|on top of|ademas|tambien|agrega\w*|"
    r"anade\w*)\b"
)
# "same time a week later", "same time next week": seven days after the one held.
WEEK_LATER = re.compile(
    r"\b(?:(?:a|one) week later|next week|the week after|following week|"
    r"(?:a|one) week (?:from|after) (?:my|the|that|it)\b)"
)

# "cancel all except the one on the 26th", "todas menos la del jueves": what stays.
EXCEPT = re.compile(
    r"\b(?:except(?: for)?|but not|apart from|other than|besides|aside from|excluding|"
    r"all but|everything but|but|menos|excepto|salvo|con excepcion de)\b"
)
WEEKDAYS = (
    ("monday", "lunes"),
    ("tuesday", "martes"),
    ("wednesday", "miercoles"),
    ("thursday", "jueves"),
    ("friday", "viernes"),
    ("saturday", "sabado"),
    ("sunday", "domingo"),
)


def bare_weekday(text: str) -> int | None:
    """The weekday named without "this"/"next"/a date ("the friday one"), if one."""
    for number, names in enumerate(WEEKDAYS):
        for name in names:
            found = re.search(
                rf"\b(?:(this|next|proximo|este)\s+)?{name}\b(?!\s+(?:the\s+)?\d)", text
            )
            if found is not None and found.group(1) is None:
                return number
    return None


# Where one clause of a message ends and the next begins.
CLAUSE = re.compile(r"[,.;!?]+\s*|\s+(?:but|instead of|rather than|and then|then)\s+", re.I)


# "I wanted to bump my Monday to Tuesday": the first "to" is an infinitive, not where to.
INFINITIVE_BEFORE = frozenset(
    [
        "want",
        "wanted",
        "wanna",
        "like",
        "need",
        "needed",
        "have",
        "had",
        "going",
        "able",
        "trying",
        "hoping",
        "wish",
        "love",
        "gotta",
        "try",
        "tried",
        "hope",
        "asked",
        "calling",
    ]
)


def split_at_destination(raw: str) -> list[str]:
    for match in re.finditer(r"\b(?:to|for|until|till|para|al)\b", raw, flags=re.IGNORECASE):
        before = raw[: match.start()].split()
        if before and before[-1].lower().strip(",.") in INFINITIVE_BEFORE:
            continue
        return [raw[: match.start()], raw[match.end() :]]
    return [raw]


class OwnAppointments(DialogueBase):
    def move_in_clauses(
        self, message: Message, mine: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], Message] | None:
        """ "can't make friday, can I do monday at 10 instead?", "Friday 11am instead of
        wednesday": one clause names a held appointment, another names the new time. Then
        it is a move of that appointment (never a second booking)."""
        clauses = [c for c in CLAUSE.split(message.raw) if c and c.strip(" ,.")]
        read = [self.read(c) for c in clauses]
        dated = [m for m in read if m.when.day is not None or m.when.at is not None]
        if len(dated) < 2:
            return None
        sources = [(m, self.matching(m, mine)) for m in dated if m.when.day is not None]
        held = [(m, found) for m, found in sources if len(found) == 1]
        if len(held) != 1:
            return None
        source, found = held[0]
        others = [m for m in dated if m is not source and not self.matching(m, mine)]
        if len(others) != 1:
            return None
        return found[0], others[0]

    def held_conflict(self, message: Message) -> str | None:
        """The caller's own appointments, known to the booking: asking about your own slot
        is a list; a second appointment on a day you hold one is asked about."""
        when = message.when
        wants_shift = when.shift_minutes is not None or message.earlier or message.later
        if when.day is None and when.at is None and not wants_shift:
            return None
        listed = self.my_appointments(message.raw)
        if listed is None:
            # Not verified to see them (strict agent, unattested caller): a new booking
            # needs no verification, so it goes on without the check.
            self.state.pop("pending_text", None)
            return None
        mine = [a for a in listed if a["id"] != self.sibling]
        if not mine:
            return None
        also = bool(message.kept or ALSO.search(message.text))
        moving = None if also else self.move_in_clauses(message, mine)
        if moving is not None:
            self.state["intent"] = "move"
            self.state["target"] = moving[0]
            for key in ("day", "at", "part", "after", "before", "until"):
                self.state.pop(key, None)
            return self.seek_move(moving[1])
        day = when.day or (self.day_for_time(when.at) if when.at else None)
        same_day = [a for a in mine if day is None or self.local(a["start"]).date() == day]
        if wants_shift and day is None:
            same_day = [a for a in mine if a["id"] == self.state.get("last")] or mine[:1]
        if not same_day and message.instead and len(mine) == 1:
            same_day = mine  # "friday at 10 instead" with one held: that one moves
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
        held = same_day[0]
        if also and not message.instead:
            # "keep my 10am and add a consultation at 2": in addition, said so; the one
            # held is named in the reply so the person hears it stays.
            self.state["held_start"] = held["start"]
            # Named by its time only: a second kind named beside the new one reads as
            # "which kind?" to a listener.
            kept = self.t("keeping", on=self.on_day(held["start"]))
            return f"{kept} {self.seek()}"
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
        held = self.state["held"]
        if message.instead or message.intent == "move":
            return self.replace_held()
        other_kind = message.type_key is not None and message.type_key != held["type"]
        if message.in_addition or other_kind:
            self.state.pop("awaiting", None)
            if message.type_key is not None:
                self.state["type"] = message.type_key  # "in addition, a beard trim"
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
        return self.t("instead_or_addition_again", what=self.yours(held))

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
        if intent == "move" and message.same_time and not self.matching(source, appointments):
            # "thursday would be better for me, same time": all of it says where to.
            source, destination = self.read(""), message
        if intent == "cancel" and message.every:
            kept = EXCEPT.split(message.text, maxsplit=1)
            if len(kept) == 2 and kept[1].strip():
                # "all except the 26th": the one named stays; the others are cancelled.
                spared = self.matching(self.read(kept[1]), appointments)
                others = [a for a in appointments if a not in spared]
                if spared and others:
                    return self.confirm_cancel_all(others)
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
            # The list ends with the question, so the person knows an answer is wanted.
            if not matching and source.when.day is not None:
                return self.t("none_on_day", day=self.day_text(source.when.day), listed=listed)
            return self.t("which_one", listed=listed)
        self.state["target"] = picked
        if intent == "cancel":
            return self.ask_confirm()
        return self.seek_move(destination)

    def split_move(self, message: Message) -> tuple[Message, Message | None]:
        """'move my Friday appointment to 4pm': Friday picks the appointment, 4pm is new."""
        parts = split_at_destination(message.raw)
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
            wanted = shifted(current, destination.when)
            self.state["day"], self.state["at"] = (
                wanted.date().isoformat(),
                say.hh_mm(wanted),
            )
            return self.seek_exact(wanted, target["type"])
        if (
            destination is not None
            and destination.same_time
            and WEEK_LATER.search(destination.text)
        ):
            # "the same time next week": a week after the appointment, not after today.
            week_later = current.date() + timedelta(days=7)
            destination = replace(
                destination, when=replace(destination.when, day=week_later, until=None)
            )
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
                self.state["day"], self.state["at"] = day.isoformat(), say.hh_mm(when.at)
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
        done: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
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

    def keep_target(self) -> str:
        targets = self.state.get("targets") or [self.state.get("target")]
        self.clear_flow()
        self.state.pop("queued", None)
        self.state.pop("queued_day", None)
        kept = self.join([self.describe_appointment(t) for t in targets if t], "and")
        return self.ask_more(self.t("kept", kept=kept))

    def confirm_cancel_all(self, appointments: list[dict[str, Any]]) -> str:
        if len(appointments) == 1:
            self.state["target"] = appointments[0]
            return self.ask_confirm()
        self.state["targets"] = appointments
        self.state["target"] = appointments[0]
        self.state.pop("candidates", None)
        self.state["awaiting"] = "confirm"
        return self.confirm_question()

    def my_appointments(self, pending_text: str) -> list[dict[str, Any]] | None:
        result = self.upcoming()
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
            # "this week", "before friday": a span of days, not its first day.
            last = when.until if when.until is not None and when.until > when.day else when.day
            on_day = [a for a in found if when.day <= self.local(a["start"]).date() <= last]
            weekday = bare_weekday(message.text)
            if not on_day and weekday is not None:
                # "the friday one", "if it's wednesday": a weekday picks among the caller's
                # own appointments by weekday, whichever week they are in.
                on_day = [a for a in found if self.local(a["start"]).weekday() == weekday]
            found = on_day
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
        if when.day is not None and when.until is not None and when.until > when.day:
            days = {"day": self.day_text(when.day), "until": self.day_text(when.until)}
            asked.append(self.t("asked_days", **days))
        elif when.day is not None:
            asked.append(self.t("asked_day", day=self.day_text(when.day)))
        if when.at is not None:
            moment = self.at_local(self.now.date(), when.at)
            asked.append(self.t("asked_time", time=self.clock(moment)))
        if when.part is not None:
            asked.append(self.t("asked_part", part=self.part_word(when.part)))
        described = self.join([self.describe_appointment(a) for a in appointments[:5]], "and")
        return self.ask_more(self.t("not_seen", asked=" ".join(asked), described=described))

    def last_booked(self) -> dict[str, Any] | None:
        last = self.state.get("last")
        if not last:
            return None
        result = self.upcoming()
        if not result.ok:
            return None
        for appointment in result.data["appointments"]:
            if appointment["id"] == last:
                return dict(appointment)
        return None
