"""The outermost of our layers, on every HTTP request: the security headers on its
response, its Prometheus metrics and its access line; refusals by the guards inside
(app/security/middleware.py) included. One layer rather than three: each layer is a
coroutine and a send wrapper on every request, and these three all watch the same
response start."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.access_log import log_request
from app.logs import fields_scope
from app.metrics import observe_request
from app.security.middleware import DOC_PATHS, add_missing, security_headers

REQUEST_ID = b"x-request-id"


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, hsts: bool) -> None:
        self.app = app
        self.api_headers = security_headers(strict_csp=True, hsts=hsts)
        self.docs_headers = security_headers(strict_csp=False, hsts=hsts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            # A streamed call's fields belong to that call alone, as a request's do.
            with fields_scope():
                await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        wanted = self.docs_headers if scope["path"].startswith(DOC_PATHS) else self.api_headers
        status = 500
        rid: str | None = None

        async def watch(message: Message) -> None:
            nonlocal status, rid
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                add_missing(headers, wanted)
                status = message["status"]
                rid = dict(headers).get(REQUEST_ID, b"").decode("latin-1") or None
            await send(message)

        with fields_scope():
            try:
                await self.app(scope, receive, watch)
            finally:
                elapsed = time.perf_counter() - began
                observe_request(scope, status, elapsed)
                log_request(scope, status, rid, elapsed * 1000)
