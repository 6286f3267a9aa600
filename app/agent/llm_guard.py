"""What the LLM engine says is checked in code, whatever the model wrote:

- the confirmation question for a prepared change is worded here, from the pending
  change itself, with the full local date and time (and the caller's other appointment
  that day, if any): the person says yes to what will run, not to the model's paraphrase;
- the model's text may claim booked / moved / cancelled only for a change that committed
  (this turn, or earlier in this conversation when the sentence names it); any other
  claim is dropped and, if nothing is left, replaced by the true state;
- times from a search without a day (the model picked "the soonest") are presented as
  such, with a question about the day, so no default day passes as the one asked for.

Independent of the model's wording and of the scenario judge: a narrow reading of claim
words in English and Spanish, the languages agents are set up in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from app.agent.confirm import fold
from app.agent.dates import When
from app.agent.phrasing import article, when
from app.agent.understanding import Message, read
from app.calendar.availability import Schedule

# Done-words, folded (no accents, lower case). "any" claims a change without naming it.
CLAIM_WORDS: dict[str, str] = {
    r"booked|scheduled|reserved|all set|you'?re set|you are set": "booked",
    r"agende|agendad[oa]|reserve|reservad[oa]|programad[oa]|ya tienes (tu|una) cita": "booked",
    r"(?:quedo|queda) (?:para|el|a las)": "booked",
    r"moved|rescheduled|changed|is now|now (on|at|for)": "moved",
    r"movi|movid[oa]|cambie|cambiad[oa]|reprograme|reprogramad[oa]|ahora (es|esta|queda)": "moved",
    r"cancell?ed|cancele|cancelad[oa]|anule|anulad[oa]": "cancelled",
    r"done|confirmed|confirmad[oa]|listo|hecho|quedo|got you down": "any",
}
CLAIMS = [(re.compile(rf"\b(?:{words})\b"), kind) for words, kind in CLAIM_WORDS.items()]
NEGATION = re.compile(
    r"\b(?:not|never|no|nothing|cannot|can't|couldn't|won't|didn't|haven't|wasn't|unable|"
    r"nada|ningun[ao]?|sin|todavia no|aun no)\b|n't\b"
)
# Which claims each committed action makes true (a move books the new time too).
TRUE_CLAIMS = {
    "book": {"booked", "any"},
    "move": {"moved", "booked", "any"},
    "cancel": {"cancelled", "any"},
}
TIME_WORD = re.compile(r"\d")
# A question asking the person for a yes to a change: only the engine asks those.
ASKS_FOR_A_CHANGE = re.compile(
    r"\b(?:shall i|should i|want me to|would you like me to|ok to|reply yes|to confirm|"
    r"quieres que|desea que|confirmo|(?:lo |la |te )?(?:agendo|reservo|cancelo|cambio|muevo))\b"
)
CHANGE_WORD = re.compile(
    r"\b(?:book|cancel|move|reschedule|schedule|reserve|confirm|agend|reserv|cancel|cambi|"
    r"muev|reprogram)\w*"
)
ASKS_YES = re.compile(r"\b(?:confirm\w*|yes|si|reply|responde)\b")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def lang_of(language: str | None) -> str:
    return "es" if (language or "").lower().startswith("es") else "en"


def sentences(text: str) -> list[str]:
    return [s for s in SENTENCE_END.split(" ".join(text.split())) if s]


def claims(sentence: str) -> set[str]:
    """What one sentence says was done; questions and negated statements claim nothing."""
    folded = fold(sentence)
    if sentence.rstrip().endswith("?"):
        return set()
    found = set()
    for pattern, kind in CLAIMS:
        for match in pattern.finditer(folded):
            before = folded[max(0, match.start() - 30) : match.start()]
            if not NEGATION.search(before):
                found.add(kind)
    return found


@dataclass(frozen=True)
class Done:
    """A change that committed in this conversation: its kind and local start."""

    action: str
    start: datetime


def _names(sentence: str, moment: datetime) -> bool:
    """The sentence names this moment's day of month and hour (any common shape)."""
    folded = fold(sentence)
    hour12 = moment.hour % 12 or 12
    day = rf"\b{moment.day}(?:st|nd|rd|th)?\b"
    hour = rf"\b(?:{moment.hour}|{hour12})(?::{moment.minute:02d})?\b"
    return bool(re.search(day, folded)) and bool(re.search(hour, folded))


def truthful(text: str, now_done: str | None, earlier: list[Done]) -> tuple[str, bool]:
    """The model's text without any claim that did not commit; True when one was dropped.

    A claim is true when this turn's committed action makes it so, or when the sentence
    restates a change committed earlier in this conversation (it names its day and hour)."""
    allowed = TRUE_CLAIMS.get(now_done or "", set())
    kept, dropped = [], False
    for sentence in sentences(text):
        claimed = claims(sentence)
        named = [d for d in earlier if _names(sentence, d.start)]
        restated = set().union(*(TRUE_CLAIMS[d.action] for d in named))
        if claimed - allowed - restated:
            dropped = True
            continue
        kept.append(sentence)
    return " ".join(kept), dropped


