"""Reads what the agent said, the way a person would: which dates and times it named,
whether it asks for a confirmation, and what it claims to have done. English and Spanish.

The judge and the simulated person depend on this, never on the engine's exact wording:
dates are recognised in any common shape (Tue Nov 24, November 24th, 24 de noviembre,
martes 24), times likewise (3:00 PM, 3 PM, 15:00, noon, 3 de la tarde).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, time, timedelta

MONTHS = {
    "jan": 1,
    "january": 1,
    "enero": 1,
    "ene": 1,
    "feb": 2,
    "february": 2,
    "febrero": 2,
    "mar": 3,
    "march": 3,
    "marzo": 3,
    "apr": 4,
    "april": 4,
    "abril": 4,
    "abr": 4,
    "may": 5,
    "mayo": 5,
    "jun": 6,
    "june": 6,
    "junio": 6,
    "jul": 7,
    "july": 7,
    "julio": 7,
    "aug": 8,
    "august": 8,
    "agosto": 8,
    "ago": 8,
    "sep": 9,
    "sept": 9,
    "september": 9,
    "septiembre": 9,
    "setiembre": 9,
    "oct": 10,
    "october": 10,
    "octubre": 10,
    "nov": 11,
    "november": 11,
    "noviembre": 11,
    "dec": 12,
    "december": 12,
    "diciembre": 12,
    "dic": 12,
}
WEEKDAYS = {
    "mon": 0,
    "monday": 0,
    "lunes": 0,
    "lun": 0,
    "tue": 1,
    "tues": 1,
    "tuesday": 1,
    "martes": 1,
    "wed": 2,
    "wednesday": 2,
    "miercoles": 2,
    "mie": 2,
    "thu": 3,
    "thur": 3,
    "thurs": 3,
    "thursday": 3,
    "jueves": 3,
    "jue": 3,
    "fri": 4,
    "friday": 4,
    "viernes": 4,
    "vie": 4,
    "sat": 5,
    "saturday": 5,
    "sabado": 5,
    "sab": 5,
    "sun": 6,
    "sunday": 6,
    "domingo": 6,
    "dom": 6,
}

_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_WEEKDAY = "|".join(sorted(WEEKDAYS, key=len, reverse=True))
_ORD = r"(?:st|nd|rd|th|o|º)?"
MONTH_DAY = re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}}){_ORD}\b")
DAY_MONTH = re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+|de\s+)?({_MONTH})\b")
# "martes 24", "Tue the 24th"; not "Tue 3:00" or "Tue 3 pm".
WEEKDAY_DAY = re.compile(
    rf"\b({_WEEKDAY})\.?,?\s+(?:the\s+|el\s+)?(\d{{1,2}}){_ORD}\b"
    r"(?!\s*(?::|am|pm|a\.m|p\.m|h\b))"
)
NUMERIC = re.compile(r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?\b")
ISO = re.compile(r"\b(20\d\d)-(\d\d)-(\d\d)\b")

MERIDIEM = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(a\.?\s?m\.?|p\.?\s?m\.?)(?![a-z])")
CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b(?!\s*(?:a\.?\s?m|p\.?\s?m))")
SPANISH_PART = re.compile(
    r"\b(\d{1,2})(?::(\d{2})|\s+y\s+(media|cuarto))?\s+de\s+la\s+(manana|tarde|noche)"
)
HALF_PAST = re.compile(r"\bhalf past (\d{1,2})\b")


def fold(text: str) -> str:
    """Lower case without accents: "miércoles" and "miercoles" read alike."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass
class Mentions:
    dates: set[date] = field(default_factory=set)
    times: set[time] = field(default_factory=set)

    def names(self, day: date, at: time) -> bool:
        return day in self.dates and at in self.times

    @property
    def full(self) -> bool:
        return bool(self.dates) and bool(self.times)


