"""A deterministic stand-in for a chat model: reads the person's words, the system
prompt and the tool results in a Chat Completions request and answers with the tool call
or text a careful scheduling model would. No network, no randomness: the same request,
the same answer.

Used by app/agent/fake_openai.py (the local OpenAI-compatible server) for tests, the
scenario runner in CI and benchmarks. It is a fixture, not an engine: a simple policy of
its own (keywords, a few date shapes, English and Spanish), sharing nothing with the
offline engine's understanding, and relying on the LLM engine's guardrails like a real
model. Where it cannot read a day it asks, as a careful model would.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

WEEKDAYS = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
    "sunday": 6, "lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4,
    "sabado": 5, "domingo": 6,
}  # fmt: skip
SHORT_DAYS = {
    "mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3, "fri": 4,
    "sat": 5, "sun": 6,
}  # fmt: skip
MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "jun": 6, "jul": 7, "aug": 8, "sep": 9,
    "sept": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
EN_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
ES_DAYS = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")
ES_MONTHS = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic")
ORDINALS = {
    "first": 0, "1st": 0, "primera": 0, "primero": 0, "second": 1, "2nd": 1, "segunda": 1,
    "segundo": 1, "third": 2, "3rd": 2, "tercera": 2, "tercero": 2, "last": -1, "ultima": -1,
}  # fmt: skip
TOMORROW = r"tomorrow|tmrw|tmr|tmrrw|tomorow|tommorow|tommorrow|2moro|manana|mnn"
TODAY = re.compile(r"Today is \w+, (\w+) (\d+), (\d{4}) \(local time (\d\d):(\d\d)\)")
SLOTS = re.compile(r"(slot_[0-9a-f]+) = \w{3} (\w{3}) (\d+), (\d+):(\d\d) ([AP]M) \(([^)]*)\)")
APPOINTMENTS = re.compile(r"(apt_\w+) = (.+?) \w{3} (\w{3}) (\d+), (\d+):(\d\d) ([AP]M)")
WHEN = re.compile(r"\w{3} (\w{3}) (\d+), (\d+):(\d\d) ([AP]M)")
NAME = re.compile(r"\b(?:my name is|i'm|i am|this is|name's|me llamo|soy)\s+([A-Z][a-z]+)")
INTENTS = (
    ("cancel", r"\b(?:cancel\w*|cancl\w*|cancle|anul\w*)\b"),
    (
        "move",
        r"\b(?:move|reschedule|resched|change|switch|shift|push|bump|postpone|later|earlier|"
        r"instead|cambi\w*|mov\w*|pasar|pasa|reagend\w*|reprogram\w*|recorr\w*)\b",
    ),
    (
        "list",
        r"\b(?:what|which|when|when's|wen|list|show|remind|did|do i have|am i|checking|"
        r"confirming|whats|que|cual|tengo|sigo|sigue)\b.*\b(?:appointments?|appt|apointment|"
        r"bookings?|booked|booking|schedule|coming in|on for|one|cita|citas|apuntad[oa]|"
        r"lessons|cleaning|haircut|anything|something|tomorrow|en pie)\b",
    ),
    (
        "book",
        r"\b(?:book|appointment|available|openings?|free|slot|come in|get|need|want|cut|"
        r"agend\w*|reserv\w*|cita|corte|quiero|quisiera|lugar|horarios|tienen|puedo ir)\b",
    ),
)
FAQ_WORDS = re.compile(
    r"\b(?:where|address|located|parking|pay|card|cards|insurance|price|cost|charge|much|"
    r"services|offer|teach|hours|open|close|ubicad\w*|direccion|cuanto|cuesta|tarjeta|"
    r"abren|horario|servicios)\b"
)
BYE = re.compile(r"\b(?:bye|goodbye|that's all|adios|hasta luego)\b")
YES = re.compile(r"^(?:yes|yeah|yep|sure|ok|okay|si|claro|vale)\b")


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    return "".join(c for c in text if not unicodedata.combining(c))


@dataclass
class Slot:
    id: str
    at: datetime
    type: str = ""


@dataclass
class Held:
    id: str
    type: str
    at: datetime


@dataclass
class Facts:
    today: date
    now: datetime
    spanish: bool
    types: list[str]
    hours: dict[int, str]
    horizon: int
    faq: list[tuple[str, str]]
    address: str
    services: str
    slots: list[Slot] = field(default_factory=list)
    appointments: list[Held] = field(default_factory=list)


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The assistant message for one Chat Completions request."""
    messages = request.get("messages") or []
    system = str(messages[0].get("content") or "") if messages else ""
    facts = _facts(system)
    person = _last_person_text(messages)
    if messages and messages[-1]["role"] == "tool":
        return _after_tools(messages, facts, person)
    if "The person said yes, so the system ran" in system:
        return _text(_say(facts, "Anything else?", "¿Algo más?"))
    if "The person said no to" in system:
        return _text(
            _say(facts, "OK, I won't. What would you like instead?", "Entendido. ¿Qué prefieres?")
        )
    return _after_person(person, facts, _earlier_intent(messages))


