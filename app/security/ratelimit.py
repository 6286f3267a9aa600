"""Rate limits with slowapi: per client on ordinary routes (its middleware and default
limits), per caller number on webhooks (checked by the webhook itself, because Twilio
ignores 429 and every Twilio request comes from Twilio's shared addresses)."""

from __future__ import annotations

from limits import parse_many
from slowapi import Limiter
from starlette.requests import Request

from app.config import Settings


def client_key(request: Request) -> str:
    # Only the socket peer: X-Forwarded-For is trivially spoofed unless a trusted proxy
    # rewrote it, and Starlette/uvicorn --proxy-headers already put that into client.host.
    return request.client.host if request.client else "unknown"


def build_limiter(settings: Settings) -> Limiter:
    return Limiter(
        key_func=client_key,
        default_limits=[settings.rate_limit_default],
        storage_uri=settings.redis_url or "memory://",
        enabled=settings.rate_limit_enabled,
        headers_enabled=False,
        key_prefix="sched",
    )


class CallerLimit:
    """A per-caller limit (scope + caller number) on slowapi's storage."""

    def __init__(self, limiter: Limiter, limit: str, scope: str) -> None:
        self._limiter = limiter
        self._limits = parse_many(limit)
        self._scope = scope

    def allow(self, caller: str) -> bool:
        """Count one hit for this caller; False once any of the limits is spent."""
        if not self._limiter.enabled:
            return True
        strategy = self._limiter.limiter
        return all(strategy.hit(item, self._scope, caller) for item in self._limits)