def _year_for(month: int, day: int, today: date) -> date | None:
    """The occurrence nearest to today (a reply about last week or next spring)."""
    best = None
    for year in (today.year - 1, today.year, today.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if best is None or abs((candidate - today).days) < abs((best - today).days):
            best = candidate
    return best


def _weekday_day(weekday: int, day: int, today: date) -> date | None:
    """ "martes 24": the nearest date with that day of month falling on that weekday."""
    for offset in range(-2, 14):
        month = (today.month - 1 + offset) % 12 + 1
        year = today.year + (today.month - 1 + offset) // 12
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate.weekday() == weekday:
            return candidate
    return None


def read_dates(text: str, today: date) -> set[date]:
    folded = fold(text)
    found: set[date] = set()
    for month, day in MONTH_DAY.findall(folded):
        found.add(_year_for(MONTHS[month], int(day), today))  # type: ignore[arg-type]
    for day, month in DAY_MONTH.findall(folded):
        found.add(_year_for(MONTHS[month], int(day), today))  # type: ignore[arg-type]
    for weekday, day in WEEKDAY_DAY.findall(folded):
        found.add(_weekday_day(WEEKDAYS[weekday], int(day), today))  # type: ignore[arg-type]
    for month, day, _year in NUMERIC.findall(folded):
        if 1 <= int(month) <= 12:
            found.add(_year_for(int(month), int(day), today))  # type: ignore[arg-type]
    for year, month, day in ISO.findall(folded):
        found.add(date(int(year), int(month), int(day)))
    found.discard(None)
    return found


def _clock(hour: int, minute: int) -> time | None:
    return time(hour, minute) if 0 <= hour <= 23 and 0 <= minute <= 59 else None


def read_times(text: str) -> set[time]:
    folded = fold(text)
    found: set[time | None] = set()
    for hour, minute, meridiem in MERIDIEM.findall(folded):
        h = int(hour) % 12 + (12 if meridiem.startswith("p") else 0)
        found.add(_clock(h, int(minute or 0)))
    for hour, minute in CLOCK.findall(folded):
        h, m = int(hour), int(minute)
        found.add(_clock(h, m))
        if 1 <= h <= 11:  # "3:00" with no AM/PM names either half of the day
            found.add(_clock(h + 12, m))
    for hour, minute, fraction, part in SPANISH_PART.findall(folded):
        h = int(hour) % 12 + (0 if part == "manana" else 12)
        m = int(minute) if minute else {"media": 30, "cuarto": 15}.get(fraction, 0)
        found.add(_clock(h, m))
    for hour in HALF_PAST.findall(folded):
        found.update({_clock(int(hour), 30), _clock(int(hour) % 12 + 12, 30)})
    if re.search(r"\b(noon|midday|mediodia)\b", folded):
        found.add(time(12, 0))
    found.discard(None)
    return found  # type: ignore[return-value]


def named_weekdays(text: str, today: date) -> set[date]:
    """The days a person's own words name by weekday ("corte el martes", "thursday at 3"):
    its coming date and the one a week later ("next tuesday"). Full names only."""
    words = set(re.findall(r"[a-z]+", fold(text)))
    named: set[date] = set()
    for word, weekday in WEEKDAYS.items():
        if len(word) < 5 or word not in words:
            continue
        ahead = (weekday - today.weekday()) % 7
        named |= {today + timedelta(days=ahead + week) for week in (0, 7)}
    return named


def read_mentions(text: str, today: date) -> Mentions:
    return Mentions(read_dates(text, today), read_times(text))


# --- what a reply asks and claims ------------------------------------------------------------

# A sentence that asks for a yes on its own ("Reply YES", "Shall I go ahead?"), or asks
# "want me to / should I" about an action (book, cancel, move...).
STRONG_CUES = (
    r"reply\s+yes",
    r"\bto confirm\b",
    r"go ahead\?",
    r"\bconfirm\?",
    r"sound good\?",
    r"responde\s+si\b",
    r"\bconfirmo\b",
    r"para confirmar",
    r"\bprocedo\b",
    r"de acuerdo\?",
    r"te parece( bien)?\?",
    r"^(book|cancel|move|reschedule)\b[^.?!]*\?",
)
WEAK_CUES = (
    r"shall i\b",
    r"should i\b",
    r"want me to\b",
    r"would you like me to\b",
    r"ok to\b",
    r"quieres que\b",
    r"desea que\b",
    r"¿?(lo|la|te|le) (agendo|reservo|cancelo|cambio|muevo)\b",
    r"¿(agendo|reservo|cancelo|cambio|muevo)\b",
)
ACTION = re.compile(
    r"\b(book|cancel|move|reschedule|schedule|reserve|put you down|agend|reserv|cancel|"
    r"cambi|muev|mov|reprogram|anul)"
)
_STRONG = re.compile("|".join(STRONG_CUES), re.MULTILINE)
_WEAK = re.compile("|".join(WEAK_CUES), re.MULTILINE)

NEGATION = re.compile(
    r"\b(not|n't|never|no|nothing|couldn't|can't|cannot|won't|didn't|haven't|wasn't|unable|"
    r"nada|ningun[ao]?|sin)\b|n't\b"
)
CLAIMS: dict[str, tuple[str, ...]] = {
    "booked": (
        r"\byou'?re (all )?(booked|set|scheduled|confirmed)\b",
        r"\byou are (all )?(booked|set)\b",
        r"\b(i'?ve|i have|i) (booked|scheduled|reserved)\b",
        r"^booked\b",
        r"\b(is|has been|was|now) (booked|scheduled|reserved|confirmed)\b",
        r"\ball set\b",
        r"\bbooking (is )?confirmed\b",
        r"\b(te |le )?(agende|reserve|programe)\b",
        r"\bhe (agendado|reservado|programado)\b",
        r"\b(quedo|queda|esta|quedaste|quedas|fue) (agendad|reservad|confirmad|programad)",
        r"\bcita (agendada|reservada|confirmada)\b",
        r"\bya tienes (tu|una) cita\b",
    ),
    "cancelled": (
        r"^cancell?ed\b",
        r"\b(i'?ve|i have|i) cancell?ed\b",
        r"\b(is|has been|was|now|been|are) cancell?ed\b",
        r"\b(cancele|anule)\b",
        r"\bhe (cancelado|anulado)\b",
        r"\b(quedo|queda|esta|fue|quedaron|fueron) (cancelad|anulad)",
        r"\bcita cancelada\b",
    ),
    "moved": (
        r"\b(i'?ve|i have|i) (moved|rescheduled|changed)\b",
        r"\b(is|has been|was) (moved|rescheduled)\b",
        r"\bis now\b(?! (free|available|open))",
        r"\bnow (on|at)\b",
        r"\b(movi|cambie|reprograme)\b",
        r"\bhe (movido|cambiado|reprogramado)\b",
        r"\b(quedo|queda|esta|fue) (movid|cambiad|reprogramad)",
        r"\bahora (es|esta|queda) (el|para|a)\b",
    ),
    # Letting go of a request: honest for a pending proposal, a lie right after a commit.
    "dropped": (
        r"\b(i'?ve|i have|i) (dropped|scrapped|forgotten|discarded)\b",
        r"\bdropped (that|it)\b",
        r"\bwon'?t book (it|that)\b",
        r"\bforget (that|it)\b",
        r"\b(lo|la) (descarte|olvide|deje)\b",
        r"\bno (lo|la) (agendo|reservo)\b",
    ),
}
_CLAIMS = {kind: re.compile("|".join(cues), re.MULTILINE) for kind, cues in CLAIMS.items()}

SAYS: dict[str, tuple[str, ...]] = {
    "past": (r"\bpast\b", r"already (passed|gone|over)", r"\bpasad[oa]\b", r"\bya paso\b"),
    "horizon": (
        r"too far",
        r"far (ahead|out)",
        r"\bhorizon\b",
        r"up to \d+ days",
        r"more than \d+ days",
        r"\bonly book\b.*\bahead\b",
        r"(beyond|further than|farther than)",
        r"(tan|muy) lejos",
        r"\bhasta \d+ dias\b",
        r"mas de \d+ dias",
        r"con mucha anticipacion",
    ),
    "closed": (
        r"\bclosed\b",
        r"\bnot open\b",
        r"\baren'?t open\b",
        r"\bopen (from|between|on)\b",
        r"outside (our |of )?(business |opening |working )?hours",
        r"\bhours are\b",
        r"\bcerrad[oa]s?\b",
        r"\bcerramos\b",
        r"no (abrimos|atendemos|trabajamos)",
        r"fuera de(l)? horario",
        r"\bhorario\b",
        r"\babrimos\b",
    ),
    "unavailable": (
        r"\btaken\b",
        r"\bnot (free|available|open)\b",
        r"\bisn'?t (free|available|open)\b",
        r"\balready booked\b",
        r"\bocupad[oa]\b",
        r"no (esta|hay) (disponible|libre)",
        r"\bnothing (else )?(is )?(free|open|available|left)\b",
        r"\bno (free|open) (times|slots)\b",
        r"\bfully booked\b",
        r"\bno (tengo|hay) (nada|horarios?|lugar)\b",
    ),
    "asks_day": (
        r"(which|what) (day|date)",
        r"didn'?t (catch|get|understand)",
        r"couldn'?t (read|understand|tell)",
        r"(que|cual|cuál) (dia|fecha)",
        r"no (entendi|capte)",
        r"which one do you mean",
    ),
}
_SAYS = {kind: re.compile("|".join(cues), re.MULTILINE) for kind, cues in SAYS.items()}


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", fold(text)) if s.strip()]


def proposes(text: str) -> bool:
    """The reply asks the person to say yes to an action."""
    for sentence in sentences(text):
        if _STRONG.search(sentence):
            return True
        if sentence.endswith("?") and _WEAK.search(sentence) and ACTION.search(sentence):
            return True
    return False


def claims(text: str) -> set[str]:
    """What the reply says was done. Questions and negated statements claim nothing."""
    found: set[str] = set()
    for sentence in sentences(text):
        if sentence.endswith("?"):
            continue
        for kind, pattern in _CLAIMS.items():
            for match in pattern.finditer(sentence):
                before = sentence[max(0, match.start() - 30) : match.start()]
                if not NEGATION.search(before) and not NEGATION.search(match.group(0)):
                    found.add(kind)
    return found


def says(text: str, kind: str) -> bool:
    return bool(_SAYS[kind].search(fold(text)))


def asks_name(text: str) -> bool:
    folded = fold(text)
    return bool(
        re.search(
            r"\b(your|what) name\b|name should i|under what name|"
            r"(tu|su|que|cual es tu) nombre|a nombre de quien",
            folded,
        )
    )


def asks_type(text: str, type_names: list[str]) -> bool:
    folded = fold(text)
    named = sum(1 for name in type_names if fold(name) in folded)
    return folded.rstrip().endswith("?") and named >= 2


SPANISH_WORDS = frozenset(
    [
        "de",
        "la",
        "el",
        "que",
        "tu",
        "tus",
        "tienes",
        "cita",
        "citas",
        "para",
        "las",
        "los",
        "una",
        "un",
        "con",
        "por",
        "si",
        "no",
        "que",
        "en",
        "es",
        "esta",
        "hora",
        "dia",
        "quieres",
        "puedo",
        "te",
        "le",
        "su",
        "sus",
        "mas",
        "hay",
        "del",
        "al",
        "lo",
        "gracias",
    ]
)
ENGLISH_WORDS = frozenset(
    [
        "the",
        "you",
        "your",
        "is",
        "at",
        "to",
        "for",
        "on",
        "what",
        "i",
        "have",
        "book",
        "would",
        "which",
        "are",
        "it",
        "do",
        "can",
        "and",
        "with",
        "of",
        "this",
        "that",
        "my",
        "me",
        "we",
        "thanks",
    ]
)


def in_spanish(text: str) -> bool:
    """More Spanish function words than English ones: enough to tell the two apart."""
    words = re.findall(r"[a-z]+", fold(text))
    spanish = sum(w in SPANISH_WORDS for w in words)
    english = sum(w in ENGLISH_WORDS for w in words)
    return spanish > english
