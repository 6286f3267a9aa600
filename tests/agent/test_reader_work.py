"""Work a reading of one message does once: the date reader is pure in the text (at a
given moment and hours), so a text two steps date is dated once, with the same result."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from app.agent import dates, understanding
from app.calendar.availability import AppointmentType

NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC).astimezone(ZoneInfo("America/New_York"))
HOURS = {day: ((time(9), time(17)),) for day in range(5)}
TYPES = [
    AppointmentType("haircut", "Haircut", 30),
    AppointmentType("consultation", "Consultation", 60),
]
TWO_REQUESTS = [
    "cancel my friday appointment and book wednesday at 3",
    "tuesday the 24th and thursday the 26th, both at 10",
    "el martes y el jueves a las 11",
    "what are your hours? and can I get a haircut thursday at 3",
    "move my haircut to friday, and book a consultation monday at 10, no sorry, 11",
]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()

    def parse_when(text: str, now: datetime, hours: dates.Hours | None = None) -> dates.When:
        calls[text] += 1
        return dates.parse_when(text, now, hours)

    monkeypatch.setattr(understanding, "parse_when", parse_when)
    return calls


@pytest.mark.parametrize("raw", TWO_REQUESTS)
def test_a_message_of_two_requests_dates_each_text_once(raw: str, counted: Counter[str]) -> None:
    message = understanding.read(raw, NOW, HOURS, TYPES)
    assert message.rest is not None
    assert counted and max(counted.values()) == 1, counted


@pytest.mark.parametrize("raw", TWO_REQUESTS)
def test_what_was_dated_once_reads_as_dating_it_again(raw: str) -> None:
    head, rest = understanding.split_requests(raw, TYPES)
    dated: understanding.Dated = {}
    shared = understanding.shared_time(head, rest, NOW, HOURS, dated)
    assert shared == understanding.shared_time(head, rest, NOW, HOURS)
    assert dated, "the halves were dated"
    assert understanding.read_when(shared[0], NOW, HOURS, dated) == understanding.read_when(
        shared[0], NOW, HOURS
    )
    # A text never dated is dated, not taken from another text's reading.
    other: understanding.Dated = {"tomorrow at 9": dates.parse_when("friday", NOW, HOURS)}
    assert understanding.read_when("tomorrow at 9", NOW, HOURS, {}) == dates.parse_when(
        "tomorrow at 9", NOW, HOURS
    )
    assert (
        understanding.read_when("monday at 9", NOW, HOURS, other).day
        == dates.parse_when("monday at 9", NOW, HOURS).day
    )
