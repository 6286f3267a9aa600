"""A deterministic stand-in for a chat model: reads the person's words and the tool
results in a Chat Completions request and answers with the tool call or text a careful
scheduling model would. No network, no randomness: the same request, the same answer.

Used by app/agent/fake_openai.py (the local OpenAI-compatible server) for tests, the
scenario runner and benchmarks. It is a fixture, not an engine: it knows English
scheduling phrases only and relies on the LLM engine's guardrails like a real model.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "last": -1}
TODAY = re.compile(r"Today is \w+, (\w+) (\d+), (\d{4})")
SLOTS = re.compile(r"(slot_[0-9a-f]+) = (\w{3} \w{3} \d+), (\d+:\d\d [AP]M) \(([^)]*)\)")
APPOINTMENTS = re.compile(r"(apt_[0-9a-z]+) = [^;\n]*?(\w{3} \w{3} \d+), (\d+:\d\d [AP]M)")
TIME = re.compile(r"\b(\d{1,2})(?::(\d\d))?\s*(am|pm|a\.m\.|p\.m\.)?\b")
NAME = re.compile(r"\b(?:my name is|i'm|i am|this is|name's)\s+([A-Z][a-z]+(?: [A-Z][a-z]+)?)")
INTENTS = (
    ("cancel", re.compile(r"\bcancel\b")),
    ("move", re.compile(r"\b(?:move|reschedule|change)\b")),
    (
        "list",
        re.compile(r"\b(?:what|which|list|do i have)\b.*\bappointments?\b|\bmy appointments\b"),
    ),
    ("book", re.compile(r"\b(?:book|appointment|available|openings?|free|slot|come in)\b")),
)
YES = re.compile(r"^(?:yes|yeah|yep|sure|ok|okay|please do|go ahead|sounds good)\b")
BYE = re.compile(r"\b(?:bye|goodbye|that's all)\b")


@dataclass
class Slot:
    id: str
    day: str  # "Tue Nov 24"
    time: str  # "3:00 PM"
    type: str


@dataclass
class Facts:
    today: date
    types: list[str]
    slots: list[Slot]
    appointments: list[tuple[str, str, str]]  # (id, day, time)


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The assistant message for one Chat Completions request."""
    messages = request.get("messages") or []
    facts = _facts(messages)
    last = messages[-1] if messages else {"role": "user", "content": ""}
    person = _last_person_text(messages)
    if last["role"] == "tool":
        return _after_tools(messages, facts, person)
    system = str(messages[0].get("content") or "") if messages else ""
    if "The person said yes, so the system ran" in system:
        return _text(_outcome(system))
    if "The person said no to" in system:
        return _text("OK, I won't do that. Anything else?")
    return _after_person(person, facts)


# --- reading ---------------------------------------------------------------------------


def _facts(messages: list[dict[str, Any]]) -> Facts:
    system = " ".join(str(m.get("content") or "") for m in messages if m["role"] == "system")
    today = date(2026, 1, 1)
    found = TODAY.search(system)
    if found:
        month = datetime.strptime(found.group(1)[:3], "%b").month
        today = date(int(found.group(3)), month, int(found.group(2)))
    types_line = re.search(r"Appointment types: ([^\n]*)", system)
    types = re.findall(r"([\w ]+?) \(\d+ minutes\)", types_line.group(1)) if types_line else []
    slots = [Slot(*m) for m in SLOTS.findall(system)]
    return Facts(today, [t.strip() for t in types], slots, APPOINTMENTS.findall(system))


def _last_person_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return str(message.get("content") or "")
    return ""


@dataclass
class Ask:
    intent: str | None
    day: date | None
    hour: int | None
    minute: int
    part: str | None
    type: str | None
    choice: int | None
    name: str | None