# --- reading the request -----------------------------------------------------------------


def _facts(system: str) -> Facts:
    found = TODAY.search(system)
    now = datetime(2026, 1, 1, 9, 0)
    if found:
        month = datetime.strptime(found.group(1)[:3], "%b").month
        now = datetime(
            int(found.group(3)),
            month,
            int(found.group(2)),
            int(found.group(4)),
            int(found.group(5)),
        )
    types_line = re.search(r"Appointment types: ([^\n]*)", system)
    types = re.findall(r"([^;()]+?) \(\d+ minutes\)", types_line.group(1)) if types_line else []
    hours: dict[int, str] = {}
    hours_line = re.search(r"Opening hours: ([^\n]*)", system)
    for part in (hours_line.group(1) if hours_line else "").rstrip(".").split("; "):
        if part[:3] in EN_DAYS:
            hours[EN_DAYS.index(part[:3])] = part[4:]
    horizon = re.search(r"up to (\d+) days ahead", system)
    faq = re.findall(r"Q: (.*?) A: (.*)", system)
    address = re.search(r"Address: ([^\n]*)", system)
    services = re.search(r"Services: ([^\n]*)", system)
    facts = Facts(
        today=now.date(),
        now=now,
        spanish="Speak Spanish" in system,
        types=[t.strip() for t in types],
        hours=hours,
        horizon=int(horizon.group(1)) if horizon else 60,
        faq=faq,
        address=address.group(1) if address else "",
        services=services.group(1) if services else "",
    )
    for sid, mon, day, hour, minute, ampm, kind in SLOTS.findall(system):
        facts.slots.append(Slot(sid, _moment(facts.today, mon, day, hour, minute, ampm), kind))
    for aid, kind, mon, day, hour, minute, ampm in APPOINTMENTS.findall(system):
        at = _moment(facts.today, mon, day, hour, minute, ampm)
        facts.appointments.append(Held(aid, kind.strip(), at))
    return facts


def _moment(today: date, mon: str, day: str, hour: str, minute: str, ampm: str) -> datetime:
    month = EN_MONTHS.index(mon[:3]) + 1
    year = today.year + (1 if month < today.month else 0)
    h = int(hour) % 12 + (12 if ampm == "PM" else 0)
    return datetime(year, month, int(day), h, int(minute))


def _earlier_intent(messages: list[dict[str, Any]]) -> str | None:
    """What the person asked for earlier in the conversation, for a follow-up that only
    names a day or time ("thursday at 10am" after "move my haircut")."""
    said = [str(m.get("content") or "") for m in messages if m["role"] == "user"][:-1]
    for text in reversed(said[-3:]):
        lower = fold(text)
        intent = next((n for n, p in INTENTS if re.search(p, lower)), None)
        if intent is not None:
            return intent if intent in ("move", "cancel") else None
    return None


