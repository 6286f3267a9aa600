"""Spoken dates and times → a local date, a time of day and a part of the day.

Everything is read in the agent's time zone against a `now` the caller passes in, so the
result is reproducible and DST-correct (a local 3 PM stays 3 PM whatever the UTC offset).

Everything is read here, by rules, with no date library on the hot path: measured on
bench/data/date_corpus.json (bench/date_parsers.py; table in docs/architecture.md), the
libraries (dateparser, parsedatetime, ctparse, timefhuman, recognizers-text) read far
fewer of the phrases callers use ("tomorrow at 3" is 09:00 to dateparser, "a week from
friday" and "Wednesday the 9th" are misread, an impossible day is silently moved) and
dateparser costs tens of milliseconds on a calendar date.

Semantics (documented, tested in tests/agent/test_dates.py):
- Weeks run Monday to Sunday in the agent's zone.
- "Tuesday" / "this coming Tuesday": the soonest Tuesday after today (today excluded:
  "Monday" said on a Monday means the one a week away).
- "this Friday": the Friday of the current calendar week (today included); once that day
  has passed, the soonest one after today.
- "next Tuesday": the Tuesday of the NEXT calendar week. Said on Monday 23 November it
  is 1 December, not the day after.
- "next week": the Monday of the next calendar week; "the weekend": the coming Saturday.
- "the 30th": the next date with that day of the month (this month if still ahead).
- A bare hour ("at 3", "3 o'clock", "10:30") is put in the business hours: 3 → 3 PM,
  9 → 9 AM, 12 → noon. A part of the day decides when given ("3 in the afternoon"),
  AM/PM written out always wins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any

from dateutil import easter as western_easter  # type: ignore[import-untyped]
from rapidfuzz.distance import DamerauLevenshtein
from rapidfuzz.process import extractOne


@dataclass(frozen=True, slots=True)
class Rewrite:
    """One regex rewrite of a message, compiled once. `cue`: a literal every match
    contains, so a message without it is passed on at the cost of a substring test
    instead of a regex scan (most rewrites find nothing in most messages)."""

    pattern: re.Pattern[str]
    replacement: str | Callable[[re.Match[str]], str]
    cue: str = ""

    def __call__(self, text: str) -> str:
        if self.cue not in text:
            return text
        return self.pattern.sub(self.replacement, text)


@dataclass(frozen=True, slots=True)
class MarkedRewrite(Rewrite):
    """A Rewrite whose matches each also hold one of `marks` (checked by
    tests/agent/test_reader_cues.py): a cue common in messages ("h", "no") is not enough
    to scan. `ascii_marks`: the marks hold for ASCII text only (a Unicode \\d is more
    than 0-9), other text is left to the pattern."""

    marks: tuple[str, ...] = ()
    ascii_marks: bool = False
    # The marks as one alternation: for H_CLOCK's "0h" ... "9h" sre skips to a digit with
    # its first-character set, where ten substring tests cost ten calls.
    marked: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.marks:
            raise ValueError("a MarkedRewrite needs marks")  # "" would match any text
        object.__setattr__(self, "marked", re.compile("|".join(map(re.escape, self.marks))))

    def __call__(self, text: str) -> str:
        if self.cue not in text:
            return text
        if (not self.ascii_marks or text.isascii()) and self.marked.search(text) is None:
            return text
        return self.pattern.sub(self.replacement, text)


def cue_scan(cues: Sequence[str]) -> re.Pattern[str]:
    """A pattern that finds where any of `cues` starts: their letters as a trie, so sre
    steps through the text once, skipping the characters no cue starts with, instead of a
    substring test a cue (~0.7k instructions each: for many cues, twice the scan)."""
    trie: dict[str, Any] = {}
    for cue in cues:
        node = trie
        for char in cue:
            node = node.setdefault(char, {})
        node[""] = {}  # a cue ends here: what follows it does not matter

    def branches(node: dict[str, Any]) -> str:
        if "" in node:
            return ""
        options = [re.escape(char) + branches(node[char]) for char in sorted(node)]
        return options[0] if len(options) == 1 else f"(?:{'|'.join(options)})"

    if not cues:
        raise ValueError("no cues")  # "" would be found in any text
    return re.compile(branches(trie))


# From this many cues on, one trie scan costs less than a substring test each.
MANY_CUES = 9


@dataclass(frozen=True, slots=True)
class Cued:
    """A rule's pattern and literals one of which every match of it holds (derived from
    the pattern's structure and checked by tests/agent/test_reader_cues.py), so a message
    holding none is passed over at the cost of a few substring tests instead of a regex
    scan: worth it for the long alternations and lookbehinds most messages never match."""

    pattern: re.Pattern[str]
    cues: tuple[str, ...]
    scan: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        many = len(self.cues) >= MANY_CUES
        object.__setattr__(self, "scan", cue_scan(self.cues) if many else None)

    def may_match(self, text: str) -> bool:
        if self.scan is not None:
            return self.scan.search(text) is not None
        return any(map(text.__contains__, self.cues))

    def search(self, text: str) -> re.Match[str] | None:
        return self.pattern.search(text) if self.may_match(text) else None

    def sub(self, replacement: str | Callable[[re.Match[str]], str], text: str) -> str:
        return self.pattern.sub(replacement, text) if self.may_match(text) else text

    def split(self, text: str) -> list[str]:
        return self.pattern.split(text) if self.may_match(text) else [text]


def cued(pattern: re.Pattern[str], cues: str) -> Cued:
    """`cues` separated by "|" (a cue may hold spaces)."""
    return Cued(pattern, tuple(cues.split("|")))


def _rule(pattern: str) -> re.Pattern[str]:
    """A rule over the words `_words` leaves: lower-case ASCII letters, digits and
    `:/-'`. Compiled ASCII-only: on such text \\b, \\w, \\d and \\s mean the same as in
    Unicode mode, and sre tests each character against a small table instead of
    Unicode's (a tenth of the reader's instructions)."""
    return re.compile(pattern, re.ASCII)


def rewrite(
    pattern: str,
    replacement: str | Callable[[re.Match[str]], str],
    cue: str = "",
    *,
    folded: bool = False,
) -> Rewrite:
    """`folded`: the rewrite runs before punctuation is dropped, on the folded message
    (which may hold any character), so it keeps Unicode semantics."""
    return Rewrite(re.compile(pattern) if folded else _rule(pattern), replacement, cue)


WEEKDAY_NAMES = {
    "monday": 0,
    "mon": 0,
    "tuesday": 1,
    "tues": 1,
    "tue": 1,
    "wednesday": 2,
    "wed": 2,
    "weds": 2,
    "thursday": 3,
    "thurs": 3,
    "thur": 3,
    "thu": 3,
    "friday": 4,
    "fri": 4,
    "saturday": 5,
    "sat": 5,
    "sunday": 6,
    "sun": 6,
}
WEEKDAY_WORD = "|".join(sorted(WEEKDAY_NAMES, key=len, reverse=True))
MONTH_WORD = (
    r"january|february|march|april|may|june|july|august|september|october|november|december"
)
MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
)
ORDINAL = r"(\d{1,2})(?:st|nd|rd|th)?"
NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
}
ORDINAL_WORDS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "eleventh": 11,
    "twelfth": 12,
    "thirteenth": 13,
    "fourteenth": 14,
    "fifteenth": 15,
    "sixteenth": 16,
    "seventeenth": 17,
    "eighteenth": 18,
    "nineteenth": 19,
    "twentieth": 20,
    "thirtieth": 30,
    "fortieth": 40,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40}
ORDINAL_WORD = "|".join(sorted(ORDINAL_WORDS, key=len, reverse=True))
# A day of the month in words: "the twenty-first", "monday the third", "the 3rd of". Low
# ordinals alone ("the second") stay words: they answer a list just offered.
ORDINAL_PHRASE = _rule(
    rf"\b(?:(?P<tens>twenty|thirty|forty)[- ]?)?(?P<unit>{ORDINAL_WORD})\b"
    r"(?!\s+(?:one|option|choice|available|opening|slot|time|thing|appointment)\b)"
)
COUNT_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "couple of": 2,
    "few": 3,
}
PARTS = {
    "morning": "morning",
    "afternoon": "afternoon",
    "evening": "evening",
    "tonight": "evening",
    "at night": "evening",
    "after lunch": "afternoon",
    "after work": "evening",
    "before work": "morning",
    "after school": "afternoon",
}
# Hours (local) that count as each part of the day; matches app/tools/service.py.
PART_RANGES = {"morning": (0, 12), "afternoon": (12, 17), "evening": (17, 24)}

Hours = Mapping[int, Sequence[tuple[time, time]]]


@dataclass(frozen=True)
class When:
    """What a message said about time. Every field is optional."""

    day: date | None = None
    at: time | None = None
    part: str | None = None
    # A range: only times after / before this ("after 3", "before noon").
    after: time | None = None
    before: time | None = None
    # Last day of a range of days starting at `day` ("this week", "end of the week").
    until: date | None = None
    # A correction relative to the last proposal: "an hour earlier" is -60.
    shift_minutes: int | None = None
    # Words that name a day we could not read ("mittwoch", "the 35th", "wednesday the
    # 10th" when the 10th is a Thursday): the engine asks, it never guesses.
    unreadable: str | None = None

    @property
    def empty(self) -> bool:
        return (
            self.day is None
            and self.at is None
            and self.part is None
            and self.after is None
            and self.before is None
            and self.shift_minutes is None
            and self.unreadable is None
        )


SPANISH_UNITS = {"hora": "hours", "minuto": "minutes", "dia": "days", "semana": "weeks"}
# Spanish spoken forms → the English ones the rules below read (order matters: longer
# phrases first; "mañana" alone is tomorrow, "por la mañana" is the morning).
SPANISH: tuple[tuple[str, Any], ...] = (
    (r"\bpasado manana\b", "day after tomorrow"),
    (r"\bmnn\b|\bmna\b", "manana"),  # texting shorthand for mañana
    (r"\b(?:por|de|en) la manana\b", "morning"),
    (r"\b(?:por|de|en) la tarde\b", "afternoon"),
    (r"\b(?:por|de|en) la noche\b", "evening"),
    (r"\besta tarde\b", "this afternoon"),
    (r"\besta manana\b", "this morning"),
    (r"\bmanana\b", "tomorrow"),
    (r"\bhoy\b", "today"),
    (r"\b(?:antier|anteayer|ante ayer)\b", "day before yesterday"),
    (r"\bayer\b", "yesterday"),
    (
        r"\b(?:en|dentro de)\s+(\d+|un|una|dos|tres|cuatro|cinco) (dias?|semanas?)\b",
        lambda m: f"in {_spanish_count(m.group(1))} {'weeks' if m.group(2)[0] == 's' else 'days'}",
    ),
    (
        r"\b(?:en|dentro de)\s+(una|un|dos|tres|media|\d{1,3}) (horas?|minutos?)\b",
        lambda m: (
            f"in {'half an' if m.group(1) == 'media' else _spanish_count(m.group(1))} "
            f"{SPANISH_UNITS[m.group(2).rstrip('s')]}"
        ),
    ),
    (r"\b(?:la )?semana pasada\b", "last week"),
    (r"\b(?:el )?(lunes|martes|miercoles|jueves|viernes|sabado|domingo) pasado\b", r"last \1"),
    # "recorrer una hora más tarde", "adelantar una hora": a shift of the one held.
    (r"\buna hora (?:mas tarde|despues)\b", "an hour later"),
    (r"\buna hora (?:mas temprano|antes)\b", "an hour earlier"),
    (r"\b(?:adelantar|adelanta)(?:la|lo|me)?\b(.*?)\buna hora\b", r"\1 an hour earlier"),
    (
        r"\b(?:recorrer|recorre|atrasar|atrasa|retrasar|retrasa)(?:la|lo|me)?\b(.*?)\buna hora\b",
        r"\1 an hour later",
    ),
    (r"\bmediodia\b", "noon"),
    (r"\b(?:el )?cuarto para (?:las |la )?(\d{1,2})\b", r"quarter to \1"),
    (r"\b(\d{1,2}) menos cuarto\b", r"quarter to \1"),
    (r"\b(\d{1,2}) menos (\d{1,2}|cinco|diez|veinte)\b", r"\2 to \1"),
    (
        r"\b(una|un|dos|tres|media|\d{1,3}) (horas?|minutos?|dias?|semanas?) "
        r"(mas tarde|despues|antes|mas temprano)\b",
        lambda m: _spanish_shift(m.group(1), m.group(2), m.group(3)),
    ),
    (r"\bel dia (?:anterior|antes)\b", "the day before"),
    (r"\bel dia (?:siguiente|despues)\b", "the day after"),
    (r"\bla semana siguiente\b", "the following week"),
    (r"\btemprano\b", "morning"),
    (r"\bmedianoche\b", "midnight"),
    (r"\b(?:la )?semana que viene\b|\b(?:la )?proxima semana\b", "next week"),
    (r"\besta semana\b", "this week"),
    (r"\bfin de semana\b", "weekend"),
    (r"\b(?:el )?(lunes|martes|miercoles|jueves|viernes|sabado|domingo) que viene\b", r"next \1"),
    (r"\b(?:el )?proximo\b", "next"),
    (
        r"\bentre (?:las? )?(\d{1,2}(?::\d{2})?) y (?:las? )?(\d{1,2}(?::\d{2})?)\b",
        r"between \1 and \2",
    ),
    (r"\bde (?:las? )?(\d{1,2}(?::\d{2})?) a (?:las? )?(\d{1,2}(?::\d{2})?)\b", r"from \1 to \2"),
    (r"\b(?:el )?primero de\b", "1 de"),
    (r"\ba las?\b", "at"),
    (
        r"\bat (una|dos|tres|cuatro|cinco|seis|siete|ocho|nueve|diez|once|doce)\b",
        lambda m: f"at {SPANISH_NUMBERS.index(m.group(1)) + 1}",
    ),
    (r"\bdespues de las\b|\bdespues de la\b", "after"),
    (r"\bantes de las\b|\bantes de la\b", "before"),
    (r"\b(\d{1,2}) y media\b", r"\1:30"),
    (r"\b(\d{1,2}) y cuarto\b", r"\1:15"),
    (r"\b(?:el )?(?:dia )?(\d{1,2}) de\b", r"\1"),
    (r"\bel (?:dia )?(\d{1,2})\b", r"the \1th"),
)
SPANISH_NUMBERS: list[str] = [
    "una",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
    "doce",
]
SPANISH_WORDS = {
    "lunes": "monday",
    "martes": "tuesday",
    "miercoles": "wednesday",
    "jueves": "thursday",
    "viernes": "friday",
    "sabado": "saturday",
    "domingo": "sunday",
    "enero": "january",
    "febrero": "february",
    "marzo": "march",
    "abril": "april",
    "mayo": "may",
    "junio": "june",
    "julio": "july",
    "agosto": "august",
    "septiembre": "september",
    "setiembre": "september",
    "octubre": "october",
    "noviembre": "november",
    "diciembre": "december",
}
# Day names in languages we do not read: named back to the caller, never guessed.
FOREIGN_DAYS = [
    "montag",
    "dienstag",
    "mittwoch",
    "donnerstag",
    "freitag",
    "samstag",
    "sonntag",
    "lundi",
    "mardi",
    "mercredi",
    "jeudi",
    "vendredi",
    "samedi",
    "dimanche",
    "lunedi",
    "martedi",
    "mercoledi",
    "giovedi",
    "venerdi",
    "sabato",
    "domenica",
]
# What a misspelt day word is corrected against ("wensday", "tomorow").
DAY_VOCABULARY = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "tomorrow",
    "tonight",
    "weekend",
    "lunes",
    "martes",
    "miercoles",
    "jueves",
    "viernes",
    "sabado",
    "domingo",
    "manana",
)


def fold(text: str) -> str:
    """Lower case without accents: "Miércoles" → "miercoles"."""
    if text.isascii():
        return text.lower()  # nothing to decompose (most messages): no pass per character
    decomposed = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# Day words a shortened form may stand for ("vier" → viernes, "wedn" → wednesday).
SHORTENED_DAYS = tuple(w for w in DAY_VOCABULARY if w not in ("tonight", "weekend", "manana"))


# Each start of four letters or more of a day word → the day words it starts.
DAYS_BY_PREFIX: dict[str, tuple[str, ...]] = {}
for _day in SHORTENED_DAYS:
    for _end in range(4, len(_day) + 1):
        DAYS_BY_PREFIX[_day[:_end]] = (*DAYS_BY_PREFIX.get(_day[:_end], ()), _day)
DAY_INITIALS = frozenset(word[0] for word in DAY_VOCABULARY)


def _corrected_days(text: str) -> str:
    """Misspelt day words corrected against a small vocabulary (not a hand list of typos);
    a word of four letters or more that starts exactly one day name is that day."""
    words = text.split()
    for index, word in enumerate(words):
        if len(word) >= 4 and word.isalpha() and word not in DAY_VOCABULARY:
            starts = DAYS_BY_PREFIX.get(word, ())
            if len(starts) == 1:
                words[index] = starts[0]
                continue
        if len(word) < 5 or not word.isalpha() or word in DAY_VOCABULARY:
            continue
        if word[0] not in DAY_INITIALS:
            continue  # whatever the closest day word, it would not keep the first letter
        found = _day_word(word)
        if found is not None:
            words[index] = found
    return " ".join(words)


@lru_cache(maxsize=4096)
def _day_word(word: str) -> str | None:
    """The day word `word` is a misspelling of. Pure, and people repeat their words:
    remembered per word (rapidfuzz's call costs more than its distances)."""
    found = extractOne(
        word,
        DAY_VOCABULARY,
        scorer=DamerauLevenshtein.normalized_similarity,
        score_cutoff=0.75,
    )
    if found is not None and found[0][0] == word[0]:  # typos keep the first letter
        return str(found[0])
    return None


def _spanish_count(word: str) -> int:
    if word.isdigit():
        return int(word)
    return 1 if word in ("un", "una") else SPANISH_NUMBERS.index(word) + 1


def _spanish_shift(amount: str, unit: str, way: str) -> str:
    """ "una hora más tarde" → "1 hours later", "media hora antes" → "half an hours earlier"."""
    count = "half an" if amount == "media" else str(_spanish_count(amount))
    english_way = "later" if way in ("mas tarde", "despues") else "earlier"
    return f"{count} {SPANISH_UNITS[unit.rstrip('s')]} {english_way}"


# Compiled once: every message goes through all of them (the per-call cache lookup of
# re.sub was a fifth of the reader's cost).
SPANISH_RULES = tuple((_rule(pattern), english) for pattern, english in SPANISH)


# Any of the rules at all: when none matches the message, none matches after another
# rule ran either (no rule ran), so one scan stands for all of them (English messages).
ANY_SPANISH_RULE = _rule("|".join(f"(?:{pattern})" for pattern, _ in SPANISH))
# Every match of a rule above holds one of these (in rule order: "manana" for the first,
# "mn" for "mnn|mna", ... "el " for "el 3"), so a message with none skips even that scan.
SPANISH_CUES = (
    "manana", "mn", "la tarde", "la noche", "esta ", "hoy", "ant", "ayer", "dia", "semana",
    "hora", "minuto", "pasado", "mediodia", "cuarto", "menos", "el dia", "temprano",
    "medianoche", "que viene", "proximo", "entre ", "de ", "primero", "a la", "una", "dos",
    "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "once", "doce",
    "despues", "antes", " y ", " de", "el ",
)  # fmt: skip


SPANISH_CUE_SCAN = cue_scan(SPANISH_CUES)


def _spanish(text: str) -> str:
    if SPANISH_CUE_SCAN.search(text) is not None and ANY_SPANISH_RULE.search(text) is not None:
        for pattern, english in SPANISH_RULES:
            text = pattern.sub(english, text)
    return " ".join(SPANISH_WORDS.get(word, word) for word in text.split())


NUMBER_WORD = "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
# "make it ten", "can it be 11", "how about 2": the number after is a clock time.
MAKE_IT_NUMBER = cued(
    _rule(
        r"\b(make (?:it|that)|(?:can|could|would) (?:it|that) be|(?:can|could) we do|"
        rf"how about|what about) (?=\d{{1,2}}(?::\d{{2}})?\b|(?:{NUMBER_WORD})\b)"
    ),
    " be|make | we do|how about|what about",
)
# An hour in words where a time is expected: "ten am", "two thirty", "at four", "half two".
WORD_BEFORE_CLOCK = cued(
    _rule(rf"\b({NUMBER_WORD})(?=\s*(?:am|pm|o'?clock|thirty|fifteen|forty[- ]five))"),
    "one|six|ten|two|five|four|nine|eight|seven|three|eleven|twelve",
)
WORD_AFTER_CUE = cued(
    _rule(rf"\b(at|around|about|by|after|before|past|to|half)\s+({NUMBER_WORD})\b"),
    "one|six|ten|two|five|four|nine|eight|seven|three|eleven|twelve",
)


# "el jueves no, el viernes", "thursday no, friday at 3": the one said before "no," goes
# (without the comma, "a las 3 no a las 2" rejects what follows, read by the rules below).
ANY_WEEKDAY = "|".join(sorted([*WEEKDAY_NAMES, *SHORTENED_DAYS], key=len, reverse=True))
REJECTED_BEFORE_NO = re.compile(
    rf"\b(?:on |el |at )?(?:{ANY_WEEKDAY}|\d{{1,2}}(?::\d{{2}})?(?:\s*(?:am|pm))?)"
    r"[?!.,]*\s+no\s*[,.;!]+"
    rf"(?=\s*(?:el |on |the |at |a las )?(?:{ANY_WEEKDAY}|\d))"
)


# The rewrites of _words, in their order (each reads what the one before left).
AM = rewrite(r"\ba\.?\s?m\b\.?", "am", "m", folded=True)
PM = rewrite(r"\bp\.?\s?m\b\.?", "pm", "m", folded=True)
DOTTED_CLOCK = rewrite(
    r"\b(\d{1,2})\.(\d{2})(?!\d)", r"\1:\2", ".", folded=True
)  # "10.30", "3.30pm"
# "15h30": a digit right before the "h" (an ASCII one in ASCII text).
H_CLOCK = MarkedRewrite(
    re.compile(r"\b([01]?\d|2[0-3])h([0-5]\d)\b"),
    r"\1:\2",
    "h",
    tuple(f"{digit}h" for digit in "0123456789"),
    ascii_marks=True,
)
# The "no" is followed by one of [,.;!] (after any spaces).
REJECTED = MarkedRewrite(REJECTED_BEFORE_NO, " ", "no", (",", ".", ";", "!"))
PUNCTUATION = rewrite(r"[^a-z0-9:/\-' ]+", " ")
SPOKEN_FILLERS = rewrite(r"\b(?:u+h+|u+m+|e+r+m*|a+h+|h+m+)\b", " ")  # "uh", "erm"
WEEKS_SHORT = rewrite(r"\bwks?\b", "week", "wk")
NEXT_SHORT = rewrite(r"\bnxt\b", "next", "nxt")
# "same time next week" as an answer to a proposal: that proposal, a week on.
SAME_NEXT_WEEK = rewrite(
    r"\bsame (?:time|day(?: and time)?),? next week\b", "one week later", "next week"
)
# "3 not 2", "wednesday not tuesday": the correction wins, the rejected value goes; a
# number kept against a rejected time is itself a time ("4 not 3" is "at 4").
KEPT_NUMBER = rewrite(
    r"(?<!\bat )\b(\d{1,2}(?::\d{2})?(?:\s*(?:am|pm))?)\s+(?=(?:and |but )?not (?:at )?\d)",
    r"at \1 ",
    "not ",
)
NOT_VALUE = rewrite(
    r"\b(?:and |but )?not (?:at |on )?(?:\d{1,2}(?::\d{2})?(?:\s*(?:am|pm))?|[a-z]+day)\b",
    " ",
    "not ",
)
# Colon-less clock times where a time is expected: "at 1030", "1030am", "1030".
COLONLESS = rewrite(
    r"(?:(?<=\bat )|(?<=\baround )|(?<=\bby )|(?<=\bafter )|(?<=\bbefore )|^)"
    r"([01]?\d|2[0-3])([0-5]\d)\b(?!\s*(?:/|-))",
    r"\1:\2",
)
COLONLESS_AMPM = rewrite(r"\b([01]?\d|2[0-3])([0-5]\d)\s*(am|pm)\b", r"\1:\2 \3", "m")
TWO_DIGITS = _rule(r"\d\d")
HOUR_THIRTY = rewrite(r"\b(\d{1,2})\s+thirty\b", r"\1:30", "thirty")
HOUR_FIFTEEN = rewrite(r"\b(\d{1,2})\s+fifteen\b", r"\1:15", "fifteen")
HOUR_FORTY_FIVE = rewrite(r"\b(\d{1,2})\s+forty[- ]five\b", r"\1:45", "five")


def _words(text: str) -> str:
    text = fold(text).replace("@", " at ")
    text = H_CLOCK(DOTTED_CLOCK(PM(AM(text))))
    text = SPOKEN_FILLERS(PUNCTUATION(REJECTED(text)))
    text = _spanish(_corrected_days(" ".join(text.split())))
    text = SAME_NEXT_WEEK(NEXT_SHORT(WEEKS_SHORT(text)))
    text = NOT_VALUE(KEPT_NUMBER(text))
    if TWO_DIGITS.search(text):  # both need two digits in a row ("1030")
        text = COLONLESS_AMPM(COLONLESS(text))
    text = MAKE_IT_NUMBER.sub(r"\1 at ", text)
    if WORD_BEFORE_CLOCK.may_match(text):  # WORD_AFTER_CUE's cues are the same number words
        text = WORD_BEFORE_CLOCK.pattern.sub(lambda m: str(NUMBER_WORDS[m.group(1)]), text)
        text = WORD_AFTER_CUE.sub(lambda m: f"{m.group(1)} {NUMBER_WORDS[m.group(2)]}", text)
    text = _spoken_clock(text)
    text = _ordinal_days(_relative_counts(text))
    text = HOUR_FORTY_FIVE(HOUR_FIFTEEN(HOUR_THIRTY(text)))
    return " ".join(text.split())


MINUTE_WORDS = {"five": 5, "ten": 10, "twenty": 20, "twenty five": 25, "twenty-five": 25}
MINUTES = r"(5|10|20|25|five|ten|twenty[- ]five|twenty)"


def _minutes(word: str) -> int:
    return int(word) if word.isdigit() else MINUTE_WORDS[word]


MINUTES_PAST = rewrite(
    rf"\b{MINUTES}\s+(?:minutes?\s+)?past\s+(\d{{1,2}})\b",
    lambda m: f"{m.group(2)}:{_minutes(m.group(1)):02d}",
    "past",
)
MINUTES_AFTER = rewrite(
    rf"\b(quarter|{MINUTES[1:-1]})\s+after\s+(\d{{1,2}})\b",
    lambda m: f"{m.group(2)}:{15 if m.group(1) == 'quarter' else _minutes(m.group(1)):02d}",
    "after",
)
MINUTES_TO = rewrite(
    rf"\b{MINUTES}\s+(?:minutes?\s+)?(?:to|til|till)\s+(\d{{1,2}})\b",
    lambda m: f"{(int(m.group(2)) - 1) or 12}:{60 - _minutes(m.group(1)):02d}",
    "t",
)
HOUR_ISH = rewrite(r"\b(\d{1,2}(?::\d{2})?(?:\s*(?:am|pm))?)\s*-?ish\b", r"around \1", "ish")
NOON_ISH = rewrite(r"\b(noon|midday|lunchtime)\s*-?ish\b", r"around \1", "ish")
ARVO = rewrite(r"\barvo\b", "afternoon", "arvo")
# British "a week today", "a week on friday"; "monday after next"
A_WEEK_ON = rewrite(
    rf"\ba week (?:on )?(today|tomorrow|{WEEKDAY_WORD})\b", r"a week from \1", "a week "
)
AFTER_NEXT = rewrite(
    rf"\b(?:the )?({WEEKDAY_WORD}) after next\b", r"a week from next \1", " after next"
)
DAY_WEEK = rewrite(rf"\b(?<!next )(?<!this )({WEEKDAY_WORD}) week\b", r"a week from \1", " week")


def _spoken_clock(text: str) -> str:
    """ "10 past 3" → "3:10", "twenty to 4" → "3:40", "2ish" → "around 2", "arvo" →
    "afternoon", "friday week" → "a week from friday"."""
    text = MINUTES_TO(MINUTES_AFTER(MINUTES_PAST(text)))
    text = ARVO(NOON_ISH(HOUR_ISH(text)))
    return DAY_WEEK(AFTER_NEXT(A_WEEK_ON(text)))


MONTH_ALONE = _rule(MONTHS)
OF_NEXT = _rule(r"\s+of\b")
# Every ordinal word holds one of these: a message without any has no ordinal day.
ORDINAL_CUES = ("th", "first", "second")


def _ordinal_days(text: str) -> str:
    """ "the twenty-first" → "the 21st", "monday the third" → "monday the 3rd"; a number past
    the month's end ("the thirty-fifth") stays a date, so it is asked about, not dropped."""

    def number(match: re.Match[str]) -> str:
        value = TENS.get(match.group("tens") or "", 0) + ORDINAL_WORDS[match.group("unit")]
        if match.group("tens") and match.group("unit") in ("twentieth", "thirtieth", "fortieth"):
            return match.group(0)
        before = text[: match.start()].split()[-2:]
        anchored = bool(before) and (
            before[-1] in ("on", "el", "of")
            or before[-1] in WEEKDAY_NAMES
            or MONTH_ALONE.fullmatch(before[-1]) is not None
            or (before[-1] == "the" and len(before) == 2 and before[0] in ("on", "for", "until"))
            or (len(before) == 2 and before[-1] == "the" and before[0] in WEEKDAY_NAMES)
        )
        after_text = text[match.end() :]
        if not (anchored or value > 5 or OF_NEXT.match(after_text)):
            return match.group(0)
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(value % 10, "th") if value // 10 != 1 else "th"
        return f"{value}{suffix}"

    if not any(map(text.__contains__, ORDINAL_CUES)):
        return text
    return ORDINAL_PHRASE.sub(number, text)


COUNT = "|".join(sorted((re.escape(w) for w in COUNT_WORDS), key=len, reverse=True))
RELATIVE_COUNT = cued(
    _rule(rf"\b(?:in\s+)?(\d+|{COUNT})\s+(days?|weeks?)\s+(?:from (?:now|today)|time|hence)\b"),
    "time|from |hence",
)


FORTNIGHT = rewrite(r"\b(?:a|one) fortnight\b", "2 weeks", "fortnight")


def _relative_counts(text: str) -> str:
    """ "two days from now", "3 weeks from today", "in a fortnight" → "in N days/weeks"."""

    def counted(match: re.Match[str]) -> str:
        raw = match.group(1)
        count = int(raw) if raw.isdigit() else COUNT_WORDS[raw]
        return f"in {count} {match.group(2)}"

    text = FORTNIGHT(text)
    return RELATIVE_COUNT.sub(counted, text)


# --- time of day --------------------------------------------------------------------

TIME_PATTERNS: tuple[tuple[str, str], ...] = (
    ("noon", r"\b(?:noon|midday|12 noon|lunchtime|lunch time|(?:at|over|during) (?:my )?lunch)\b"),
    ("midnight", r"\bmidnight\b"),
    ("half", r"\bhalf (?:past )?(\d{1,2})\b(?:\s*(am|pm))?"),
    ("quarter_past", r"\bquarter past (\d{1,2})\b(?:\s*(am|pm))?"),
    ("quarter_to", r"\bquarter (?:to|til|till|before) (\d{1,2})\b(?:\s*(am|pm))?"),
    ("clock", r"\b(\d{1,2}):(\d{2})\s*(am|pm)?"),
    ("ampm", r"\b(\d{1,2})\s*(am|pm)\b"),
    ("oclock", r"\b(\d{1,2})\s*o'?clock\b"),
    (
        "before_part",
        r"\b(\d{1,2})(?=\s+(?:in the |this |at )?(?:morning|afternoon|evening|tonight|night)\b)",
    ),
    (
        "bare",
        r"\b(?:at|around|about|by|after|before|for|say|maybe|like|ish|do|try|it|@)\s+(\d{1,2})\b"
        r"(?!\s*(?:(?:st|nd|rd|th)\b|/|-|days?|weeks?|months?|years?|people|of\b|minutes?|mins?|"
        r"hours?))",
    ),
)


TIME_READERS = tuple((kind, _rule(pattern)) for kind, pattern in TIME_PATTERNS)
# The readers of a time said without a digit; every other reader's match, and TIME_ALONE's,
# holds one (tests/agent/test_reader_cues.py reads it off their patterns).
WORDED_TIME_READERS = TIME_READERS[:2]
TIME_ALONE = _rule(r"(?:at |around |about )?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?")
ANY_DIGIT = _rule(r"[0-9]")


def _parse_time(text: str) -> tuple[int, int, str | None, str] | None:
    """(hour, minute, "am"/"pm"/None, remaining text) for the first time found."""
    if ANY_DIGIT.search(text) is None:  # "tomorrow afternoon": eight scans fewer
        return _worded_time(text)
    for kind, pattern in TIME_READERS:
        match = pattern.search(text)
        if match is None:
            continue
        rest = (text[: match.start()] + " " + text[match.end() :]).strip()
        if kind == "noon":
            return 12, 0, "pm", rest
        if kind == "midnight":
            return 0, 0, None, rest
        groups = match.groups()
        hour = int(groups[0])
        minute = 0
        meridiem = None
        if kind == "half":
            minute, meridiem = 30, groups[1]
        elif kind == "quarter_past":
            minute, meridiem = 15, groups[1]
        elif kind == "quarter_to":
            hour, minute, meridiem = (hour - 1) or 12, 45, groups[1]
        elif kind == "clock":
            minute, meridiem = int(groups[1]), groups[2]
        elif kind == "ampm":
            meridiem = groups[1]
        if hour > 23 or minute > 59 or (meridiem and not 1 <= hour <= 12):
            continue
        return hour, minute, meridiem, rest
    # A message that is nothing but a time: "3", "10:30", "3pm".
    alone = TIME_ALONE.fullmatch(text)
    if alone:
        hour, minute = int(alone.group(1)), int(alone.group(2) or 0)
        if hour <= 23 and minute <= 59:
            return hour, minute, alone.group(3), ""
    return None


def _worded_time(text: str) -> tuple[int, int, str | None, str] | None:
    """_parse_time for a text without a digit: noon or midnight, or none."""
    for kind, pattern in WORDED_TIME_READERS:
        match = pattern.search(text)
        if match is not None:
            rest = (text[: match.start()] + " " + text[match.end() :]).strip()
            return (12, 0, "pm", rest) if kind == "noon" else (0, 0, None, rest)
    return None


def _part_range(part: str) -> tuple[time, time]:
    low, high = PART_RANGES[part]
    return time(low), time(23, 59) if high == 24 else time(high)


def resolve_hour(
    hour: int,
    minute: int,
    meridiem: str | None,
    part: str | None,
    hours: Hours,
    day: date | None = None,
) -> time:
    """The clock time a caller means: written AM/PM, then part of day, then open hours."""
    if meridiem == "am":
        return time(0 if hour == 12 else hour, minute)
    if meridiem == "pm":
        return time(hour if hour == 12 else hour + 12, minute)
    if hour == 0 or hour > 12:
        return time(hour % 24, minute)
    morning = time(0 if hour == 12 else hour, minute)
    evening = time(hour if hour == 12 else hour + 12, minute)
    if hour == 12:
        return evening  # "at 12" is noon, never midnight
    if part is not None:
        low, high = _part_range(part)
        for candidate in (morning, evening):
            if low <= candidate < high:
                return candidate
    open_windows = _windows(hours, day)
    in_hours = [c for c in (morning, evening) if any(o <= c < cl for o, cl in open_windows)]
    if len(in_hours) == 1:
        return in_hours[0]
    # Both or neither inside the hours: say it the way people do (7-11 AM, 12-6 PM).
    return morning if hour >= 7 else evening


def _windows(hours: Hours, day: date | None) -> list[tuple[time, time]]:
    if day is not None and hours.get(day.weekday()):
        return list(hours[day.weekday()])
    return [window for windows in hours.values() for window in windows]


# --- dates -------------------------------------------------------------------------


def _weekday_date(today: date, weekday: int, qualifier: str | None) -> date:
    ahead = (weekday - today.weekday()) % 7
    if qualifier == "next":
        monday_next = today + timedelta(days=7 - today.weekday())
        return monday_next + timedelta(days=weekday)
    if qualifier == "this" and ahead == 0:
        return today
    return today + timedelta(days=ahead or 7)


def _day_of_month(today: date, day: int) -> date | None:
    year, month = today.year, today.month
    for _ in range(13):
        try:
            candidate = date(year, month, day)
        except ValueError:
            candidate = None
        if candidate is not None and candidate >= today:
            return candidate
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return None


DATE_FRAGMENTS = (
    rf"\b(?:{MONTHS})\.?\s+{ORDINAL}(?:,?\s+\d{{4}})?\b",
    rf"\b(?:the\s+)?{ORDINAL}\s+(?:of\s+)?(?:{MONTHS})\b(?:,?\s+\d{{4}})?",
    r"\b\d{4}-\d{2}-\d{2}\b",
    r"\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b",
    r"\bin\s+(?:a|an|one|two|three|four|five|six|\d{1,2})\s+(?:days?|weeks?|months?|years?)\b",
)


MONTH_NUMBER = {
    name: index + 1
    for index, names in enumerate(
        (
            "jan january",
            "feb february",
            "mar march",
            "apr april",
            "may",
            "jun june",
            "jul july",
            "aug august",
            "sep sept september",
            "oct october",
            "nov november",
            "dec december",
        )
    )
    for name in names.split()
}


RELATIVE_FRAGMENT = _rule(r"in\s+(\w+)\s+(days?|weeks?|months?|years?)")
ISO_FRAGMENT = _rule(r"(\d{4})-(\d{2})-(\d{2})")
NUMERIC_FRAGMENT = _rule(r"(\d{1,2})/(\d{1,2})(?:/(\d{2,4}))?")
FRAGMENT_WORDS = _rule(r"[a-z]+|\d+")


def _calendar_day(fragment: str, today: date) -> date | None:
    """A calendar date written out: "Dec 3rd", "3 of december", "12/3", "2026-12-03",
    "in 3 days". Without a year, the next such date from today. None if impossible
    ("feb 30", "the 35th of may"): the caller is then asked, not guessed for."""
    relative = RELATIVE_FRAGMENT.fullmatch(fragment)
    if relative:
        word = relative.group(1)
        count = 1 if word in ("a", "an") else NUMBER_WORDS.get(word) or int(word)
        unit = relative.group(2)
        if unit.startswith(("month", "year")):
            months = count * (12 if unit.startswith("year") else 1)
            add_years, month_index = divmod(today.month - 1 + months, 12)
            return _valid_date(today.year + add_years, month_index + 1, min(today.day, 28))
        days = count * (7 if unit.startswith("week") else 1)
        return today + timedelta(days=days)
    iso = ISO_FRAGMENT.fullmatch(fragment)
    if iso:
        return _valid_date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    numeric = NUMERIC_FRAGMENT.fullmatch(fragment)
    if numeric:
        # month first, as callers in the US write, unless the first cannot be a month
        # ("25/12"): then it is the day, as written elsewhere
        first, second = int(numeric.group(1)), int(numeric.group(2))
        if first > 12 >= second:
            first, second = second, first
        return _dated(today, first, second, numeric.group(3))
    words = FRAGMENT_WORDS.findall(fragment)
    month = next((MONTH_NUMBER[w] for w in words if w in MONTH_NUMBER), None)
    numbers = [w for w in words if w.isdigit()]
    if month is None or not numbers:
        return None
    year = numbers[1] if len(numbers) > 1 and len(numbers[1]) == 4 else None
    return _dated(today, month, int(numbers[0]), year)


def _valid_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _dated(today: date, month: int, day: int, year: str | None) -> date | None:
    if year is not None:
        full = int(year) + (2000 if len(year) == 2 else 0)
        return _valid_date(full, month, day)
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        return None
    recent = _valid_date(today.year, month, day)
    if recent is not None and today - timedelta(days=62) <= recent < today:
        return recent  # "november 20" said on the 23rd is past, not next year's
    for candidate_year in (today.year, today.year + 1, today.year + 4):  # leap days
        candidate = _valid_date(candidate_year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


WEEK_FROM = cued(
    _rule(
        rf"\b(?:(a|one|two|2|three|3) )?weeks? (?:from|after) (?:(next|this) )?"
        rf"(today|tomorrow|{WEEKDAY_WORD})\b"
    ),
    "week",
)


def _cut(text: str, match: re.Match[str], keep: str = "") -> str:
    return f"{text[: match.start()]} {keep} {text[match.end() :]}"


@dataclass(frozen=True)
class _Day:
    day: date | None = None
    until: date | None = None
    unreadable: str | None = None


# (pattern, days from today, a literal every match holds)
SIMPLE_DAYS = tuple(
    (_rule(pattern), offset, cue)
    for pattern, offset, cue in (
        (r"\b(?:the\s+)?day after tomorrow\b", 2, "day after tomorrow"),
        (r"\b(?:tomorrow|tmrw|tmr|tmrow|2morrow|2moro)\b", 1, "m"),
        (r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b", 0, "t"),
        (r"\b(?:the\s+)?day before yesterday\b", -2, "yesterday"),
        (r"\byesterday\b", -1, "yesterday"),
    )
)


def _simple_day(text: str, today: date) -> tuple[_Day, str] | None:
    for pattern, offset, cue in SIMPLE_DAYS:
        match = pattern.search(text) if cue in text else None
        if match:
            kept = match.group(0).replace("this ", "") if offset == 0 else ""
            return _Day(today + timedelta(days=offset)), _cut(text, match, kept)
    return None


# Holidays by name (US and Mexican usage, English and Spanish): a fixed month and day, or
# the nth weekday of a month (-1: the last one). The next one from today is meant.
FIXED_HOLIDAYS = {
    r"christmas eve|xmas eve|nochebuena": (12, 24),
    r"christmas(?: day)?|xmas(?: day)?|navidad": (12, 25),
    r"boxing day": (12, 26),
    r"new years? eve|new year's eve|nye|nochevieja": (12, 31),
    r"new years?(?: day)?|new year's(?: day)?|ano nuevo": (1, 1),
    r"dia de (?:los )?reyes": (1, 6),
    r"valentines?(?: day)?|valentine's(?: day)?|san valentin": (2, 14),
    r"st patricks? day|st patrick's day|saint patrick's day": (3, 17),
    r"juneteenth": (6, 19),
    r"(?:the )?(?:fourth|4th) of july|independence day": (7, 4),
    r"halloween": (10, 31),
    r"dia de (?:los )?muertos": (11, 2),
    r"veterans day": (11, 11),
}
NTH_WEEKDAY_HOLIDAYS = {
    r"(?:mlk|martin luther king(?: jr)?)(?: day)?": (1, 0, 3),
    r"presidents?'? day|president's day": (2, 0, 3),
    r"mother'?s day": (5, 6, 2),
    r"memorial day": (5, 0, -1),
    r"father'?s day": (6, 6, 3),
    r"labou?r day": (9, 0, 1),
    r"thanksgiving(?: day)?": (11, 3, 4),
}


def easter(year: int) -> date:
    """Easter Sunday (dateutil; typed here, as dateutil ships no types)."""
    sunday: date = western_easter.easter(year)
    return sunday


def _thanksgiving(year: int) -> date:
    return _nth_weekday(year, 11, 3, 4)


# Feasts that move with Easter (dateutil computes it), days after Thanksgiving.
DERIVED_HOLIDAYS: dict[str, Callable[[int], date]] = {
    r"good friday|viernes santo": lambda year: easter(year) - timedelta(days=2),
    r"easter monday": lambda year: easter(year) + timedelta(days=1),
    r"easter(?: sunday)?|pascua|domingo de resurreccion": easter,
    r"black friday": lambda year: _thanksgiving(year) + timedelta(days=1),
    r"cyber monday": lambda year: _thanksgiving(year) + timedelta(days=4),
}
# Holidays on other calendars: named back and asked about, never guessed.
UNREAD_HOLIDAYS = (
    r"\b(?:hanukk?ah|chanukah|diwali|eid(?: al[- ]\w+)?|ramadan|passover|rosh hashanah|"
    r"yom kippur|(?:chinese|lunar) new year|purim|vesak|navratri)\b"
)
HOLIDAY = cued(
    _rule(
        # "happy new year", "feliz navidad" are wishes, not days
        r"(?<!happy )(?<!merry )(?<!feliz )"
        rf"\b(?:(?:the )?(?:(?P<count>\d{{1,2}}|{COUNT}) )?"
        rf"(?P<unit>days?|weeks?|weekend|{WEEKDAY_WORD}) (?P<way>before|after) )?(?P<name>"
        + "|".join(
            f"(?:{name})" for name in (*DERIVED_HOLIDAYS, *FIXED_HOLIDAYS, *NTH_WEEKDAY_HOLIDAYS)
        )
        + r")(?![a-z'])"
    ),
    "lk|ye|xmas|r day|easter|father|mother|pascua|dia de |navidad| of july|ano nuevo|"
    "christmas|halloween|ochevieja|president|t patrick|valentine|boxing day|juneteenth|"
    "nochebuena|good friday|black friday|cyber monday|memorial day|san valentin|thanksgiving|"
    "veterans day|viernes santo|independence day|artin luther king|domingo de resurreccion",
)


DERIVED_NAMES = tuple((_rule(p), compute) for p, compute in DERIVED_HOLIDAYS.items())
FIXED_NAMES = tuple((_rule(p), day) for p, day in FIXED_HOLIDAYS.items())
NTH_WEEKDAY_NAMES = tuple((_rule(p), nth) for p, nth in NTH_WEEKDAY_HOLIDAYS.items())
UNREAD_HOLIDAY = cued(
    _rule(UNREAD_HOLIDAYS),
    "eid|hanuk|purim|vesak|diwali|ramadan|navratri|passover| new year|yom kippur|rosh hashanah",
)
BOUND_BEFORE = _rule(r"\b(before|by|until|after)\s+$")


def _holiday_date(name: str, year: int) -> date:
    for pattern, compute in DERIVED_NAMES:
        if pattern.fullmatch(name):
            return compute(year)
    for pattern, (month, day) in FIXED_NAMES:
        if pattern.fullmatch(name):
            return date(year, month, day)
    for pattern, (month, weekday, nth) in NTH_WEEKDAY_NAMES:
        if pattern.fullmatch(name):
            return _nth_weekday(year, month, weekday, nth)
    raise ValueError(name)


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> date:
    if nth > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _around(holiday: date, unit: str | None, way: str | None, count: int) -> _Day:
    """The day (or weekend) a number of days or weeks, or a named weekday, from a holiday."""
    sign = -1 if way == "before" else 1
    if unit is None:
        return _Day(holiday)
    if unit.startswith("day"):
        return _Day(holiday + timedelta(days=sign * count))
    if unit.startswith("week") and unit != "weekend":
        return _Day(holiday + timedelta(weeks=sign * count))
    weekday = 5 if unit == "weekend" else WEEKDAY_NAMES[unit]
    step = (sign * (weekday - holiday.weekday())) % 7 or 7
    day = holiday + timedelta(days=sign * step)
    return _Day(day, day + timedelta(days=1)) if unit == "weekend" else _Day(day)


def _holiday(text: str, today: date) -> tuple[_Day, str] | None:
    """ "christmas eve", "the day after thanksgiving", "the weekend after thanksgiving",
    "easter", "nochebuena": the next one (a holiday a few days past is that one, so it is
    refused as past, not moved a year); a holiday of another calendar is asked about."""
    match = HOLIDAY.search(text)
    if match is None:
        unread = UNREAD_HOLIDAY.search(text)
        return (_Day(unreadable=unread.group(0)), text) if unread else None
    raw = match.group("count") or "1"
    count = int(raw) if raw.isdigit() else COUNT_WORDS[raw]
    bound = BOUND_BEFORE.search(text[: match.start()])
    for year in (today.year, today.year + 1):
        holiday = _holiday_date(match.group("name"), year)
        if bound is not None and match.group("unit") is None:
            # "before christmas": the days up to it; "after thanksgiving": the week after
            if bound.group(1) == "after":
                return _Day(holiday + timedelta(days=1), holiday + timedelta(days=7)), _cut(
                    text, match
                )
            if holiday - timedelta(days=1) < today:
                continue
            return _Day(today, holiday - timedelta(days=1)), _cut(text, bound)
        found = _around(holiday, match.group("unit"), match.group("way"), count)
        if found.day is not None and found.day >= today - timedelta(days=7):
            return found, _cut(text, match)
    return None


NTH = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}


NTH_WEEKDAY_OF = cued(
    _rule(
        rf"\b(?:the )?(first|1st|second|2nd|third|3rd|fourth|4th|last) ({WEEKDAY_WORD}) (?:of|in) "
        rf"(?:the |this )?(next month|month|{MONTH_WORD})\b"
    ),
    "1st|2nd|3rd|4th|last|first|third|fourth|second",
)


def _nth_weekday_of(text: str, today: date) -> tuple[_Day, str] | None:
    """ "the last friday of the month", "the first monday in december"."""
    match = NTH_WEEKDAY_OF.search(text)
    if match is None:
        return None
    nth = NTH.get(match.group(1), -1)
    if match.group(3) in ("month", "next month"):
        ahead = 1 if match.group(3) == "next month" else 0
        month, year = (today.month - 1 + ahead) % 12 + 1, today.year + (today.month + ahead > 12)
    else:
        month = MONTH_NUMBER[match.group(3)]
        year = today.year if month >= today.month else today.year + 1
    return _Day(_nth_weekday(year, month, WEEKDAY_NAMES[match.group(2)], nth)), _cut(text, match)


DAYS_AGO = _rule(rf"\b(\d{{1,2}}|{COUNT})\s+(days?|weeks?)\s+ago\b")


def _days_ago(text: str, today: date) -> tuple[_Day, str] | None:
    """ "2 days ago", "a week ago": a past day, so it is refused as past, never moved."""
    match = DAYS_AGO.search(text) if "ago" in text else None
    if match is None:
        return None
    raw = match.group(1)
    count = int(raw) if raw.isdigit() else COUNT_WORDS[raw]
    days = count * (7 if match.group(2).startswith("week") else 1)
    return _Day(today - timedelta(days=days)), _cut(text, match)


IN_WEEKS = _rule(r"\bin\s+(a|an|one|two|three|four|five|six|\d{1,2})\s+weeks?\b")


def _weekday_weeks_ahead(
    text: str, today: date, weekday: tuple[_Day, str, int] | None
) -> tuple[_Day, str] | None:
    """ "in two weeks, monday": that weekday in the week N weeks from now."""
    match = IN_WEEKS.search(text)
    if match is None or weekday is None:
        return None
    word = match.group(1)
    count = 1 if word in ("a", "an") else NUMBER_WORDS.get(word) or int(word)
    target = today + timedelta(weeks=count)
    day = target - timedelta(days=target.weekday()) + timedelta(days=weekday[2])
    return _Day(day), _cut(text, match)


def _week_from(text: str, today: date) -> tuple[_Day, str] | None:
    match = WEEK_FROM.search(text)
    if match is None:
        return None
    count = {"two": 2, "2": 2, "three": 3, "3": 3}.get(match.group(1) or "", 1)
    base_word = match.group(3)
    if base_word in ("today", "tomorrow"):
        base = today + timedelta(days=1 if base_word == "tomorrow" else 0)
    else:
        base = _weekday_date(today, WEEKDAY_NAMES[base_word], match.group(2))
    return _Day(base + timedelta(weeks=count)), _cut(text, match)


# (pattern, first and last weekday, offset in days): the end of a week is Friday to
# Sunday, a weekend Saturday and Sunday. Every pattern holds "week".
WEEK_RANGES = tuple(
    (_rule(pattern), first, last, offset)
    for pattern, first, last, offset in (
        (r"\b(?:the )?end of next week\b", 4, 6, 7),
        (r"\b(?:the )?end of (?:the |this )?week\b", 4, 6, 0),
        (r"\bearly next week\b", 0, 2, 7),
        (r"\blater? next week\b", 3, 6, 7),
        (r"\b(?:the )?week after next\b", 0, 6, 14),
        (r"\bnext weekend\b", 5, 6, 7),
        (r"\b(?:this |the )?weekend\b", 5, 6, 0),
        (r"\b(?:later |sometime |some time )?this week\b", 0, 6, 0),
        (r"\bnext week\b", 0, 6, 7),
        (r"\blast week\b", 0, 6, -7),
    )
)
NAMED_WEEKDAY = _rule(rf"\b(?:{WEEKDAY_WORD})\b")


def _week_range(text: str, today: date) -> tuple[_Day, str] | None:
    if "week" not in text:
        return None
    monday = today - timedelta(days=today.weekday())
    named_day = NAMED_WEEKDAY.search(text)
    for pattern, first, last, offset in WEEK_RANGES:
        match = pattern.search(text)
        if match is None:
            continue
        if named_day is not None:
            return None  # "tuesday next week", "friday ... this weekend": the weekday wins
        start = monday + timedelta(days=first + offset)
        stop = monday + timedelta(days=last + offset)
        if offset >= 0 and start < today <= stop:
            start = today
        return _Day(start, stop), _cut(text, match)
    return None


DATE_FRAGMENT_READERS = tuple(_rule(pattern) for pattern in DATE_FRAGMENTS)
ORDINAL_DAY = _rule(r"\bthe\s+(\d{1,2})(?:st|nd|rd|th)?\b|\b(\d{1,2})(?:st|nd|rd|th)\b")


def _explicit_date(text: str, now: datetime) -> tuple[_Day, str] | None:
    """A calendar date ("Dec 3rd", "12/3", "the 9th", "in 3 days")."""
    for pattern in DATE_FRAGMENT_READERS:
        match = pattern.search(text)
        if match:
            day = _calendar_day(match.group(0).replace("the ", "").strip(), now.date())
            if day is None:
                return _Day(unreadable=match.group(0).strip()), _cut(text, match)
            return _Day(day), _cut(text, match)
    ordinal = ORDINAL_DAY.search(text)
    if ordinal:
        number = int(ordinal.group(1) or ordinal.group(2))
        found = _day_of_month(now.date(), number) if 1 <= number <= 31 else None
        if found is None:
            return _Day(unreadable=ordinal.group(0).strip()), _cut(text, ordinal)
        return _Day(found), _cut(text, ordinal)
    return None


QUALIFIED_WEEKDAY = _rule(
    rf"\b(?:(this coming|coming|this|next|on|last|past)\s+)?({WEEKDAY_WORD})\b"
)
WHICH_WEEK = _rule(r"\b(next|this|last|past|previous) week\b")
WHICH_WEEK_WORDS = _rule(r"\b(?:next|this|last|past|previous) week\b")


def _weekday(text: str, today: date) -> tuple[_Day, str, int] | None:
    match = QUALIFIED_WEEKDAY.search(text)
    if match is None:
        return None
    qualifier = match.group(1)
    weekday = WEEKDAY_NAMES[match.group(2)]
    week = WHICH_WEEK.search(text)
    if week is not None and qualifier in (None, "on", "coming", "this coming"):
        qualifier = week.group(1)
    rest = WHICH_WEEK_WORDS.sub(" ", _cut(text, match))
    if qualifier in ("last", "past", "previous") and week is not None:
        # "thursday last week": that weekday of the week before this one (a past day).
        monday = today - timedelta(days=today.weekday() + 7)
        return _Day(monday + timedelta(days=weekday)), rest, weekday
    if qualifier in ("last", "past"):
        back = (today.weekday() - weekday) % 7 or 7
        return _Day(today - timedelta(days=back)), rest, weekday
    if qualifier in ("this coming", "coming", "on"):
        qualifier = None
    return _Day(_weekday_date(today, weekday, qualifier)), rest, weekday


# A day told by an event we cannot know ("the day after the holiday", "after my
# birthday", "after the long weekend", "payday", "el día después del puente"): the day was
# said but cannot be read, so it is asked about, never replaced by today or by the weekend.
# A word of the event's name: not a time, a day or a preposition before them.
EVENT_WORD = (
    r"(?!(?:at|around|about|by|on|in|for|to|from|tomorrow|today|tonight|next|this|"
    r"morning|afternoon|evening|noon)\b)[a-z']+"
)
EVENT_DAY = cued(
    _rule(
        r"\b(?:(?:the )?(?:first |next )?(?:day|week|weekend|morning|afternoon|evening|monday|"
        r"tuesday|wednesday|thursday|friday|saturday|sunday) )?(?:after |before |following )"
        r"(?:the|my|our|his|her|their|i|we|he|she|they|you)\b"
        r"(?! (?:\d|noon|midnight|lunch|breakfast|dinner|morning|afternoon|evening|rush|hour|"
        rf"appointment|one|first|last|next|tomorrow|today)\b)(?: {EVENT_WORD}){{1,2}}|"
        r"\b(?:the )?day (?:after |before )(?!tomorrow\b|yesterday\b|next\b|\d)[a-z']+|"
        r"\b(?:after |before )(?:spring|summer|winter|fall|easter|christmas|thanksgiving|"
        r"new years?|holidays?)\b|\b(?:pay ?day|quincena)\b|"
        rf"\b(?:el )?dia (?:despues|antes) del?\b(?: {EVENT_WORD}){{1,2}}|"
        r"\b(?:despues|antes|saliendo|regresando|volviendo|pasando) del? (?:puente|pago|"
        r"vacaciones|fiestas?|navidad|examenes|mi [a-z]+)\b|"
        r"\b(?:after |before )(?:exams?|finals|midterms|graduation|surgery|vacation|break|"
        r"(?:the |my )?(?:trip|wedding|funeral|conference|game|match|concert|party|show|move))\b|"
        r"\bdia de (?!today\b|tomorrow\b|\d)(?:[a-z]+)|"
        r"\b(?:on|for) (?:my|our|his|her|their) (?:[a-z]+day|anniversary|wedding|graduation|"
        r"day off|vacation|holidays?|break|trip)\b|"
        r"\b(?:en|para) (?:mi|su|nuestro|nuestra) (?:cumpleanos|aniversario|boda|graduacion|"
        r"dia libre|vacaciones|quincena)\b|"
        r"\b(?:thanksgiving|christmas|easter|new year'?s|halloween|labor day|memorial day|"
        r"black friday|navidad|nochebuena|ano nuevo|semana santa)(?: (?:weekend|week|day|eve|"
        r"break|holidays?))?\b|"
        r"\b(?:once |as soon as |when |after )(?:[a-z']+ ){1,4}(?:is|are|gets?|am|'m) (?:out|over|"
        r"done|back|finished|home)\b"
    ),
    "day|boda|once|trip|when|after |antes|break|before |easter|despues|dia de |navidad|"
    "pasando|wedding|new year|quincena|saliendo|vacation|ano nuevo|christmas|dia libre|"
    "following|halloween|volviendo|as soon as|cumpleanos|graduacion|graduation|nochebuena|"
    "regresando|vacaciones|aniversario|anniversary|semana santa|thanksgiving",
)


LEADING_PREPOSITION = _rule(r"^(?:on|for|en|para) ")


# EVENT_DAY's search of a text already made: (the text, what it found).
Searched = tuple[str, re.Match[str] | None]


def _event_day(text: str, now: datetime, searched: Searched | None) -> tuple[_Day, str] | None:
    """A day fixed by an event: the rest of the message may still name the day ("after
    the lunch rush on friday", "after my class tomorrow"); if not, it is unreadable.
    A holiday we can date ("the day after thanksgiving") is no such event: the plain
    reader dates it."""
    event = searched[1] if searched is not None and searched[0] == text else EVENT_DAY.search(text)
    if event is None:
        return None
    holiday = _holiday(text, now.date())
    if holiday is not None and holiday[0].day is not None and not HOLIDAY_SPAN.search(text):
        return None
    rest = _cut(text, event)
    found, left = _parse_day_plain(rest, now)
    if found.day is not None or found.unreadable:
        return found, left
    said = LEADING_PREPOSITION.sub("", event.group(0).strip())
    return _Day(unreadable=said), left


# "thanksgiving weekend", "christmas break": days around the holiday, not the holiday itself.
HOLIDAY_SPAN = cued(
    _rule(
        r"\b(?:thanksgiving|christmas|easter|new year'?s|navidad|semana santa)\s+"
        r"(?:weekend|week|break|holidays?|vacation)\b"
    ),
    "easter|navidad|new year|christmas|semana santa|thanksgiving",
)


def _parse_day(text: str, now: datetime, searched: Searched | None = None) -> tuple[_Day, str]:
    """`searched`: EVENT_DAY's search of some text (`_shift`'s), used if it is this one."""
    event = _event_day(text, now, searched)
    if event is not None:
        return event
    return _parse_day_plain(text, now)


DIGIT = _rule(r"\d")
LEADING_WORD = _rule(r"[a-z]+")
FOREIGN_DAY_WORDS = tuple((word, _rule(rf"\b{word}\b")) for word in FOREIGN_DAYS)


def _parse_day_plain(text: str, now: datetime) -> tuple[_Day, str]:
    today = now.date()
    for reader in (_holiday, _nth_weekday_of, _week_from, _simple_day, _days_ago, _week_range):
        found = reader(text, today)
        if found is not None:
            return found
    weekday = _weekday(text, today)
    rest = weekday[1] if weekday else text
    in_weeks = _weekday_weeks_ahead(rest, today, weekday)
    if in_weeks is not None:
        return in_weeks
    explicit = _explicit_date(rest, now)
    if explicit is not None and weekday is not None and not ADJACENT_DAY.search(text):
        # Two separate mentions ("can't make friday, can I do the 30th"): the first one
        # said is this message's day; the engine reads clauses for a move.
        first_weekday = NAMED_WEEKDAY.search(text)
        first_date = DIGIT.search(text)
        if first_weekday and first_date and first_weekday.start() < first_date.start():
            return weekday[0], weekday[1]
        return explicit
    if explicit is not None and weekday is not None:
        # "Wednesday the 9th": the day of the month must fall on that weekday (the one
        # written next to it, if the message names several).
        adjacent = ADJACENT_DAY.search(text)
        named, rest, wanted = weekday[0], explicit[1], weekday[2]
        if adjacent is not None:
            wanted = WEEKDAY_NAMES[LEADING_WORD.match(adjacent.group(0)).group(0)]  # type: ignore[union-attr]
        day = explicit[0].day
        if day is not None and day.weekday() != wanted:
            # Neither wins: the caller is asked which one they meant.
            said = f"{WEEKDAY_LONG[wanted]} the {ordinal_text(day.day)}"
            return _Day(unreadable=said), rest
        return _Day(day or named.day, unreadable=explicit[0].unreadable), rest
    if explicit is not None:
        return explicit
    if weekday is not None:
        return weekday[0], weekday[1]
    month = _month_range(text, today)
    if month is not None:
        return month
    for word, pattern in FOREIGN_DAY_WORDS:
        if word in text and pattern.search(text):
            return _Day(unreadable=word), text
    odd = VAGUE_DAY.search(text)
    if odd is not None:
        return _Day(unreadable=odd.group(0)), text
    slot = _unknown_day_in_slot(text)
    if slot is not None:
        return _Day(unreadable=slot), text
    residue = DAY_RESIDUE.search(text)
    if residue is not None:
        return _Day(unreadable=residue.group(0)), text
    return _Day(), text


# Words that only make sense around a day, left over when no reader took one ("a
# fortnight from now", "3 sleeps from today"): the day was said but not read, so it is
# asked about rather than replaced by today.
DAY_RESIDUE = cued(
    _rule(
        r"\b(?:[a-z0-9]+ )?(?:[a-z]+ )?(?:from now|from today|ago|hence)\b|"
        r"\b(?:on|for|el|para) the [a-z-]+(?:st|nd|rd|th)\b(?! (?:one|option|time|slot)\b)|"
        r"\bmy (?:next )?days? off\b|\bthe day of (?:the|my|our|his|her) [a-z]+\b"
    ),
    "ago| off| the |hence|from now|from today|the day of ",
)


# Where a day goes: after "el"/"on"/"this"/"next", before a time ("el juernes a las 11").
DAY_SLOT = _rule(
    r"\b(?:el|on|this|next|este|para)\s+([a-z]{4,})\b(?=\s+(?:at\b|\d|morning|afternoon|evening))"
)
WEEKDAY_VOCABULARY = tuple(w for w in DAY_VOCABULARY if w not in ("tonight", "weekend", "manana"))


def _unknown_day_in_slot(text: str) -> str | None:
    """A word standing where a day goes that looks like a day name but is none we know
    ("juernes", "mundy"), in any language: it is asked about, never defaulted."""
    for match in DAY_SLOT.finditer(text):
        word = match.group(1)
        if word in DAY_VOCABULARY or word in SPANISH_WORDS.values() or word in WEEKDAY_NAMES:
            continue
        found = extractOne(
            word,
            WEEKDAY_VOCABULARY,
            scorer=DamerauLevenshtein.normalized_similarity,
            score_cutoff=0.6,
        )
        if found is not None:
            return word
    return None


# A day-like word we do not know ("blursday") or a day left vague ("sometime soonish").
VAGUE_DAY = _rule(
    r"\b(?!(?:mon|tues|wednes|thurs|fri|satur|sun|to|yester|birth|holi|every|week|work|"
    r"mid|some)day\b)[a-z]+day\b|\bsoonish\b|\bsome ?day\b|\bsometime soon\b|"
    r"\bone of these days\b|\bone day\b|\bwhenever\b|\bat some point\b"
)


MONTH_PART = _rule(
    r"\b(?:the )?(beginning|start|early|middle|mid|end|late)(?: of)?(?: the| this)?[\s-]+"
    rf"(month|next month|{MONTH_WORD})\b"
)
IN_MONTH = _rule(rf"\b(in|during|sometime in|for|around|next)[\s-]+({MONTH_WORD})\b")
WHICH_MONTH = _rule(r"\b(next|this) month\b")


def _month_range(text: str, today: date) -> tuple[_Day, str] | None:
    """ "in june", "next month": the whole month (from today if it is this one)."""
    part = MONTH_PART.search(text)
    if part is not None:
        return _month_part(part, today)
    match = IN_MONTH.search(text)
    if match is not None:
        month = MONTH_NUMBER[match.group(2)]
        this_year = month > today.month or (month == today.month and match.group(1) != "next")
        year = today.year if this_year else today.year + 1
    else:
        match = WHICH_MONTH.search(text)
        if match is None:
            return None
        ahead = 1 if match.group(1) == "next" else 0
        month = (today.month - 1 + ahead) % 12 + 1
        year = today.year + (today.month - 1 + ahead) // 12
    first = max(date(year, month, 1), today)
    following = date(year + month // 12, month % 12 + 1, 1)
    return _Day(first, following - timedelta(days=1)), _cut(text, match)


MONTH_THIRDS = {"beginning": (1, 10), "start": (1, 10), "early": (1, 10), "middle": (11, 20)}


def _month_part(match: re.Match[str], today: date) -> tuple[_Day, str]:
    """ "end of the month" (the 21st on), "mid december" (11th-20th), "early january"."""
    if match.group(2) in ("month", "next month"):
        ahead = 1 if match.group(2) == "next month" else 0
        month, year = (today.month - 1 + ahead) % 12 + 1, today.year + (today.month + ahead > 12)
    else:
        month = MONTH_NUMBER[match.group(2)]
        year = today.year if month >= today.month else today.year + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    first_day, last_day = MONTH_THIRDS.get(
        match.group(1), (11, 20) if match.group(1) == "mid" else (21, last)
    )
    first = max(date(year, month, first_day), today)
    until = date(year, month, last_day)
    return _Day(first, max(until, first)), _cut(match.string, match)


ADJACENT_DAY = _rule(
    rf"\b(?:{WEEKDAY_WORD})\b[\s,]*(?:the\s+)?(?:(?:{MONTHS})\.?\s+)?\d{{1,2}}"
    rf"(?:st|nd|rd|th|/\d{{1,2}})?\b|\b(?:{WEEKDAY_WORD})\b[\s,]*(?:the\s+)?\d{{1,2}}"
    rf"(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTHS})\b"
)
WEEKDAY_LONG = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def ordinal_text(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


RANGE_TIME = r"(\d{1,2}(?::\d{2})?(?:\s*(?:am|pm))?|noon|midday)"
# What follows "before"/"after" when it names a day, not a shift: "the day after tomorrow",
# "2 days before christmas".
DAY_AHEAD = (
    r"(?:tomorrow|yesterday|today|next|this|the|my|\d|[a-z]+day\b|[a-z]*mas\b|thanksgiving|new\b)"
)
SHIFT = cued(
    _rule(
        r"\b(an?|one|two|three|half an?|\d{1,3})\s*(hours?|hrs?|minutes?|mins?|days?|weeks?)\s+"
        r"(earlier|later|sooner|before\b(?!\s+NAMED)|after\b(?!\s+NAMED))\b".replace(
            "NAMED", DAY_AHEAD
        )
    ),
    "after|later|before|sooner|earlier",
)
# A day or week named relative to the proposal: "the day before", "the following week".
DAY_SHIFT = cued(
    _rule(
        r"(?<!\bmy )(?<!\bmy next )\b(?:the )?(?:(?P<before>day before|previous day)"
        r"|(?P<after>day after|following day|next day)|(?P<week>following week|week after))\b"
        rf"(?!\s+(?:off\b|{DAY_AHEAD}))"
    ),
    "next day|day after|day before|week after|previous day|following day|following week",
)
UNIT_MINUTES = {"hour": 60, "hr": 60, "minute": 1, "min": 1, "day": 1440, "week": 10080}


# The same with the verb in front: "push it back an hour", "bring it forward 30 minutes".
SHIFT_VERB = cued(
    _rule(
        r"\b(?P<verb>push(?:ed)?|move|moved|bring|pull|put)\s+(?:it|that|me|this|my \w+)?\s*"
        r"(?P<way>back|forward|up|later|earlier)\s+(?:by\s+)?"
        r"(?P<amount>an?|one|two|three|half an?|\d{1,3})\s*"
        r"(?P<unit>hours?|hrs?|minutes?|mins?|days?|weeks?)"
        r"(?P<half>\s+and a half)?\b"
    ),
    "put|move|pull|push|bring",
)


HOUR_AND_A_HALF = rewrite(r"\b(an?|one) hour and a half\b", "90 minutes", " and a half")


def _shift(text: str) -> tuple[int | None, str, Searched]:
    """ "an hour earlier" → -60, "30 minutes later" → 30, "push it back an hour" → 60;
    and EVENT_DAY's search of the text, for `_parse_day` to use when nothing was cut."""
    text = HOUR_AND_A_HALF(text)
    relative_day = DAY_SHIFT.search(text)
    event = EVENT_DAY.search(text)
    searched = (text, event)
    if relative_day is not None and event is not None:
        # "the day after I get back": a day told by an event, not a shift of the proposal
        relative_day = None if event.start() <= relative_day.start() < event.end() else relative_day
    if relative_day is not None:
        unit = "week" if relative_day.group("week") else "day"
        way = "earlier" if relative_day.group("before") else "later"
        text = _cut(text, relative_day, f"one {unit} {way}")
    verbed = SHIFT_VERB.search(text)
    if verbed is not None:
        way = "later" if verbed.group("way") in ("back", "later") else "earlier"
        text = _cut(text, verbed, f"{verbed.group('amount')} {verbed.group('unit')} {way}")
    match = SHIFT.search(text)
    if match is None:
        return None, text, searched
    amount_word, unit, direction = match.groups()
    amounts = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3}
    amount = 0.5 if amount_word.startswith("half") else amounts.get(amount_word)
    value = float(amount if amount is not None else int(amount_word))
    minutes = int(value * UNIT_MINUTES[unit.rstrip("s")])
    sign = -1 if direction in ("earlier", "sooner", "before") else 1
    return sign * minutes, _cut(text, match), searched


BETWEEN = cued(
    _rule(
        rf"\b(?:between|from)\s+{RANGE_TIME}\s*(?:\s(?:and|to|till|until)\s|-)\s*{RANGE_TIME}"
        rf"|\b(\d{{1,2}}(?::\d{{2}})?)\s*-\s*(\d{{1,2}}(?::\d{{2}})?\s*(?:am|pm))\b"
    ),
    "-|from|between",
)
NOT_BEFORE = _rule(rf"\bnot (before|earlier than|after|later than)\s+{RANGE_TIME}")
AFTER = cued(
    _rule(
        rf"\b(?:any ?time after|anytime from|after|(?<!no )later than|no earlier than|from)\s+"
        rf"{RANGE_TIME}"
        rf"|\b{RANGE_TIME}\s+or later\b"
    ),
    "from|after|or later|later than|no earlier than",
)
BEFORE = cued(
    _rule(
        rf"\b(?:any ?time before|before|earlier than|no later than|by)\s+{RANGE_TIME}"
        rf"|\b{RANGE_TIME}\s+or earlier\b"
    ),
    "by|before|or earlier|earlier than|no later than",
)


def _range(
    text: str, part: str | None, hours: Hours, day: date | None
) -> tuple[time | None, time | None, str]:
    """ "after 3", "before noon", "between 2 and 4", "from 1 to 3", "3 or later"."""

    def clock(fragment: str) -> time | None:
        found = _parse_time(fragment)
        if found is None:
            return None
        return resolve_hour(found[0], found[1], found[2], part, hours, day)

    if ANY_DIGIT.search(text) is None and "noon" not in text and "midday" not in text:
        return None, None, text  # each rule below reads a RANGE_TIME: digits, noon or midday
    both = BETWEEN.search(text)
    if both:
        first, last = both.group(1) or both.group(3), both.group(2) or both.group(4)
        return _first_like_last(clock(first), clock(last)), clock(last), _cut(text, both)
    negated = NOT_BEFORE.search(text) if "not " in text else None
    if negated:  # "not before 2" is from 2 on
        bound = clock(negated.group(2))
        if negated.group(1) in ("before", "earlier than"):
            return bound, None, _cut(text, negated)
        return None, bound, _cut(text, negated)
    after = AFTER.search(text)
    if after:
        return clock(after.group(1) or after.group(2)), None, _cut(text, after)
    before = BEFORE.search(text)
    if before:
        return None, clock(before.group(1) or before.group(2)), _cut(text, before)
    return None, None, text


def _first_like_last(first: time | None, last: time | None) -> time | None:
    """ "between 11 and 1": the start is the one before the end (11 AM, not 11 PM)."""
    if first is None or last is None or first < last or first.hour < 12:
        return first
    return first.replace(hour=first.hour - 12)


# "early afternoon", "late morning": the part of the day, and the half of it meant.
HALF_PARTS = {"morning": time(10), "afternoon": time(15), "evening": time(19)}
HALF_PART = _rule(r"\b(early|late)[- ](morning|afternoon|evening)\b")


def _half_part(text: str) -> tuple[time | None, time | None]:
    """(after, before) for "late afternoon" (from 3 PM) or "early morning" (before 10)."""
    match = HALF_PART.search(text)
    if match is None:
        return None, None
    middle = HALF_PARTS[match.group(2)]
    return (middle, None) if match.group(1) == "late" else (None, middle)


PART_WORDS = tuple((word, _rule(rf"\b{word}\b"), part) for word, part in PARTS.items())


def _parse_part(text: str) -> str | None:
    for word, pattern, part in PART_WORDS:
        if word in text and pattern.search(text):
            return part
    return None


RESTATED = cued(
    _rule(r"\b(?:no wait|wait no|i mean|i meant|correction|make that)\b"),
    "i mean|no wait|wait no|make that|correction",
)


def parse_when(text: str, now: datetime, hours: Hours | None = None) -> When:
    """Read the date, time and part of day in `text`; `now` is local to the agent."""
    hours = hours or {}
    words = _words(text)
    corrected = RESTATED.split(words)
    if len(corrected) > 1 and corrected[-1].strip():
        words = corrected[-1]  # "thursday... no wait, friday": what was said last counts
    shift, words, searched = _shift(words)
    soon = _from_now(words, now)
    if soon is not None:
        return When(day=soon.date(), at=soon.time())
    found_day, rest = _parse_day(words, now, searched)
    if shift and shift % 1440 == 0 and found_day.day and found_day.until:
        # "away this week, could I come the following week?": the range said, moved on
        days = timedelta(minutes=shift)
        found_day, shift = _Day(found_day.day + days, found_day.until + days), None
    day = found_day.day
    rest = " ".join(rest.split())
    part = _parse_part(rest)
    after, before, rest = _range(rest, part, hours, day)
    if after is None and before is None:
        after, before = _half_part(rest)
    at = None
    found = _parse_time(" ".join(rest.split()))
    if found is None and (day is not None or found_day.unreadable or part is not None):
        found = _bare_hour(rest)
    if found is not None:
        hour, minute, meridiem, _ = found
        at = resolve_hour(hour, minute, meridiem, part, hours, day)
    return When(
        day=day,
        at=at,
        part=part,
        after=after,
        before=before,
        until=found_day.until,
        shift_minutes=shift,
        unreadable=found_day.unreadable,
    )


FROM_NOW = _rule(
    r"\bin\s+(?:about\s+|around\s+)?(an?|one|two|three|four|half an?|\d{1,3})\s*"
    r"(hours?|hrs?|minutes?|mins?)\b"
)


def _from_now(text: str, now: datetime) -> datetime | None:
    """ "in an hour", "in 45 minutes": that moment today, rounded up to the quarter hour
    (the slot grid), unless the message names a day of its own."""
    match = FROM_NOW.search(text)
    if match is None or _parse_day(_cut(text, match), now)[0] != _Day():
        return None
    amount_word, unit = match.groups()
    amounts = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4}
    amount = 0.5 if amount_word.startswith("half") else amounts.get(amount_word)
    value = float(amount if amount is not None else int(amount_word))
    moment = now + timedelta(minutes=value * UNIT_MINUTES[unit.rstrip("s")])
    if moment.second or moment.microsecond:
        moment = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return moment + timedelta(minutes=-moment.minute % 15)


COMPACT_CLOCK = _rule(r"\b([01]?\d|2[0-3])([0-5]\d)\b(?![/-])")
LONE_NUMBER = _rule(
    r"\b(\d{1,2})(?::(\d{2}))?\b(?!\s*(?:(?:st|nd|rd|th)\b|/|-|days?|weeks?|people|persons?|"
    r"of\b|minutes?|mins?|hours?|hrs?|months?|years?|kids?|appointments?|haircuts?))"
)


def _bare_hour(text: str) -> tuple[int, int, str | None, str] | None:
    """With a day named, a lone number is the hour: "tomorrow 3", "friday 10:30"."""
    if ANY_DIGIT.search(text) is None:
        return None  # both patterns read digits
    compact = COMPACT_CLOCK.search(text)  # "thursday 1030"
    if compact is not None:
        return int(compact.group(1)), int(compact.group(2)), None, _cut(text, compact)
    match = LONE_NUMBER.search(text)
    if match is None:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    if not 1 <= hour <= 23 or minute > 59:
        return None
    return hour, minute, None, _cut(text, match)


def shifted(base: datetime, when: When) -> datetime:
    """The proposal (or appointment) moved by the shift said; a time said with a shift by
    days keeps the new day and takes that time ("the next day at 3")."""
    moved = base + timedelta(minutes=when.shift_minutes or 0)
    if when.at is not None and (when.shift_minutes or 0) % 1440 == 0:
        moved = moved.replace(hour=when.at.hour, minute=when.at.minute)
    return moved


def with_day(when: When, day: date) -> When:
    return replace(when, day=day)


def part_of(moment: time) -> str:
    for part, (low, high) in PART_RANGES.items():
        if low <= moment.hour < high:
            return part
    return "evening"
