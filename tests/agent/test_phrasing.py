"""The engine's wording of days and times, built from tables instead of strftime: the
same text strftime gives (C locale) on every day of a leap year and every minute."""

from __future__ import annotations

from datetime import date, time, timedelta

from app.agent import phrasing as say


def test_day_words_are_strftimes() -> None:
    day = date(2028, 1, 1)
    while day.year == 2028:
        assert say.day_text(day, "sms") == f"{day:%a %b} {day.day}"
        assert say.day_text(day, "voice") == f"{day:%A}, {day:%B} {say.ordinal(day.day)}"
        assert say.weekdays(day) == f"{day:%A}s"
        day += timedelta(days=1)


def test_hh_mm_is_strftime() -> None:
    for minute in range(24 * 60):
        moment = time(minute // 60, minute % 60)
        assert say.hh_mm(moment) == moment.strftime("%H:%M")