def _last_person_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user":
            return str(message.get("content") or "")
    return ""


@dataclass
class Ask:
    intent: str | None
    days: list[date]
    past: bool
    unreadable_day: bool
    mismatch: str | None
    month_only: date | None
    hour: int | None
    minute: int
    part: str | None
    type: str | None
    choice: int | None
    name: str | None
    shift: timedelta | None
    same_time: bool


def read(text: str, facts: Facts) -> Ask:
    lower = fold(text)
    intent = next((n for n, p in INTENTS if re.search(p, lower)), None)
    if intent == "list" and re.search(r"\b(?:free|available|openings?|slots?|libres?)\b", lower):
        intent = "book"  # "what's free tomorrow?" asks for times, not for their bookings
    days, past, unreadable, mismatch, month_only = _days(lower, facts.today)
    part = next(
        (p for p, words in PARTS.items() if re.search(words, lower)),
        None,
    )
    hour, minute = _time(lower, part)
    choice = next((i for w, i in ORDINALS.items() if re.search(rf"\b{w}\b", lower)), None)
    named = NAME.search(text)
    return Ask(
        intent=intent or ("book" if _type(lower, facts) else None),
        days=days,
        past=past,
        unreadable_day=unreadable,
        mismatch=mismatch,
        month_only=month_only,
        hour=hour,
        minute=minute,
        part=part,
        type=_type(lower, facts),
        choice=choice,
        name=named.group(1) if named else None,
        shift=_shift(lower),
        same_time=bool(re.search(r"same time|misma hora", lower)),
    )


PARTS = {
    "morning": r"\bmorning\b|(?:la|en la|por la) manana",
    "afternoon": r"\bafternoon\b|(?:la|en la|por la) tarde",
    "evening": r"\bevening\b|(?:la|por la) noche",
}


def _type(lower: str, facts: Facts) -> str | None:
    words = re.findall(r"[a-z]+", lower)
    for kind in facts.types:
        key = fold(kind)
        if key in lower or (key == "haircut" and re.search(r"\b(?:cut|hair cut)\b", lower)):
            return kind
        if difflib.get_close_matches(key, words, n=1, cutoff=0.8):
            return kind
        if key.startswith("consult") and re.search(r"\bconsult\b", lower):
            return kind
    return None


def _days(lower: str, today: date) -> tuple[list[date], bool, bool, str | None, date | None]:
    """The days named, whether one is past, whether a day-like word was unreadable, a
    weekday that contradicts its date, and a month named without a day."""
    lower = re.sub(r"\b(?:de|en|por) la manana\b", " ", lower)
    if re.search(r"\b(?:yesterday|ayer|anteayer|last week|semana pasada)\b", lower) or re.search(
        r"\blast (?:" + "|".join(WEEKDAYS) + r")\b", lower
    ):
        return [], True, False, None, None
    days: list[date] = []
    if re.search(r"\b(?:day after tomorrow|pasado manana)\b", lower):
        days.append(today + timedelta(days=2))
    elif re.search(rf"\b(?:{TOMORROW})\b", lower):
        days.append(today + timedelta(days=1))
    if re.search(r"\b(?:today|hoy|tonight)\b", lower):
        days.append(today)
    weekday = None
    unreadable = False
    for word in re.findall(r"[a-z]+", lower):
        index = WEEKDAYS.get(word, SHORT_DAYS.get(word))
        if index is None and len(word) >= 5 and word.endswith(("day", "es", "dy")):
            close = difflib.get_close_matches(word, list(WEEKDAYS), n=1, cutoff=0.8)
            index = WEEKDAYS[close[0]] if close else None
            unreadable = unreadable or (index is None and word not in ("today", "thursdays"))
        if index is not None:
            weekday = index
    dated = _month_day(lower, today)
    if dated is False:
        return [], False, True, None, None
    if isinstance(dated, date):
        if dated < today:
            return [], True, False, None, None
        if weekday is not None and dated.weekday() != weekday:
            return [dated], False, False, f"{EN_DAYS[dated.weekday()]}", None
        return [dated], False, False, None, None
    numbered = re.search(r"\b(?:the )?(\d{1,2})(?:st|nd|rd|th)\b", lower) or (
        re.search(r"\b(?:" + "|".join(WEEKDAYS) + r") (\d{1,2})\b(?! ?(?:am|pm|:))", lower)
    )
    if weekday is not None:
        ahead = (weekday - today.weekday()) % 7
        candidate = today + timedelta(days=ahead or 7)
        if numbered:
            for extra in range(0, 60, 7):
                probe = candidate + timedelta(days=extra)
                if probe.day == int(numbered.group(1)):
                    candidate = probe
                    break
        if re.search(r"\b(?:next week|la semana que viene|la proxima semana)\b", lower) and ahead:
            candidate += timedelta(days=7)
        days.append(candidate)
    month = re.search(r"\bin (" + "|".join(m for m in MONTHS if len(m) > 3) + r")\b", lower)
    in_months = re.search(r"\bin (\d+|a few|two|three) months\b", lower)
    month_only = None
    if month:
        number = MONTHS[month.group(1)]
        month_only = date(today.year + (number < today.month), number, 1)
    elif in_months:
        month_only = today + timedelta(days=80)
    return days, False, unreadable and not days, None, month_only


