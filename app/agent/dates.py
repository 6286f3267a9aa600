"""Spoken dates and times → a local date, a time of day and a part of the day.

Everything is read in the agent's time zone against a `now` the caller passes in, so the
result is reproducible and DST-correct (a local 3 PM stays 3 PM whatever the UTC offset).

`dateparser` reads calendar dates ("Dec 3rd", "3/14", "in two weeks"); the rest is done
here, because dateparser gets the phrases callers use most wrong: "tomorrow at 3" comes
back as 09:00, "morning" is dropped, and "next Tuesday" is not tied to a calendar week.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import dateparser

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
PARTS = {
    "morning": "morning",
    "afternoon": "afternoon",
    "evening": "evening",
    "tonight": "evening",
    "after lunch": "afternoon",
    "after work": "evening",
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

    @property
    def empty(self) -> bool:
        return self.day is None and self.at is None and self.part is None


def _words(text: str) -> str:
    text = text.lower()
    text = re.sub(r"\ba\.?\s?m\b\.?", "am", text)
    text = re.sub(r"\bp\.?\s?m\b\.?", "pm", text)
    text = re.sub(r"\b(\d{1,2})\.(\d{2})\b", r"\1:\2", text)  # "10.30"
    text = re.sub(r"[^a-z0-9:/\-' ]+", " ", text)
    for word, number in NUMBER_WORDS.items():
        text = re.sub(
            rf"\b{word}(?=\s*(?:am|pm|o'?clock|thirty|fifteen|forty[- ]five))",
            str(number),
            text,
        )
        text = re.sub(
            rf"\b(at|around|about|by|after|before|past|to)\s+{word}\b", rf"\1 {number}", text
        )
    text = re.sub(r"\b(\d{1,2})\s+thirty\b", r"\1:30", text)
    text = re.sub(r"\b(\d{1,2})\s+fifteen\b", r"\1:15", text)
    text = re.sub(r"\b(\d{1,2})\s+forty[- ]five\b", r"\1:45", text)
    return " ".join(text.split())


# --- time of day --------------------------------------------------------------------

TIME_PATTERNS: tuple[tuple[str, str], ...] = (
    ("noon", r"\b(?:noon|midday|12 noon)\b"),
    ("half", r"\bhalf (?:past )?(\d{1,2})\b(?:\s*(am|pm))?"),
    ("quarter_past", r"\bquarter past (\d{1,2})\b(?:\s*(am|pm))?"),
    ("quarter_to", r"\bquarter (?:to|til|till|before) (\d{1,2})\b(?:\s*(am|pm))?"),
    ("clock", r"\b(\d{1,2}):(\d{2})\s*(am|pm)?"),
    ("ampm", r"\b(\d{1,2})\s*(am|pm)\b"),
    ("oclock", r"\b(\d{1,2})\s*o'?clock\b"),
    ("before_part", r"\b(\d{1,2})(?=\s+(?:in the |this )?(?:morning|afternoon|evening|tonight)\b)"),
    (
        "bare",
        r"\b(?:at|around|about|by|after|before|for|say|maybe|like|ish|do|try|it|@)\s+(\d{1,2})\b"
        r"(?!\s*(?:st|nd|rd|th|/|-|days?|weeks?|people|of\b|minutes?|mins?|hours?))",
    ),
)


def _parse_time(text: str) -> tuple[int, int, str | None, str] | None:
    """(hour, minute, "am"/"pm"/None, remaining text) for the first time found."""
    for kind, pattern in TIME_PATTERNS:
        match = re.search(pattern, text)
        if match is None:
            continue
        rest = (text[: match.start()] + " " + text[match.end() :]).strip()
        if kind == "noon":
            return 12, 0, "pm", rest
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
    alone = re.fullmatch(r"(?:at |around |about )?(\d{1,2})(?::(\d{2}))?\s*(am|pm)?", text)
    if alone:
        hour, minute = int(alone.group(1)), int(alone.group(2) or 0)
        if hour <= 23 and minute <= 59:
            return hour, minute, alone.group(3), ""
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
    r"\bin\s+(?:a|an|one|two|three|four|five|six|\d{1,2})\s+(?:days?|weeks?)\b",
)


def _dateparser_day(fragment: str, now: datetime) -> date | None:
    fragment = re.sub(r"\bin\s+an?\b", "in 1", fragment)
    for word, number in NUMBER_WORDS.items():
        fragment = re.sub(rf"\bin\s+{word}\b", f"in {number}", fragment)
    parsed = dateparser.parse(
        fragment,
        languages=["en"],
        settings={
            "RELATIVE_BASE": now.replace(tzinfo=None),
            "PREFER_DATES_FROM": "future",
            "DATE_ORDER": "MDY",
        },
    )
    return parsed.date() if parsed is not None else None


def _parse_day(text: str, now: datetime) -> tuple[date | None, str]:
    today = now.date()
    simple = (
        (r"\b(?:the\s+)?day after tomorrow\b", 2),
        (r"\b(?:tomorrow|tomorow|tommorow|tmrw|tmr|tmrow)\b", 1),
        (r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b", 0),
    )
    for pattern, offset in simple:
        match = re.search(pattern, text)
        if match:
            kept = match.group(0).replace("this ", "") if offset == 0 else ""
            rest = text[: match.start()] + " " + kept + " " + text[match.end() :]
            return today + timedelta(days=offset), rest
    weekday = re.search(
        r"\b(?:(this coming|coming|this|next|on)\s+)?("
        + "|".join(sorted(WEEKDAY_NAMES, key=len, reverse=True))
        + r")\b",
        text,
    )
    if weekday:
        qualifier = weekday.group(1)
        if qualifier in ("this coming", "coming", "on"):
            qualifier = None
        day = _weekday_date(today, WEEKDAY_NAMES[weekday.group(2)], qualifier)
        return day, text[: weekday.start()] + " " + text[weekday.end() :]
    if re.search(r"\bnext week\b", text):
        return today + timedelta(days=7 - today.weekday()), re.sub(r"\bnext week\b", " ", text)
    if re.search(r"\b(?:this |the )?weekend\b", text):
        return _weekday_date(today, 5, "this"), re.sub(r"\b(?:this |the )?weekend\b", " ", text)
    for pattern in DATE_FRAGMENTS:
        match = re.search(pattern, text)
        if match:
            day = _dateparser_day(match.group(0), now)
            if day is not None:
                return day, text[: match.start()] + " " + text[match.end() :]
    ordinal = re.search(r"\bthe\s+(\d{1,2})(?:st|nd|rd|th)\b|\b(\d{1,2})(?:st|nd|rd|th)\b", text)
    if ordinal:
        number = int(ordinal.group(1) or ordinal.group(2))
        if 1 <= number <= 31:
            return _day_of_month(today, number), text[: ordinal.start()] + text[ordinal.end() :]
    return None, text


def _parse_part(text: str) -> str | None:
    for word, part in PARTS.items():
        if re.search(rf"\b{word}\b", text):
            return part
    return None


def parse_when(text: str, now: datetime, hours: Hours | None = None) -> When:
    """Read the date, time and part of day in `text`; `now` is local to the agent."""
    hours = hours or {}
    words = _words(text)
    day, rest = _parse_day(words, now)
    part = _parse_part(rest)
    found = _parse_time(" ".join(rest.split()))
    at = None
    if found is not None:
        hour, minute, meridiem, _ = found
        at = resolve_hour(hour, minute, meridiem, part, hours, day)
    return When(day=day, at=at, part=part)


def part_of(moment: time) -> str:
    for part, (low, high) in PART_RANGES.items():
        if low <= moment.hour < high:
            return part
    return "evening"
