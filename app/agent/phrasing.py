"""How the offline engine words things, per channel.

SMS: short, scannable ("Tue Nov 24 at 3:00 PM"), at most 320 characters (two segments).
Voice: written for the ear ("3 PM on Tuesday, November 24th"): no "3:00", no
abbreviations, no ids, no "reply YES".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time

SMS_LIMIT = 320
# strftime's %A and %B in the C locale (Python never switches it, nor does the app), whose
# %a and %b are their first three letters: a table look-up, not a strftime, each reply.
EN_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
EN_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
ES_DAYS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
ES_MONTHS = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
]


def ordinal(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


def clock(moment: datetime, channel: str, lang: str = "en") -> str:
    if lang == "es":
        return _clock_es(moment, channel)
    hour = moment.hour % 12 or 12
    meridiem = "AM" if moment.hour < 12 else "PM"
    if channel == "voice":
        if moment.hour == 12 and moment.minute == 0:
            return "noon"
        if moment.minute == 0:
            return f"{hour} {meridiem}"
    return f"{hour}:{moment.minute:02d} {meridiem}"


def _clock_es(moment: datetime, channel: str) -> str:
    """Spanish: "15:00" to read, "las 3 de la tarde" to hear."""
    if channel != "voice":
        return f"{moment.hour}:{moment.minute:02d}"
    hour = moment.hour % 12 or 12
    minutes = {0: "", 15: " y cuarto", 30: " y media"}.get(moment.minute, f":{moment.minute:02d}")
    article = "la" if hour == 1 else "las"
    if moment.hour == 12:
        part = "del mediodía"
    elif moment.hour < 12:
        part = "de la mañana"
    elif moment.hour < 20:
        part = "de la tarde"
    else:
        part = "de la noche"
    return f"{article} {hour}{minutes} {part}"


def day_text(day: date, channel: str, lang: str = "en") -> str:
    if lang == "es":
        if channel == "voice":
            return f"{ES_DAYS[day.weekday()]} {day.day} de {ES_MONTHS[day.month - 1]}"
        return f"{ES_DAYS[day.weekday()][:3]} {day.day} {ES_MONTHS[day.month - 1][:3]}"
    if channel == "voice":
        return f"{EN_DAYS[day.weekday()]}, {EN_MONTHS[day.month - 1]} {ordinal(day.day)}"
    return f"{EN_DAYS[day.weekday()][:3]} {EN_MONTHS[day.month - 1][:3]} {day.day}"


def when(moment: datetime, channel: str, lang: str = "en") -> str:
    """One moment: "Tue Nov 24 at 3:00 PM" / "3 PM on Tuesday, November 24th"."""
    if lang == "es":
        connector = "a" if channel == "voice" else "a las"
        return (
            f"{day_text(moment.date(), channel, lang)} {connector} {clock(moment, channel, lang)}"
        )
    if channel == "voice":
        return f"{clock(moment, channel)} on {day_text(moment.date(), channel)}"
    return f"{day_text(moment.date(), channel)} at {clock(moment, channel)}"


def hh_mm(moment: time | datetime) -> str:
    """`moment.strftime("%H:%M")` without strftime: how the dialogue state keeps a time."""
    return f"{moment.hour:02d}:{moment.minute:02d}"


def join_or(items: Sequence[str], word: str = "or", lang: str = "en") -> str:
    if lang == "es":
        word = {"or": "o", "and": "y"}.get(word, word)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def slot_list(slots: Sequence[datetime], channel: str, lang: str = "en") -> str:
    """Several times, grouped by day: "Tue Nov 24 at 1:00 PM, 2:00 PM or 3:00 PM"."""
    days: dict[date, list[datetime]] = {}
    for slot in slots:
        days.setdefault(slot.date(), []).append(slot)
    groups = []
    for day, moments in days.items():
        times = join_or([clock(m, channel, lang) for m in moments], "or", lang)
        if lang == "es":
            connector = "a" if channel == "voice" else "a las"
            groups.append(f"el {day_text(day, channel, lang)} {connector} {times}")
        elif channel == "voice":
            groups.append(f"{times} on {day_text(day, channel)}")
        else:
            groups.append(f"{day_text(day, channel)} at {times}")
    return join_or(groups, "or", lang)


def weekdays(day: date, lang: str = "en") -> str:
    """The plural of the day's weekday: "Saturdays", "sábados", "lunes"."""
    if lang == "es":
        name = ES_DAYS[day.weekday()]
        return name + "s" if name.endswith("o") else name
    return f"{EN_DAYS[day.weekday()]}s"


def numbered(items: Sequence[str], channel: str, lang: str = "en") -> str:
    if channel == "voice":
        words = [_nth(i, lang) for i in range(len(items))]
        return join_or([f"{w}, {item}" for w, item in zip(words, items, strict=True)], "or", lang)
    return " ".join(f"{i + 1}) {item}" for i, item in enumerate(items))


def _nth(index: int, lang: str = "en") -> str:
    if lang == "es":
        nombres = ("la primera", "la segunda", "la tercera", "la cuarta", "la quinta")
        return nombres[index] if index < len(nombres) else f"la número {index + 1}"
    words = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
    return f"the {words[index]}" if index < len(words) else f"number {index + 1}"


def article(word: str, lang: str = "en") -> str:
    if lang == "es":
        return f"una cita de {word}"
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
