"""The scheduling tools as the LLM engine offers them to a model, with the guardrails
that make a model's tool call safe to act on. All in code, none in the prompt:

- book and move name an opaque slot_id that check_availability returned in this
  conversation; anything else is refused back to the model;
- cancel and move name an appointment that list_appointments returned in this
  conversation (the tools themselves also check it is the caller's);
- book, move and cancel only prepare a pending action: it runs when the person's own
  next message is a yes (app/agent/confirm.py), never on the model's word;
- a tool the tool layer refuses for identity verification ends the turn at once, so the
  phone layer's PIN check runs exactly as with the offline engine.

The model sees the tools bound to the routed agent and caller only (SchedulingTools), so
no argument can reach another caller's appointments or the agent's configuration.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import ValidationError

from app.agent.llm_guard import on_day_said
from app.agent.understanding import Message
from app.tools.registry import TOOLS, function_definitions, run_tool
from app.tools.schemas import BookAppointmentArgs
from app.tools.service import SchedulingTools, describe

CHANGES = {
    "book_appointment": "book",
    "reschedule_appointment": "move",
    "cancel_appointment": "cancel",
}
MAX_REMEMBERED = 40
SLOT_ID_DESCRIPTION = "A slot_id exactly as check_availability returned it"


class MalformedArguments(Exception):
    """The model's arguments are not a JSON object: the turn falls back."""


class VerificationNeeded(Exception):
    """The tool layer wants the caller's identity verified first: the turn ends."""


@cache
def _model_definitions() -> tuple[dict[str, Any], ...]:
    definitions = []
    for definition in function_definitions():
        definition = copy.deepcopy(definition)
        params = definition["parameters"]
        props = params.setdefault("properties", {})
        required = [r for r in params.get("required", []) if r not in ("start", "new_start")]
        # Times are chosen by slot id, never typed by the model.
        for key in ("start", "new_start", "idempotency_key"):
            props.pop(key, None)
        if definition["name"] in ("book_appointment", "reschedule_appointment"):
            # The slot carries its appointment type.
            props.pop("appointment_type", None)
            props["slot_id"] = {"type": "string", "description": SLOT_ID_DESCRIPTION}
            required.append("slot_id")
        params["required"] = required
        definitions.append({"type": "function", "function": definition})
    return tuple(definitions)


def model_tools() -> list[dict[str, Any]]:
    """Chat Completions tool definitions: the scheduling tools' own schemas, with the
    times of book/move replaced by slot ids. Built once (schema generation costs
    milliseconds); the request only serialises them, so sharing them is safe."""
    return list(_model_definitions())


def slot_id(type_key: str, start_iso: str) -> str:
    return "slot_" + hashlib.sha256(f"{type_key}|{start_iso}".encode()).hexdigest()[:10]


def remembered(appointment: dict[str, Any]) -> dict[str, str]:
    return {
        "type": appointment["type"],
        "type_name": appointment["type_name"],
        "when": appointment["when"],
        "start": appointment["start"],
    }


