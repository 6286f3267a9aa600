"""Every reading of every phrase the suites say, one JSON line per phrase, to compare the
reader before and after a change (the readings must be identical).

Phrases: every string in tests/scenarios/*.yaml, bench/data/*.json and the tests' string
literals, each also upper- and lower-cased, title-cased, with "um " or "ok so " before it
and "?" after it (~40,000). Readings (17 a phrase): understanding.read at three moments,
zones, opening hours and type lists, parse_when three ways, read_when, split_requests,
kept_context, clean_speech, normalise, find_name, detect_language, the profile topic and
field questions, and the date reader's rewritten words.

    .venv/bin/python bench/reader_readings.py /tmp/before.jsonl   # on the old code
    .venv/bin/python bench/reader_readings.py /tmp/after.jsonl    # on the new code
    cmp /tmp/before.jsonl /tmp/after.jsonl
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.agent import dates, profile, understanding
from app.agent.catalog import detect_language
from app.calendar.availability import AppointmentType

ROOT = Path(__file__).resolve().parent.parent
NEW_YORK, MEXICO = ZoneInfo("America/New_York"), ZoneInfo("America/Mexico_City")
MONDAY = datetime(2026, 11, 23, 16, 0, tzinfo=UTC).astimezone(NEW_YORK)
YEAR_END = datetime(2026, 12, 30, 23, 30, tzinfo=UTC).astimezone(MEXICO)
NEAR_DST = datetime(2027, 3, 6, 14, 5, tzinfo=UTC).astimezone(NEW_YORK)
WEEKDAYS_9_5 = {day: ((time(9), time(17)),) for day in range(5)}
SPLIT_HOURS = {
    0: ((time(8), time(12)), (time(13), time(20))),
    2: ((time(10), time(22)),),
    5: ((time(9), time(14)),),
}
SALON = [
    AppointmentType("haircut", "Haircut", 30),
    AppointmentType("consultation", "Consultation", 60),
]
OTHERS = [
    AppointmentType("deep_tissue", "Deep tissue massage", 90),
    AppointmentType("corte", "Corte de pelo", 30),
    AppointmentType("lesson", "Piano lesson", 45),
]
SERVICES = "We teach piano and guitar, fix cracked screens, and offer online or in person lessons."
FIELDS = {"address": "12 Main St, parking behind", "services": SERVICES}


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def phrases() -> list[str]:
    said: set[str] = set()
    for path in sorted((ROOT / "tests" / "scenarios").rglob("*.yaml")):
        said.update(_strings(yaml.safe_load(path.read_text())))
    for path in sorted((ROOT / "bench" / "data").glob("*.json")):
        said.update(_strings(json.loads(path.read_text())))
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                said.add(node.value)
    base = {text for text in said if 0 < len(text) <= 300}
    variants = set(base)
    for text in base:
        variants.update(
            (text.upper(), text.lower(), text.title(), f"um {text}", f"ok so {text}", f"{text}?")
        )
    return sorted(variants)


def readings(raw: str) -> list[str]:
    text = understanding.normalise(raw)
    reads: list[Callable[[], object]] = [
        lambda: understanding.read(raw, MONDAY, WEEKDAYS_9_5, SALON),
        lambda: understanding.read(raw, YEAR_END, SPLIT_HOURS, OTHERS),
        lambda: understanding.read(raw, NEAR_DST, WEEKDAYS_9_5, ()),
        lambda: dates.parse_when(raw, MONDAY, WEEKDAYS_9_5),
        lambda: dates.parse_when(raw, YEAR_END, SPLIT_HOURS),
        lambda: dates.parse_when(raw, NEAR_DST, None),
        lambda: understanding.read_when(raw, YEAR_END, SPLIT_HOURS),
        lambda: understanding.split_requests(raw, SALON),
        lambda: understanding.kept_context(raw),
        lambda: understanding.clean_speech(raw),
        lambda: text,
        lambda: understanding.find_name(raw, loose=True),
        lambda: detect_language(dates.fold(raw)),
        lambda: profile.profile_topic(text),
        lambda: profile.asks_about_service(text, SERVICES),
        lambda: profile.field_asked(text, raw, FIELDS, {"haircut", "free"}),
        lambda: dates._words(raw),
    ]
    found = []
    for reading in reads:
        try:
            found.append(repr(reading()))
        except Exception as error:  # a reader that raises must raise the same way after
            found.append(f"raised {type(error).__name__}: {error}")
    return found


def main() -> int:
    with open(sys.argv[1], "w") as out:
        for raw in phrases():
            out.write(json.dumps([raw, readings(raw)]) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
