"""An owner texting "dashboard" or "link" (or "panel", "enlace", "tablero") gets a fresh
sign-in link by a separate SMS. The reply TwiML only says it was sent, so the link never
sits in the stored webhook response that a retry replays."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.orm import Session

from app.config import Settings
from app.dashboard import auth
from app.notify import SmsSender

ENGLISH = {"dashboard", "link", "sign in", "login", "log in", "my dashboard", "dashboard link"}
SPANISH = {"panel", "enlace", "tablero", "mi panel", "enlace del panel"}
_NOISE = re.compile(r"[^\w\s]")
# Each phrase above holds one of these words, and a word of the normalised message is
# letters found together in the lower-cased message: a message holding none of them
# (nearly every one) cannot be a request, and skips the normalising.
CUES = ("dashboard", "link", "sign", "log", "panel", "enlace", "tablero")

SENT = "I've texted you a sign-in link for your dashboard."
SENT_ES = "Te envié por SMS un enlace para entrar a tu panel."
NOT_SENT = "I couldn't text you a sign-in link right now. Please try again later."
NOT_SENT_ES = "No pude enviarte el enlace ahora. Inténtalo más tarde."


def requested(body: str) -> str | None:
    """Return "en" or "es" when the whole message asks for the dashboard link; else None."""
    lowered = body.lower()
    if not any(cue in lowered for cue in CUES):
        return None
    words = " ".join(_NOISE.sub(" ", lowered).split())
    if words in ENGLISH:
        return "en"
    if words in SPANISH:
        return "es"
    return None


def answer(
    session: Session,
    sender: SmsSender,
    settings: Settings,
    caller: str,
    body: str,
    now: datetime,
) -> str | None:
    """The reply when this is an owner asking for the link; None to let the engine run."""
    language = requested(body)
    if language is None:
        return None
    owner = auth.owner_of(session, caller)
    if owner is None:
        return None  # not an owner: the words are the conversation's business
    spanish = language == "es"
    sent = auth.text_sign_in(session, sender, settings, caller, owner, now, spanish)
    if sent is None:
        return NOT_SENT_ES if spanish else NOT_SENT
    return SENT_ES if spanish else SENT
