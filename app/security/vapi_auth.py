"""VAPI request authentication: the credential plans VAPI offers.

- Bearer: the secret in a configurable header (`X-Vapi-Secret: <secret>`, VAPI's legacy
  `server.secret`, or `Authorization: Bearer <secret>`).
- HMAC: `x-signature` = hex HMAC-SHA256 of `"{x-timestamp}.{raw body}"`, with the
  timestamp fresh within a tolerance, so a captured request cannot be replayed later.

Comparisons are constant-time. No credential presented → 401; a wrong or stale one → 403;
every refusal is audit-logged (without the presented values).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import Headers

from app.config import Settings
from app.logs import bind
from app.security.rejections import audit_rejection
from app.services import services_of
from app.webhooks.vapi_payload import PayloadRejected, as_dict, message_of, parse_body

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "x-signature"
TIMESTAMP_HEADER = "x-timestamp"


class VapiRejected(Exception):
    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The x-signature VAPI sends for this timestamp and body."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _epoch_seconds(raw: str) -> float:
    value = float(raw)
    # VAPI's timestamps are milliseconds in bodies; accept either in the header.
    return value / 1000 if value > 1e11 else value


@dataclass(frozen=True)
class VapiAuthenticator:
    settings: Settings

    def check(self, headers: Headers, body: bytes, now: datetime) -> str:
        """The credential plan that passed ("hmac" or "bearer"); VapiRejected otherwise."""
        bearer_secret = self.settings.vapi_secret
        hmac_secret = self.settings.vapi_hmac_secret
        if bearer_secret is None and hmac_secret is None:
            raise VapiRejected(403, "no VAPI credential configured on this server")
        signature = headers.get(SIGNATURE_HEADER)
        if signature is not None and hmac_secret is not None:
            self._check_hmac(hmac_secret.get_secret_value(), headers, signature, body, now)
            return "hmac"
        presented = self._presented_bearer(headers)
        if presented is not None and bearer_secret is not None:
            if not hmac.compare_digest(
                presented.encode(), bearer_secret.get_secret_value().encode()
            ):
                raise VapiRejected(403, "wrong VAPI secret")
            return "bearer"
        if signature is not None or presented is not None:
            raise VapiRejected(403, "credential of a kind this server does not accept")
        raise VapiRejected(401, "missing VAPI credential")

    def _check_hmac(
        self, secret: str, headers: Headers, signature: str, body: bytes, now: datetime
    ) -> None:
        timestamp = headers.get(TIMESTAMP_HEADER)
        if not timestamp:
            raise VapiRejected(401, "missing x-timestamp")
        try:
            age = abs(now.timestamp() - _epoch_seconds(timestamp))
        except ValueError:
            raise VapiRejected(403, "unreadable x-timestamp") from None
        if age > self.settings.vapi_hmac_tolerance_seconds:
            raise VapiRejected(403, "stale x-timestamp")
        expected = sign(secret, timestamp, body)
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise VapiRejected(403, "signature mismatch")

    def _presented_bearer(self, headers: Headers) -> str | None:
        configured = self.settings.vapi_secret_header
        for name in dict.fromkeys([configured, "authorization"]):
            value = headers.get(name)
            if value is None:
                continue
            value = value.strip()
            if value[:7].lower() == "bearer ":
                value = value[7:].strip()
            elif name.lower() == "authorization":
                continue  # some other scheme (Basic, ...): not ours
            return value
        return None


@dataclass(frozen=True)
class VapiRequestBody:
    """A VAPI request's body once its credential passed, decoded once for the handler
    and the log binding: `payload` is the JSON value, or None with `problem` saying
    why the body cannot be read (the handler answers 400 with it)."""

    raw: bytes
    payload: Any
    problem: str | None


async def verified_vapi_body(request: Request) -> VapiRequestBody:
    """The body of a request that carries a valid VAPI credential, decoded."""
    settings: Settings = services_of(request).settings
    body = await request.body()
    try:
        VapiAuthenticator(settings).check(request.headers, body, services_of(request).clock())
    except VapiRejected as exc:
        log.warning("VAPI request rejected on %s: %s", request.url.path, exc.reason)
        await audit_rejection(request, "vapi", exc.reason)
        raise HTTPException(status_code=exc.status_code, detail=exc.reason) from None
    try:
        payload = parse_body(body)
    except PayloadRejected as exc:
        return VapiRequestBody(body, None, str(exc))
    _bind_call(payload)
    return VapiRequestBody(body, payload, None)


def _bind_call(payload: Any) -> None:
    """Every later log line of this webhook names the VAPI call it is about."""
    call_id = as_dict(message_of(payload).get("call")).get("id")
    bind(call_sid=call_id if isinstance(call_id, str) else None, channel="vapi")


VapiBody = Annotated[VapiRequestBody, Depends(verified_vapi_body)]
