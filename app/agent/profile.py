"""Questions about the business (hours, address, services, prices, FAQ), answered from
the agent's profile as the owner filled it in. Nothing here is invented: a question the
profile cannot answer says so and offers what the agent can do."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import time

from rapidfuzz import fuzz, process

from app.agent.dates import cued, fold

TOPICS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "hours",
        re.compile(
            r"\b(?:hours|opening times?|open(?:ing)? hours|what time do you (?:open|close)|"
            r"when (?:do|are) you (?:open|close)|are you open|closing time|business hours|"
            r"(?:are|r) (?:you|u|y'?all)(?: guys| all)? open|(?:you're|youre|you are) open|"
            r"(?:do|does) (?:you|u|y'?all|the \w+)(?: guys)? (?:open|close)|"
            r"when are you open|horario|a que hora (?:abren|cierran)|estan abiertos|"
            r"abren|abre|cierran|abierto|abiertos|atienden|trabajan)\b"
        ),
    ),
    (
        "address",
        re.compile(
            r"\b(?:address|where are you|where is (?:the|your) (?:shop|office|salon|place|"
            r"clinic|studio)|located|location|directions|how do i get there|parking|park|"
            r"find you|get to you|where (?:is it|exactly|do i go)|what street|which street|"
            r"where(?:'s| is) (?:it|that)|ubicad[oa]s?|como llego|donde se encuentran|"
            r"direccion|donde estan|donde queda|ubicacion|donde (?:los|las|lo|la|te) encuentro|"
            r"estacionamiento|aparcamiento|parqueadero|online or in person|"
            r"in person or online|en linea o en persona|presencial|"
            r"^(?:do|does|can|could|are|is|will)\b.*\b(?:online|in person|virtual(?:ly)?|zoom))\b"
        ),
    ),
    (
        "prices",
        re.compile(
            r"\b(?:how much|price|prices|pricing|cost|costs|rates?|fees?|charge|"
            r"precio|precios|cuanto (?:me |nos |le )?(?:cuesta|cobran?|sale|vale|es)|tarifa)\b"
        ),
    ),
    (
        "services",
        re.compile(
            r"\b(?:services|what do you (?:offer|do|provide)|what can i (?:book|get)|how long|"
            r"do (?:you|u|y'?all|you guys|you all) (?:do|offer|provide|teach|treat|fix|sell)|"
            r"what kinds? of|(?:what|which) (?:subjects|services|treatments)|servicios|que ofrecen|"
            r"que hacen)\b"
        ),
    ),
)
# Literals one of which every match of the topic's pattern holds (checked against the
# pattern's structure by tests/agent/test_reader_cues.py): most messages ask no business
# question, and a few substring tests cost less than the four long alternations.
TOPIC_CUES = {
    "hours": "hours|open|clos|horario|abre|abier|cierran|atienden|trabajan",
    "address": "address|where|locat|direction|get there|park|find you|get to you|street|"
    "ubica|llego|donde|direccion|estacionamiento|aparcamiento|parqueadero|online|in person|"
    "en linea|presencial|virtual|zoom",
    "prices": "how much|price|pricing|cost|rate|fee|charge|precio|cuanto|tarifa",
    "services": "services|what do you|what can i|how long|do |what kind|subjects|treatments|"
    "servicios|que ofrecen|que hacen",
}
CUED_TOPICS = tuple((topic, cued(pattern, TOPIC_CUES[topic])) for topic, pattern in TOPICS)
FAQ_CUTOFF = 72


def profile_topic(text: str) -> str | None:
    """Which business question `text` (normalised) asks, if any."""
    for topic, rule in CUED_TOPICS:
        if rule.search(text):
            return topic
    return None


SERVICE_QUESTION = re.compile(
    r"^(?:do|does|can|could|are|is|will|would)\s+(?:you|u|y'?all|someone|anyone|there|he|she|"
    r"they)\b|\?\s*$|^(?:hacen|tienen|ofrecen|atienden)\b"
)


def asks_about_service(text: str, described: str | None) -> bool:
    """ "do you teach physics?", "can you fix a cracked tooth?": a yes/no question sharing
    a content word with the owner's description of the services."""
    if not described or SERVICE_QUESTION.search(text) is None:
        return False
    return _share(_content(text), _content(fold(described)))


YES_NO_QUESTION = re.compile(r"^(?:do|does|can|could|are|is|will|would|hacen|tienen|son|es)\b")


def field_asked(
    text: str, raw: str, fields: Mapping[str, str | None], ignore: set[str]
) -> str | None:
    """ "are lessons online or in person?", "do you handle emergencies?": a yes/no question
    sharing a content word (other than `ignore`: type names, booking words) with exactly
    one profile field (address, services description); that field's topic."""
    if YES_NO_QUESTION.search(text) is None and not raw.rstrip().endswith("?"):
        return None
    said = {w for w in _content(text) if not _share({w}, ignore)}
    hits = [
        topic for topic, value in fields.items() if value and _share(said, _content(fold(value)))
    ]
    return hits[0] if len(hits) == 1 else None


