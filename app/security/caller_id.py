"""Caller ID is a claim: how far the network vouches for it, and the PIN check that
stands in when it does not.

Shared by every phone entry point (Twilio voice, VAPI), so the policy is written once:
a "strict" agent lets a caller whose number is not attested A book new appointments, but
not list, move or cancel existing ones until the caller passes the agent's PIN.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from app.phone import mask
from app.security import audit
from app.security.pins import digits_from_speech, verify_pin
from app.security.ratelimit import CallerLimit
from app.turn_rows import AgentLike

# Only full attestation means the carrier knows the caller owns the number.
ATTESTED = frozenset({"TN-Validation-Passed-A", "TN-Validation-Passed-A-Diverted"})
STRICT = "strict"


def is_attested(stir_verstat: str | None) -> bool:
    return (stir_verstat or "").strip() in ATTESTED


def needs_pin(agent: AgentLike, attested: bool) -> bool:
    return agent.caller_id_policy == STRICT and not attested


def may_manage_existing(agent: AgentLike, attested: bool, pin_verified: bool) -> bool:
    return pin_verified or not needs_pin(agent, attested)


class PinOutcome(StrEnum):
    VERIFIED = "verified"
    WRONG = "wrong"
    LOCKED = "locked"  # too many attempts in this call or from this caller
    NO_PIN = "no_pin"  # the agent has no PIN, so nobody can pass


@dataclass
class PinCheck:
    """One PIN attempt within a call. `call_state` is the call's own dict (kept in
    Conversation.details), where the attempts and the verified flag live."""

    session: Session
    agent: AgentLike
    caller: str
    call_state: dict[str, Any]
    caller_limit: CallerLimit
    max_attempts: int
    actor: str

    def attempt(self, heard: str) -> PinOutcome:
        if not self.agent.pin_hash:
            return PinOutcome.NO_PIN
        attempts = int(self.call_state.get("pin_attempts", 0))
        if attempts >= self.max_attempts or not self.caller_limit.allow(self.caller):
            self._audit("pin.locked", attempts)
            return PinOutcome.LOCKED
        self.call_state["pin_attempts"] = attempts + 1
        if verify_pin(digits_from_speech(heard), self.agent.pin_hash):
            self.call_state["pin_verified"] = True
            self._audit("pin.verified", attempts + 1)
            return PinOutcome.VERIFIED
        self._audit("pin.failed", attempts + 1)
        if attempts + 1 >= self.max_attempts:
            return PinOutcome.LOCKED
        return PinOutcome.WRONG

    def _audit(self, action: str, attempts: int) -> None:
        audit.record(
            self.session,
            action,
            actor=self.actor,
            subject=self.agent.id,
            details={"caller": mask(self.caller), "attempts": attempts},
        )
