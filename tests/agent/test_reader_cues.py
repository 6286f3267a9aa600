"""The reader skips a regex when the message lacks a literal every match of it holds (a
"cue"): sound only if no match can be without its cue. Checked on every phrase the
scenario suites and the date corpora say, and on phrases written for each rule."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from datetime import datetime, time
from pathlib import Path
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

import pytest
import yaml

from app.agent import catalog, dates, profile, understanding

ROOT = Path(__file__).resolve().parents[2]
# At least one phrase each rule rewrites, so a cue that drops a rule is caught even if
# the suites stopped saying it.
WRITTEN = [
    "tomorrow at 3 p.m.",
    "10 a.m. on friday",
    "10.30 on monday",
    "at 15h30",
    "thursday no, friday at 3",
    "next wk",
    "nxt tuesday",
    "same time next week",
    "4 not 3",
    "wednesday not tuesday",
    "at 1030",
    "1030am",
    "ten past 3",
    "quarter after 2",
    "twenty to 4",
    "2ish",
    "noonish",
    "arvo",
    "a week on friday",
    "monday after next",
    "friday week",
    "a fortnight from now",
    "the twenty-first",
    "the second of december",
    "3 thirty",
    "2 fifteen",
    "4 forty-five",
    "an hour and a half later",
    "not before 2",
    "pasado mañana a las 3",
    "mnn por la mañana",
    "el lunes por la tarde",
    "de la noche",
    "esta tarde",
    "esta mañana",
    "hoy",
    "antier",
    "ayer",
    "en 2 días",
    "dentro de una hora",
    "la semana pasada",
    "el martes pasado",
    "una hora más tarde",
    "una hora antes",
    "adelantarla una hora",
    "atrasarla una hora",
    "al mediodía",
    "el cuarto para las 3",
    "a las 3 menos cuarto",
    "a las 4 menos diez",
    "dos horas después",
    "el día anterior",
    "el día siguiente",
    "la semana siguiente",
    "temprano",
    "a medianoche",
    "la semana que viene",
    "esta semana",
    "el fin de semana",
    "el jueves que viene",
    "el próximo lunes",
    "entre las 2 y las 4",
    "de 2 a 4",
    "el primero de diciembre",
    "a las once",
    "at dos de la tarde",
    "después de las 3",
    "antes de las 5",
    "a las 3 y media",
    "a las 3 y cuarto",
    "el 3 de diciembre",
    "el dia 5",
    "wednesday at 4, no sorry, 3",
    "friday I mean thursday",
    "at 2, or rather 3",
    "make that 11",
    "el jueves, perdón, el viernes",
    "digo a las 4",
    "quiero decir el martes",
]


def phrases() -> Iterator[str]:
    yield from WRITTEN
    for path in sorted((ROOT / "tests" / "scenarios").rglob("*.yaml")):
        yield from _strings(yaml.safe_load(path.read_text()))
    for path in sorted((ROOT / "bench" / "data").glob("date_corpus*.json")):
        yield from (row["text"] for row in json.loads(path.read_text())["phrases"])


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.fixture(scope="module")
def folded() -> list[str]:
    return sorted({dates.fold(text) for text in phrases()})


def test_each_rewrite_match_holds_its_cue(folded: list[str]) -> None:
    rewrites = [value for value in vars(dates).values() if isinstance(value, dates.Rewrite)]
    assert len(rewrites) > 20
    matched = set()
    for text in folded:
        for rewrite in rewrites:
            for match in rewrite.pattern.finditer(text):
                matched.add(rewrite.pattern.pattern)
                assert rewrite.cue in match.group(0) or rewrite.cue in text, (text, rewrite)
    # Every rewrite with a cue was exercised at least once, or the check says nothing.
    assert {r.pattern.pattern for r in rewrites if r.cue} <= matched


def test_each_spanish_rule_match_holds_a_cue(folded: list[str]) -> None:
    matched = set()
    for text in folded:
        for pattern, _ in dates.SPANISH_RULES:
            for match in pattern.finditer(text):
                matched.add(pattern.pattern)
                assert any(cue in match.group(0) for cue in dates.SPANISH_CUES), match
    assert {pattern.pattern for pattern, _ in dates.SPANISH_RULES} == matched


def test_each_self_correction_holds_a_cue() -> None:
    said = [text for text in phrases() if understanding.SELF_CORRECTION.search(text)]
    assert len(said) > 7
    assert all(understanding._may_correct_itself(text) for text in said)
    assert not understanding._may_correct_itself("tomorrow at 3")
    assert understanding._may_correct_itself("mañana a las 3")  # not ASCII: the pattern decides


# --- cues checked against a pattern's structure --------------------------------------
# Every match of a sequence holds each of its literal runs (zero-width \b, ^ and $ do not
# break a run) and whatever its groups and at-least-once repeats hold; every match of an
# alternation holds what one of its branches holds. Read off sre's parse tree.


def _always_holds_cue(items: list[tuple[object, object]], cues: tuple[str, ...]) -> bool:
    run: list[str] = []
    for op, value in [*items, (None, None)]:
        if op is sre.LITERAL:
            run.append(chr(value))  # type: ignore[arg-type]
            continue
        if op is sre.AT:
            continue
        if any(cue in "".join(run) for cue in cues):
            return True
        run = []
        if op is sre.SUBPATTERN:
            inner = [list(value[-1])]  # type: ignore[index]
        elif op is sre.BRANCH:
            inner = [list(branch) for branch in value[1]]  # type: ignore[index]
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and value[0] >= 1:  # type: ignore[index]
            inner = [list(value[2])]  # type: ignore[index]
        else:
            continue
        if all(_always_holds_cue(branch, cues) for branch in inner):
            return True
    return False


def cued_rules() -> list[tuple[str, dates.Cued]]:
    rules = [(name, value) for name, value in vars(dates).items() if isinstance(value, dates.Cued)]
    rules += [(n, v) for n, v in vars(understanding).items() if isinstance(v, dates.Cued)]
    return rules + [(f"topic {topic}", rule) for topic, rule in profile.CUED_TOPICS]


def test_cues_are_held_by_every_match_by_construction() -> None:
    """Every possible match of a cued rule (not only the suites') holds one of its cues."""
    assert len(cued_rules()) > 10
    for name, rule in cued_rules():
        assert not rule.pattern.flags & re.IGNORECASE, name
        tree = list(sre_parse.parse(rule.pattern.pattern, rule.pattern.flags))
        assert _always_holds_cue(tree, rule.cues), name
    # The check itself: a cue that a branch can do without is caught.
    loose = re.compile(r"\b(?:after|before|by)\s+\d")
    assert not _always_holds_cue(list(sre_parse.parse(loose.pattern)), ("after", "before"))
    assert _always_holds_cue(list(sre_parse.parse(loose.pattern)), ("after", "before", "by"))


def test_each_cued_match_holds_its_cue(folded: list[str]) -> None:
    matched = set()
    for text in folded:
        words = dates._words(text)
        for name, rule in cued_rules():
            for match in rule.pattern.finditer(words):
                matched.add(name)
                assert rule.may_match(match.group(0)), (name, match.group(0))
    assert len(matched) > 10


def test_rules_read_ascii_only(folded: list[str]) -> None:
    """The rules compiled ASCII-only read what `_words` and `normalise` leave, which is
    always plain ASCII (their patterns drop everything else)."""
    for text in folded:
        assert dates._words(text).isascii(), text
        assert understanding.normalise(text).isascii(), text
    assert dates._words("¿Mañana a las 3? ☺ ſ").isascii()


# --- whole-word rules checked by the words they can match ------------------------------


def _language(items: list[tuple[object, object]]) -> set[str]:
    """Every string a finite pattern (literals, alternations, groups, `?`; zero-width
    \\b and lookaheads add nothing) matches."""
    strings = {""}
    for op, value in items:
        if op is sre.LITERAL:
            options = {chr(value)}  # type: ignore[arg-type]
        elif op in (sre.AT, sre.ASSERT):
            continue
        elif op is sre.SUBPATTERN:
            options = _language(list(value[-1]))  # type: ignore[index]
        elif op is sre.BRANCH:
            options = set().union(*(_language(list(b)) for b in value[1]))  # type: ignore[index]
        elif op is sre.MAX_REPEAT and value[:2] == (0, 1):  # type: ignore[index]
            options = {"", *_language(list(value[2]))}  # type: ignore[index]
        else:
            raise AssertionError(f"not a finite word rule: {op}")
        strings = {s + o for s in strings for o in options}
    return strings


def test_shorthand_words_are_every_word_a_rule_matches() -> None:
    """expand_shorthand skips an ASCII message none of whose words is one of these."""
    words: set[str] = set()
    for pattern, _ in understanding.SHORTHAND:
        tree = list(sre_parse.parse(pattern))
        assert tree[0] == (sre.AT, sre.AT_BOUNDARY), pattern  # \b, then one whole word
        words |= _language(tree)
    assert all(re.fullmatch(r"\w+", word, re.ASCII) for word in words)
    assert {word.lower() for word in words} == understanding.SHORTHAND_WORDS
    assert understanding.expand_shorthand("see U tmrw") == "see you tomorrow"


def test_each_stutter_is_a_word_said_twice_in_a_row(folded: list[str]) -> None:
    said = [text for text in [*phrases(), "On  ON tuesday", "the the"] if text.isascii()]
    stutters = [text for text in said if understanding.STUTTER.search(text)]
    assert len(stutters) > 3
    assert all(understanding._may_stutter(text) for text in stutters)
    assert not understanding._may_stutter("on tuesday, on friday")
    assert understanding._may_stutter("mañana mañana")  # not ASCII: the pattern decides


def test_two_days_with_one_time_hold_a_whole_and() -> None:
    """shared_time tries TWO_DAYS only when the message's whitespace-split words hold its
    "and", "y" or "&": every phrase it matches does, in any case and spacing."""
    written = [
        "tuesday the 24th and thursday the 26th, both at 10",
        "el martes y el jueves a las 11",
        "Monday\tAND\nfriday at 2",
        "the 3rd & the 5th at 4",
        "Friday Y Saturday at noon",
    ]
    said = [*phrases(), *written]
    matched = [text for text in said if understanding.TWO_DAYS.match(text)]
    assert len(matched) >= len(written)
    assert all(understanding._may_name_two_days(text) for text in matched)
    # What the pattern reads as one word is not one here either: no "and" to split on.
    for text in ("monday, thursday at 10", "mondayand friday", "monday andfriday at 3"):
        assert understanding.TWO_DAYS.match(text) is None
        assert not understanding._may_name_two_days(text)
    assert understanding._may_name_two_days("lunes y martes")
    assert understanding._may_name_two_days("Ǆ tuesday")  # not ASCII: the pattern decides


def test_ascii_words_are_the_texts_own_words_whatever_was_split_before() -> None:
    texts = ["Hi tmrw", "hi tmrw", "HI TMRW", "on on friday", "hi tmrw", "", "a-b c'd"]
    for text in [*texts, *reversed(texts)]:
        assert understanding.ascii_words(text) == re.findall(r"\w+", text.lower(), re.ASCII)
    assert understanding.ascii_words("mañana") is None


def test_each_hesitation_is_a_whole_word_of_filler_letters() -> None:
    """clean_speech scans for fillers only when a word could be one."""
    written = ["Umm, tuesday", "UH at 3", "erm friday", "ahh ok", "hmm, 2pm", "mm-hmm yes", "eh?"]
    said = [text for text in [*phrases(), *written] if text.isascii()]
    hesitant = [text for text in said if understanding.FILLERS.search(text)]
    assert len(hesitant) >= len(written)
    assert all(understanding._may_hesitate(text) for text in hesitant)
    assert not understanding._may_hesitate("hi, can I book a consultation tomorrow at 3pm?")
    assert understanding._may_hesitate("ähm, mañana")  # not ASCII: the pattern decides


def _language_by_scans(folded: str) -> str | None:
    """detect_language as it was: every language's markers counted."""
    english = len(catalog.ENGLISH.findall(folded))
    best, best_count = None, 0
    for language, pattern in catalog.MARKERS.items():
        count = len(re.findall(pattern, folded))
        if count > best_count:
            best, best_count = language, count
    if best is None or best_count < 2 or best_count <= english:
        return None
    return best


def test_a_message_without_a_marker_word_is_no_language_without_scans() -> None:
    for pattern in catalog.MARKERS.values():  # literal words only: first words are whole
        assert re.fullmatch(r"\\b\(\?:[a-z \-|]+\)\\b", pattern), pattern
    written = ["Bonjour, je voudrais un rendez-vous", "Hallo, ich möchte einen Termin", "ola"]
    said = [*phrases(), *written, "Ciao, vorrei un appuntamento domani", "HOLA quiero cita"]
    detected = 0
    for text in said:
        folded = dates.fold(text)
        assert catalog.detect_language(folded) == _language_by_scans(folded), text
        detected += catalog.detect_language(folded) is not None
    assert detected > 20


def test_each_marked_rewrite_match_holds_a_mark(folded: list[str]) -> None:
    """Every match of a MarkedRewrite holds one of its marks (in ASCII text, when the
    marks are ASCII only); by construction too: H_CLOCK's hour ends in a digit right
    before its "h", REJECTED's "no" is followed by [,.;!]+."""
    marked = [value for value in vars(dates).values() if isinstance(value, dates.MarkedRewrite)]
    assert {id(rule) for rule in marked} == {id(dates.H_CLOCK), id(dates.REJECTED)}
    written = ["at 15h30", "9h05 on friday", "thursday no, friday at 3", "at 4 no! at 5"]
    seen: set[int] = set()
    for text in [*folded, *written]:
        for rule in marked:
            for match in rule.pattern.finditer(text):
                seen.add(id(rule))
                if text.isascii() or not rule.ascii_marks:
                    assert any(mark in match.group(0) for mark in rule.marks), (text, match)
    assert seen == {id(rule) for rule in marked}
    assert dates.H_CLOCK("at ١٥h٣٠") == dates.H_CLOCK.pattern.sub(r"\1:\2", "at ١٥h٣٠")
    assert dates.H_CLOCK("at 15h30") == "at 15:30"
    assert dates.REJECTED("the afternoon") == "the afternoon"


# --- cue tests made cheaper: each must say what the substring tests said ----------------


def _random_texts(alphabet: str, count: int = 4000) -> list[str]:
    chooser = random.Random(16)
    return ["".join(chooser.choices(alphabet, k=chooser.randint(0, 24))) for _ in range(count)]


def test_a_cue_scan_finds_a_cue_exactly_when_one_is_in_the_text(folded: list[str]) -> None:
    """Cued rules with many cues, the Spanish rules' cues and the marks of a MarkedRewrite
    are tested by one scan; it must agree with a substring test per cue on every text."""
    sets = [rule.cues for _, rule in cued_rules() if rule.scan is not None]
    assert dates.EVENT_DAY.scan is not None and len(sets) >= 3
    sets += [dates.SPANISH_CUES, *(rule.marks for rule in (dates.H_CLOCK, dates.REJECTED))]
    sets += [("ab", "a", "abc"), ("abc", "abd", "b"), ("x.y", "(", "a b")]
    for cues in sets:
        scan = dates.cue_scan(cues)
        letters = "".join(sorted(set("".join(cues)))) + " z"
        for text in [*folded, *_random_texts(letters, 400), *cues]:
            assert (scan.search(text) is not None) == any(cue in text for cue in cues), (cues, text)
    for rule in (dates.H_CLOCK, dates.REJECTED):
        for text in [*folded, *_random_texts("0129h,.;!no ", 2000)]:
            found = rule.marked.search(text) is not None
            assert found == any(mark in text for mark in rule.marks), (rule.marks, text)
    with pytest.raises(ValueError):
        dates.cue_scan(())  # no cue would be found everywhere, not nowhere


def test_the_number_word_rules_share_their_cues() -> None:
    """_words tests WORD_BEFORE_CLOCK's cues once for both number-word rules."""
    assert dates.WORD_BEFORE_CLOCK.cues == dates.WORD_AFTER_CUE.cues
    assert dates._words("at four or ten am") == "at 4 or 10 am"


def _holds_digit(items: list[tuple[object, object]]) -> bool:
    """Whether every match of a sequence holds a digit: a digit class, or a group, an
    at-least-once repeat or every branch of an alternation holding one."""
    for op, value in items:
        if op is sre.IN and value == [(sre.CATEGORY, sre.CATEGORY_DIGIT)]:
            return True
        if op is sre.SUBPATTERN and _holds_digit(list(value[-1])):  # type: ignore[index]
            return True
        if op is sre.BRANCH and all(_holds_digit(list(b)) for b in value[1]):  # type: ignore[index]
            return True
        repeat = op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and value[0] >= 1  # type: ignore[index]
        if repeat and _holds_digit(list(value[2])):  # type: ignore[index]
            return True
    return False


def _holds_digit_or_cue(items: list[tuple[object, object]], cues: tuple[str, ...]) -> bool:
    """Whether every match of a sequence holds a digit or one of `cues`."""
    if _holds_digit(items) or _always_holds_cue(items, cues):
        return True
    for op, value in items:  # one group or alternation holding either, branch by branch
        if op is sre.SUBPATTERN and _holds_digit_or_cue(list(value[-1]), cues):  # type: ignore[index]
            return True
        branches = value[1] if op is sre.BRANCH else ()  # type: ignore[index]
        if branches and all(_holds_digit_or_cue(list(b), cues) for b in branches):
            return True
    return False


def test_the_range_rules_skipped_without_a_clock_need_one(folded: list[str]) -> None:
    """_range returns at once on a text with no digit, "noon" or "midday": every match of
    its rules holds one (RANGE_TIME is digits, noon or midday)."""
    patterns = (dates.BETWEEN.pattern, dates.NOT_BEFORE, dates.AFTER.pattern, dates.BEFORE.pattern)
    for rule in patterns:
        assert rule.flags & re.ASCII, rule
        tree = list(sre_parse.parse(rule.pattern, rule.flags))
        assert _holds_digit_or_cue(tree, ("noon", "midday")), rule.pattern
    loose = sre_parse.parse(r"\bafter\s+(?:\d|noon|lunch)")
    assert not _holds_digit_or_cue(list(loose), ("noon", "midday"))
    rules = (dates.BETWEEN, dates.NOT_BEFORE, dates.AFTER, dates.BEFORE)
    ranged = 0
    for text in [*folded, "after noon", "between 2 and 4", "no later than midday"]:
        words = dates._words(text)
        if any(rule.search(words) is not None for rule in rules):
            ranged += 1
            assert dates.ANY_DIGIT.search(words) or "noon" in words or "midday" in words
    assert ranged > 15
    assert dates._range("after noon", None, {}, None)[0] == time(12)


def test_the_clock_readers_skipped_without_a_digit_need_one(folded: list[str]) -> None:
    """_parse_time tries only the worded readers (noon, midnight) on a text without a
    digit, and _bare_hour none: every match of the others holds an ASCII digit."""
    worded = {kind for kind, _ in dates.WORDED_TIME_READERS}
    assert worded == {"noon", "midnight"}
    needing = [p for kind, p in dates.TIME_READERS if kind not in worded]
    needing += [dates.TIME_ALONE, dates.COMPACT_CLOCK, dates.LONE_NUMBER]
    for pattern in needing:
        assert pattern.flags & re.ASCII, pattern  # \d is 0-9 only
        assert _holds_digit(list(sre_parse.parse(pattern.pattern, pattern.flags))), pattern
    assert not _holds_digit(list(sre_parse.parse(r"\b(?:at|by)\s+(?:\d|noon)")))
    for text in folded:
        words = dates._words(text)
        assert dates._parse_time(words) == _time_by_scans(words), text
    assert dates._parse_time("noon tomorrow") == (12, 0, "pm", "tomorrow")
    assert dates._parse_time("at midnight") == (0, 0, None, "at")


def _time_by_scans(text: str) -> tuple[int, int, str | None, str] | None:
    """_parse_time as it was: every reader tried on every text."""
    for kind, pattern in dates.TIME_READERS:
        match = pattern.search(text)
        if match is None:
            continue
        rest = (text[: match.start()] + " " + text[match.end() :]).strip()
        if kind == "noon":
            return 12, 0, "pm", rest
        if kind == "midnight":
            return 0, 0, None, rest
        groups = match.groups()
        hour, minute, meridiem = int(groups[0]), 0, None
        if kind in ("half", "quarter_past"):
            minute, meridiem = (30 if kind == "half" else 15), groups[1]
        elif kind == "quarter_to":
            hour, minute, meridiem = (hour - 1) or 12, 45, groups[1]
        elif kind == "clock":
            minute, meridiem = int(groups[1]), groups[2]
        elif kind == "ampm":
            meridiem = groups[1]
        if hour > 23 or minute > 59 or (meridiem and not 1 <= hour <= 12):
            continue
        return hour, minute, meridiem, rest
    alone = dates.TIME_ALONE.fullmatch(text)
    if alone and int(alone.group(1)) <= 23 and int(alone.group(2) or 0) <= 59:
        return int(alone.group(1)), int(alone.group(2) or 0), alone.group(3), ""
    return None


def test_a_search_made_for_other_words_is_not_taken_for_these() -> None:
    """_parse_day takes `_shift`'s EVENT_DAY search only for the very words it read."""
    now = datetime(2026, 11, 23, 16, 0)
    text = "the day after my trip"
    assert dates._parse_day(text, now, ("tomorrow", None))[0].unreadable is not None
    assert dates._parse_day(text, now, (text, None))[0].unreadable is None  # taken as given
    shifted = dates.parse_when("an hour later, the day after my trip", now)
    assert shifted.shift_minutes == 60 and shifted.unreadable == "the day after my trip"


def _name_by_scans(raw: str, loose: bool) -> str | None:
    """find_name as it was: every pattern searched."""
    text = raw.strip().replace("’", "'")
    for index, (_, pattern) in enumerate(understanding.NAME_GIVEN):
        if not loose and index >= 4:
            break
        match = pattern.search(text)
        if match:
            name = understanding._name_words(match.group(1))
            if name:
                return name
    return understanding._name_words(text, whole=True) if loose else None


def test_a_name_pattern_is_searched_only_where_its_words_are() -> None:
    """find_name skips a pattern when ASCII text lacks its leading words in any case."""
    for cue, pattern in understanding.NAME_GIVEN:
        tree = list(sre_parse.parse(pattern.pattern, pattern.flags))
        assert tree[0] == (sre.AT, sre.AT_BOUNDARY), cue
        assert [chr(value) for _, value in tree[1 : len(cue) + 1]] == list(cue), cue
        assert all(op is sre.LITERAL for op, _ in tree[1 : len(cue) + 1]), cue
    written = ["MY NAME IS DANA", "This Is Sam", "call ME jo", "It's Ana", "under Lee", "Iʼm X"]
    said = [*phrases(), *written, "my name is Kelvin", "mY nAmE's Ann", "I AM Bo", "thiſ is Dana"]
    named = 0
    for raw in said:
        for loose in (False, True):
            assert understanding.find_name(raw, loose) == _name_by_scans(raw, loose), raw
            named += understanding.find_name(raw, loose) is not None
    assert named > 50
