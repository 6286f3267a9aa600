"""Spoken dates and times, read with the pinned clock: Monday 23 November 2026, 08:00 in
Los Angeles, against the demo agent's hours (weekdays 9-12 and 13-17, Saturday 10-14)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from app.agent.dates import When, parse_when, resolve_hour, shifted
from app.calendar.availability import Schedule
from app.demo import DEMO_HOURS
from tests.conftest import PINNED_NOW

LA = ZoneInfo("America/Los_Angeles")
NOW = PINNED_NOW.astimezone(LA)
HOURS = Schedule.from_settings(timezone="America/Los_Angeles", weekly_hours=DEMO_HOURS).hours
MON, TUE, WED, THU, FRI, SAT = (date(2026, 11, d) for d in (23, 24, 25, 26, 27, 28))
NEXT_MON, NEXT_TUE = date(2026, 11, 30), date(2026, 12, 1)


def when(text: str) -> When:
    return parse_when(text, NOW, HOURS)


def test_pinned_clock_is_monday_morning_in_los_angeles() -> None:
    assert NOW.weekday() == 0 and NOW.hour == 8 and NOW.date() == MON


@pytest.mark.parametrize(
    ("text", "day", "at"),
    [
        # dateparser alone reads "tomorrow at 3" as 09:00: the hour goes into the hours.
        ("can I come in tomorrow at 3?", TUE, time(15)),
        ("Hi, can I book a haircut tomorrow at 3pm?", TUE, time(15)),
        ("tomorrow at 3 p.m.", TUE, time(15)),
        ("tomorrow at 11", TUE, time(11)),
        ("tomorrow at 9", TUE, time(9)),
        ("tomorrow at 12", TUE, time(12)),
        ("half past two tomorrow", TUE, time(14, 30)),
        ("three thirty on thursday", THU, time(15, 30)),
        ("at three tomorrow", TUE, time(15)),
        ("noon on wednesday", WED, time(12)),
        ("5:30 p.m. friday", FRI, time(17, 30)),
        ("friday at 10.30", FRI, time(10, 30)),
        ("quarter to 4 on tuesday", TUE, time(15, 45)),
        ("Dec 3rd at 10", date(2026, 12, 3), time(10)),
        ("December 3 at 2", date(2026, 12, 3), time(14)),
        ("12/3 at 4pm", date(2026, 12, 3), time(16)),
        ("the 30th at 1", NEXT_MON, time(13)),
        ("the day after tomorrow at 4", WED, time(16)),
        ("10:30", None, time(10, 30)),
        ("how about 1", None, time(13)),
        ("3", None, time(15)),
    ],
)
def test_date_and_time(text: str, day: date | None, at: time) -> None:
    parsed = when(text)
    assert (parsed.day, parsed.at) == (day, at)


@pytest.mark.parametrize(
    ("text", "day", "part"),
    [
        ("what do you have next Tuesday morning?", NEXT_TUE, "morning"),
        ("any openings on Friday afternoon?", FRI, "afternoon"),
        ("tuesday morning", TUE, "morning"),
        ("this afternoon", MON, "afternoon"),
        ("tonight", MON, "evening"),
        ("tomorrow evening", TUE, "evening"),
        ("something after lunch on wednesday", WED, "afternoon"),
    ],
)
def test_part_of_day_is_kept(text: str, day: date, part: str) -> None:
    parsed = when(text)
    assert (parsed.day, parsed.part, parsed.at) == (day, part, None)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        # Bare weekday: the soonest one after today ("Monday" on a Monday is next week).
        ("tuesday", TUE),
        ("friday", FRI),
        ("monday", NEXT_MON),
        ("thurs", THU),
        ("this coming tuesday", TUE),
        # "this X": in the current Monday-Sunday week, today included.
        ("this friday", FRI),
        ("this monday", MON),
        ("this saturday", SAT),
        # "next X": in the next calendar week, even when X is tomorrow.
        ("next tuesday", NEXT_TUE),
        ("next monday", NEXT_MON),
        ("next friday", date(2026, 12, 4)),
        ("next week", NEXT_MON),
        ("the weekend", SAT),
        ("today", MON),
        ("tomorrow", TUE),
        ("tmrw", TUE),
        ("in two weeks", date(2026, 12, 7)),
        ("in 3 days", THU),
        # Day of month: the next date with that day (dateparser alone says Jan 1, 2027).
        ("the 1st", NEXT_TUE),
        ("the 23rd", MON),
        ("the 22nd", date(2026, 12, 22)),
        ("december 24th", date(2026, 12, 24)),
        ("24 december", date(2026, 12, 24)),
        ("jan 5", date(2027, 1, 5)),
    ],
)
def test_day_semantics(text: str, day: date) -> None:
    assert when(text).day == day


def test_dates_after_the_spring_dst_change_keep_local_time() -> None:
    # US clocks go forward on Sunday 14 March 2027: 3 PM is then 22:00 UTC, not 23:00.
    parsed = when("March 15 at 3")
    assert parsed.day == date(2027, 3, 15) and parsed.at == time(15)
    local = datetime.combine(parsed.day, parsed.at, LA)
    assert local.astimezone(UTC) == datetime(2027, 3, 15, 22, 0, tzinfo=UTC)
    # Before the change (still PST) the same local time is 23:00 UTC.
    before = when("march 12th at 3")
    assert datetime.combine(before.day, before.at, LA).astimezone(UTC).hour == 23


def test_a_date_said_on_the_day_before_dst_ends_uses_that_days_offset() -> None:
    # 1 November 2026 is when PDT ends; relative phrases resolve in local days, not 24h.
    saturday_night = datetime(2026, 10, 31, 22, 0, tzinfo=LA)
    parsed = parse_when("tomorrow at 10", saturday_night, HOURS)
    assert parsed.day == date(2026, 11, 1) and parsed.at == time(10)
    parsed = parse_when("monday at 10", saturday_night, HOURS)
    assert parsed.day == date(2026, 11, 2)


def test_nothing_about_time_gives_an_empty_when() -> None:
    for text in ("asdf", "purple monkey", "book me a consultation", "yes", "cancel it"):
        assert when(text).empty, text


@pytest.mark.parametrize(
    ("hour", "meridiem", "part", "expected"),
    [
        (3, None, None, time(15)),  # inside afternoon hours
        (9, None, None, time(9)),
        (11, None, None, time(11)),
        (1, None, None, time(13)),
        (12, None, None, time(12)),
        (7, None, None, time(7)),  # closed either way: said the usual way (7 AM)
        (6, None, None, time(18)),
        (8, None, "evening", time(20)),
        (3, "am", None, time(3)),  # written out: always wins
        (12, "am", None, time(0)),
        (11, None, "afternoon", time(11)),  # no afternoon 11: fall back to the hours
        (15, None, None, time(15)),
    ],
)
def test_bare_hours_are_read_against_business_hours(
    hour: int, meridiem: str | None, part: str | None, expected: time
) -> None:
    assert resolve_hour(hour, 0, meridiem, part, HOURS) == expected


def test_bare_hour_uses_the_days_own_hours() -> None:
    # An evening clinic: 8 means 8 PM there, while a morning-only day reads it as 8 AM.
    hours = {0: [(time(17), time(21))], 1: [(time(7), time(12))]}
    assert resolve_hour(8, 0, None, None, hours, MON) == time(20)
    assert resolve_hour(8, 0, None, None, hours, TUE) == time(8)


DEC = {d: date(2026, 12, d) for d in range(1, 32)}


@pytest.mark.parametrize(
    ("text", "day", "at"),
    [
        ("a week from friday", DEC[4], None),
        ("two weeks from tomorrow at 3", DEC[8], time(15)),
        ("Wednesday the 9th at 10", DEC[9], time(10)),
        ("@ 1030", None, time(10, 30)),
        ("1030", None, time(10, 30)),
        ("tomorrow @ 1030", TUE, time(10, 30)),
        ("friday at 1500", FRI, time(15)),
        ("17:00 friday", FRI, time(17)),
        ("tomorrow 3", TUE, time(15)),
        ("friday 10", FRI, time(10)),
        ("3 not 2", None, time(15)),
        ("at 4 not 5", None, time(16)),
        ("midnight", None, time(0)),
        ("quarter past 2 on friday", FRI, time(14, 15)),
        ("noon tomorrow", TUE, time(12)),
        ("in 3 days at 11", THU, time(11)),
        ("wensday at 2", WED, time(14)),
        ("thurday afternoon at 2", THU, time(14)),
        ("yesterday at 10", date(2026, 11, 22), time(10)),
        ("last monday at 10", date(2026, 11, 16), time(10)),
        # Spanish, read by the same rules.
        ("el martes a las 3 de la tarde", TUE, time(15)),
        ("lunes a las diez", NEXT_MON, time(10)),
        ("el 3 de diciembre a las 11", DEC[3], time(11)),
    ],
)
def test_more_expressions(text: str, day: date | None, at: time | None) -> None:
    parsed = when(text)
    assert (parsed.day, parsed.at, parsed.unreadable) == (day, at, None)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("mittwoch at 3", "mittwoch"),
        ("the 35th", "the 35th"),
        ("wednesday the 10th", "Wednesday the 10th"),  # the 10th is a Thursday
        ("35 de diciembre", "35 december"),
    ],
)
def test_unreadable_days_are_named_not_guessed(text: str, said: str) -> None:
    parsed = when(text)
    assert parsed.day is None and parsed.unreadable == said


def test_ranges_and_corrections() -> None:
    this_week = when("after 3 this week")
    assert (this_week.day, this_week.until, this_week.after) == (MON, date(2026, 11, 29), time(15))
    between = when("between 2 and 4 on thursday")
    assert (between.day, between.after, between.before, between.at) == (
        THU,
        time(14),
        time(16),
        None,
    )
    assert when("before noon tomorrow").before == time(12)
    assert when("end of the week").day == FRI
    assert when("next week").until == date(2026, 12, 6)
    assert when("an hour earlier").shift_minutes == -60
    assert when("30 minutes later").shift_minutes == 30
    assert when("half an hour earlier").shift_minutes == -30


def test_weekday_with_a_week_and_spanish_typos() -> None:
    assert when("haircut tuesday next week at 11am").day == NEXT_TUE
    assert when("friday this week").day == FRI
    assert when("el jeves a las 10").day == THU
    assert when("mnn a las 4").day == TUE
    assert when("haircut on blursday at 3").unreadable == "blursday"


@pytest.mark.parametrize(
    ("text", "day", "at"),
    [
        ("book a consultation two days from now at 10", WED, time(10)),
        ("a couple of days from now at 3", WED, time(15)),
        ("haircut 3 days from now at 9", THU, time(9)),
        ("haircut on the twenty-first at 2", date(2026, 12, 21), time(14)),
        ("monday the thirtieth at 3", NEXT_MON, time(15)),
        ("december first at ten thirty a m", NEXT_TUE, time(10, 30)),
        ("the first of december at 2", NEXT_TUE, time(14)),
        ("cita en dos dias a las 10", WED, time(10)),
        ("quiero cita para antier a las 10", date(2026, 11, 21), time(10)),
        ("el lunes pasado a las 3", date(2026, 11, 16), time(15)),
    ],
)
def test_relative_counts_ordinal_words_and_spanish_past_days(
    text: str, day: date, at: time
) -> None:
    found = when(text)
    assert (found.day, found.at, found.unreadable) == (day, at, None)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("haircut on the thirty-fifth at 2", "the 35th"),
        ("3 sleeps from now at 3", "3 sleeps from now"),
        ("cut on the umpteenth at 3", "on the umpteenth"),
        ("haircut on the fourty-fifth at 2", "on the fourty-fifth"),
    ],
)
def test_day_words_left_unread_are_named_not_defaulted(text: str, said: str) -> None:
    found = when(text)
    assert found.day is None and found.unreadable == said


@pytest.mark.parametrize("text", ["the second one", "the second", "I'll take the first available"])
def test_low_ordinals_stay_choices_not_days(text: str) -> None:
    assert when(text).day is None and when(text).unreadable is None


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("10 past 3 on friday", time(15, 10)),
        ("twenty to 4 on friday", time(15, 40)),
        ("friday around 2ish", time(14)),
        ("friday at quarter past 1", time(13, 15)),
    ],
)
def test_spoken_clock_times(text: str, at: time) -> None:
    found = when(text)
    assert (found.day, found.at) == (FRI, at)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("push it back an hour", 60),
        ("push it back an hour and a half", 90),
        ("bring it forward 30 minutes", -30),
        ("can you move it up by 15 minutes", -15),
    ],
)
def test_shifts_with_the_verb_in_front(text: str, minutes: int) -> None:
    assert when(text).shift_minutes == minutes


def test_friday_week_and_last_week_weekday() -> None:
    assert when("friday week at 10").day == date(2026, 12, 4)
    assert when("thursday last week at 1").day == date(2026, 11, 19)
    assert when("haircut in 3 months").day == date(2027, 2, 23)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("haircut on christmas eve at 10am", date(2026, 12, 24)),
        ("xmas day", date(2026, 12, 25)),
        ("the day after thanksgiving, 11am", FRI),
        ("3 days before christmas", date(2026, 12, 22)),
        ("new year's eve at 2", date(2026, 12, 31)),
        ("new years day", date(2027, 1, 1)),
        ("on MLK day at 10am", date(2027, 1, 18)),
        ("memorial day", date(2027, 5, 31)),
        ("valentine's day please", date(2027, 2, 14)),
        ("corte en nochebuena a las 11", date(2026, 12, 24)),
    ],
)
def test_holidays_by_name_are_their_next_date(text: str, day: date) -> None:
    assert when(text).day == day


def test_a_holiday_just_past_is_that_day_so_it_is_refused_as_past() -> None:
    boxing_day = datetime(2026, 12, 26, 9, tzinfo=LA)
    assert parse_when("christmas at 10", boxing_day, HOURS).day == date(2026, 12, 25)


def test_a_surname_is_no_holiday() -> None:
    assert when("this is Tomas Reyes, haircut tuesday").day == TUE


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("book me for 2 days ago at 3pm", date(2026, 11, 21)),
        ("a week ago", date(2026, 11, 16)),
    ],
)
def test_days_ago_are_past_days_not_unreadable(text: str, day: date) -> None:
    found = when(text)
    assert (found.day, found.unreadable) == (day, None)


@pytest.mark.parametrize(
    ("text", "day", "until"),
    [
        ("room at the end of next week?", date(2026, 12, 4), date(2026, 12, 6)),
        ("end of the week", FRI, date(2026, 11, 29)),
        ("next weekend", date(2026, 12, 5), date(2026, 12, 6)),
        ("this weekend", SAT, date(2026, 11, 29)),
        ("haircut next march", date(2027, 3, 1), date(2027, 3, 31)),
        ("early january", date(2027, 1, 1), date(2027, 1, 10)),
        ("haircut end of the month at 3", MON, date(2026, 11, 30)),
        ("mid december", date(2026, 12, 11), date(2026, 12, 20)),
        ("the weekend after thanksgiving", SAT, date(2026, 11, 29)),
    ],
)
def test_ranges_of_days(text: str, day: date, until: date) -> None:
    found = when(text)
    assert (found.day, found.until) == (day, until)


def test_this_may_is_no_month() -> None:
    assert when("this may be a silly question").day is None


@pytest.mark.parametrize(
    ("text", "day", "at"),
    [
        ("haircut in two weeks, monday at 3", date(2026, 12, 7), time(15)),
        ("in a week on wednesday at 10", date(2026, 12, 2), time(10)),
        ("a fortnight from today at 2pm", date(2026, 12, 7), time(14)),
        ("in a fortnight", date(2026, 12, 7), None),
        ("haircut thurs 3.30pm", THU, time(15, 30)),
    ],
)
def test_weeks_ahead_and_dotted_times(text: str, day: date, at: time | None) -> None:
    found = when(text)
    assert (found.day, found.at) == (day, at)


def test_no_later_than_is_an_upper_bound() -> None:
    found = when("consultation wednesday, no later than 11")
    assert (found.after, found.before) == (None, time(11))


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("actually the day before", -1440),
        ("the following day", 1440),
        ("oh wait the following week", 7 * 1440),
        ("a week later", 7 * 1440),
        ("can we do it 2 days later", 2 * 1440),
        ("push it back a week", 7 * 1440),
        ("an hour before that", -60),
        ("mejor una hora más tarde", 60),
        ("media hora antes", -30),
        ("mejor el día anterior", -1440),
    ],
)
def test_shifts_by_days_and_weeks_relative_to_the_proposal(text: str, minutes: int) -> None:
    assert when(text).shift_minutes == minutes


@pytest.mark.parametrize(
    "text", ["the day after tomorrow at 3", "the day before christmas", "2 days after monday"]
)
def test_a_named_day_after_before_is_no_shift(text: str) -> None:
    assert when(text).shift_minutes is None


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("4 not 3 sorry", time(16)),
        ("make it the afternoon instead, 2?", time(14)),
        ("corte el miércoles a las 6 menos cuarto", time(17, 45)),
        ("cuarto para las 6 el jueves", time(17, 45)),
    ],
)
def test_corrected_and_spoken_times(text: str, at: time) -> None:
    assert when(text).at == at


def test_one_day_is_a_vague_day_asked_about() -> None:
    found = when("haircut one day next-ish")
    assert found.day is None and found.unreadable == "one day"


@pytest.mark.parametrize(
    ("text", "now", "day", "at"),
    [
        ("can I come in in an hour?", NOW, MON, time(9)),
        ("in 45 mins", NOW.replace(minute=20), MON, time(9, 15)),
        ("in half an hour", NOW.replace(minute=50, second=30), MON, time(9, 30)),
        ("¿puedo ir dentro de una hora?", NOW, MON, time(9)),
        ("en media hora", NOW, MON, time(8, 30)),
    ],
)
def test_from_now_is_today_rounded_up_to_the_quarter_hour(
    text: str, now: datetime, day: date, at: time
) -> None:
    found = parse_when(text, now, HOURS)
    assert (found.day, found.at) == (day, at)


def test_from_now_gives_way_to_a_day_named() -> None:
    assert when("tomorrow in an hour").day == TUE and when("tomorrow in an hour").at is None


@pytest.mark.parametrize(
    ("text", "day", "at"),
    [
        ("half twelve on friday", FRI, time(12, 30)),
        ("haircut quarter after 3 friday", FRI, time(15, 15)),
        ("wednesday at ten after two", WED, time(14, 10)),
        ("cut nxt tues 10am", NEXT_TUE, time(10)),
        ("next wk tuesday at 10", NEXT_TUE, time(10)),
        ("15h30 tuesday", TUE, time(15, 30)),
    ],
)
def test_more_spoken_and_texted_clock_forms(text: str, day: date, at: time) -> None:
    found = when(text)
    assert (found.day, found.at, found.after) == (day, at, None)


def test_same_time_next_week_is_a_week_after_the_proposal() -> None:
    found = when("hmm same time next week instead")
    assert (found.day, found.shift_minutes) == (None, 7 * 1440)


@pytest.mark.parametrize(
    ("text", "part"), [("thursday before work", "morning"), ("after school", "afternoon")]
)
def test_parts_of_the_day_named_by_routine(text: str, part: str) -> None:
    assert when(text).part == part


@pytest.mark.parametrize(
    ("text", "after", "before"),
    [
        ("not before 2 on thursday", time(14), None),
        ("not after 11 tuesday", None, time(11)),
        ("between 1-3pm friday", time(13), time(15)),
        ("10-11am on wednesday", time(10), time(11)),
        ("between 11 and 1 friday", time(11), time(13)),
    ],
)
def test_negated_and_dashed_ranges(text: str, after: time | None, before: time | None) -> None:
    found = when(text)
    assert (found.after, found.before, found.at) == (after, before, None)


@pytest.mark.parametrize(
    ("text", "day", "at"),
    [
        ("noonish tomorrow", TUE, time(12)),
        ("tomorrow at lunch", TUE, time(12)),
        ("a week today", NEXT_MON, None),
        ("a week tomorrow at 3", NEXT_TUE, time(15)),
        ("a week on friday at 10", date(2026, 12, 4), time(10)),
        ("the monday after next at 10", date(2026, 12, 7), time(10)),
    ],
)
def test_british_and_after_next_days(text: str, day: date, at: time | None) -> None:
    found = when(text)
    assert (found.day, found.at) == (day, at)


def test_the_week_after_next_is_a_range() -> None:
    found = when("the week after next")
    assert (found.day, found.until) == (date(2026, 12, 7), date(2026, 12, 13))


@pytest.mark.parametrize(
    ("text", "day", "at", "after", "before"),
    [
        ("entre las 2 y las 4 el martes", TUE, None, time(14), time(16)),
        ("de 2 a 4 el martes", TUE, None, time(14), time(16)),
        ("el primero de diciembre", NEXT_TUE, None, None, None),
        ("el jueves no, el viernes", FRI, None, None, None),
        ("Friday? no, thursday", THU, None, None, None),
        ("friday no problem at 3", FRI, time(15), None, None),
        ("a las 3, no a las 2", None, time(15), None, None),
        ("um yeah so like thursday at uh three", THU, time(15), None, None),
    ],
)
def test_spanish_ranges_rejections_and_spoken_fillers(
    text: str, day: date | None, at: time | None, after: time | None, before: time | None
) -> None:
    found = when(text)
    assert (found.day, found.at, found.after, found.before) == (day, at, after, before)


@pytest.mark.parametrize(
    ("text", "after", "before"),
    [
        ("late afternoon thursday", time(15), None),
        ("early afternoon thursday", None, time(15)),
        ("late morning tuesday", time(10), None),
        ("early morning friday", None, time(10)),
    ],
)
def test_early_and_late_parts_of_the_day(
    text: str, after: time | None, before: time | None
) -> None:
    found = when(text)
    assert (found.after, found.before) == (after, before)


@pytest.mark.parametrize(
    ("text", "day", "until"),
    [
        ("early next week", NEXT_MON, date(2026, 12, 2)),
        ("late next week", date(2026, 12, 3), date(2026, 12, 6)),
    ],
)
def test_early_and_late_next_week(text: str, day: date, until: date) -> None:
    found = when(text)
    assert (found.day, found.until) == (day, until)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("25/12 at 10", date(2026, 12, 25)),
        ("thurs 26/11 at 2", THU),
        ("12/3 at 10", date(2026, 12, 3)),
    ],
)
def test_numeric_dates_are_month_first_unless_the_first_cannot_be_a_month(
    text: str, day: date
) -> None:
    found = when(text)
    assert (found.day, found.unreadable) == (day, None)


def test_at_night_is_the_evening() -> None:
    assert when("friday 7 at night").at == time(19)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("haircut on easter at 10", date(2027, 3, 28)),
        ("good friday", date(2027, 3, 26)),
        ("black friday at 10", FRI),
        ("cyber monday", NEXT_MON),
        ("the friday after christmas", date(2027, 1, 1)),
        ("the monday before christmas", date(2026, 12, 21)),
        ("the last friday of the month at 2", FRI),
        ("the first monday of december", date(2026, 12, 7)),
        ("the 2nd tuesday in january", date(2027, 1, 12)),
    ],
)
def test_moving_feasts_and_nth_weekdays(text: str, day: date) -> None:
    found = when(text)
    assert (found.day, found.unreadable) == (day, None)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("haircut on hanukkah at 2", "hanukkah"),
        ("haircut on my day off at 3", "my day off"),
        ("the day of the game at 3", "the day of the game"),
    ],
)
def test_days_we_cannot_know_are_asked_about(text: str, said: str) -> None:
    found = when(text)
    assert (found.day, found.unreadable) == (None, said)


def test_a_greeting_is_no_holiday() -> None:
    assert when("holi quiero un corte el martes").day == TUE


@pytest.mark.parametrize(
    ("text", "moved"),
    [
        ("the next day at 3", datetime(2026, 11, 25, 15, tzinfo=LA)),
        ("the next day", datetime(2026, 11, 25, 10, tzinfo=LA)),
        ("an hour later", datetime(2026, 11, 24, 11, tzinfo=LA)),
        ("a week later at 9", datetime(2026, 12, 1, 9, tzinfo=LA)),
    ],
)
def test_shifted_moves_the_proposal_and_takes_a_time_said_with_a_day_shift(
    text: str, moved: datetime
) -> None:
    proposal = datetime(2026, 11, 24, 10, tzinfo=LA)
    assert shifted(proposal, when(text)) == moved


def test_my_next_day_off_is_no_shift() -> None:
    found = when("haircut on my next day off at 3")
    assert (found.shift_minutes, found.unreadable) == (None, "my next day off")


@pytest.mark.parametrize(
    ("text", "day", "until"),
    [
        ("I'm away this week, could I come the following week?", NEXT_MON, date(2026, 12, 6)),
        ("next week is bad, the week after?", date(2026, 12, 7), date(2026, 12, 13)),
    ],
)
def test_a_week_shift_said_with_a_range_moves_the_range(text: str, day: date, until: date) -> None:
    found = when(text)
    assert (found.day, found.until, found.shift_minutes) == (day, until, None)


@pytest.mark.parametrize(
    ("text", "day", "until"),
    [
        ("i need a haircut before christmas", MON, date(2026, 12, 24)),
        ("anything after thanksgiving?", FRI, date(2026, 12, 3)),
        ("thanks, happy new year!", None, None),
        ("merry christmas and see you tuesday", TUE, None),
    ],
)
def test_before_and_after_a_holiday_and_wishes(
    text: str, day: date | None, until: date | None
) -> None:
    found = when(text)
    assert (found.day, found.until) == (day, until)
