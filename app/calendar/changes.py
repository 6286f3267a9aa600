"""What two-way sync reads from a provider, in provider-neutral shapes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class EventChange:
    """One event as the provider now has it: its times, or gone."""

    event_id: str
    start: datetime | None
    end: datetime | None
    deleted: bool


@dataclass(frozen=True)
class Channel:
    """A push channel (Google) or subscription (Graph) the provider accepted."""

    channel_id: str
    resource_id: str | None
    expires_at: datetime


class SyncExpired(Exception):
    """The sync token or delta link is no longer valid (HTTP 410): read everything again."""