def without_proposals(text: str) -> tuple[str, bool]:
    """The model's text without questions asking for a yes to a change (nothing is
    prepared, so a yes could run nothing: the engine alone asks those, with the change's
    full date and time); True when one was dropped."""
    kept, dropped = [], False
    for sentence in sentences(text):
        folded = fold(sentence)
        if ASKS_FOR_A_CHANGE.search(folded) and CHANGE_WORD.search(folded):
            dropped = True
            continue
        kept.append(sentence)
    return " ".join(kept), dropped


def without_questions_or_times(text: str) -> str:
    """The model's sentences that neither ask, ask for a yes, nor name a time: beside the
    engine's own confirmation question, the model may not ask another (or name another
    time)."""
    return " ".join(
        s
        for s in sentences(text)
        if not s.rstrip().endswith("?") and not TIME_WORD.search(s) and not ASKS_YES.search(fold(s))
    )


# --- days the person's words make doubtful ---------------------------------------------

PAST_WORDS = re.compile(
    r"\b(?:yesterday|last week|last (?:mon|tues|wednes|thurs|fri|satur|sun)day|ago|"
    r"ayer|anteayer|semana pasada|(?:lunes|martes|miercoles|jueves|viernes|sabado|domingo) "
    r"pasado)\b"
)
MONTH_NUMBERS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
    "enero": 1, "febrero": 2, "marzo": 3, "abril": 4, "mayo": 5, "junio": 6, "julio": 7,
    "agosto": 8, "septiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12,
}  # fmt: skip
WEEKDAY_NUMBERS = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4, "saturday": 5,
    "sunday": 6, "lunes": 0, "martes": 1, "miercoles": 2, "jueves": 3, "viernes": 4,
    "sabado": 5, "domingo": 6,
}  # fmt: skip
_MONTH_NAMES = "|".join(MONTH_NUMBERS)
MONTH_DAY = re.compile(
    rf"\b(?:({_MONTH_NAMES}) (\d{{1,2}})(?:st|nd|rd|th)?|(\d{{1,2}}) de ({_MONTH_NAMES}))\b"
)


def day_doubt(text: str, today: date) -> str | None:
    """Why the person's words cannot name the day of a change prepared this turn: they
    refer to a past day, a date that does not exist, or a weekday its date contradicts.
    Read in code (like a yes), so no model can settle the doubt by guessing."""
    folded = fold(text)
    if PAST_WORDS.search(folded):
        return "the person's words refer to a past day"
    for match in MONTH_DAY.finditer(folded):
        month = MONTH_NUMBERS[match.group(1) or match.group(4)]
        day = int(match.group(2) or match.group(3))
        try:
            named = date(today.year, month, day)
        except ValueError:
            return "the person named a date that does not exist"
        if named < today:
            named = named.replace(year=today.year + 1)
        # The weekday said with this date ("friday december 10"), else any said at all.
        near = folded[max(0, match.start() - 16) : match.start()]
        weekdays = {n for w, n in WEEKDAY_NUMBERS.items() if re.search(rf"\b{w}\b", near)}
        weekdays = weekdays or {
            n for w, n in WEEKDAY_NUMBERS.items() if re.search(rf"\b{w}\b", folded)
        }
        if weekdays and named.weekday() not in weekdays:
            return "the weekday the person named does not match the date they named"
    return None


def words_read(text: str, now: datetime, schedule: Schedule) -> Message:
    """The person's words as the offline engine reads them (typos, shorthand and all):
    the day (or span) a booking the model prepares must fall on, an unreadable day to ask
    about, and whether they asked for a change of what they hold rather than a new one,
    whatever the model made of the words."""
    return read(text, now, schedule.hours, schedule.types)


def on_day_said(said: When, start: date) -> bool:
    if said.day is None:
        return True
    last = said.until if said.until is not None and said.until > said.day else said.day
    return said.day <= start <= last


# --- the engine's own words ----------------------------------------------------------------