def read(text: str, facts: Facts) -> Ask:
    lower = text.lower()
    intent = next((name for name, pattern in INTENTS if pattern.search(lower)), None)
    kind = next((t for t in facts.types if t.lower() in lower), None)
    part = next((p for p in ("morning", "afternoon", "evening") if p in lower), None)
    hour, minute = _time(lower, part)
    choice = next((i for word, i in ORDINALS.items() if re.search(rf"\b{word}\b", lower)), None)
    named = NAME.search(text)
    return Ask(
        intent or ("book" if kind else None),
        _day(lower, facts.today),
        hour,
        minute,
        part,
        kind,
        choice,
        named.group(1) if named else None,
    )


def _day(lower: str, today: date) -> date | None:
    if "tomorrow" in lower:
        return today + timedelta(days=1)
    if "today" in lower:
        return today
    for index, name in enumerate(WEEKDAYS):
        if re.search(rf"\b{name}\b", lower):
            ahead = (index - today.weekday()) % 7 or 7
            if "next" in lower and ahead < 7:
                ahead += 7 if re.search(rf"next week|next {name}", lower) and ahead < 3 else 0
            return today + timedelta(days=ahead)
    return None


def _time(lower: str, part: str | None) -> tuple[int | None, int]:
    """ "3pm", "3:30", "at 3" (a bare 3 is not a time: it may be "3 options")."""
    for match in TIME.finditer(lower):
        hour, minute, meridiem = int(match.group(1)), int(match.group(2) or 0), match.group(3)
        said_at = re.search(r"\bat\s*$", lower[: match.start()])
        if not (meridiem or match.group(2) or said_at) or hour > 23:
            continue
        if meridiem and meridiem.startswith("p") and hour < 12:
            hour += 12
        elif meridiem and meridiem.startswith("a") and hour == 12:
            hour = 0
        elif meridiem is None and (hour < 8 or (part in ("afternoon", "evening") and hour < 12)):
            hour += 12
        return hour, minute
    return None, 0


# --- deciding --------------------------------------------------------------------------


def _after_person(person: str, facts: Facts) -> dict[str, Any]:
    lower = person.lower()
    ask = read(person, facts)
    if BYE.search(lower) and ask.intent is None:
        return _text("Thanks, bye!")
    if ask.intent == "list":
        return _call("list_appointments", {})
    if ask.intent in ("cancel", "move"):
        return _change(ask, facts)
    chosen = _chosen_slot(ask, facts)
    if chosen is not None:
        arguments = {"slot_id": chosen.id}
        if ask.name:
            arguments["name"] = ask.name
        return _call("book_appointment", arguments)
    if ask.intent == "book" or ask.day or ask.hour is not None or ask.part:
        return _call("check_availability", _search(ask))
    if YES.search(lower) and facts.slots:
        return _text("Which time would you like?")
    return _text("Hi! I can book, move, list or cancel appointments. What would you like?")


def _search(ask: Ask) -> dict[str, Any]:
    arguments: dict[str, Any] = {"limit": 20 if ask.hour is not None else 3}
    if ask.day:
        arguments["date"] = ask.day.isoformat()
    if ask.type:
        arguments["appointment_type"] = ask.type
    if ask.part and ask.hour is None:
        arguments["part_of_day"] = ask.part
    return arguments


def _chosen_slot(ask: Ask, facts: Facts, pool: list[Slot] | None = None) -> Slot | None:
    slots = pool if pool is not None else facts.slots
    if not slots:
        return None
    if ask.choice is not None and ask.hour is None and pool is None:
        recent = slots[-3:]
        return recent[ask.choice] if -len(recent) <= ask.choice < len(recent) else None
    if ask.hour is None:
        return None
    wanted = _clock(ask.hour, ask.minute)
    day = _day_text(ask.day) if ask.day else None
    matching = [s for s in slots if s.time == wanted and (day is None or s.day == day)]
    return matching[-1] if matching else None


