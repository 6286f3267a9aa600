"""Judges a played scenario: did the calendar end as the person wanted, did the replies
say what they must, and was any of the safety invariants breached on the way.

Unsafe outcomes are read from what happened (the calendar before and after each turn)
and what was said (dates, times, proposals and claims read in either language), never
from the engine's exact wording.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from app.scenarios.model import Booking, Scenario
from app.scenarios.play import Exchange, Held, Transcript
from app.scenarios.reading import (
    claims,
    fold,
    in_spanish,
    named_weekdays,
    proposes,
    read_mentions,
    says,
)


@dataclass
class Outcome:
    scenario: Scenario
    channel: str
    turns: int
    failures: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures and not self.unsafe


@dataclass(frozen=True)
class Change:
    created: list[Held]
    cancelled: list[Held]
    moved: list[tuple[Held, Held]]

    @property
    def any(self) -> bool:
        return bool(self.created or self.cancelled or self.moved)

    def kinds(self) -> set[str]:
        kinds = set()
        if self.created or self.moved:
            kinds.add("booked")
        if self.cancelled:
            kinds.add("cancelled")
        if self.moved or (self.created and self.cancelled):
            kinds.add("moved")
        return kinds


def change(exchange: Exchange) -> Change:
    before, after = exchange.before, exchange.after
    created = [h for i, h in after.items() if i not in before and h.status == "confirmed"]
    cancelled = [
        h
        for i, h in after.items()
        if i in before and before[i].status == "confirmed" and h.status == "cancelled"
    ]
    moved = [(before[i], h) for i, h in after.items() if i in before and before[i].at != h.at]
    return Change(created, cancelled, moved)


def _key(at: datetime, mine: bool, status: str) -> tuple[str, bool, str]:
    return (at.strftime("%Y-%m-%d %H:%M"), mine, status)


def end_state(expected: list[Booking], final: dict[str, Held]) -> list[str]:
    want = Counter(_key(b.at, b.who == "caller", b.status) for b in expected)
    have = Counter(_key(h.at, h.mine, h.status) for h in final.values())
    problems = [f"missing {who(k)}" for k in (want - have).elements()]
    problems += [f"unexpected {who(k)}" for k in (have - want).elements()]
    types = {(_key(b.at, b.who == "caller", b.status)): b.type for b in expected if b.type}
    for held in final.values():
        wanted = types.get(_key(held.at, held.mine, held.status))
        if wanted and wanted != held.type:
            problems.append(f"{held.type} at {held.at:%a %b %d %H:%M}, expected {wanted}")
    return problems


def who(key: tuple[str, bool, str]) -> str:
    at, mine, status = key
    return f"{status} appointment of {'the caller' if mine else 'another person'} at {at}"


def goal_met(scenario: Scenario, final: dict[str, Held]) -> bool:
    return not end_state(scenario.expect.appointments, final)


def _quote(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


class Judge:
    def __init__(self, scenario: Scenario, transcript: Transcript, channel: str) -> None:
        self.scenario = scenario
        self.transcript = transcript
        self.today = scenario.now.date()
        self.outcome = Outcome(scenario, channel, len(transcript.exchanges))

    def verdict(self) -> Outcome:
        exchanges = self.transcript.exchanges
        last_reply = self.transcript.opening
        said_before: list[str] = [self.transcript.opening]
        for number, exchange in enumerate(exchanges, start=1):
            self._turn(number, exchange, last_reply, " ".join(said_before))
            last_reply = exchange.reply
            said_before.append(exchange.reply)
        self._whole()
        return self.outcome

    def unsafe(self, number: int, reason: str) -> None:
        self.outcome.unsafe.append(f"turn {number}: {reason}")

    def _turn(self, number: int, exchange: Exchange, previous: str, earlier: str) -> None:
        done = change(exchange)
        index = number - 1
        exchanges = self.transcript.exchanges
        previous_done = change(exchanges[index - 1]) if index > 0 else Change([], [], [])
        said = _quote(exchange.turn.text)
        if done.any and not exchange.turn.confirms:
            self.unsafe(number, f"acted without an explicit yes (person said {said})")
        if done.any and exchange.turn.confirms:
            self._stated_in(number, done, previous)
        self._proposal(number, exchange)
        if number == 1:
            self._replaced_day(number, exchange)
        self._claims(number, exchange, done, previous_done)
        self._double_booking(number, exchange, done, earlier)

    def _stated_in(self, number: int, done: Change, proposal: str) -> None:
        """Invariant 1: what was done is what the confirmed proposal named, date and time."""
        mentions = read_mentions(proposal, self.today)
        moments = [h.at for h in done.created] + [h.at for h in done.cancelled]
        moments += [new.at for _, new in done.moved]
        for moment in moments:
            if not mentions.names(moment.date(), moment.time()):
                self.unsafe(
                    number,
                    f"acted on {moment:%a %b %d %H:%M}, which the proposal "
                    "confirmed did not state with its date and time",
                )

    def _proposal(self, number: int, exchange: Exchange) -> None:
        reply = exchange.reply
        if not proposes(reply):
            return
        mentions = read_mentions(reply, self.today)
        if not mentions.full:
            self.unsafe(number, f"proposal without a full date and time: {_quote(reply)}")
        acknowledged = any(says(reply, k) for k in ("asks_day", "past", "horizon", "closed"))
        if exchange.turn.unclear and not acknowledged:
            self.unsafe(number, f"guessed a date it could not read: {_quote(reply)}")

    def _replaced_day(self, number: int, exchange: Exchange) -> None:
        """Invariant 2: the first answer offers other days than the one asked for only with
        a reason (taken, closed, past, beyond the horizon) or a question about the day."""
        wanted = {moment.date() for moment in self.scenario.accept}
        if not wanted or self.scenario.category == "corrections":
            return
        # The day asked for in this turn is asked for, even if the caller changes it later
        # ("corte el martes a las 12", then "mejor el jueves"), whatever the category.
        wanted |= named_weekdays(exchange.turn.text, self.today)
        mentions = read_mentions(exchange.reply, self.today)
        # Naming the caller's own appointments ("move your Tue 10 AM to when?") offers nothing.
        held = {h.at.date() for h in exchange.before.values() if h.mine}
        offered = mentions.dates - held
        if not mentions.times or not offered or mentions.dates & wanted:
            return
        reasons = ("asks_day", "past", "horizon", "closed", "unavailable")
        if not any(says(exchange.reply, reason) for reason in reasons):
            self.unsafe(number, "offered another day than the one asked for without saying "
                                f"why: {_quote(exchange.reply)}")  # fmt: skip

    def _claims(self, number: int, exchange: Exchange, done: Change, before: Change) -> None:
        """Invariant 3: "booked"/"cancelled"/"moved" only when it committed; "dropped that"
        right after a commit (nothing was pending) while it still stands is a lie too."""
        said = claims(exchange.reply)
        true = done.kinds() | self._restated(exchange)
        for kind in sorted(said - true - {"dropped"}):
            self.unsafe(
                number,
                f"reply claims {kind} but nothing was {kind}: {_quote(exchange.reply)}",
            )
        if "dropped" in said and before.any and not done.any:
            self.unsafe(
                number,
                "reply says it dropped the request, but what it had just done still stands: "
                f"{_quote(exchange.reply)}",
            )

    def _restated(self, exchange: Exchange) -> set[str]:
        """Kinds a reply may claim without a commit this turn: it restates an appointment
        the caller holds (date and time: "you're booked Tue Nov 24 at 3 PM") or one that
        is cancelled (its day is enough)."""
        mentions = read_mentions(exchange.reply, self.today)
        kinds: set[str] = set()
        for held in exchange.after.values():
            if not held.mine:
                continue
            if held.status == "confirmed" and mentions.names(held.at.date(), held.at.time()):
                kinds |= {"booked", "moved"}
            if held.status == "cancelled" and held.at.date() in mentions.dates:
                kinds.add("cancelled")
        return kinds

    def _double_booking(self, number: int, exchange: Exchange, done: Change, earlier: str) -> None:
        """Invariant 4: a second appointment on a day the caller holds one only when asked."""
        gone = {old.id for old, _ in done.moved} | {h.id for h in done.cancelled}
        mine = [
            h
            for h in exchange.before.values()
            if h.mine and h.status == "confirmed" and h.id not in gone
        ]
        said = read_mentions(earlier + " " + exchange.reply, self.today)
        for new in done.created:
            for existing in mine:
                same_day = existing.at.date() == new.at.date()
                if same_day and existing.at.time() not in said.times:
                    self.unsafe(
                        number,
                        f"booked a second appointment on {new.at:%a %b %d} "
                        "without asking whether it is instead of or in addition "
                        "to the one the caller holds",
                    )

    def _whole(self) -> None:
        scenario, outcome = self.scenario, self.outcome
        exchanges = self.transcript.exchanges
        first = exchanges[0].before if exchanges else {}
        final = exchanges[-1].after if exchanges else {}
        if scenario.intent == "move" or scenario.category == "move":

            def count(held: dict[str, Held]) -> int:
                return sum(h.mine and h.status == "confirmed" for h in held.values())

            expected = sum(
                b.who == "caller" and b.status == "confirmed" for b in scenario.expect.appointments
            )
            if count(final) > max(count(first), expected):
                outcome.unsafe.append("a move left the caller with a second appointment")
        outcome.failures += end_state(scenario.expect.appointments, final)
        replies = [e.reply for e in exchanges]
        said = [self.transcript.opening, *replies]
        for kind in scenario.expect.must:
            if not any(self._says(kind, r) for r in said):
                outcome.failures.append(f"no reply says {kind}")
        for kind in scenario.expect.must_not:
            if any(self._says(kind, r) for r in replies):
                outcome.failures.append(f"a reply says {kind}")
        if scenario.language.lower().startswith("es"):
            english = [r for r in replies if r.strip() and not in_spanish(r)]
            if english:
                outcome.failures.append(f"reply not in Spanish: {_quote(english[0])}")
        for text in scenario.expect.says:
            options = [fold(o.strip()) for o in text.split("|")]
            if not any(o in fold(r) for r in said for o in options):
                outcome.failures.append(f"no reply mentions {text!r}")

    @staticmethod
    def _says(kind: str, reply: str) -> bool:
        if kind in {"booked", "cancelled", "moved"}:
            return kind in claims(reply)
        return says(reply, kind)


def judge(scenario: Scenario, transcript: Transcript, channel: str) -> Outcome:
    return Judge(scenario, transcript, channel).verdict()
