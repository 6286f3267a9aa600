"""Twilio's REST client behind a small interface, with the API base overridable.

`TWILIO_API_BASE_URL` points the real client at a local fake server (tests, benchmarks):
the twilio library builds every URL on https://api.twilio.com, and its HTTP client is
the one place every request passes, so the base is swapped there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

from app.config import Settings
from app.notify import loggable
from app.phone import mask

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"


class Refused(Exception):
    """Twilio answered that it did not take the request (4xx, or 429/503: try later)."""

    def __init__(self, status: int, code: int | None, retryable: bool) -> None:
        super().__init__(f"twilio refused: HTTP {status} code {code}")
        self.status = status
        self.code = code
        self.retryable = retryable


class Unknown(Exception):
    """We cannot tell whether Twilio took it (timeout, connection lost, other 5xx)."""


@dataclass
class Outbound:
    to: str
    from_: str
    body: str = ""
    twiml: str | None = None  # calls only
    status_callback: str | None = None


class OutboundSender(Protocol):
    def send_sms(self, message: Outbound) -> str:
        """Create the message; its sid. Raises Refused or Unknown."""
        ...

    def start_call(self, call: Outbound) -> str:
        """Create the call; its sid. Raises Refused or Unknown."""
        ...


class NotConfigured(Refused):
    """No Twilio account configured: nothing can be sent (the embedded default)."""

    def __init__(self) -> None:
        super().__init__(0, None, retryable=False)


class LogOutbound:
    """Without TWILIO_ACCOUNT_SID: log (masked) and refuse, so the row says "failed,
    no Twilio account" instead of pretending it was sent."""

    def send_sms(self, message: Outbound) -> str:
        text = loggable(message.body)
        log.warning("SMS to %s not sent (no Twilio account): %s", mask(message.to), text)
        raise NotConfigured

    def start_call(self, call: Outbound) -> str:
        log.warning("call to %s not placed (no Twilio account)", mask(call.to))
        raise NotConfigured


def build_outbound(settings: Settings) -> OutboundSender:
    if not settings.twilio_account_sid:
        return LogOutbound()
    return TwilioOutbound(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        base_url=settings.twilio_api_base_url,
        timeout=settings.twilio_http_timeout_seconds,
    )


class BaseUrlHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """twilio's own HTTP client, sending to another API base (a fake in tests)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._base = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API):
            url = self._base + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)


RETRYABLE = {429, 503}


class TwilioOutbound:
    """Synchronous (requests): call it from a worker thread, never the event loop."""

    def __init__(
        self, account_sid: str, auth_token: str, *, base_url: str | None, timeout: float
    ) -> None:
        from twilio.rest import Client

        http = (
            BaseUrlHttpClient(base_url, timeout) if base_url else TwilioHttpClient(timeout=timeout)
        )
        self._client = Client(account_sid, auth_token, http_client=http)

    def send_sms(self, message: Outbound) -> str:
        options: dict[str, Any] = {"to": message.to, "from_": message.from_, "body": message.body}
        if message.status_callback:
            options["status_callback"] = message.status_callback
        return self._create(lambda: self._client.messages.create(**options).sid)

    def start_call(self, call: Outbound) -> str:
        options: dict[str, Any] = {"to": call.to, "from_": call.from_, "twiml": call.twiml}
        if call.status_callback:
            options["status_callback"] = call.status_callback
            options["status_callback_event"] = ["completed"]
        return self._create(lambda: self._client.calls.create(**options).sid)

    @staticmethod
    def _create(create: Any) -> str:
        try:
            sid = create()
        except TwilioRestException as exc:
            if exc.status < 500 or exc.status in RETRYABLE:
                raise Refused(exc.status, exc.code, exc.status in RETRYABLE) from None
            raise Unknown(f"twilio HTTP {exc.status}") from None
        except Exception as exc:  # timeouts, resets: the request may have landed
            raise Unknown(type(exc).__name__) from None
        return str(sid)