def _change(ask: Ask, facts: Facts) -> dict[str, Any]:
    if not facts.appointments:
        return _call("list_appointments", {})
    target = facts.appointments[0]
    if len(facts.appointments) > 1 and ask.day is not None:
        on_day = [a for a in facts.appointments if a[1] == _day_text(ask.day)]
        target = on_day[0] if on_day else target
    if ask.intent == "cancel":
        return _call("cancel_appointment", {"appointment_id": target[0]})
    chosen = _chosen_slot(ask, facts)
    if chosen is not None:
        return _call("reschedule_appointment", {"appointment_id": target[0], "slot_id": chosen.id})
    return _call("check_availability", _search(ask))


def _after_tools(messages: list[dict[str, Any]], facts: Facts, person: str) -> dict[str, Any]:
    results = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        results.append(json.loads(message["content"]))
    result = results[0]  # the last tool's answer decides
    ask = read(person, facts)
    if result.get("status") == "awaiting_confirmation":
        summary = re.search(r"confirm: (.*?)\. It is done", result["message"])
        what = summary.group(1) if summary else "go ahead"
        return _text(f"Shall I {what}? Reply YES to confirm.")
    if "appointments" in result:
        return _after_list(result, ask, facts)
    if "slots" in result:
        return _after_slots(result, ask, facts)
    return _text(_plain(str(result.get("message", "Sorry, that didn't work."))))


def _after_list(result: dict[str, Any], ask: Ask, facts: Facts) -> dict[str, Any]:
    listed = result["appointments"]
    if not listed:
        return _text("You have no upcoming appointments.")
    if ask.intent == "cancel":
        return _call("cancel_appointment", {"appointment_id": listed[0]["appointment_id"]})
    if ask.intent == "move":
        return _call("check_availability", {**_search(ask), "appointment_type": listed[0]["type"]})
    return _text("You have: " + "; ".join(f"{a['type']} {a['when']}" for a in listed) + ".")


def _day_and_time(when: str) -> tuple[str, str]:
    day, at = when.split(", ")  # "Tue Nov 24, 3:00 PM"
    return day, at


def _after_slots(result: dict[str, Any], ask: Ask, facts: Facts) -> dict[str, Any]:
    slots = [Slot(s["slot_id"], *_day_and_time(s["when"]), ask.type or "") for s in result["slots"]]
    if not slots:
        return _text(_plain(result.get("message", "Nothing free then.")) + " Another day?")
    chosen = _chosen_slot(ask, facts, pool=slots)
    if chosen is not None and ask.intent == "move" and facts.appointments:
        target = facts.appointments[0][0]
        return _call("reschedule_appointment", {"appointment_id": target, "slot_id": chosen.id})
    if chosen is not None:
        arguments = {"slot_id": chosen.id}
        if ask.name:
            arguments["name"] = ask.name
        return _call("book_appointment", arguments)
    offered = slots[:3]
    times = ", ".join(f"{s.day} {s.time}" for s in offered)
    return _text(f"Free: {times}. Which works?")


def _outcome(note: str) -> str:
    found = re.search(r"Result: (\{.*?\})\. Tell them", note)
    if not found:
        return "Done."
    result = json.loads(found.group(1))
    message = _plain(str(result.get("message", "")))
    return message if result.get("ok") else f"Sorry: {message}"


# --- writing ---------------------------------------------------------------------------


def _day_text(day: date) -> str:
    return f"{WEEKDAYS[day.weekday()][:3].title()} {MONTHS[day.month - 1].title()} {day.day}"


def _clock(hour: int, minute: int) -> str:
    return f"{hour % 12 or 12}:{minute:02d} {'AM' if hour < 12 else 'PM'}"


def _plain(message: str) -> str:
    return re.sub(r"\s*\(id [^)]*\)", "", message)


def _text(content: str) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(f"{name}|{json.dumps(arguments, sort_keys=True)}".encode()).hexdigest()
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{digest[:12]}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        ],
    }
