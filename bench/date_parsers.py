"""Which reader understands the dates callers say? Our rules (app/agent/dates.py) against
the field's libraries, on bench/data/date_corpus.json, with an injected clock in the
agent's zone (Mon 23 Nov 2026 08:00, Los Angeles).

A phrase counts as read when the day and the time both match what a person meant (a part
not said must not be invented as a different value; for "ask" phrases, the reader must
give no date at all, since a person would be asked). Also the cost per phrase (p50, p99).

    .venv/bin/pip install parsedatetime ctparse timefhuman recognizers-text-date-time
    .venv/bin/python bench/date_parsers.py

Libraries that are not installed (or do not import) are reported as such.
"""

from __future__ import annotations

import json
import sys
import time as clock
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.agent.dates import parse_when
from app.calendar.availability import Schedule
from app.demo import DEMO_HOURS

CORPUS = Path(__file__).resolve().parent / "data" / "date_corpus.json"
Reading = tuple[date | None, time | None]
Reader = Callable[[str, datetime], Reading]


def ours(hours: Any) -> Reader:
    def read(text: str, now: datetime) -> Reading:
        when = parse_when(text, now, hours)
        if when.unreadable:
            return None, None  # named back to the caller and asked about
        return when.day, when.at

    return read


def dateparser_reader() -> Reader:
    import dateparser
    from dateparser.search import search_dates

    def read(text: str, now: datetime) -> Reading:
        settings = {"RELATIVE_BASE": now.replace(tzinfo=None), "PREFER_DATES_FROM": "future"}
        found = dateparser.parse(text, settings=settings)
        if found is None:
            hits = search_dates(text, settings=settings)
            found = hits[0][1] if hits else None
        return _split(found, text)

    return read


def parsedatetime_reader() -> Reader:
    import parsedatetime

    calendar = parsedatetime.Calendar(version=parsedatetime.VERSION_CONTEXT_STYLE)

    def read(text: str, now: datetime) -> Reading:
        found, context = calendar.parseDT(text, sourceTime=now.replace(tzinfo=None))
        if not context.hasDateOrTime:
            return None, None
        day = found.date() if context.hasDate else None
        at = found.time() if context.hasTime else None
        return day, at

    return read


def ctparse_reader() -> Reader:
    from ctparse import ctparse

    def read(text: str, now: datetime) -> Reading:
        parsed = ctparse(text, ts=now.replace(tzinfo=None), timeout=1)
        if parsed is None:
            return None, None
        value = parsed.resolution
        start = getattr(value, "start", None) or value
        day = None
        if getattr(start, "year", None) and getattr(start, "month", None) and start.day:
            day = date(start.year, start.month, start.day)
        at = (
            time(start.hour, start.minute or 0)
            if getattr(start, "hour", None) is not None
            else None
        )
        return day, at

    return read


def timefhuman_reader() -> Reader:
    from timefhuman import timefhuman
    from timefhuman.utils import tfhConfig

    def read(text: str, now: datetime) -> Reading:
        found = timefhuman(text, config=tfhConfig(now=now.replace(tzinfo=None)))
        if not found:
            return None, None
        first = found[0]
        if isinstance(first, tuple):
            first = first[0]
        if isinstance(first, datetime):
            return _split(first, text)
        if isinstance(first, date):
            return first, None
        if isinstance(first, time):
            return None, first
        return None, None

    return read


def recognizers_reader() -> Reader:
    from recognizers_date_time import Culture, recognize_datetime

    def read(text: str, now: datetime) -> Reading:
        results = recognize_datetime(text, Culture.English, reference=now.replace(tzinfo=None))
        for result in results:
            for value in result.resolution.get("values", []):
                if "value" in value:
                    raw = value["value"]
                    if value.get("type") == "time":
                        return None, time.fromisoformat(raw)
                    moment = datetime.fromisoformat(raw)
                    return _split(moment, text)
        return None, None

    return read


def _split(found: datetime | None, text: str) -> Reading:
    if found is None:
        return None, None
    # A library that returns midnight for a phrase without a time has invented none.
    at = found.time() if (found.hour or found.minute or "midnight" in text) else None
    return found.date(), at


def expected(phrase: dict[str, Any]) -> Reading:
    if phrase.get("ask"):
        return None, None
    day = date.fromisoformat(phrase["day"]) if phrase.get("day") else None
    at = time.fromisoformat(phrase["at"]) if phrase.get("at") else None
    return day, at


def measure(
    name: str, make: Callable[[], Reader], phrases: list[dict[str, Any]], now: datetime
) -> None:
    try:
        reader = make()
        reader("tomorrow at 3", now)
    except Exception as error:  # a library that does not install or import here
        print(f"| {name} | not measured: {type(error).__name__}: {str(error)[:60]} | | |")
        return
    right, costs, misses = 0, [], []
    for phrase in phrases:
        start = clock.perf_counter()
        try:
            got = reader(phrase["text"], now)
        except Exception:
            got = ("error", None)  # type: ignore[assignment]
        costs.append((clock.perf_counter() - start) * 1000)
        if got == expected(phrase):
            right += 1
        else:
            misses.append(phrase["text"])
    costs.sort()
    p50 = costs[len(costs) // 2]
    p99 = costs[min(len(costs) - 1, int(len(costs) * 0.99))]
    share = 100 * right / len(phrases)
    print(f"| {name} | {right}/{len(phrases)} ({share:.0f}%) | {p50:.2f} | {p99:.2f} |")
    if "-v" in sys.argv:
        print("   missed:", "; ".join(misses))


def main() -> int:
    for corpus in (CORPUS, CORPUS.with_name("date_corpus2.json")):
        print(f"\n{corpus.name}")
        compare(corpus)
    return 0


def compare(corpus: Path) -> None:
    data = json.loads(corpus.read_text())
    zone = ZoneInfo(data["zone"])
    now = datetime.fromisoformat(data["clock"]).astimezone(zone)
    hours = Schedule.from_settings(timezone=data["zone"], weekly_hours=DEMO_HOURS).hours
    phrases = data["phrases"]
    print("| reader | phrases read right | p50 ms | p99 ms |")
    print("| --- | --- | --- | --- |")
    measure("app/agent/dates.py (rules)", lambda: ours(hours), phrases, now)
    measure("dateparser", dateparser_reader, phrases, now)
    measure("parsedatetime", parsedatetime_reader, phrases, now)
    measure("ctparse", ctparse_reader, phrases, now)
    measure("timefhuman", timefhuman_reader, phrases, now)
    measure("recognizers-text-date-time", recognizers_reader, phrases, now)


if __name__ == "__main__":
    raise SystemExit(main())
