"""How the offline engine words things, per channel.

SMS: short, scannable ("Tue Nov 24 at 3:00 PM"), at most 320 characters (two segments).
Voice: written for the ear ("3 PM on Tuesday, November 24th"): no "3:00", no
abbreviations, no ids, no "reply YES".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

SMS_LIMIT = 320


def ordinal(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


def clock(moment: datetime, channel: str) -> str:
    hour = moment.hour % 12 or 12
    meridiem = "AM" if moment.hour < 12 else "PM"
    if channel == "voice":
        if moment.hour == 12 and moment.minute == 0:
            return "noon"
        if moment.minute == 0:
            return f"{hour} {meridiem}"
    return f"{hour}:{moment.minute:02d} {meridiem}"


def day_text(day: date, channel: str) -> str:
    if channel == "voice":
        return f"{day:%A}, {day:%B} {ordinal(day.day)}"
    return f"{day:%a %b} {day.day}"


def when(moment: datetime, channel: str) -> str:
    """One moment: "Tue Nov 24 at 3:00 PM" / "3 PM on Tuesday, November 24th"."""
    if channel == "voice":
        return f"{clock(moment, channel)} on {day_text(moment.date(), channel)}"
    return f"{day_text(moment.date(), channel)} at {clock(moment, channel)}"


def join_or(items: Sequence[str], word: str = "or") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def slot_list(slots: Sequence[datetime], channel: str) -> str:
    """Several times, grouped by day: "Tue Nov 24 at 1:00 PM, 2:00 PM or 3:00 PM"."""
    days: dict[date, list[datetime]] = {}
    for slot in slots:
        days.setdefault(slot.date(), []).append(slot)
    groups = []
    for day, moments in days.items():
        times = join_or([clock(m, channel) for m in moments])
        if channel == "voice":
            groups.append(f"{times} on {day_text(day, channel)}")
        else:
            groups.append(f"{day_text(day, channel)} at {times}")
    return join_or(groups, "or")


def numbered(items: Sequence[str], channel: str) -> str:
    if channel == "voice":
        return join_or([f"{_nth(i)}, {item}" for i, item in enumerate(items)], "or")
    return " ".join(f"{i + 1}) {item}" for i, item in enumerate(items))


def _nth(index: int) -> str:
    words = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
    return f"the {words[index]}" if index < len(words) else f"number {index + 1}"


def confirm_suffix(channel: str) -> str:
    return "Shall I go ahead?" if channel == "voice" else "Reply YES to confirm."


def article(word: str) -> str:
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"


def fit(text: str, channel: str) -> str:
    """Keep SMS within two segments; cut at a sentence or word, never mid-word."""
    text = " ".join(text.split())
    if channel != "sms" or len(text) <= SMS_LIMIT:
        return text
    cut = text[: SMS_LIMIT - 1]
    for stop in (". ", "? ", "; "):
        position = cut.rfind(stop)
        if position > SMS_LIMIT // 2:
            return cut[: position + 1]
    return cut.rsplit(" ", 1)[0] + "…"
