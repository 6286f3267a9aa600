"""Did the person say yes, no, or goodbye? Read in code from the person's own words, so a
model can never answer a confirmation question on the person's behalf.

Deliberately narrow: a yes must be the gist of the message ("yes", "sí, por favor",
"sounds good"), not a word inside a new request ("yes but Friday instead" is not a yes,
it changes what was asked). English and Spanish, the languages agents are set up in.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum

YES_WORDS = (
    r"yes|yeah|yep|yup|ya|sure|ok|okay|correct|confirm|confirmed|please do|do it|go ahead|"
    r"book it|that works|works for me|sounds good|sounds great|perfect|great|absolutely|"
    r"definitely|of course|fine|alright|all right|"
    r"si|claro|vale|de acuerdo|confirmo|confirmado|adelante|perfecto|por supuesto|dale|"
    r"esta bien|me parece bien|hazlo"
)
NO_WORDS = (
    r"no|nope|nah|not really|don't|dont|never mind|nevermind|negative|"
    r"mejor no|para nada|ni hablar|todavia no"
)
FILLER = r"please|thanks|thank you|por favor|gracias|then|and|y|pues|bueno|muchas|so|yes|si|que"
YES = re.compile(rf"^(?:(?:{YES_WORDS})\b[ ,.!]*)+(?:(?:{FILLER})\b[ ,.!]*)*$")
NO = re.compile(rf"^(?:{NO_WORDS})\b")
# A "but" or a time after the yes changes the request.
CHANGES = re.compile(r"\b(?:but|instead|actually|pero|mejor|en vez)\b|\d")
GOODBYE = re.compile(r"\b(?:bye|goodbye|good bye|that's all|thats all|adios|hasta luego|chao)\b")


# A booking of a type the person already holds: a "yes" cannot say whether it replaces
# that appointment or adds to it, so the engine asks, and reads one of these.
BOTH = re.compile(
    r"\b(?:both|keep both|keep it|in addition|additional|another one|as well|add it|"
    r"ambas|ambos|las dos|los dos|ademas|tambien)\b"
)
INSTEAD = re.compile(
    r"\b(?:move|move it|instead|replace|reschedule|mover|muevela|muevelo|cambiar|cambiala|"
    r"cambialo|en vez|en lugar|reemplaza\w*|reprograma\w*)\b"
)
ANOTHER = re.compile(
    r"\b(?:another|also|as well|in addition|additional|second|otra|otro|tambien|ademas)\b"
)

MOVE_WORDS = re.compile(
    r"\b(?:move|reschedule|resched|push|postpone|change|switch|shift|bump|instead|later|"
    r"earlier|cambiar|cambia|cambiala|mover|mueve|muevela|reagendar|reprogramar|pasar|pasa|"
    r"recorrer|en vez|"
    # "I can't make it Tuesday": the held one is what they want to leave.
    r"(?:can'?t|cannot|can not|won'?t be able to) make it|no puedo (?:ir|llegar))\b"
)


class Choice(Enum):
    BOTH = "both"
    INSTEAD = "instead"
    OTHER = "other"


class Answer(Enum):
    YES = "yes"
    NO = "no"
    OTHER = "other"


def fold(text: str) -> str:
    """Lower case, accents and punctuation folded: "¡Sí!" -> "si"."""
    text = unicodedata.normalize("NFKD", text.lower().replace("’", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^a-z0-9:' ]+", " ", text).split())


def answer(text: str) -> Answer:
    folded = fold(text)
    if not folded:
        return Answer.OTHER
    if NO.match(folded):
        return Answer.NO
    if YES.match(folded) and not CHANGES.search(folded):
        return Answer.YES
    return Answer.OTHER


def choice(text: str) -> Choice:
    """Keep both appointments, or move the one held instead? Neither or both: unclear."""
    folded = fold(text)
    both, instead = bool(BOTH.search(folded)), bool(INSTEAD.search(folded))
    if both == instead:
        return Choice.OTHER
    return Choice.BOTH if both else Choice.INSTEAD


def asks_for_another(text: str) -> bool:
    """The person's own words ask for an appointment besides the one they hold."""
    return bool(ANOTHER.search(fold(text)))


def speaks_of_moving(texts: list[str]) -> bool:
    """The person's recent words speak of moving an appointment: a booking prepared now
    may be a move the model got wrong."""
    return any(MOVE_WORDS.search(fold(text)) for text in texts)


def is_goodbye(text: str) -> bool:
    return bool(GOODBYE.search(fold(text)))