def _month_day(lower: str, today: date) -> date | bool | None:
    """ "december 3rd", "dec 3", "3 de diciembre": the date; False when it does not exist."""
    names = "|".join(sorted(MONTHS, key=len, reverse=True))
    found = re.search(rf"\b({names})\.? (\d{{1,2}})(?:st|nd|rd|th)?\b(?! ?(?:am|pm|:))", lower)
    pair = (found.group(1), found.group(2)) if found else None
    if not pair:
        found = re.search(rf"\b(\d{{1,2}})(?:st|nd|rd|th)? (?:of |de )?({names})\b", lower)
        pair = (found.group(2), found.group(1)) if found else None
    if not pair:
        return None
    month, day = MONTHS[pair[0]], int(pair[1])
    year = today.year
    try:
        candidate = date(year, month, day)
    except ValueError:
        return False
    if candidate < today - timedelta(days=31):
        candidate = date(year + 1, month, day)
    return candidate


def _time(lower: str, part: str | None) -> tuple[int | None, int]:
    """ "3pm", "3:30", "at 3", "a las 4 de la tarde", "10 y media", "noon"."""
    if re.search(r"\b(?:noon|mediodia)\b", lower):
        return 12, 0
    pattern = (
        r"(?:(\bat|\ba las|\ba la|@)\s*)?\b(\d{1,2})(?::(\d\d))?\s*"
        r"(am|pm|a\.m\.|p\.m\.|y media|y cuarto|de la tarde|de la noche|de la manana|hrs)?"
    )
    for match in re.finditer(pattern, lower):
        said_at, hour, minute, suffix = (
            match.group(1),
            int(match.group(2)),
            match.group(3),
            match.group(4),
        )
        after = lower[match.end() : match.end() + 8]
        if re.match(r"\s*(?:st|nd|rd|th|minutes|min|de [a-z]|months|days|weeks|hours)", after):
            continue
        if not (said_at or minute or suffix) or hour > 23:
            continue
        minutes = int(minute or 0)
        suffix = suffix or ""
        if suffix == "y media":
            minutes = 30
        elif suffix == "y cuarto":
            minutes = 15
        if suffix.startswith(("p", "de la tarde", "de la noche")) and hour < 12:
            hour += 12
        elif suffix.startswith(("a", "de la manana")) and hour == 12:
            hour = 0
        elif (
            not suffix.startswith(("a", "p", "de la"))
            and not minute
            and (hour < 8 or (part in ("afternoon", "evening") and hour < 12))
        ) or (minute and hour < 8):
            hour += 12
        return hour, minutes
    return None, 0


