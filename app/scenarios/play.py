"""Plays one scenario through the signed Twilio webhooks, as a texter or a caller, and
records every exchange with the calendar as it stood before and after it.

The person says the scripted turns, then follows a cooperative policy: gives a name or an
appointment type when asked, says yes to a proposal that names a time they accept, and
otherwise says no and restates what they want.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import httpx

from app.models import Appointment
from app.phone_sim import CallSimulator, Heard
from app.scenarios.model import Scenario, Turn
from app.scenarios.reading import asks_name, asks_type, fold, proposes, read_mentions
from app.scenarios.stage import Seeded, Stage

MAX_TURNS = 8
YES = {"en": "yes", "es": "sí"}
NO = {"en": "no", "es": "no"}
BYE = {"en": "no thanks", "es": "no gracias"}


@dataclass(frozen=True)
class Held:
    """One appointment as the judge compares it: local time, whose, status, type."""

    id: str
    at: datetime
    mine: bool
    status: str
    type: str


@dataclass
class Exchange:
    turn: Turn
    reply: str
    before: dict[str, Held]
    after: dict[str, Held]


@dataclass
class Transcript:
    opening: str
    exchanges: list[Exchange]
    ended: bool = False


class Line(Protocol):
    def open(self) -> str: ...

    def say(self, text: str) -> tuple[str, bool]: ...


class SmsLine:
    def __init__(self, stage: Stage, http: httpx.Client, seeded: Seeded) -> None:
        from app.cli import SmsSimulator  # the same signed form `python -m app sms` posts

        self.http = http
        self.simulator = SmsSimulator(
            stage.settings, stage.url, seeded.caller, stage.settings.agent_number
        )

    def open(self) -> str:
        return ""

    def say(self, text: str) -> tuple[str, bool]:
        return " ".join(self.simulator.send(self.http, text)), False


class VoiceLine:
    """A Twilio call: the greeting, then one <Gather> result per turn (redirects followed)."""

    def __init__(self, stage: Stage, http: httpx.Client, seeded: Seeded) -> None:
        self.http = http
        self.call = CallSimulator(
            stage.settings,
            stage.url,
            seeded.caller,
            stage.settings.agent_number,
            "TN-Validation-Passed-A",
        )
        self.heard: Heard | None = None

    def _settle(self, heard: Heard) -> str:
        says = list(heard.says)
        for _ in range(5):  # a redirect is the server finishing the turn; follow a few
            if not heard.redirect:
                break
            heard = self.call.follow(self.http, heard.redirect)
            says.extend(heard.says)
        self.heard = heard
        return " ".join(says)

    def open(self) -> str:
        return self._settle(self.call.dial(self.http))

    def say(self, text: str) -> tuple[str, bool]:
        if self.heard is None or self.heard.gather is None or self.heard.hangup:
            return "", True
        reply = self._settle(self.call.answer(self.http, self.heard.gather, text))
        return reply, self.heard.gather is None or self.heard.hangup

    def close(self) -> None:
        self.call.hang_up(self.http)


def held(stage: Stage, seeded: Seeded, scenario: Scenario) -> dict[str, Held]:
    zone = scenario.zone
    rows: list[Appointment] = stage.appointments(seeded.agent_id)
    return {
        row.id: Held(
            row.id,
            row.start_at.astimezone(zone),
            row.contact_e164 == seeded.caller,
            row.status,
            row.appointment_type,
        )
        for row in rows
    }


def _lang(scenario: Scenario) -> str:
    return "es" if scenario.language.lower().startswith("es") else "en"


def next_turn(scenario: Scenario, reply: str, restated: int, done: bool) -> Turn | None:
    """The cooperative person's answer to the agent's last reply (None: they stop).

    Once the calendar is as they want it they only answer a question about who they are
    or which service they mean (an availability question needs that to be answered)."""
    lang = _lang(scenario)
    type_names = [t.get("name", t["key"]) for t in scenario.profile["types"]]
    if asks_name(reply):
        return Turn(scenario.person["name"])
    if asks_type(reply, type_names) and scenario.person.get("type"):
        return Turn(scenario.person["type"])
    if done:
        return None
    if proposes(reply):
        mentions = read_mentions(reply, scenario.now.date())
        if any(mentions.names(m.date(), m.time().replace(tzinfo=None)) for m in scenario.accept):
            return Turn(YES[lang], confirms=True)
        if scenario.restate and restated < 2:
            return Turn(f"{NO[lang]}, {scenario.restate}", restates=True)
        return Turn(BYE[lang])
    if fold(reply).rstrip().endswith("?") and scenario.restate and restated < 2:
        return Turn(scenario.restate, restates=True)
    return None


def play(stage: Stage, scenario: Scenario, channel: str, goal_met: GoalCheck) -> Transcript:
    seeded = stage.seed(scenario)
    with httpx.Client(timeout=30) as http:
        line: SmsLine | VoiceLine = (
            VoiceLine(stage, http, seeded) if channel == "voice" else SmsLine(stage, http, seeded)
        )
        transcript = Transcript(line.open(), [])
        before = held(stage, seeded, scenario)
        pending = list(scenario.turns)
        restated = 0
        reply = transcript.opening
        while len(transcript.exchanges) < MAX_TURNS:
            if pending:
                turn: Turn | None = pending.pop(0)
            else:
                done = goal_met(scenario, held(stage, seeded, scenario))
                turn = next_turn(scenario, reply, restated, done)
                if turn is None:
                    break
                restated += turn.restates
            assert turn is not None  # popped, or the loop broke on None
            reply, ended = line.say(turn.text)
            after = held(stage, seeded, scenario)
            transcript.exchanges.append(Exchange(turn, reply, before, after))
            before = after
            if ended:
                transcript.ended = True
                break
        if isinstance(line, VoiceLine):
            line.close()
    return transcript


class GoalCheck(Protocol):
    def __call__(self, scenario: Scenario, final: dict[str, Held], /) -> bool: ...
