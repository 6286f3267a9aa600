"""Access lines through the project's logging: request id on each, and the query
parameters that carry secrets (OAuth `code` and `state`, connect-link `t`, tokens)
redacted. uvicorn's own access log is off (`serve` and `up` pass access_log=False): it
would write them verbatim. app/edge.py writes one line per HTTP request."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode

from starlette.types import Scope

from app.logs import request_id

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


def log_request(scope: Scope, status: int, rid: str | None, elapsed_ms: float) -> None:
    """The access line of one HTTP request: method, path, redacted query, status,
    duration, under its request id (`rid`, else the one in context)."""
    if not log.isEnabledFor(logging.INFO):
        return  # as log.info would, before the query is parsed and redacted
    query = redact_query(scope.get("query_string", b"").decode("latin-1"))
    target = scope.get("path", "") + (f"?{query}" if query else "")
    client = scope.get("client")
    rid = str(rid or request_id.get())
    token = request_id.set(rid)
    try:
        log.info(
            '%s "%s %s" %s %.1fms',
            client[0] if client else "-",
            scope.get("method", "-"),
            target,
            status,
            elapsed_ms,
            extra={"request_id": rid},
        )
    finally:
        request_id.reset(token)