TEXTS = {
    "en": {
        "book": "Shall I book {what} {at}?",
        "move": "Shall I move your {name} from {old} to {new}?",
        "cancel": "Shall I cancel your {name} {at}?",
        "also": "You already have your {name} {at}; this would be in addition to it.",
        "sms_suffix": "Reply YES to confirm.",
        "nothing": "Nothing has changed in your calendar yet.",
        "which": "Which day and time would you like?",
        "soonest": "Those are the earliest open times; which day would you like?",
        "failed": "That didn't go through: {reason}",
        "nearby": "Free nearby: {slots}.",
    },
    "es": {
        "book": "¿Agendo {what} {at}?",
        "move": "¿Cambio tu cita de {name} del {old} al {new}?",
        "cancel": "¿Cancelo tu cita de {name} del {at}?",
        "also": "Ya tienes tu cita de {name} el {at}; esta sería además de esa.",
        "sms_suffix": "Responde SÍ para confirmar.",
        "nothing": "Todavía no se ha cambiado nada en tu agenda.",
        "which": "¿Qué día y hora prefieres?",
        "soonest": "Son los primeros horarios libres; ¿qué día prefieres?",
        "failed": "No se pudo hacer: {reason}",
        "nearby": "Libres cerca de esa hora: {slots}.",
    },
}
DONE_TEXTS = {
    "en": {
        "book": "Booked: your {name} {at}.",
        "move": "Moved: your {name} is now {at}.",
        "cancel": "Cancelled your {name} {at}.",
    },
    "es": {
        "book": "Listo: tu cita de {name} quedó agendada el {at}.",
        "move": "Listo: tu cita de {name} quedó cambiada al {at}.",
        "cancel": "Listo: tu cita de {name} del {at} quedó cancelada.",
    },
}


def _at(moment: datetime, channel: str, lang: str) -> str:
    """ "on Tue Nov 24 at 3:00 PM" / "mar 24 nov a las 15:00" (Spanish takes its own
    article from the sentence)."""
    text = when(moment, channel, lang)
    return text if lang == "es" else f"on {text}" if channel != "voice" else f"at {text}"


def proposal(
    pending: dict[str, Any], channel: str, lang: str, also_held: list[dict[str, Any]]
) -> str:
    """The confirmation question for a prepared change, from the change itself; a
    booking names the caller's appointments that day or of that type (it adds to them)."""
    texts = TEXTS[lang]
    action = pending["action"]
    name = pending["type_name"]
    new = datetime.fromisoformat(pending["start"]) if pending.get("start") else None
    old = datetime.fromisoformat(pending["old_start"]) if pending.get("old_start") else None
    parts = []
    for held in also_held:
        at = _at(datetime.fromisoformat(held["start"]), channel, lang)
        parts.append(texts["also"].format(name=held["type_name"], at=at))
    if action == "book" and new is not None:
        what = article(name, lang)
        at = _at(new, channel, lang)
        if lang == "es":
            at = f"el {at}"
        if pending.get("for_name"):
            at += f" ({pending['for_name']})"
        parts.append(texts["book"].format(what=what, at=at))
    elif action == "move" and new is not None and old is not None:
        old_at, new_at = (when(m, channel, lang) for m in (old, new))
        parts.append(texts["move"].format(name=name, old=old_at, new=new_at))
    elif action == "cancel" and old is not None:
        parts.append(texts["cancel"].format(name=name, at=_at(old, channel, lang)))
    if channel == "sms":
        parts.append(texts["sms_suffix"])
    return " ".join(parts)


CHOICE = {
    "en": (
        "You already have your {name} {old}. Should the {new_name} {new} replace it, or be "
        "in addition to it?"
    ),
    "es": (
        "Ya tienes tu cita de {name} el {old}. ¿La cita de {new_name} del {new} la "
        "reemplaza, o es además de esa?"
    ),
}
CHOICE_ANSWER = {
    ("en", "sms"): "Reply MOVE to move it there, or BOTH to keep both.",
    ("en", "voice"): "Say move to move it there, or both to keep both.",
    ("es", "sms"): "Responde CAMBIAR para moverla, o AMBAS para quedarte con las dos.",
    ("es", "voice"): "Di cambiar para moverla, o ambas para quedarte con las dos.",
}


def choice_question(pending: dict[str, Any], held: dict[str, Any], channel: str, lang: str) -> str:
    """A booking of a type the person already holds: replace it, or add to it?"""
    old = _at(datetime.fromisoformat(held["start"]), channel, lang)
    new = _at(datetime.fromisoformat(pending["start"]), channel, lang)
    question = CHOICE[lang].format(
        name=held["type_name"], old=old, new_name=pending["type_name"], new=new
    )
    return f"{question} {CHOICE_ANSWER[(lang, channel if channel == 'voice' else 'sms')]}"


def outcome(
    pending: dict[str, Any],
    result: dict[str, Any],
    alternatives: list[datetime],
    channel: str,
    lang: str,
) -> str:
    """The true result of a change the person's yes ran, in the agent's language."""
    if result.get("ok"):
        action = pending["action"]
        start = pending.get("old_start") if action == "cancel" else pending.get("start")
        at = _at(datetime.fromisoformat(start), channel, lang) if start else ""
        return DONE_TEXTS[lang][action].format(name=pending["type_name"], at=at)
    texts = TEXTS[lang]
    # The tools word their refusals in English; a Spanish agent says it in general terms.
    reason = str(result.get("message") or "") if lang == "en" else "ese horario no está libre."
    text = texts["failed"].format(reason=reason.split(" Nearby")[0])
    if alternatives:
        slots = ", ".join(when(m, channel, lang) for m in alternatives)
        text += " " + texts["nearby"].format(slots=slots)
    return text
