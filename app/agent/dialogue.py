"""What every part of the offline engine's dialogue shares: the turn, the typed state,
the tools (the only way it acts) and the wording helpers (catalogue + channel + language).

The dialogue is split by concern: `seeking.py` finds and offers times, `appointments.py`
resolves and changes the caller's own appointments, `offline.py` runs the flow of a turn.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from app.agent import phrasing as say
from app.agent.catalog import CATALOGUES, wording
from app.agent.dates import When
from app.agent.engine import Turn
from app.agent.state import FLOW_KEYS, load_state
from app.agent.understanding import Message, read
from app.tools.registry import (
    check_availability_in_process,
    list_appointments_in_process,
    run_tool,
)
from app.tools.schemas import ToolResult
from app.tools.service import FreeTimes
from app.turn_rows import AgentLike


def agent_language(agent: AgentLike) -> str:
    """The profile's language ("es-MX" → "es"); English for anything we do not speak."""
    code = (agent.language or "en").split("-")[0].lower()
    return code if code in CATALOGUES else "en"


class DialogueBase:
    """State, tools and wording for one turn; the concerns add behaviour on top."""

    lang: str

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.channel = turn.channel
        self.schedule = turn.tools.schedule
        self.zone = self.schedule.zone
        self.now = turn.now.astimezone(self.zone)
        self.state: dict[str, Any] = dict(load_state(turn.state))
        self.calls: list[dict[str, Any]] = []
        self.end = False
        # The kind of appointment the request just executed was about, and the kind a
        # second request in the same message inherits from it (never persisted).
        self.handled_type: str | None = None
        self.carried_type: str | None = None
        self.first_when: When | None = None
        # The appointment booked this turn, and (while the rest of a two-request message
        # runs) the one its first request booked: "saturday 10 and 11" books two on
        # one day without asking "instead or in addition" about its own first half.
        self.booked_now: str | None = None
        self.sibling: str | None = None
        self.lang: str = self.state.get("lang") or agent_language(turn.agent)
        # Every catalogue entry this turn's reply was worded from: the engine checks the
        # claims among them against what the tools committed (OfflineEngine.respond).
        self.said: set[str] = set()

    def t(self, key: str, **values: object) -> str:
        self.said.add(key)
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

    def tool(self, tool_name: str, **arguments: Any) -> ToolResult:
        arguments = {k: v for k, v in arguments.items() if v is not None}
        result = run_tool(self.turn.tools, tool_name, arguments)
        self._record(tool_name, arguments, result.ok, result.message)
        return result

    def _record(self, tool_name: str, arguments: dict[str, Any], ok: bool, message: str) -> None:
        self._record_line(tool_name, arguments, ok, " ".join(message.split()))  # one_line

    def _record_line(
        self, tool_name: str, arguments: dict[str, Any], ok: bool, one_line: str
    ) -> None:
        self.calls.append({"name": tool_name, "arguments": arguments, "ok": ok, "result": one_line})

    def upcoming(self) -> ToolResult:
        """list_appointments without arguments, in process: the same call recorded."""
        result = list_appointments_in_process(self.turn.tools)
        self._record("list_appointments", {}, result.ok, result.message)
        return result

    def slots(self, **arguments: Any) -> list[datetime]:
        """check_availability's free times, in the agent's zone. The engine built the
        arguments, so the tool runs in process (`check_availability_in_process`): the
        same call recorded, the times handed over as they are."""
        arguments = {k: v for k, v in arguments.items() if v is not None}
        found = check_availability_in_process(self.turn.tools, arguments)
        if isinstance(found, FreeTimes):
            self._record_line("check_availability", arguments, True, found.one_line)
            return list(found.local)
        self._record("check_availability", arguments, found.ok, found.message)
        if not found.ok:
            return []
        return [datetime.fromisoformat(s).astimezone(self.zone) for s in found.data["slots"]]

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
            self.state["at"] = say.hh_mm(when.at)
            self.state.pop("part", None)
        if when.part is not None:
            self.state["part"] = when.part
            if when.at is None:
                self.state.pop("at", None)
        for key in ("after", "before"):
            bound = getattr(when, key)
            if bound is not None:
                self.state[key] = say.hh_mm(bound)
                self.state.pop("at", None)
        if when.until is not None:
            self.state["until"] = when.until.isoformat()
        elif when.day is not None:
            self.state.pop("until", None)

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

    # --- provided by the other concerns (see SlotSeeking, OwnAppointments, _Dialogue) --

    def ask_confirm(self, prefix: str = "", free_now: bool = False) -> str:
        raise NotImplementedError

    def confirm_question(self) -> str:
        raise NotImplementedError

    def needs_verification(self) -> str:
        raise NotImplementedError

    def refused(self, result: ToolResult, moment: datetime) -> str:
        raise NotImplementedError

    def seek(self) -> str:
        raise NotImplementedError

    def seek_exact(self, wanted: datetime, key: str) -> str:
        raise NotImplementedError

    def seek_day(self, day: date | None, part: str | None, key: str) -> str:
        raise NotImplementedError

    def shift(self, later: bool) -> str:
        raise NotImplementedError

    def out_of_range(self, day: date | None) -> str | None:
        raise NotImplementedError

    def my_appointments(self, pending_text: str) -> list[dict[str, Any]] | None:
        raise NotImplementedError

    def day_for_time(self, at: time) -> date:
        raise NotImplementedError
