"""Access lines through the project's logging: request id on each, and the query
parameters that carry secrets (OAuth `code` and `state`, connect-link `t`, tokens)
redacted. uvicorn's own access log is off (`serve` and `up` pass access_log=False): it
would write them verbatim."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import fields_scope, request_id

log = logging.getLogger("app.access")
REDACTED = "[redacted]"
SENSITIVE = frozenset(
    {
        "code",
        "state",
        "t",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "key",
        "api_key",
        "secret",
        "signature",
        "password",
        "pin",
        "validationtoken",  # Graph subscription handshake
    }
)


def redact_query(query: str) -> str:
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, REDACTED if k.lower() in SENSITIVE else v) for k, v in pairs])


class AccessLogMiddleware:
    """One line per HTTP request: method, path, redacted query, status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
        seen: dict[str, object] = {"status": 500, "rid": None}

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                headers = dict(message.get("headers") or [])
                seen["rid"] = headers.get(b"x-request-id", b"").decode("latin-1") or None
            await send(message)

        with fields_scope():
            try:
                await self.app(scope, receive, watch)
            finally:
                self._log(scope, seen, (time.perf_counter() - began) * 1000)

    @staticmethod
    def _log(scope: Scope, seen: dict[str, object], elapsed_ms: float) -> None:
        query = redact_query(scope.get("query_string", b"").decode("latin-1"))
        target = scope.get("path", "") + (f"?{query}" if query else "")
        client = scope.get("client")
        rid = str(seen["rid"] or request_id.get())
        token = request_id.set(rid)
        try:
            log.info(
                '%s "%s %s" %s %.1fms',
                client[0] if client else "-",
                scope.get("method", "-"),
                target,
                seen["status"],
                elapsed_ms,
                extra={"request_id": rid},
            )
        finally:
            request_id.reset(token)
