"""SMS consent on a shared number: our own opt-out table, so a STOP sent to one agent
stops every agent on that number, and nothing is ever sent after it."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy.orm import Session

from app.models import SmsOptOut, utcnow
from app.security import audit

OPT_OUT_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout"})
OPT_IN_WORDS = frozenset({"start", "yes", "unstop"})
HELP_WORDS = frozenset({"help", "info"})


class Keyword(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


def keyword_of(body: str, opt_out_type: str | None = None) -> Keyword | None:
    """Single-word messages only: "cancel my appointment" is a request, not an opt-out."""
    if opt_out_type:
        mapped = {"STOP": Keyword.OPT_OUT, "START": Keyword.OPT_IN, "HELP": Keyword.HELP}
        if opt_out_type.upper() in mapped:
            return mapped[opt_out_type.upper()]
    words = body.strip().strip(".!").lower().split()
    if len(words) != 1:
        return None
    word = words[0]
    if word in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if word in HELP_WORDS:
        return Keyword.HELP
    return None


def is_opted_out(session: Session, e164: str) -> bool:
    return session.get(SmsOptOut, e164) is not None


def opt_out(session: Session, e164: str) -> None:
    if session.get(SmsOptOut, e164) is None:
        session.add(SmsOptOut(e164=e164, opted_out_at=utcnow()))
    audit.record(session, "sms.opt_out", actor=f"sms:{e164}", subject=e164)


def opt_in(session: Session, e164: str) -> None:
    row = session.get(SmsOptOut, e164)
    if row is not None:
        session.delete(row)
    audit.record(session, "sms.opt_in", actor=f"sms:{e164}", subject=e164)
