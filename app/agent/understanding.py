"""What one message says: intent, yes/no, a choice, a name, a type, a time.

Pure functions over the text (and the agent's appointment types); no tools, no state.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from difflib import get_close_matches
from functools import lru_cache

from rapidfuzz.distance import DamerauLevenshtein
from rapidfuzz.process import extractOne

from app.agent.dates import Hours, When, cued, fold, parse_when
from app.agent.profile import profile_topic
from app.calendar.availability import AppointmentType

# Patterns compiled with re.ASCII read only the normalised text (`normalise` leaves lower-case
# ASCII letters, digits and :/'- alone), where ASCII and Unicode \b, \w, \d and \s agree and
# sre tests characters against a small table instead of Unicode's. Those that also read
# the raw or merely folded message (CANCEL, MOVE, BOOK, LIST, ... in split_requests) stay
# Unicode. tests/agent/test_reader_cues.py checks the text they read is ASCII.
YES = re.compile(
    r"^(?:yes|yeah|yea|yep|yup|ya|y|sure|ok|okay|k|correct|confirm(?:ed)?|please do|si|vale|"
    r"claro|de acuerdo|perfecto|esta bien|confirmo|adelante|"
    r"do it|go ahead|go for it|book it|perfect|great|absolutely|definitely|of course|"
    r"that works|works for me|sounds good|sounds great|fine|alright|all right|right)\b",
    re.ASCII,
)
YES_ANYWHERE = re.compile(
    r"\b(?:that works|works for me|sounds good|sounds great|go ahead|please do|book it|"
    r"that's fine|thats fine|that one)\b",
    re.ASCII,
)
NO = re.compile(
    r"^(?:no|nope|nah|not really|not that|negative|don't|dont|doesn't|doesnt|can't|cant|"
    r"mejor no)\b|"
    r"\b(?:doesn't work|doesnt work|won't work|wont work|can't make|cant make|no good)\b",
    re.ASCII,
)
LATER = re.compile(r"\b(?:later|after that|afterwards|any time after)\b", re.ASCII)
EARLIER = re.compile(r"\b(?:earlier|sooner|before that)\b", re.ASCII)
GOODBYE = re.compile(
    r"\b(?:bye|goodbye|good bye|bye bye|that's all|thats all|that is all|that's it|thats it|"
    r"nothing else|no thanks|no thank you|all set|i'm done|im done|i am done|we're done|"
    r"hang up|have a good (?:one|day|night))\b",
    re.ASCII,
)
THANKS = re.compile(r"^(?:ok(?:ay)? )?(?:thanks|thank you|thx|ty|cheers|great thanks)\b", re.ASCII)
RESET = re.compile(
    r"\b(?:never ?mind|nvm|forget (?:it|that|about it)|start over|scratch that|stop that|"
    r"olvidalo|olvida(?:lo)? eso|da igual|dejalo)\b",
    re.ASCII,
)
GREETING = re.compile(
    r"^(?:hi|hello|hey|hiya|good (?:morning|afternoon|evening)|yo|hola|buenos dias|"
    r"buenas tardes|buenas)\b",
    re.ASCII,
)
THANKS_ES = re.compile(r"^(?:ok )?(?:gracias|muchas gracias)\b", re.ASCII)
GOODBYE_ES = re.compile(r"\b(?:adios|hasta luego|eso es todo|nada mas)\b", re.ASCII)
# A second request after the first: "cancel friday and book wednesday instead".
BOOK_VERB = re.compile(r"\b(?:book|schedule|appointment|appt|reserve|come in|get in)\b", re.ASCII)
SECOND_REQUEST = re.compile(
    r"(?:,|\band\b|\bthen\b|\balso\b|\bplus\b|\by\b)\s*(?:then\s+|also\s+|luego\s+)?"
    r"(?:(?:can|could) you\s+|please\s+|i(?:'d| would)? (?:like|want|need) to\s+)?"
    r"(?=(?:book|schedule|make|set up|get me|cancel|move|reschedule|reservar|cancelar|"
    r"cambiar)\b)"
)

LIST = re.compile(
    r"\b(?:do i (?:still |even )?have|have i (?:still )?got|my appointments|my bookings|"
    r"am i booked|when is my|when's my|"
    r"whens my|what's my|whats my|list|show me my|remind me when|upcoming|am i still|"
    r"am i on|am i down|am i in for|am i scheduled|am i booked|what time am i|when am i|"
    r"did my (?:booking|appointment|appt|reservation)|did (?:it|that|the booking) go through|"
    r"is my (?:booking|appointment|appt)|(?:confirm|check) my (?:booking|appointment|appt|time)|"
    r"what (?:time|day) is my|what (?:time|day) (?:did|do|am) i|what have i got|"
    r"how many (?:appointments|lessons|sessions|bookings)|what did i book|do you have me|"
    r"have you got me|did (?:i|we) (?:book|schedule|reserve|make)|"
    r"(?:when|what|what time|what day|which day) (?:i|we) (?:booked|scheduled|reserved)|"
    r"is that still on|still on for|still booked|still have me|got me down|just confirming|"
    r"still good for|are we still (?:on|good)|"
    r"que citas tengo|tengo (?:una |alguna )?cita|mis citas|cuando es mi cita|"
    r"a que hora es mi cita|(?:cuando|a que hora|que dia) me toca)\b"
)
# A question about the person's own booking however it is worded ("did the booking work?",
# "which days am I coming in?", "¿para cuándo quedó mi cita?"): a question form, the person
# as subject or owner, a booking noun or state, and no request verb.
QUESTION_FORM = re.compile(
    r"^(?:did|does|do|is|was|has|have|had|am|are|what|whats|when|whens|which|remind|"
    r"(?:just |only )?(?:checking|confirming|wondering)|"
    r"para cuando|cuando|que|a que|sigue|esta|tengo|quedo|me (?:puedes|podrias) decir)\b",
    re.ASCII,
)
OWN = re.compile(
    r"\b(?:my|mine|i|i'm|im|me|mi|mis|our)\b|"
    r"\b(?:the|that|this) (?:booking|appointment|appt|reservation)\b",
    re.ASCII,
)
BOOKING_STATE = re.compile(
    r"\b(?:appointments?|appts?|bookings?|booked|reservations?|reserved|scheduled|"
    r"coming in|come in|be there|show up|"
    r"on the (?:books|calendar|schedule|list)|go(?:ne)? through|went through|"
    r"still (?:on|happening|going ahead|good|valid|there|confirmed)|confirmed|"
    r"work(?:ed)?|citas?|quedo|reservad[oa]|agendad[oa]|apuntad[oa])\b",
    re.ASCII,
)
REQUEST_VERB = re.compile(
    r"\b(?:book|schedule|reserve|make|get|can|could|may|want|need|like|cancel|move|change|"
    r"you have|you got|"
    r"available|free|open|agendar|agendame|agendas|agenda|reservar|reservas|apartas|"
    r"quiero|quisiera|necesito|puedo|"
    r"puedes|puede|podria|podrias|dame|das|da|dar|cambiar|cancelar)\b",
    re.ASCII,
)


# The same question embedded in a sentence: "I forgot when my appointment is, could you
# tell me", "not sure what time my booking was".
EMBEDDED_OWN = re.compile(
    r"\b(?:when|what time|what day|which day|what date)\s+(?:is\s+|was\s+)?(?:my|mi)\s+"
    r"(?:\w+\s+)?(?:appointment|appt|booking|reservation|cita|turno)s?\b",
    re.ASCII,
)
# "which day was my haircut again", "can you confirm my cleaning time", "¿a qué hora era mi
# corte?": the same question with the appointment named by its type (read() checks the type).
OWN_TYPE_QUESTION = re.compile(
    r"\b(?:when|what time|what day|which day|what date|a que hora|que dia|cuando)(?:'s|s)?\s+"
    r"(?:\w+\s+){0,2}?(?:my|mi)\b|"
    r"\b(?:confirm|check|remind me (?:of|about)|recuerdame|me recuerdas)\s+"
    r"(?:\w+\s+){0,2}?(?:my|mi)\b",
    re.ASCII,
)
CHANGE_VERB = re.compile(
    r"\b(?:book|schedule|reserve|make|cancel|move|change|agendar|reservar)\b", re.ASCII
)


# "can you check if I'm booked": asking the agent to look is a question, not a request.
ASK_TO_LOOK = re.compile(
    r"^(?:(?:can|could|would) (?:you|u) (?:please )?|please )?(?:check|see|look|confirm)"
    r"(?: up)?(?: if| whether| that| when| what)?\s+",
    re.ASCII,
)


def asks_about_own_booking(raw: str, text: str) -> bool:
    return profile_topic(text) is None and _asks_own_booking_as_question(raw, text)


def _asks_own_booking_as_question(raw: str, text: str) -> bool:
    """asks_about_own_booking for a text that asks no business question."""
    looked = ASK_TO_LOOK.sub("", text)
    if looked != text:
        return OWN.search(looked) is not None and BOOKING_STATE.search(looked) is not None
    if EMBEDDED_OWN.search(text) and not CHANGE_VERB.search(text):
        return True
    asks = "?" in raw or QUESTION_FORM.search(text) is not None
    return (
        asks
        and OWN.search(text) is not None
        and BOOKING_STATE.search(text) is not None
        and REQUEST_VERB.search(text) is None
    )


CANCEL = re.compile(
    r"\b(?:cancel|cancell?ing|cancell?ed|call off|can't make it|cant make it|won't make it|"
    r"wont make it|remove my|delete my|no longer need|take me off|take my name off|unbook|"
    r"(?:don't|dont|do not|won't|wont) (?:need|want) (?:my|the|that|it|this)\b.*"
    r"\b(?:anymore|any more|after all|no more)|"
    r"no (?:voy a |vamos a )?(?:poder|puedo|podre|podemos) (?:ir|llegar|asistir|venir)|"
    r"(?:won't|wont|will not|can't|cant|cannot|unable to|not able to|not going to|not gonna)\s+"
    r"(?:be able to\s+)?(?:come|make it|attend|be there|make (?:my|the|our) (?:\w+ )?"
    r"(?:appointment|booking|reservation))|"
    r"(?:drop|scrap|scratch|ditch|nix|axe|skip|get rid of|call off|bail on|count me out for)\s+"
    r"(?:my|the|that|it|this|both|all|"
    r"(?:mon|tues|wednes|thurs|fri|satur|sun)day(?:'s)?|tomorrow(?:'s)?|today(?:'s)?)|"
    r"(?:can't|cant|cannot|won't|wont) (?:come|make it) anymore|cancelar|cancela|cancelame|"
    r"cancelala|cancelalo|cancelarla|cancelarlo|anulala|"
    r"anular)\b"
)
CANCEL_ALL = re.compile(
    r"\b(?:all (?:of )?(?:them|my|those|the)|all|both|everything|every one|each one|"
    r"todas|todos|las dos|ambas)\b",
    re.ASCII,
)
MOVE = re.compile(
    r"\b(?:move|reschedule|re-schedule|rebook|change|push|shift|switch|postpone|bring forward|"
    r"bump|slide|rearrange|running late|(?:going to|gonna|might|will) be late|"
    r"pull forward|bring (?:\w+ ){1,3}forward|moving|pushing|changing|switching|resched|swap|"
    r"different (?:time|day)|(?:do|move|have) it (?:on )?another (?:day|time)|"
    r"cambiar|cambia|mover|mueve|reprogramar|reagendar|reagenda|"
    r"pasar mi cita|pasarla|pasarlo|moverla|moverlo|"
    r"(?:la|lo) (?:podemos|puedes|puede|podrias|podria) (?:pasar|mover|cambiar)|"
    r"recorrer|recorre|recorrerla|adelantar|adelanta|adelantarla|atrasar|atrasa|"
    r"retrasar|retrasa|posponer|pospon|me (?:la|lo) (?:pasas|pasa|puedes pasar|puede pasar))\b"
)
INSTEAD = re.compile(
    r"\b(?:instead|replace|swap|move it|move that|move the|not both|rather|in place of|"
    r"en lugar|en vez|cambiarla|mover la)\b",
    re.ASCII,
)
IN_ADDITION = re.compile(
    r"\b(?:in addition|addition|another|also|as well|both|extra|second one|keep (?:it|both|that)|"
    r"add|plus|ademas|otra|las dos|ambas)\b",
    re.ASCII,
)
BOOK = re.compile(
    r"\b(?:book|schedule|appointment|appt|come in|coming in|stop by|openings?|opening|available|"
    r"availability|free|slots?|spots?|times?|reserve|reservation|make an?|get in|see (?:you|him|"
    r"her|them)|do you have|have anything|anything|when can|what about|how about|want|need|"
    r"like to|fit me in|squeeze me in|put me down|earliest|come by|see someone|do something|"
    r"give me|pencil me in|sign me up|get me|set me up|i'd like|id like|i would like|"
    r"cita|reservar|reservame|reserva|agendar|agendame|agenda|apartame|quiero|quisiera|"
    r"necesito|hay hueco|tienen)\b"
)
REFERS_TO_EXISTING = re.compile(
    r"\b(?:my|it|that|the)\b.*\b(?:appointment|booking|appt|one)\b|\bit\b", re.ASCII
)

ORDINALS = {
    "first": 0,
    "1st": 0,
    "second": 1,
    "2nd": 1,
    "third": 2,
    "3rd": 2,
    "fourth": 3,
    "4th": 3,
    "fifth": 4,
    "5th": 4,
}
GENERIC_NOUNS = {
    "appointment",
    "appt",
    "time",
    "slot",
    "spot",
    "meeting",
    "visit",
    "session",
    "booking",
    "reservation",
    "day",
    "date",
    "quick",
    "new",
    "different",
    "later",
    "earlier",
    "little",
    "bit",
    "call",
    "few",
    "couple",
    "good",
    "second",
    "third",
    "first",
}
NAME_STOP = {
    "and",
    "i",
    "i'd",
    "id",
    "for",
    "can",
    "could",
    "would",
    "please",
    "want",
    "need",
    "like",
    "calling",
    "here",
    "to",
    "the",
    "a",
    "an",
    "about",
    "with",
    "tomorrow",
    "today",
    "yes",
    "no",
    "ok",
    "okay",
    "thanks",
    "hi",
    "hello",
    "hey",
}
NOT_NAMES = NAME_STOP | {
    "sure",
    "yeah",
    "yep",
    "nope",
    "book",
    "cancel",
    "move",
    "what",
    "when",
    "later",
    "earlier",
    "it",
    "me",
    "my",
    "help",
    "stop",
    "start",
    "asdf",
}


@dataclass(frozen=True)
class Message:
    raw: str
    text: str  # lower-case, punctuation folded
    when: When
    intent: str | None  # "list" | "cancel" | "move" | "book" | None
    yes: bool
    no: bool
    later: bool
    earlier: bool
    goodbye: bool
    thanks: bool
    reset: bool
    greeting: bool
    type_key: str | None
    unknown_type: str | None
    choice: int | None  # 0-based position in a list just offered
    number: int | None  # a message that is nothing but a number
    name: str | None  # a name given explicitly ("my name is ...")
    mentions_existing: bool
    every: bool = False  # "all of them", "both"
    instead: bool = False
    in_addition: bool = False
    rest: str | None = None  # a second request in the same message, handled next
    # "thursday instead of friday": a change to something held, unless it corrects the
    # request in progress (the flow decides which).
    instead_of: bool = False
    topic: str | None = None  # "hours" | "address" | "services" | "prices" | "faq"
    # "same time on thursday": the time of an appointment held, on another day.
    same_time: bool = False
    # "keep my haircut friday but ...": the clause about what stays, context only.
    kept: str | None = None
    # "that afternoon", "the same day" with no day to refer to: asked, never today.
    day_ref: str | None = None


# What a misspelt request word is corrected against: the words the intents hang on.
INTENT_VOCABULARY = ("cancel", "reschedule", "appointment", "available", "schedule", "postpone")
NOT_TYPOS = frozenset({"cancer", "candle", "channel", "scheduled", "appointed"})


def corrected(text: str) -> str:
    """ "cancle my apointment" → "cancel my appointment": each longer word not known is
    matched against the intent vocabulary (Damerau-Levenshtein, so a swap is one edit)."""
    words = text.split()
    for index, word in enumerate(words):
        if len(word) < 5 or word in NOT_TYPOS or word.startswith(INTENT_VOCABULARY):
            continue  # known, or a known word's inflection ("appointments")
        found = _intent_word(word)
        if found is not None:
            words[index] = found
    return " ".join(words)


@lru_cache(maxsize=4096)
def _intent_word(word: str) -> str | None:
    """The intent word `word` is a misspelling of. Pure, and people repeat their words:
    remembered per word (rapidfuzz's call costs more than its distances, ~2 us a word)."""
    found = extractOne(
        word,
        INTENT_VOCABULARY,
        scorer=DamerauLevenshtein.normalized_similarity,
        # Two edits in ten letters ("resceduel") is exactly 0.8, which rapidfuzz's
        # own rounding of the cutoff drops: the bound sits just below it.
        score_cutoff=0.79,
    )
    return None if found is None else found[0]


# Texting shorthand read as the words it stands for ("what time do u close").
SHORTHAND = (
    (r"\bu\b", "you"),
    (r"\bur\b", "your"),
    (r"\br\b", "are"),
    (r"\b(?:pls|plz|pleez)\b", "please"),
    (r"\bwanna\b", "want to"),
    (r"\bgonna\b", "going to"),
    (r"\bgotta\b", "got to"),
    (r"\bappts?\b", "appointment"),
    (r"\b(?:tmrw|tmrow|tmw|2moro|2morrow)\b", "tomorrow"),
    # Spanish texting: "a las 11 d la mañana", "q hora", "xfa".
    (r"\bd\b(?= (?:la|las|el|los)\b)", "de"),
    (r"\bq\b", "que"),
    (r"\b(?:xfa|xfavor|porfa)\b", "por favor"),
)


SHORTHAND_RULES = tuple((re.compile(p, re.IGNORECASE), word) for p, word in SHORTHAND)
# Any shorthand at all: when none matches the message, none matches after another rule ran
# either (none ran), so one scan stands for all of them (most messages have none).
ANY_SHORTHAND = re.compile("|".join(f"(?:{p})" for p, _ in SHORTHAND), re.IGNORECASE)
NOT_A_WORD = re.compile(r"[^a-z0-9:/'\- ]+")
# Every word a shorthand rule matches, lower-cased: each rule matches one whole word
# (tests/agent/test_reader_cues.py spells out each rule's words from its pattern).
SHORTHAND_WORDS = frozenset(
    {"u", "ur", "r", "pls", "plz", "pleez", "wanna", "gonna", "gotta", "appt", "appts", "tmrw"}
    | {"tmrow", "tmw", "2moro", "2morrow", "d", "q", "xfa", "xfavor", "porfa"}
)
WORD_RUN = re.compile(r"\w+", re.ASCII)


# The last text ascii_words split (lower-cased) and its words: a message is split up to
# three times in a row (the raw message, without fillers, folded), mostly the same text.
_last_words: tuple[str, list[str]] = ("", [])


def ascii_words(text: str) -> list[str] | None:
    """The words (\\w runs) of an ASCII text, lower-cased: what a case-insensitive `\\b`
    rule can match there. None for other text, where case folding goes beyond ASCII ("ſ"
    is an "s") and only the pattern can tell. The list is shared: read it only."""
    global _last_words
    if not text.isascii():
        return None
    lowered = text.lower()
    last, words = _last_words  # one tuple: another thread's turn replaces it whole
    if lowered != last:
        words = WORD_RUN.findall(lowered)
        _last_words = (lowered, words)
    return words


def expand_shorthand(raw: str) -> str:
    words = ascii_words(raw)
    if words is not None and SHORTHAND_WORDS.isdisjoint(words):
        return raw  # a word list costs a quarter of the case-insensitive scan
    if ANY_SHORTHAND.search(raw) is None:
        return raw
    for pattern, word in SHORTHAND_RULES:
        raw = pattern.sub(word, raw)
    return raw


def normalise(text: str) -> str:
    text = expand_shorthand(fold(text))
    text = NOT_A_WORD.sub(" ", text)
    return corrected(" ".join(text.split()))


def find_type(text: str, types: Sequence[AppointmentType]) -> str | None:
    named = _named_types(text, types)
    if named:
        return named[0]
    words = [w for w in text.split() if len(w) >= 5]
    for kind in types:
        aliases = {kind.key.lower(), kind.name.lower()}
        for word in words:
            if _close_match(word, frozenset(aliases)):
                return kind.key
            # "consult" for "consultation", "cut" for "haircut" is too loose: prefix of 6+.
            if any(len(word) >= 6 and alias.startswith(word) for alias in aliases):
                return kind.key
    return None


HELD_BEFORE = re.compile(r"\b(?:my|mi|your)\s+$")


@lru_cache(maxsize=1024)
def _alias_pattern(alias: str) -> re.Pattern[str]:
    """A type's name as a word (plural too): compiled once per name, not per message."""
    return re.compile(rf"\b{re.escape(alias)}s?\b")


def _named_types(text: str, types: Sequence[AppointmentType]) -> list[str]:
    """The types named, first mention first; one the person already holds ("on top of my
    haircut") comes after one they ask for."""
    squashed = text.replace(" ", "").replace("-", "")
    found: list[tuple[bool, int, str]] = []
    for kind in types:
        for alias in {kind.key.lower(), kind.name.lower()}:
            plain = alias.replace(" ", "").replace("-", "").replace("_", "")
            mention = _alias_pattern(alias).search(text) if alias in text else None
            if mention is not None:
                held = HELD_BEFORE.search(text[: mention.start()]) is not None
                found.append((held, mention.start(), kind.key))
            elif plain and plain in squashed:
                found.append((False, len(text), kind.key))
    return [key for _, _, key in sorted(found)]


@lru_cache(maxsize=4096)
def _close_match(word: str, aliases: frozenset[str]) -> bool:
    """difflib's fuzzy match of one word against a type's names. It costs ~80 us a word
    and a turn without a type word tries each long word against each type, most of a
    voice turn's reading: pure, and callers repeat their words, so it is remembered."""
    return bool(get_close_matches(word, aliases, n=1, cutoff=0.8))


THING_ASKED = re.compile(
    r"\b(?:book|schedule|get|want|need|like|for|do)\s+(?:me\s+)?(?:in\s+)?(?:for\s+)?"
    r"(?:a|an|some)\s+([a-z]+(?:\s+[a-z]+)?)",
    re.ASCII,
)
DAY_NAME = re.compile(r"(?:mon|tues|wednes|thurs|fri|satur|sun)day", re.ASCII)


def unknown_type_named(text: str, known: str | None) -> str | None:
    """The thing asked for in "book me a massage" when it is no type we offer."""
    if known is not None:
        return None
    match = THING_ASKED.search(text)
    if match is None:
        return None
    words = match.group(1).split()
    if words[0] in GENERIC_NOUNS or DAY_NAME.fullmatch(words[0]):
        return None
    thing = (
        words[0] if len(words) == 1 or words[1] in GENERIC_NOUNS | NAME_STOP else " ".join(words)
    )
    for word in thing.split():
        if word in {"at", "on", "in", "this", "next", "tomorrow", "today"}:
            return None
    return thing


LAST_ONE = re.compile(r"\b(?:last one|the last|last)\b", re.ASCII)
LAST_WEEK_OR_TIME = re.compile(r"\blast (?:week|time)\b", re.ASCII)
# (word, the word alone, the word before "of", position in the list)
ORDINAL_CHOICES = tuple(
    (word, re.compile(rf"\b{word}\b"), re.compile(rf"\b{word} of\b"), index)
    for word, index in ORDINALS.items()
)
NUMBERED_CHOICE = re.compile(
    r"(?:option|number|no|#|the)?\s*#?([1-9])(?:\s*(?:one|please))?", re.ASCII
)
CHOICE_WORD = re.compile(r"\b(?:option|number|no|#)", re.ASCII)


def find_choice(text: str) -> int | None:
    if "last" in text and LAST_ONE.search(text) and not LAST_WEEK_OR_TIME.search(text):
        return -1
    for word, alone, before_of, index in ORDINAL_CHOICES:
        if word in text and alone.search(text) and not before_of.search(text):
            return index
    match = NUMBERED_CHOICE.fullmatch(text)
    if match and CHOICE_WORD.search(text):
        return int(match.group(1)) - 1
    return None


# The ways a name is given; the last four only when a name was just asked for. Each with
# the words its pattern starts with (after \\b), lower-cased: every match holds them.
NAME_GIVEN = tuple(
    (cue, re.compile(pattern, re.IGNORECASE))
    for cue, pattern in (
        ("my name", r"\bmy name(?:'s| is)\s+(.+)"),
        ("name", r"\bname(?:'s| is)\s+(.+)"),
        ("this is", r"\bthis is\s+(.+)"),
        ("call me", r"\bcall me\s+(.+)"),
        ("it's", r"\bit's\s+(.+)"),
        ("i'm", r"\bi'm\s+(.+)"),
        ("i am", r"\bi am\s+(.+)"),
        ("under", r"\bunder\s+(.+)"),
    )
)


def find_name(raw: str, loose: bool) -> str | None:
    """A name: explicit ("my name is Dana Reyes", "this is Dana") or, when we just asked
    for one (`loose`), a short reply made only of name-like words ("Dana")."""
    text = raw.strip().replace("’", "'")
    # In ASCII text a case-insensitive match is its cue in some case; beyond ASCII, case
    # folding is wider ("K" is the Kelvin sign's k): there the patterns decide.
    lowered = text.lower() if text.isascii() else None
    for index, (cue, pattern) in enumerate(NAME_GIVEN):
        if not loose and index >= 4:
            break
        if lowered is not None and cue not in lowered:
            continue
        match = pattern.search(text)
        if match:
            name = _name_words(match.group(1))
            if name:
                return name
    if loose:
        return _name_words(text, whole=True)
    return None


NAME_TOKENS = re.compile(r"[A-Za-z][A-Za-z'\-]*|\S")
NAME_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")


def _name_words(fragment: str, whole: bool = False) -> str | None:
    words = NAME_TOKENS.findall(fragment)
    taken: list[str] = []
    for word in words:
        if not NAME_WORD.fullmatch(word) or word.lower() in NAME_STOP:
            if whole and word not in {".", ",", "!"}:
                return None
            break
        taken.append(word)
        if len(taken) == 3:
            break
    if whole and len(taken) < len([w for w in words if w not in {".", ",", "!"}]):
        return None
    if not taken or any(w.lower() in NOT_NAMES for w in taken):
        return None
    return " ".join(w if not w.islower() else w.capitalize() for w in taken)


BREAK = re.compile(
    r"[?!.]+\s+(?:and\s+|also\s+|if so,?\s+|then\s+|plus\s+)?|"
    r",?\s+(?:and|also|then|plus|if so|y|tambien)\s+|,\s+(?=(?:book|cancel|move|add)\b)"
)
ASKS = re.compile(r"^(?:what|when|where|how|do|does|is|are|can|could|would|will)\b")
REFERS_BACK = re.compile(
    r"(?:please\s+)?(?:just\s+)?(?:cancel|move|reschedule|change|drop|scrap)\s+(?:it|that|this|them)"
    r"(?:\s+(?:please|pls|thanks))?"
)
BARE_MODAL = re.compile(r"(?:can|could|would|will|may|do|should)\s+(?:i|we|you|u)")


ADD_OR_PLUS = re.compile(r"\b(?:add|plus)\b")
DIGIT = re.compile(r"\d")


def _has_request(text: str) -> bool:
    return bool(
        CANCEL.search(text)
        or MOVE.search(text)
        or LIST.search(text)
        or BOOK.search(text)
        or profile_topic(text)
        or ASKS.search(text)
        or ADD_OR_PLUS.search(text)
    )


def _one_booking_for_several(head: str, tail: str) -> bool:
    """ "haircuts for me and my son, saturday 10 and 11": a booking with no day or time
    yet, and a tail with no request of its own that only adds people, day and times, is
    one request, not two (its times are taken one at a time further on)."""
    if not BOOK.search(head) or CANCEL.search(head) or MOVE.search(head) or ASKS.search(head):
        return False
    if DIGIT.search(head) or parse_when(head, datetime(2000, 1, 3)).day is not None:
        return False
    return not _has_request(tail) and bool(DIGIT.search(tail))


ABBREVIATED = re.compile(
    r"(?i)\b(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun|jan|feb|mar|apr|jun|jul|aug|sept?|"
    r"oct|nov|dec|approx|appt|min|mins|hr|hrs)\.(?=\s)"
)
# "thursday instead of friday", "3 instead of 2": a change to something held.
INSTEAD_OF = re.compile(
    r"\b(?:instead of|rather than|in place of)\s+(?:my |the |our )?"
    r"(?:\w+day|tomorrow|today|\d|noon|this|that)",
    re.ASCII,
)


# "same time next week", "a la misma hora el jueves": the held appointment's time, moved.
SAME_TIME = re.compile(r"\b(?:same (?:time|hour|slot)|misma hora)\b", re.ASCII)
# A second booking beside the held one ("and the same time next week too") is no move.
ALSO_BOOKING = re.compile(
    r"^(?:and|plus|also)\b|\b(?:too|as well|also|again|another|in addition|every|each|"
    r"ademas|tambien|otra)\b",
    re.ASCII,
)
# "that afternoon", "the same day", "ese mismo día": a day said elsewhere in the message.
SAME_DAY = cued(
    re.compile(
        r"\b(?:that (?:same )?(?:day|afternoon|morning|evening|night)|(?:the )?same day|"
        r"(?:ese|el) (?:mismo )?dia|esa (?:misma )?tarde)\b"
    ),
    "that |same day|dia|tarde",
)
# A clause about an appointment that stays as it is: context for the request after it.
KEEP_HEAD = re.compile(
    r"^(?:besides|apart from|in addition to|on top of|along with|as well as|ademas de)\b|"
    r"^(?:so |ok )?(?:i (?:have|already have|'ve got|ve got|got) )?my [a-z]+(?:'s| is| was)? "
    r"(?:at|on|is at|is on)\b|"
    r"^(?:please |pls |ok |so )?(?:keep|leave|don'?t (?:touch|change|move|cancel)|"
    r"do not (?:touch|change|move|cancel)|deja|dejame|dejen|no (?:toques|cambies|muevas|"
    r"canceles))\b|\b(?:stays|is staying|stays put|is fine as is|as it is|se queda|como esta)$"
)
KEEP_BREAK = re.compile(r"\s*[,;.!]+\s*(?:(?:but|and|y|pero)\s+)?|\s+(?:but|and|y|pero)\s+")
# Requests that can follow what stays ("..., and book", "... but also add").
AFTER_KEEP = re.compile(
    r"^(?:(?:also|then|just|please|can you|could you|i'?d like|i want|i need|can i|could i)\s+)*"
    r"(?:also|book|add|schedule|get|fit|squeeze|put|i'?d|i|can|could|plus|agrega|agregame|"
    r"anade|anademe|reserva|reservame|agenda|agendame|quiero|tambien|me|cancel|move|change|"
    r"cancela|cambia)\b"
)


# The same clause said last: "a consultation friday at 2, and I'm keeping my 10am".
KEEP_TAIL = re.compile(
    r"^(?:and |but |while )?(?:i'?m |i am |we'?re |i'll be |i will be |i want to |i'd like to )?"
    r"(?:keeping|keep|leaving|leave|not (?:cancel|mov|chang)\w*|mantengo|dejo)\b"
)


def kept_context(raw: str) -> tuple[str, str | None]:
    """ "keep my haircut friday but also book a consultation that afternoon": the request
    is the second clause; the first only says what stays (and which day "that" is)."""
    text = fold(raw)
    for match in KEEP_BREAK.finditer(text):
        head, tail = text[: match.start()].strip(), text[match.end() :].strip()
        if head and tail and KEEP_HEAD.search(head) and AFTER_KEEP.search(tail):
            return raw[match.end() :].strip(), raw[: match.start()].strip()
        if head and tail and KEEP_TAIL.search(tail):
            return raw[: match.start()].strip(), raw[match.end() :].strip()
    return raw, None


def day_of_reference(
    raw: str, when: When, kept: str | None, now: datetime, hours: Hours
) -> tuple[When, str | None]:
    """ "that afternoon" takes the day said in the clause kept; with none, it is named
    back (the engine asks which day) rather than read as today."""
    found = SAME_DAY.search(fold(raw))
    if found is None or when.day is not None:
        return when, None
    if kept is not None:
        kept_day = parse_when(kept, now, hours).day
        if kept_day is not None:
            return replace(when, day=kept_day), None
    return when, found.group(0)


# "oh I meant thursday", "sorry, make that 11": a correction of what was just settled.
CORRECTION = re.compile(
    r"\b(?:i meant|i mean|meant to say|make (?:it|that)|change (?:it|that) to|oops|my bad|"
    r"wrong day|wrong time|quise decir|queria decir|perdon,? (?:el|a las))\b",
    re.ASCII,
)


# A cancel that asks for another time in the same breath is a move.
OTHER_TIME_WANTED = re.compile(
    r"\b(?:instead|(?:can|could) (?:i|we) (?:do|come|make it|have|get)|how about|what about|"
    r"move (?:it|that) to|(?:maybe|perhaps) (?:on )?(?:\w+day|tomorrow)|en lugar|en vez|"
    r"mejor (?:el|a las|para)|(?:puede|podria) ser|(?:can|could) it be|"
    r"is (?:\w+day|tomorrow) ok)\b",
    re.ASCII,
)


KEEP_BUT = re.compile(r"\s*keep\b.*?\bbut\s+")
BUT_KEEP = re.compile(r",?\s*\b(?:but|and)\s+(?:please\s+)?keep\b")
RANGE_OPENED = re.compile(r"\b(?:between|from)\s+\S+$")
INSTEAD_WORD = re.compile(r"\binstead\b")
TIME_ONLY = re.compile(r"(?:at\s+)?\d{1,2}(?::\d{2})?\s*(?:am|pm)?")
AT_NUMBER = re.compile(r"\b(?:at|a las?)\s+\d")
WEEKDAY_THEN_NUMBER = re.compile(r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b.*\d")
ANOTHER_DAY = re.compile(r"(?:the one |my |the )?(?:on |for )?\S+day\b.*")


def _without_period(match: re.Match[str]) -> str:
    return match.group(0)[:-1] + " "


def _tail_asks(head: str, tail: str, types: Sequence[AppointmentType]) -> bool:
    """Whether what follows a break is a request of its own."""
    # "a haircut and a consultation on friday": a second type named is a second booking.
    both_typed = bool(_named_types(head, types)) and bool(_named_types(tail, types))
    return (
        _has_request(tail)
        or both_typed
        or bool(
            TIME_ONLY.fullmatch(tail) or AT_NUMBER.search(tail) or WEEKDAY_THEN_NUMBER.search(tail)
        )
    )


def split_requests(raw: str, types: Sequence[AppointmentType] = ()) -> tuple[str, str | None]:
    """ "cancel friday and book wednesday", "what are your hours? and can I get a haircut
    thursday at 3", "tuesday 10am and thursday 10am": the first request and the rest."""
    # "sat. 10:30am", "Dec. 3": an abbreviation's period ends no sentence.
    raw = ABBREVIATED.sub(_without_period, raw) if "." in raw else raw
    text = fold(raw)
    keep = KEEP_BUT.match(text)
    if keep is not None:  # "keep friday but cancel tuesday": only the second is a request
        return raw[keep.end() :].strip(), None
    kept = BUT_KEEP.search(text) if "keep" in text else None
    if kept is not None and kept.start() > 0:  # "cancel tuesday but keep friday": the same
        return raw[: kept.start()].strip(), None
    for match in BREAK.finditer(text):
        head, tail = text[: match.start()].strip(" ,."), text[match.end() :].strip()
        if not head or not tail or RANGE_OPENED.search(head):
            continue
        if _one_booking_for_several(head, tail):
            continue
        # A statement before "... instead?" describes the appointment being moved.
        if REFERS_BACK.fullmatch(tail):
            continue  # "forget my thursday appointment, cancel it": one request
        if BARE_MODAL.fullmatch(head):
            continue  # "can I also get a consultation": one request, not "can I" + another
        head_asks = _has_request(head) or bool(DIGIT.search(head) and not INSTEAD_WORD.search(tail))
        # The tail is read only when the head asks something (both must, to split).
        if head_asks and _tail_asks(head, tail, types):
            return raw[: match.start()].strip(" ,."), raw[match.end() :].strip()
        if CANCEL.search(head) and ANOTHER_DAY.fullmatch(tail):
            # "cancel the one on thursday and the one on tuesday": the verb holds for both.
            return raw[: match.start()].strip(" ,."), f"cancel {raw[match.end() :].strip()}"
    return raw, None


# Spoken hesitations carry nothing; "on on tuesday" is a stutter, not two words.
FILLERS = re.compile(r"(?i)\b(?:u+m+|u+h+|e+r+m*|a+h+|h+m+|m{2,}|e+h+|e+m+)\b[,.]?\s*")
STUTTER = re.compile(r"(?i)\b(\w+)(?:\s+\1\b)+")
# "wednesday at 4, no sorry, 3": what follows the marker replaces what it restates.
SELF_CORRECTION = re.compile(
    r"(?i)[,;.]?\s*\b(?:no sorry|sorry no|no wait|wait no|sorry i mean|i mean|i meant|"
    r"or rather|make that|no perdon|perdon|digo|quiero decir)\b[,;.]?\s*"
)


# The letters every FILLERS match is made of: a whole word (\\b both sides) of two or more.
FILLER_LETTERS = frozenset("umhera")


def _may_hesitate(raw: str) -> bool:
    """Whether FILLERS can match: only if some word of two letters or more is made of its
    letters alone (for ASCII text; other text is left to the pattern)."""
    words = ascii_words(raw)
    return words is None or any(len(w) > 1 and FILLER_LETTERS.issuperset(w) for w in words)


def clean_speech(raw: str) -> str:
    text = FILLERS.sub("", raw) if _may_hesitate(raw) else raw
    return (STUTTER.sub(r"\1", text) if _may_stutter(text) else text).strip()


def _may_stutter(text: str) -> bool:
    """Whether STUTTER can match: its group is a whole word (\\b before it, whitespace
    after), and what repeats it is the next word, whole (\\b after), so an ASCII text
    with no word said twice in a row has none; the backreference scan costs more."""
    words = ascii_words(text)
    return words is None or any(map(str.__eq__, words, words[1:]))


# Every marker above holds one of these: an ASCII message without any (lower-cased: the
# markers are matched in any case) has nothing to split.
SELF_CORRECTION_CUES = ("sorry", "wait", "mean", "rather", "make that", "perdon", "digo", "decir")


def _may_correct_itself(raw: str) -> bool:
    if not raw.isascii():
        return True  # case folding beyond ASCII ("ſ" is an "s"): let the pattern decide
    return any(map(raw.lower().__contains__, SELF_CORRECTION_CUES))


# Texts one reading of a message has already dated (its moment and hours fixed): the
# date reader is pure, and a message of two requests dates its first one twice.
Dated = dict[str, When]


def _dated(text: str, now: datetime, hours: Hours, dated: Dated | None) -> When:
    if dated is None:
        return parse_when(text, now, hours)
    when = dated.get(text)
    if when is None:
        when = dated[text] = parse_when(text, now, hours)
    return when


def read_when(raw: str, now: datetime, hours: Hours, dated: Dated | None = None) -> When:
    """The day and time said, after any self-correction: the part after "no sorry" / "I
    mean" wins for what it names; what it leaves out is kept from before. `dated`: what
    this reading of the message has dated already, at this `now` and `hours`."""
    if not _may_correct_itself(raw):
        return _dated(raw, now, hours, dated)
    parts = SELF_CORRECTION.split(raw)
    if len(parts) < 2 or not parts[0].strip() or not parts[-1].strip():
        return _dated(raw, now, hours, dated)
    before = parse_when(" ".join(parts[:-1]), now, hours)
    after = parse_when(parts[-1], now, hours)
    if after.empty:
        return _dated(raw, now, hours, dated)
    day = after.day if after.day is not None or after.unreadable else before.day
    if after.at is None and after.day is None and parts[-1].strip().isdigit():
        # "at 4, no sorry, 3": a bare number restates the hour on the day already said.
        after = parse_when(f"{' '.join(parts[:-1])} at {parts[-1].strip()}", now, hours)
        return replace(after, day=day) if day is not None else after
    return replace(
        after,
        day=day,
        at=after.at if after.at is not None else before.at,
        part=after.part or (before.part if after.day is None else None),
    )


@lru_cache(maxsize=1024)
def _owned_alias(alias: str) -> re.Pattern[str]:
    """ "my haircut", "mi corte": compiled once per type name, not per message."""
    return re.compile(
        rf"\b((?:my|mi|mis|our|nuestra)\s+(?:\w+\s+)?){re.escape(alias)}(s?)\b", re.ASCII
    )


def own_booking_text(text: str, types: Sequence[AppointmentType]) -> str:
    """A type name the person owns ("my haircut") read as a booking noun, so "what time
    is my haircut" is the same question as "what time is my appointment". "a haircut"
    stays a request."""
    for kind in types:
        for alias in {kind.key.lower(), kind.name.lower()}:
            if alias and alias in text:
                text = _owned_alias(alias).sub(r"\1appointment\2", text)
    return text


WHAT_APPOINTMENTS = re.compile(r"\bwhat appointments\b.*\b(?:i|me)\b", re.ASCII)


def asks_list(raw: str, text: str, types: Sequence[AppointmentType], topic: str | None) -> bool:
    """`topic`: profile_topic(text), which the caller has read already."""
    booking = own_booking_text(text, types)
    if LIST.search(booking) or WHAT_APPOINTMENTS.search(booking):
        return True
    if booking != text:
        return asks_about_own_booking(raw, booking)
    return topic is None and _asks_own_booking_as_question(raw, booking)


DAY_NAMED = (
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|lunes|martes|mi[eé]rcoles|"
    r"jueves|viernes|s[aá]bado|domingo|(?:the\s+)?\d{1,2}(?:st|nd|rd|th))"
)
# "tuesday the 24th and thursday the 26th, both at 10", "el martes y el jueves a las 11":
# two days and one time said once, after the second.
TWO_DAYS = re.compile(
    rf"^(?P<head>.*?\b{DAY_NAMED}(?:\s+the\s+\d{{1,2}}(?:st|nd|rd|th))?)\s*,?\s+(?:and|y|&)\s+"
    rf"(?P<tail>(?:on\s+|el\s+|the\s+)?{DAY_NAMED}\b.*)$",
    re.IGNORECASE,
)


RANGE_OPENED_ANY = re.compile(r"\b(?:between|from|entre)\s+\S+$", re.IGNORECASE)


def _may_name_two_days(raw: str) -> bool:
    """Whether TWO_DAYS can match: its "and", "y" or "&" stands between whitespace, so it
    is a whole word of the whitespace-split text (in any case: lower-cased, for ASCII
    text; other text, whose case folding goes beyond ASCII, is left to the pattern)."""
    if not raw.isascii():
        return True
    words = raw.lower().split()
    return "and" in words or "y" in words or "&" in words


def shared_time(
    raw: str, rest: str | None, now: datetime, hours: Hours, dated: Dated | None = None
) -> tuple[str, str | None]:
    """Two days with one time said after the second: each day gets the time (never a
    day with no time while the time said goes to the other only). `dated`: as read_when's,
    and what is dated here is added to it."""
    if rest is None:
        pair = TWO_DAYS.match(raw) if _may_name_two_days(raw) else None
        if pair is None or RANGE_OPENED_ANY.search(pair["head"]):
            return raw, rest
        raw, rest = pair["head"], pair["tail"]
        head_when, tail_when = _dated(raw, now, hours, dated), _dated(rest, now, hours, dated)
        if head_when.day is None or tail_when.day is None or tail_when.at is None:
            return pair.string, None
    else:
        head_when, tail_when = _dated(raw, now, hours, dated), _dated(rest, now, hours, dated)
    if head_when.day is None or head_when.at is not None or tail_when.day is None:
        return raw, rest
    head_text, tail_text = normalise(raw), normalise(rest)
    if CANCEL.search(head_text) or MOVE.search(head_text) or _has_request(tail_text):
        return raw, rest  # "cancel friday and book wednesday at 2": two requests, two times
    if tail_when.at is None or head_when.part is not None:
        return raw, rest
    return f"{raw} at {tail_when.at:%H:%M}", rest


NUMBER_ALONE = re.compile(r"(?:at |around )?(\d{1,2})", re.ASCII)


def read(raw: str, now: datetime, hours: Hours, types: Sequence[AppointmentType]) -> Message:
    raw, kept = kept_context(clean_speech(expand_shorthand(raw)))
    dated: Dated = {}
    raw, rest = shared_time(*split_requests(raw, types), now, hours, dated)
    text = normalise(raw)
    when, day_ref = day_of_reference(raw, read_when(raw, now, hours, dated), kept, now, hours)
    same_time = bool(SAME_TIME.search(text))
    type_key = find_type(text, types)
    topic = profile_topic(text)
    intent = None
    cancels = CANCEL.search(text) is not None
    if cancels and OTHER_TIME_WANTED.search(text):
        intent = "move"  # "can't make it friday, can I do monday at 10 instead?"
    elif cancels:
        intent = "cancel"
    elif MOVE.search(text):
        intent = "move"
    elif asks_list(raw, text, types, topic) or (
        type_key is not None and OWN_TYPE_QUESTION.search(text) and not CHANGE_VERB.search(text)
    ):
        intent = "list"
    elif (topic == "hours" and not BOOK_VERB.search(text)) or (topic and not (when.day or when.at)):
        intent = "info"
    elif BOOK.search(text) or type_key is not None:
        intent = "book"
    if same_time and intent in (None, "book") and not ALSO_BOOKING.search(text):
        intent = "move"  # "same time but thursday": the held one's time, on another day
    number = NUMBER_ALONE.fullmatch(text)
    no = NO.search(text) is not None
    instead = INSTEAD.search(text) is not None
    return Message(
        raw=raw,
        text=text,
        when=when,
        intent=intent,
        yes=bool(YES.search(text) or YES_ANYWHERE.search(text)) and not no,
        no=no,
        later=bool(LATER.search(text)),
        earlier=bool(EARLIER.search(text)),
        goodbye=bool(GOODBYE.search(text) or GOODBYE_ES.search(text)),
        thanks=bool(THANKS.search(text) or THANKS_ES.search(text)),
        reset=bool(RESET.search(text)),
        greeting=bool(GREETING.search(text)),
        type_key=type_key,
        unknown_type=unknown_type_named(text, type_key),
        choice=find_choice(text),
        number=int(number.group(1)) if number else None,
        name=find_name(raw, loose=False),
        mentions_existing=bool(REFERS_TO_EXISTING.search(text)),
        every=bool(CANCEL_ALL.search(text)),
        instead=instead,
        in_addition=bool(IN_ADDITION.search(text)) and not instead,
        rest=rest,
        topic=topic,
        instead_of=bool(INSTEAD_OF.search(text)),
        same_time=same_time,
        kept=kept,
        day_ref=day_ref,
    )
