"""What every voice channel (Twilio calls, VAPI) tells a caller it cannot route."""

from __future__ import annotations

from app.config import Settings
from app.routing import Unrouted, explain


def unrouted_text(routed: Unrouted, settings: Settings) -> str:
    """Spoken to a caller we cannot route, before hanging up."""
    return f"{explain(routed, settings.registration_instructions, again='call')} Goodbye."