def faq_answer(text: str, faq: Sequence[dict[str, str]], topic: str | None = None) -> str | None:
    """The owner's answer to the FAQ entry closest to the question (fuzzy, word order
    free); None below the cutoff, so an unrelated message is not answered by a guess.
    A question on a known topic ("what does a cut cost?") also finds the entries on that
    topic ("How much is a haircut?")."""
    found = _closest(text, faq)
    # "what are your hours for a haircut?" is not answered by the haircut price entry.
    if found is not None and topic is not None and profile_topic(found[0]) not in (None, topic):
        found = None
    if found is None and topic == "prices":  # prices have no profile field of their own
        return _on_topic(text, faq, topic)
    return found[1] if found is not None else None


def _on_topic(text: str, faq: Sequence[dict[str, str]], topic: str) -> str | None:
    """The one entry on `topic`, or the one of several sharing a word (or a part of one:
    "cut" in "haircut") with the question; None when that does not settle it."""
    entries = [
        e for e in faq if e.get("answer") and profile_topic(fold(e.get("question", ""))) == topic
    ]
    if len(entries) == 1:
        return entries[0]["answer"].strip()
    said = {w for w in re.findall(r"[a-z]+", fold(text)) if len(w) >= 3} - FUNCTION_WORDS
    sharing = [
        e
        for e in entries
        if any(w in q for w in said for q in re.findall(r"[a-z]+", fold(e.get("question", ""))))
    ]
    return sharing[0]["answer"].strip() if len(sharing) == 1 else None


def _closest(text: str, faq: Sequence[dict[str, str]]) -> tuple[str, str] | None:
    questions = [fold(entry.get("question", "")) for entry in faq if entry.get("answer")]
    if not questions or len(text.split()) < 2:
        return None
    answered = [entry for entry in faq if entry.get("answer")]
    found = process.extractOne(
        fold(text), questions, scorer=fuzz.token_set_ratio, score_cutoff=FAQ_CUTOFF
    )
    if found is not None:
        return questions[found[2]], answered[found[2]]["answer"].strip()
    # "can I pay by card?" vs "Do you take cards?": one shared content word decides,
    # when exactly one entry shares it (two would be a guess).
    # The owner's answer counts too: "do you accept cash?" finds "Do you take cards?" by
    # its answer "We take all major cards and cash."
    # The questions are asked first: "insurance" in one question settles it even when
    # another entry's answer mentions insurance too.
    said = _content(fold(text))
    entries = [f"{q} {fold(e['answer'])}" for q, e in zip(questions, answered, strict=True)]
    for texts in (questions, entries):
        sharing = [i for i, entry in enumerate(texts) if _share(said, _content(entry))]
        if len(sharing) == 1:
            return questions[sharing[0]], answered[sharing[0]]["answer"].strip()
        if sharing:
            return None
    return None


FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "do",
        "does",
        "you",
        "your",
        "we",
        "our",
        "i",
        "my",
        "me",
        "can",
        "could",
        "is",
        "are",
        "am",
        "be",
        "there",
        "what",
        "when",
        "where",
        "how",
        "much",
        "many",
        "which",
        "who",
        "why",
        "to",
        "of",
        "for",
        "on",
        "in",
        "at",
        "by",
        "with",
        "and",
        "or",
        "it",
        "this",
        "that",
        "have",
        "has",
        "take",
        "accept",
        "get",
        "give",
        "time",
        "times",
        "please",
    ]
)


def _share(said: set[str], asked: set[str]) -> bool:
    """A content word in common, or one the start of the other ("park" / "parking")."""
    return any(
        a == b or (min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)))
        for a in said
        for b in asked
    )


def _content(text: str) -> set[str]:
    words = re.findall(r"[a-z]+", text)
    return {_stem(w) for w in words if len(w) >= 4 and w not in FUNCTION_WORDS}


def _stem(word: str) -> str:
    """Plural and past forms to one stem: "emergencies"/"emergency", "accepted"/"accept"."""
    for ending, replacement in (("ies", "y"), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            return word[: -len(ending)] + replacement
    return word


def hours_lines(hours: dict[int, Sequence[tuple[time, time]]], names: Sequence[str]) -> list[str]:
    """["Mon-Fri 9 AM-12 PM, 1 PM-5 PM", "Sat 10 AM-2 PM"]: consecutive days with the same
    hours grouped."""
    groups: list[tuple[list[int], str]] = []
    for weekday in range(7):
        windows = hours.get(weekday) or ()
        if not windows:
            continue
        spans = ", ".join(f"{_hour(o)}-{_hour(c)}" for o, c in windows)
        if groups and groups[-1][1] == spans and groups[-1][0][-1] == weekday - 1:
            groups[-1][0].append(weekday)
        else:
            groups.append(([weekday], spans))
    lines = []
    for days, spans in groups:
        label = names[days[0]] if len(days) == 1 else f"{names[days[0]]}-{names[days[-1]]}"
        lines.append(f"{label} {spans}")
    return lines


def _hour(moment: time) -> str:
    hour = moment.hour % 12 or 12
    meridiem = "AM" if moment.hour < 12 else "PM"
    return f"{hour}:{moment.minute:02d} {meridiem}" if moment.minute else f"{hour} {meridiem}"
