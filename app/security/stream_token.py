"""Short-lived tokens that admit one call's media stream.

The inbound-call webhook (signed by Twilio) puts a token in the <Stream>'s parameters;
Twilio hands it back in the stream's `start` message. It is an HMAC over the CallSid and
an expiry with APP_SECRET_KEY, so a stream cannot be opened for another call or later
on. Using it once per call is enforced by the caller (an inbound_events claim), which
holds across processes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

PURPOSE = b"twilio-media-stream\x00"


class TokenRejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StreamTokens:
    secret: bytes
    lifetime_seconds: int

    def issue(self, call_sid: str, now: float) -> str:
        expires = int(now) + self.lifetime_seconds
        return f"{expires}.{self._mac(call_sid, expires)}"

    def verify(self, token: str, call_sid: str, now: float) -> None:
        """Raises TokenRejected unless `token` was issued for `call_sid` and is fresh."""
        expires_text, _, mac = token.partition(".")
        if not call_sid or not expires_text.isdigit() or not mac:
            raise TokenRejected("malformed stream token")
        expected = self._mac(call_sid, int(expires_text))
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            raise TokenRejected("stream token does not match the call")
        if int(expires_text) < now:
            raise TokenRejected("stream token expired")

    def _mac(self, call_sid: str, expires: int) -> str:
        message = PURPOSE + f"{call_sid}\x00{expires}".encode()
        digest = hmac.new(self.secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
