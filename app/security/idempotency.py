"""Each inbound provider event is handled once; a retry gets the stored response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import InboundEvent


@dataclass(frozen=True)
class Claim:
    event: InboundEvent | None
    # Set when this event was seen before: what we answered then (None: still running).
    previous_response: str | None = None

    @property
    def is_new(self) -> bool:
        return self.event is not None


def claim(
    session: Session,
    provider: str,
    external_id: str,
    kind: str,
    payload: dict[str, Any] | None = None,
) -> Claim:
    """Record the event, or report that it was recorded before.

    The row is written in a savepoint inside the caller's transaction, so the event, its
    effects and its stored response commit together: a crash in between leaves no
    half-handled event, and Twilio's retry simply runs it again.
    """
    seen = session.scalar(
        select(InboundEvent).where(
            InboundEvent.provider == provider, InboundEvent.external_id == external_id
        )
    )
    if seen is not None:
        return Claim(None, seen.response)
    event = InboundEvent(provider=provider, external_id=external_id, kind=kind, payload=payload)
    try:
        with session.begin_nested():
            session.add(event)
    except IntegrityError:
        # A concurrent delivery of the same event won the race.
        seen = session.scalar(
            select(InboundEvent).where(
                InboundEvent.provider == provider, InboundEvent.external_id == external_id
            )
        )
        return Claim(None, seen.response if seen else None)
    return Claim(event)
