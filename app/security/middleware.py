"""Pure ASGI guards in front of every route: body size (413), JSON-only content types
on JSON APIs (415) and security headers. Pure ASGI, so nothing reads a body twice and
streaming bodies are counted as they arrive rather than trusted by Content-Length."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from slowapi import Limiter
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.metrics import RATE_LIMIT_REFUSALS
from app.security.ratelimit import KeyLimit, client_address

# The admin API's error body shape, spoken here too so every refusal looks the same.
CODES = {400: "bad_request", 413: "payload_too_large", 415: "unsupported_media_type"}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


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


class _TooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await _send_error(send, 400, "invalid Content-Length")
                return
            if too_big:
                await _send_error(send, 413, f"request body over {self.max_bytes} bytes")
                return
        received = 0
        exceeded = False
        started = False

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
                    await _send_error(send, 413, f"request body over {self.max_bytes} bytes")
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLarge:
            if not started:
                await _send_error(send, 413, f"request body over {self.max_bytes} bytes")


class JsonContentTypeMiddleware:
    """Under the given path prefixes, a request with a body must say it is JSON."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("method") in BODY_METHODS
            and scope["path"].startswith(self.prefixes)
        ):
            headers = dict(scope["headers"])
            has_body = headers.get(b"content-length", b"0") != b"0" or (
                b"transfer-encoding" in headers
            )
            media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if has_body and media_type != b"application/json":
                await _send_error(send, 415, "the request body must be application/json")
                return
        await self.app(scope, receive, send)


DOC_PATHS = ("/docs", "/redoc", "/openapi.json")
API_CSP = b"default-src 'none'; frame-ancestors 'none'"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Swagger UI loads its script and styles from a CDN; API responses load nothing.
        strict_csp = not scope["path"].startswith(DOC_PATHS)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                present = {name.lower() for name, _ in headers}
                wanted = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if strict_csp:
                    wanted.append((b"content-security-policy", API_CSP))
                if self.hsts:
                    wanted.append((b"strict-transport-security", b"max-age=31536000"))
                headers.extend((k, v) for k, v in wanted if k not in present)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(
    app: FastAPI, settings: Settings, limiter: Limiter, json_prefixes: tuple[str, ...]
) -> None:
    """Add the guards; the last added runs first, so headers wrap every refusal."""
    app.add_middleware(ClientLimitMiddleware, limiter=limiter, settings=settings)
    app.add_middleware(JsonContentTypeMiddleware, prefixes=json_prefixes)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    hsts = settings.public_base_url.startswith("https://")
    app.add_middleware(SecurityHeadersMiddleware, hsts=hsts)


# Limited per caller number by their own handlers (Twilio shares its addresses), or probes.
CLIENT_LIMIT_EXEMPT = ("/webhooks/", "/tools/", "/healthz", "/readyz", "/metrics")


class ClientLimitMiddleware:
    """RATE_LIMIT_DEFAULT per client address on every route that is not exempt.

    slowapi's own middleware only sees routes registered directly on the app; routers
    included with FastAPI's include_router (the admin API, the OAuth pages) are matched
    lazily and escape it, so the per-address limit is enforced here, on the same storage
    (Redis when configured). The address comes from client_address(): X-Forwarded-For
    counts only behind TRUSTED_PROXIES.
    """

    def __init__(self, app: ASGIApp, limiter: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.limit = KeyLimit(limiter, settings.rate_limit_default, "client")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CLIENT_LIMIT_EXEMPT):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        forwarded = headers.get(b"x-forwarded-for")
        peer = scope["client"][0] if scope.get("client") else None
        address = client_address(
            peer, forwarded.decode("latin-1") if forwarded else None, self.settings.trusted_proxies
        )
        decision = self.limit.check(address)
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        RATE_LIMIT_REFUSALS.labels(scope="client").inc()
        body = json.dumps({"error": "rate_limited", "detail": "too many requests"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(decision.retry_after).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
