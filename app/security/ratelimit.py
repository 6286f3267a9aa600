"""Rate limits on slowapi's limiter and storage: per client on ordinary routes
(app/security/middleware.py), per API key on the admin API, per caller number on webhooks
(checked by the webhook itself: Twilio ignores 429, and every Twilio request comes from
Twilio's shared addresses)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import Any

from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from slowapi import Limiter
from starlette.requests import Request

from app.config import Settings
from app.services import services_of


@lru_cache(maxsize=8)
def trusted_networks(spec: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """TRUSTED_PROXIES ("10.0.0.0/8, 127.0.0.1") as networks; a typo fails loudly."""
    return tuple(ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def _is_trusted(address: str, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: str) -> str:
    """The client's address: the socket peer, unless that peer is a trusted proxy.

    Behind trusted proxies, X-Forwarded-For is read from the right (each proxy appends
    the address it saw) and the first hop that is not a trusted proxy is the client.
    Anything to the left of it was written by the client and is ignored, so a client
    cannot pick its own rate-limit key by sending the header.
    """
    if peer is None:
        return "unknown"
    networks = trusted_networks(trusted)
    if not networks or not forwarded_for or not _is_trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, networks):
            return hop if _valid_ip(hop) else peer
    return hops[0] if hops and _valid_ip(hops[0]) else peer


def _valid_ip(value: str) -> bool:
    try:
        ip_address(value)
    except ValueError:
        return False
    return True


def client_key(request: Request) -> str:
    services = getattr(services_of(request), "services", None)
    settings = services.settings if services is not None else None
    trusted = settings.trusted_proxies if settings is not None else ""
    peer = request.client.host if request.client else None
    return client_address(peer, request.headers.get("x-forwarded-for"), trusted)


class SweptMemoryStorage(MemoryStorage):
    """limits' in-process storage, minus its timer thread per hit.

    MemoryStorage starts a 10 ms `threading.Timer` on any hit that finds none alive, and
    each timer walks every key: at a few hundred turns/s that is a new thread per turn and
    a scan of every caller counted in the last window, a hundred times a second. Counts
    are checked for expiry when read (MemoryStorage.get, and the moving-window reads), so
    the sweep only frees memory: here it runs inline, at most once per SWEEP_SECONDS.
    """

    STORAGE_SCHEME = ["swept-memory"]  # noqa: RUF012 (limits registers schemes by this list)
    SWEEP_SECONDS = 5.0

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **_: str):
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self._next_sweep = time.monotonic() + self.SWEEP_SECONDS
        self._sweeping = threading.Lock()

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the parent's private hook
        now = time.monotonic()
        if now < self._next_sweep or not self._sweeping.acquire(blocking=False):
            return
        try:
            self._next_sweep = now + self.SWEEP_SECONDS
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
        finally:
            self._sweeping.release()


def build_limiter(settings: Settings) -> Limiter:
    return Limiter(
        key_func=client_key,
        default_limits=[settings.rate_limit_default],
        storage_uri=settings.redis_url or "swept-memory://",
        enabled=settings.rate_limit_enabled,
        headers_enabled=False,
        key_prefix=settings.rate_limit_key_prefix,
    )


@lru_cache(maxsize=64)
def _parsed(limit: str) -> tuple[RateLimitItem, ...]:
    """parse_many, once per limit text (a webhook builds its CallerLimit every turn)."""
    return tuple(parse_many(limit))


class CallerLimit:
    """A per-caller limit (scope + caller number) on slowapi's storage."""

    def __init__(
        self, limiter: Limiter, limit: str, scope: str, memo: dict[Any, Any] | None = None
    ) -> None:
        self._limiter = limiter
        self._limits = _parsed(limit)
        self._scope = scope
        # Decisions already taken in this turn: a turn run again (after fetching calendar
        # data outside its transaction) counts the caller once.
        self._memo = memo

    def allow(self, caller: str) -> bool:
        """Count one hit for this caller; False once any of the limits is spent."""
        if not self._limiter.enabled:
            return True
        key = ("caller_limit", self._scope, caller)
        if self._memo is not None and key in self._memo:
            return bool(self._memo[key])
        strategy = self._limiter.limiter
        allowed = all(strategy.hit(item, *self._identity(caller)) for item in self._limits)
        if self._memo is not None:
            self._memo[key] = allowed
        return allowed

    def _identity(self, who: str) -> tuple[str, ...]:
        # The deployment's key prefix keeps installations (and test runs) sharing one
        # Redis apart, as slowapi does for its own limits.
        prefix = getattr(self._limiter, "_key_prefix", "")
        return (prefix, self._scope, who) if prefix else (self._scope, who)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Seconds until the spent limit frees a hit again (0 when allowed).
    retry_after: int = 0


ALLOWED = Decision(True)


class KeyLimit(CallerLimit):
    """A limit per identity (an API key, an address) that also says when to come back."""

    def check(self, identity: str) -> Decision:
        if not self._limiter.enabled:
            return ALLOWED
        strategy = self._limiter.limiter
        for item in self._limits:
            if not strategy.hit(item, *self._identity(identity)):
                reset_at = strategy.get_window_stats(item, *self._identity(identity)).reset_time
                return Decision(False, max(1, int(reset_at - time.time() + 0.999)))
        return ALLOWED