def parse_arguments(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MalformedArguments(f"arguments are not JSON: {exc.msg}") from exc
    if not isinstance(value, dict):
        raise MalformedArguments("arguments are not a JSON object")
    return value


@dataclass
class Memory:
    """What this conversation's tools returned: the only slots and appointments a change
    may name, and the change awaiting the person's yes. Lives in Turn.state["llm"]."""

    slots: dict[str, dict[str, str]] = field(default_factory=dict)
    appointments: dict[str, dict[str, str]] = field(default_factory=dict)
    pending: dict[str, Any] | None = None
    # Changes that committed in this conversation ({"action", "start"}): a reply may
    # restate them (app/agent/llm_guard.py).
    done: list[dict[str, str]] = field(default_factory=list)
    # The last change the person asked for in words ("move", "cancel", "book"), read in
    # code, until a change commits: a bare "thursday at 10" after "can we do it another
    # day?" is still a move.
    asked: str | None = None

    @classmethod
    def load(cls, state: dict[str, Any]) -> Memory:
        return cls(
            slots=dict(state.get("slots") or {}),
            appointments=dict(state.get("appointments") or {}),
            pending=state.get("pending"),
            done=list(state.get("done") or []),
            asked=state.get("asked"),
        )

    def dump(self) -> dict[str, Any]:
        return {
            "slots": dict(list(self.slots.items())[-MAX_REMEMBERED:]),
            "appointments": dict(list(self.appointments.items())[-MAX_REMEMBERED:]),
            "pending": self.pending,
            "done": self.done[-MAX_REMEMBERED:],
            "asked": self.asked,
        }


class ToolBox:
    """Runs one model tool call against the caller's tools, through the guardrails."""

    def __init__(
        self,
        tools: SchedulingTools,
        memory: Memory,
        doubt: str | None = None,
        said: Message | None = None,
    ) -> None:
        self.tools = tools
        self.memory = memory
        # Why the person's words this turn cannot name a change's day (llm_guard.day_doubt).
        self.doubt = doubt
        # This turn's words as the offline engine reads them (llm_guard.words_read).
        self.said = said
        self.calls: list[dict[str, Any]] = []
        self.zone = tools.schedule.zone
        # Slots a search without a day returned this turn: the model picked "the
        # soonest", so the person has not chosen that day (see _prepare).
        self.soonest: set[str] = set()

    def call(self, name: str, raw_arguments: str | None) -> dict[str, Any]:
        """The result for the model (a JSON object it reads as text)."""
        arguments = parse_arguments(raw_arguments)
        if name == "check_availability":
            return self._availability(arguments)
        if name == "list_appointments":
            return self._list(arguments)
        if name in CHANGES:
            return self._prepare(name, arguments)
        return self._refuse(name, arguments, f"Unknown tool {name!r}. Known: {', '.join(TOOLS)}.")

    # --- reads -----------------------------------------------------------------------

    def _availability(self, arguments: dict[str, Any]) -> dict[str, Any]:
        result = self.run("check_availability", arguments)
        if not result["ok"]:
            return result
        data = result.pop("data")
        type_key = data.get("appointment_type", "")
        result["slots"] = [self.remember_slot(type_key, iso) for iso in data.get("slots", [])]
        if not arguments.get("date"):
            self.soonest |= {slot["slot_id"] for slot in result["slots"]}
        return result

    def _list(self, arguments: dict[str, Any]) -> dict[str, Any]:
        result = self.run("list_appointments", arguments)
        data = result.pop("data", {})
        if data.get("error") == "verification_required":
            raise VerificationNeeded
        items = []
        for item in data.get("appointments", []):
            entry = {"appointment_id": item["id"], "type": item["type"], "when": item["when"]}
            self.memory.appointments[item["id"]] = remembered(item)
            items.append(entry)
        result["appointments"] = items
        return result

    def remember_slot(self, type_key: str, start_iso: str) -> dict[str, str]:
        key = slot_id(type_key, start_iso)
        when = describe(datetime.fromisoformat(start_iso), self.tools.schedule)
        self.memory.slots[key] = {"start": start_iso, "type": type_key, "when": when}
        return {"slot_id": key, "when": when}

    # --- changes: prepared here, run only on the person's yes -------------------------

    def _prepare(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        pending = self.memory.pending
        if (
            pending is not None
            and pending.get("prepared_now")
            and pending["name"] == name
            and self._same_target(pending, arguments)
        ):
            return self._refuse(
                name,
                arguments,
                "Not done: this change is waiting for the person's own yes in their next "
                "message. You cannot confirm it for them; ask them and wait.",
            )
        if self.doubt and name != "cancel_appointment":
            return self._refuse(
                name,
                arguments,
                f"Not prepared: {self.doubt}. Do not pick a day for them: say so and ask "
                "which day they mean.",
            )
        if str(arguments.get("slot_id")) in self.soonest:
            return self._refuse(
                name,
                arguments,
                "Not prepared: that time came from a search without a day, so the person "
                "has not chosen it. Offer the times (or ask which day) and let them choose.",
            )
        try:
            real, summary = self._real_arguments(name, arguments)
        except ValueError as exc:
            return self._refuse(name, arguments, str(exc))
        if name != "book_appointment" and self._unpicked():
            return self._refuse(
                name,
                arguments,
                "Not prepared: the person holds several appointments and their words do not "
                "say which one. List them and ask which one they mean.",
            )
        if name == "book_appointment" and not self._on_day_said(real["start"]):
            return self._refuse(
                name,
                arguments,
                "Not prepared: the person's words this turn name another day. Prepare it on "
                "the day they named, or say why that day cannot be and ask which day they want.",
            )
        self.memory.pending = {
            "name": name,
            "arguments": real,
            "summary": summary,
            "model_arguments": arguments,
            "type": self._type_of(name, arguments),
            "prepared_now": True,
            **self._described(name, arguments, real),
        }
        self.calls.append(
            {"name": name, "arguments": arguments, "ok": True, "result": "awaiting confirmation"}
        )
        return {
            "ok": True,
            "status": "awaiting_confirmation",
            "message": (
                f"Not done yet. Ask the person to confirm: {summary}. It is done only when "
                "they say yes in their next message."
            ),
        }

    def _unpicked(self) -> bool:
        """Several appointments known and nothing in this turn's words picks one."""
        said = self.said
        if said is None or len(self.memory.appointments) < 2:
            return False
        picked = said.when.day or said.type_key or said.choice is not None or said.every
        return not picked and said.when.at is None and said.when.part is None

    def _on_day_said(self, start: str) -> bool:
        if self.said is None:
            return True
        day = datetime.fromisoformat(start).astimezone(self.zone).date()
        return on_day_said(self.said.when, day)

    def _described(
        self, name: str, arguments: dict[str, Any], real: dict[str, Any]
    ) -> dict[str, Any]:
        """What the engine's own confirmation question names (app/agent/llm_guard.py)."""
        action = CHANGES[name]
        start = real.get("start") or real.get("new_start")
        described: dict[str, Any] = {"action": action, "start": start}
        if action == "book":
            kind = self.tools.schedule.type_named(real["appointment_type"])
            described["type_name"] = kind.name if kind else real["appointment_type"]
            described["for_name"] = real.get("name")
            return described
        appointment = self.memory.appointments[arguments["appointment_id"]]
        described["type_name"] = appointment["type_name"]
        described["old_start"] = appointment.get("start")
        return described

    def _type_of(self, name: str, arguments: dict[str, Any]) -> str:
        if name == "cancel_appointment":
            return self.memory.appointments[arguments["appointment_id"]]["type"]
        return self.memory.slots[arguments["slot_id"]]["type"]

    def _same_target(self, pending: dict[str, Any], arguments: dict[str, Any]) -> bool:
        model_arguments = pending.get("model_arguments") or {}
        keys = ("slot_id", "appointment_id")
        return all(model_arguments.get(k) == arguments.get(k) for k in keys)

    def _real_arguments(self, name: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], str]:
        if name == "cancel_appointment":
            appointment = self._known_appointment(arguments)
            summary = f"cancel the {appointment['type_name']} on {appointment['when']}"
            return {"appointment_id": arguments["appointment_id"]}, summary
        slot = self.memory.slots.get(str(arguments.get("slot_id", "")))
        if slot is None:
            raise ValueError(
                f"Unknown slot_id {arguments.get('slot_id')!r}: use only a slot_id that "
                "check_availability returned in this conversation (call it first)."
            )
        if name == "reschedule_appointment":
            appointment = self._known_appointment(arguments)
            summary = (
                f"move the {appointment['type_name']} on {appointment['when']} to {slot['when']}"
            )
            real = {"appointment_id": arguments["appointment_id"], "new_start": slot["start"]}
            return real, summary
        real = {
            "start": slot["start"],
            "appointment_type": slot["type"],
            "name": arguments.get("name"),
            "notes": arguments.get("notes"),
        }
        try:
            BookAppointmentArgs.model_validate(real)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ValueError(f"Invalid {'.'.join(map(str, error['loc']))}: {error['msg']}") from exc
        kind = self.tools.schedule.type_named(slot["type"])
        summary = f"book a {kind.name if kind else slot['type']} on {slot['when']}"
        if real["name"]:
            summary += f" for {real['name']}"
        return {k: v for k, v in real.items() if v is not None}, summary

    def _known_appointment(self, arguments: dict[str, Any]) -> dict[str, str]:
        appointment = self.memory.appointments.get(str(arguments.get("appointment_id", "")))
        if appointment is None:
            raise ValueError(
                "Unknown appointment_id: use only an appointment_id that list_appointments "
                "returned in this conversation (call it first)."
            )
        return appointment

    def run_pending(self) -> dict[str, Any]:
        """The person said yes: run the prepared change for real."""
        pending = self.memory.pending
        assert pending is not None
        self.memory.pending = None
        result = self.run(pending["name"], pending["arguments"])
        data = result.pop("data", {})
        if data.get("error") == "verification_required":
            raise VerificationNeeded
        alternatives = data.get("alternatives") or []
        if alternatives:
            type_key = str(pending.get("type") or "")
            result["alternatives"] = [self.remember_slot(type_key, iso) for iso in alternatives]
        appointment = data.get("appointment")
        if appointment and pending["name"] != "cancel_appointment":
            self.memory.appointments[appointment["id"]] = remembered(appointment)
        if appointment and pending["name"] == "cancel_appointment":
            self.memory.appointments.pop(appointment["id"], None)
        result["action"] = CHANGES[pending["name"]]
        if result["ok"] and appointment:
            self.memory.done.append({"action": result["action"], "start": appointment["start"]})
            self.memory.asked = None
        return result

    def as_move(self, pending: dict[str, Any]) -> dict[str, Any]:
        """The booking the person chose to make a move of the appointment it duplicated:
        prepared (not run) like any change, so the person confirms the move itself."""
        held = pending["choose_with"]
        self.memory.appointments[held["id"]] = remembered(held)
        slot = self.memory.slots.get(str(pending["model_arguments"].get("slot_id")), {})
        new_when = slot.get("when", pending["start"])
        return {
            "name": "reschedule_appointment",
            "arguments": {"appointment_id": held["id"], "new_start": pending["start"]},
            "summary": f"move the {held['type_name']} on {held['when']} to {new_when}",
            "model_arguments": {
                "appointment_id": held["id"],
                "slot_id": pending["model_arguments"].get("slot_id"),
            },
            "type": pending["type"],
            "prepared_now": True,
            "action": "move",
            "start": pending["start"],
            "old_start": held["start"],
            "type_name": held["type_name"],
        }

    def also_held(self, pending: dict[str, Any], every: bool = False) -> list[dict[str, Any]]:
        """The caller's confirmed appointments on the day a booking would take, or of
        its type, read in code (not a model tool call): the question names them, so a
        second appointment is never booked without the person knowing it is one
        (every: all of them, when the person spoke of moving one)."""
        if pending["action"] != "book":
            return []
        result = run_tool(self.tools, "list_appointments", {})
        held = result.data.get("appointments") or []
        day = datetime.fromisoformat(pending["start"]).date()
        kind = self.memory.slots.get(str(pending["model_arguments"].get("slot_id")), {})
        return [
            a
            for a in held
            if every
            or datetime.fromisoformat(a["start"]).date() == day
            or a["type"] == kind.get("type")
        ]

    # --- plumbing --------------------------------------------------------------------

    def run(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = run_tool(self.tools, name, arguments)
        self.calls.append(
            {"name": name, "arguments": arguments, "ok": result.ok, "result": result.one_line()}
        )
        return {"ok": result.ok, "message": result.one_line(), "data": dict(result.data)}

    def _refuse(self, name: str, arguments: dict[str, Any], message: str) -> dict[str, Any]:
        self.calls.append({"name": name, "arguments": arguments, "ok": False, "result": message})
        return {"ok": False, "error": "refused", "message": message}