def _shift(lower: str) -> timedelta | None:
    if re.search(r"\b(?:an|one|una) (?:hour|hora) (?:later|mas tarde)\b", lower):
        return timedelta(hours=1)
    if re.search(r"\b30 minutes later|half an hour later|media hora mas tarde\b", lower):
        return timedelta(minutes=30)
    if re.search(r"\bby a week|a week later|una semana\b", lower):
        return timedelta(days=7)
    return None


# --- deciding ----------------------------------------------------------------------------


def _after_person(person: str, facts: Facts, earlier: str | None = None) -> dict[str, Any]:
    lower = fold(person)
    ask = read(person, facts)
    if ask.intent is None and earlier and (ask.days or ask.hour is not None):
        ask.intent = earlier
    if BYE.search(lower) and ask.intent is None:
        return _text(_say(facts, "Thanks, bye!", "¡Gracias, hasta luego!"))
    problem = _day_problem(ask, facts)
    if problem is not None:
        return _text(problem)
    if ask.intent == "list" and not re.search(r"\b(?:book|agend|reserv)", lower):
        return _call("list_appointments", {})
    if ask.intent in ("cancel", "move"):
        return _call("list_appointments", {}) if not facts.appointments else _change(ask, facts)
    if FAQ_WORDS.search(lower) and ask.hour is None and not ask.days:
        return _text(_faq(lower, ask, facts))
    chosen = _chosen(ask, facts.slots, facts)
    if chosen is not None:
        return _book(chosen, ask)
    if ask.hour is not None and not ask.days and not facts.slots:
        return _text(_say(facts, "Which day would you like?", "¿Qué día prefieres?"))
    if ask.days or ask.hour is not None or ask.part or ask.intent == "book":
        if not ask.days and facts.slots and ask.hour is not None:
            ask.days = [facts.slots[-1].at.date()]
        return _call("check_availability", _search(ask, facts))
    if YES.search(lower) and facts.slots:
        return _text(_say(facts, "Which time would you like?", "¿Qué horario prefieres?"))
    return _text(
        _say(
            facts,
            "I can book, move, list or cancel appointments. What would you like?",
            "Puedo agendar, cambiar, consultar o cancelar citas. ¿Qué necesitas?",
        )
    )


def _day_problem(ask: Ask, facts: Facts) -> str | None:
    """Days a careful model does not search: past, too far, closed, contradictory, unreadable."""
    if ask.past:
        return _say(
            facts,
            "That date has already passed. Which day would you like?",
            "Esa fecha ya pasó. ¿Qué día prefieres?",
        )
    if ask.mismatch:
        return _say(
            facts,
            f"That date is a {ask.mismatch}, so I'm not sure which day you mean. "
            "Which day would you like?",
            "Esa fecha no cae en ese día. ¿Qué día prefieres?",
        )
    far = [d for d in ask.days if (d - facts.today).days > facts.horizon]
    if far or (ask.month_only and (ask.month_only - facts.today).days > facts.horizon):
        return _say(
            facts,
            f"That's too far ahead: I can only book up to {facts.horizon} days ahead. "
            "Which day would you like?",
            f"Eso está muy lejos: solo puedo agendar hasta {facts.horizon} días antes. "
            "¿Qué día prefieres?",
        )
    closed = [d for d in ask.days if facts.hours and d.weekday() not in facts.hours]
    if closed:
        return _say(
            facts,
            f"We're closed on {_day_name(closed[0], False)}s; our hours are {_hours(facts)}. "
            "Which day would you like?",
            f"Ese día está cerrado; nuestro horario es {_hours(facts)}. ¿Qué día prefieres?",
        )
    if ask.unreadable_day and ask.intent in (None, "book"):
        return _say(
            facts,
            "I didn't catch the day. Which day would you like?",
            "No entendí el día. ¿Qué día prefieres?",
        )
    if ask.days and ask.hour is not None:
        day = ask.days[0]
        opening = facts.hours.get(day.weekday(), "")
        if opening and not _within(opening, ask.hour, ask.minute):
            return _say(
                facts,
                f"We're not open then: our hours are {opening} on {_day_name(day, False)}. "
                "What time would you like?",
                f"A esa hora está cerrado; el horario de ese día es {opening}. "
                "¿Qué hora prefieres?",
            )
    return None


