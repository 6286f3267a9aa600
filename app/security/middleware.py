"""Pure ASGI guards in front of every route: body size (413), JSON-only content types
on JSON APIs (415), the per-address limit (429) and the request id, in one layer; and the
security headers every response carries (app/edge.py adds them). Pure ASGI, so nothing
reads a body twice and streaming bodies are counted as they arrive rather than trusted by
Content-Length. One layer rather than one per guard: each layer is a coroutine, a header
scan and a send wrapper on every request."""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastapi import FastAPI
from slowapi import Limiter
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.logs import request_id
from app.metrics import RATE_LIMIT_REFUSALS
from app.security.ratelimit import KeyLimit, client_address

# The admin API's error body shape, spoken here too so every refusal looks the same.
CODES = {400: "bad_request", 413: "payload_too_large", 415: "unsupported_media_type"}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Limited per caller number by their own handlers (Twilio shares its addresses), or probes.
CLIENT_LIMIT_EXEMPT = ("/webhooks/", "/tools/", "/healthz", "/readyz", "/metrics")

Headers = list[tuple[bytes, bytes]]


async def _send_error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"error": CODES.get(status, "error"), "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_rate_limited(send: Send, retry_after: int) -> None:
    body = json.dumps({"error": "rate_limited", "detail": "too many requests"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class GuardMiddleware:
    """In this order, as separate layers did: the body size (a declared Content-Length over
    the limit or unreadable: 413/400; a streamed body counted as it arrives: 413), under
    `json_prefixes` a body that must say it is JSON (415), RATE_LIMIT_DEFAULT per client
    address on routes that are not exempt (429), then a request id for everything inside
    (on its log lines and in the X-Request-ID response header; refusals here carry none).

    The per-address limit is enforced here rather than by slowapi's middleware: that only
    sees routes registered directly on the app, and routers included with include_router
    (the admin API, the OAuth pages) escape it. Same storage (Redis when configured); the
    address comes from client_address(): X-Forwarded-For counts only behind TRUSTED_PROXIES.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        json_prefixes: tuple[str, ...],
        limiter: Any,
        settings: Settings,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.json_prefixes = json_prefixes
        self.settings = settings
        self.limit = KeyLimit(limiter, settings.rate_limit_default, "client")
        self.too_large = f"request body over {max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await _send_error(send, 400, "invalid Content-Length")
                return
            if too_big:
                await _send_error(send, 413, self.too_large)
                return
        received = 0
        exceeded = False
        started = False
        rid: bytes | None = None  # set once the request is admitted

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # Frameworks turn an error while reading the body into their own 400; once
            # the limit was crossed, the answer is 413 whatever the app made of it.
            nonlocal started
            if exceeded:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await _send_error(send, 413, self.too_large)
                return
            if message["type"] == "http.response.start":
                started = True
                if rid is not None:
                    message.setdefault("headers", []).append((b"x-request-id", rid))
            await send(message)

        try:
            refused = await self._refusal(scope, headers, guarded_send)
            if refused:
                return
            incoming = headers.get(b"x-request-id", b"").decode("latin-1")
            text = incoming if incoming.isalnum() and len(incoming) <= 64 else secrets.token_hex(8)
            rid = text.encode()
            token = request_id.set(text)
            try:
                await self.app(scope, counted_receive, guarded_send)
            finally:
                request_id.reset(token)
        except _TooLarge:
            if not started:
                await _send_error(send, 413, self.too_large)

    async def _refusal(self, scope: Scope, headers: dict[bytes, bytes], send: Send) -> bool:
        """Whether the request was refused (the refusal sent): 415 or 429."""
        path: str = scope["path"]
        if scope.get("method") in BODY_METHODS and path.startswith(self.json_prefixes):
            has_body = headers.get(b"content-length", b"0") != b"0" or (
                b"transfer-encoding" in headers
            )
            media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if has_body and media_type != b"application/json":
                await _send_error(send, 415, "the request body must be application/json")
                return True
        if path.startswith(CLIENT_LIMIT_EXEMPT):
            return False
        forwarded = headers.get(b"x-forwarded-for")
        peer = scope["client"][0] if scope.get("client") else None
        address = client_address(
            peer, forwarded.decode("latin-1") if forwarded else None, self.settings.trusted_proxies
        )
        decision = self.limit.check(address)
        if decision.allowed:
            return False
        RATE_LIMIT_REFUSALS.labels(scope="client").inc()
        await _send_rate_limited(send, decision.retry_after)
        return True


DOC_PATHS = ("/docs", "/redoc", "/openapi.json")
API_CSP = b"default-src 'none'; frame-ancestors 'none'"


def security_headers(*, strict_csp: bool, hsts: bool) -> Headers:
    """The headers every response carries (unless it set its own). Swagger UI loads its
    script and styles from a CDN, so its pages get no CSP; API responses load nothing."""
    wanted = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if strict_csp:
        wanted.append((b"content-security-policy", API_CSP))
    if hsts:
        wanted.append((b"strict-transport-security", b"max-age=31536000"))
    return wanted


def add_missing(headers: Headers, wanted: Headers) -> None:
    present = {name.lower() for name, _ in headers}
    headers.extend((k, v) for k, v in wanted if k not in present)


def install(
    app: FastAPI, settings: Settings, limiter: Limiter, json_prefixes: tuple[str, ...]
) -> None:
    """Add the guards, then CORS outside them when origins are configured; the last
    added runs first. The security headers (app/edge.py) go on outside these, so they
    wrap every refusal."""
    app.add_middleware(
        GuardMiddleware,
        max_bytes=settings.max_body_bytes,
        json_prefixes=json_prefixes,
        limiter=limiter,
        settings=settings,
    )
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