def _within(opening: str, hour: int, minute: int) -> bool:
    at = hour * 60 + minute
    for a, b, c, d in re.findall(r"(\d\d):(\d\d)-(\d\d):(\d\d)", opening):
        if int(a) * 60 + int(b) <= at < int(c) * 60 + int(d):
            return True
    return False


def _faq(lower: str, ask: Ask, facts: Facts) -> str:
    if re.search(r"\b(?:where|address|located|ubicad\w*|direccion)\b", lower) and facts.address:
        return _say(facts, f"We're at {facts.address}.", f"Estamos en {facts.address}.")
    if re.search(r"\b(?:hours|open|close|abren|horario)\b", lower):
        day = next((WEEKDAYS[w] for w in WEEKDAYS if w in lower), None)
        day = (
            day
            if day is not None
            else next((SHORT_DAYS[w] for w in SHORT_DAYS if re.search(rf"\b{w}\b", lower)), None)
        )
        if day is None and re.search(r"\btoday|hoy\b", lower):
            day = facts.today.weekday()
        if day is not None and day not in facts.hours:
            return _say(
                facts,
                f"We're closed on {EN_DAYS[day]}; our hours are {_hours(facts)}.",
                f"Ese día está cerrado; nuestro horario es {_hours(facts)}.",
            )
        if day is not None:
            return _say(
                facts,
                f"On {EN_DAYS[day]} our hours are {facts.hours[day]}.",
                f"Ese día el horario es {facts.hours[day]}.",
            )
        return _say(
            facts, f"Our hours are {_hours(facts)}.", f"Nuestro horario es {_hours(facts)}."
        )
    words = set(re.findall(r"[a-z]{4,}", lower))
    best = max(
        facts.faq,
        key=lambda qa: len(words & set(re.findall(r"[a-z]{4,}", fold(qa[0])))),
        default=None,
    )
    if best and words & set(re.findall(r"[a-z]{4,}", fold(best[0] + " " + best[1]))):
        return best[1]
    if facts.services and re.search(r"\b(?:services|offer|teach|servicios)\b", lower):
        return facts.services
    return _say(
        facts,
        "I don't have that information, sorry. Can I help with an appointment?",
        "No tengo esa información. ¿Te ayudo con una cita?",
    )


def _hours(facts: Facts) -> str:
    return "; ".join(f"{EN_DAYS[d]} {h}" for d, h in sorted(facts.hours.items()))


def _search(ask: Ask, facts: Facts, kind: str | None = None) -> dict[str, Any]:
    arguments: dict[str, Any] = {"limit": 20 if ask.hour is not None else 3}
    if ask.days:
        arguments["date"] = ask.days[0].isoformat()
    if kind or ask.type:
        arguments["appointment_type"] = kind or ask.type
    elif len(facts.types) == 1:
        arguments["appointment_type"] = facts.types[0]
    if ask.part and ask.hour is None:
        arguments["part_of_day"] = ask.part
    return arguments


def _chosen(ask: Ask, slots: list[Slot], facts: Facts, fresh: bool = False) -> Slot | None:
    if not slots:
        return None
    if ask.choice is not None and ask.hour is None and not fresh:
        recent = slots[-3:]
        return recent[ask.choice] if -len(recent) <= ask.choice < len(recent) else None
    if ask.hour is None:
        return None
    days = ask.days or ([] if fresh else [slots[-1].at.date()])
    matching = [
        s
        for s in slots
        if (s.at.hour, s.at.minute) == (ask.hour, ask.minute) and (not days or s.at.date() in days)
    ]
    return matching[-1] if matching else None


def _book(slot: Slot, ask: Ask) -> dict[str, Any]:
    arguments = {"slot_id": slot.id}
    if ask.name:
        arguments["name"] = ask.name
    return _call("book_appointment", arguments)


def _target(ask: Ask, held: list[Held]) -> Held | None:
    """Which of the caller's appointments the words mean: by day, then type, else the
    only (or latest) one."""
    if not held:
        return None
    for day in ask.days:
        on_day = [h for h in held if h.at.date() == day]
        if on_day:
            return on_day[0]
    if ask.type:
        typed = [h for h in held if fold(h.type) == fold(ask.type)]
        if typed:
            return typed[0]
    return held[-1] if len(held) > 1 and ask.intent == "move" and not ask.days else held[0]


def _move_to(ask: Ask, old: Held) -> tuple[date, int, int] | None:
    other_days = [d for d in ask.days if d != old.at.date()]
    if ask.shift is not None:
        moved = old.at + ask.shift
        return moved.date(), moved.hour, moved.minute
    day = other_days[0] if other_days else old.at.date()
    if ask.hour is not None:
        return day, ask.hour, ask.minute
    if ask.same_time and other_days:
        return day, old.at.hour, old.at.minute
    return None


def _change(ask: Ask, facts: Facts, held: list[Held] | None = None) -> dict[str, Any]:
    held = held if held is not None else facts.appointments
    target = _target(ask, held)
    if target is None:
        return _text(_say(facts, "You have no upcoming appointments.", "No tienes citas próximas."))
    if ask.intent == "cancel":
        return _call("cancel_appointment", {"appointment_id": target.id})
    wanted = _move_to(ask, target)
    if wanted is None:
        return _text(
            _say(
                facts,
                f"Which day and time would you like for your {target.type} instead?",
                f"¿A qué día y hora cambio tu cita de {target.type}?",
            )
        )
    day, hour, minute = wanted
    for slot in facts.slots:
        if slot.at == datetime(day.year, day.month, day.day, hour, minute):
            return _call(
                "reschedule_appointment", {"appointment_id": target.id, "slot_id": slot.id}
            )
    return _call(
        "check_availability",
        {"date": day.isoformat(), "appointment_type": _type_key(target.type, facts), "limit": 20},
    )


def _type_key(name: str, facts: Facts) -> str:
    return next((t for t in facts.types if fold(t) == fold(name)), name)


def _after_tools(messages: list[dict[str, Any]], facts: Facts, person: str) -> dict[str, Any]:
    result = json.loads(messages[-1]["content"])
    call = _last_call(messages)
    ask = read(person, facts)
    if ask.intent is None and (ask.days or ask.hour is not None):
        ask.intent = _earlier_intent(messages)
    facts.appointments += _listed_now(messages, facts)
    if result.get("status") == "awaiting_confirmation":
        return _text(_say(facts, "Please confirm.", "Por favor, confirma."))
    if result.get("error") == "refused" or (not result.get("ok") and "slots" not in result):
        return _text(
            _say(
                facts,
                "Sorry, I couldn't do that. Which day and time would you like?",
                "Perdón, no pude hacerlo. ¿Qué día y hora prefieres?",
            )
        )
    if "appointments" in result:
        held = [
            Held(a["appointment_id"], a["type"], _parse_when(a["when"], facts.today))
            for a in result["appointments"]
        ]
        if ask.intent in ("cancel", "move") and held:
            return _change(ask, facts, held)
        return _text(_listing(held, ask, facts))
    if "slots" in result:
        return _after_slots(result, call, ask, facts)
    return _text(_say(facts, "Anything else?", "¿Algo más?"))


def _listed_now(messages: list[dict[str, Any]], facts: Facts) -> list[Held]:
    """Appointments a list_appointments call returned earlier in this request."""
    held = []
    for message in messages:
        if message["role"] != "tool":
            continue
        for a in json.loads(message["content"]).get("appointments") or []:
            held.append(Held(a["appointment_id"], a["type"], _parse_when(a["when"], facts.today)))
    known = {h.id for h in facts.appointments}
    return [h for h in held if h.id not in known]


def _last_call(messages: list[dict[str, Any]]) -> dict[str, Any]:
    for message in reversed(messages):
        for call in message.get("tool_calls") or []:
            arguments: dict[str, Any] = json.loads(call["function"]["arguments"] or "{}")
            return arguments
    return {}


def _parse_when(text: str, today: date) -> datetime:
    found = WHEN.search(text)
    assert found is not None
    return _moment(today, *found.groups())


def _listing(held: list[Held], ask: Ask, facts: Facts) -> str:
    if not held:
        return _say(facts, "You have no upcoming appointments.", "No tienes citas próximas.")
    items = [f"{h.type} {_when(h.at, facts)}" for h in held]
    return _say(facts, f"You have: {'; '.join(items)}.", f"Tienes: {'; '.join(items)}.")


def _after_slots(
    result: dict[str, Any], call: dict[str, Any], ask: Ask, facts: Facts
) -> dict[str, Any]:
    slots = [Slot(s["slot_id"], _parse_when(s["when"], facts.today)) for s in result["slots"]]
    if ask.intent == "move" and facts.appointments:
        target = _target(ask, facts.appointments)
        if target is not None:
            wanted = _move_to(ask, target)
            if wanted is not None:
                day, hour, minute = wanted
                for slot in slots:
                    if slot.at == datetime(day.year, day.month, day.day, hour, minute):
                        return _call(
                            "reschedule_appointment",
                            {"appointment_id": target.id, "slot_id": slot.id},
                        )
                ask.days, ask.hour, ask.minute = [day], hour, minute
    elif (chosen := _chosen(ask, slots, facts, fresh=True)) is not None and call.get("date"):
        return _book(chosen, ask)
    asked_day = call.get("date")
    if not slots:
        return _text(
            _say(
                facts,
                "Nothing is free that asked_day. Which other asked_day would you like?",
                "No hay nada libre ese día. ¿Qué otro día prefieres?",
            )
        )
    offered = _near(slots, ask)[:3]
    times = _or([_when(s.at, facts) for s in offered], facts)
    if ask.hour is not None and asked_day:
        return _text(
            _say(
                facts,
                f"That time is not available. Free: {times}. Which works?",
                f"Esa hora no está disponible. Libres: {times}. ¿Cuál prefieres?",
            )
        )
    return _text(_say(facts, f"Free: {times}. Which works?", f"Libres: {times}. ¿Cuál prefieres?"))


def _near(slots: list[Slot], ask: Ask) -> list[Slot]:
    if ask.hour is None:
        return slots
    wanted = ask.hour * 60 + ask.minute
    return sorted(slots, key=lambda s: (abs(s.at.hour * 60 + s.at.minute - wanted), s.at))


# --- writing -----------------------------------------------------------------------------


def _say(facts: Facts, english: str, spanish: str) -> str:
    return spanish if facts.spanish else english


def _day_name(day: date, spanish: bool) -> str:
    return ES_DAYS[day.weekday()] if spanish else EN_DAYS[day.weekday()]


def _when(at: datetime, facts: Facts) -> str:
    if facts.spanish:
        day = f"{ES_DAYS[at.weekday()]} {at.day} {ES_MONTHS[at.month - 1]}"
        return f"el {day} a las {at.hour}:{at.minute:02d}"
    clock = f"{at.hour % 12 or 12}:{at.minute:02d} {'AM' if at.hour < 12 else 'PM'}"
    return f"{EN_DAYS[at.weekday()]} {EN_MONTHS[at.month - 1]} {at.day} at {clock}"


def _or(items: list[str], facts: Facts) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {'o' if facts.spanish else 'or'} {items[-1]}"


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
