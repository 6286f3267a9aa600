"""Outbound SMS behind a small interface, so nothing else imports Twilio's REST client
and tests replace the sender, not HTTP. Consent is checked here, once, for every send."""

from __future__ import annotations

import logging
from typing import Protocol

from sqlalchemy.orm import Session

from app.config import Settings
from app.phone import mask
from app.security import consent

log = logging.getLogger(__name__)


class SmsSender(Protocol):
    def send(self, to: str, body: str) -> str | None:
        """Send one SMS; the provider's message id, if any."""
        ...


class LogSender:
    """The embedded default: no Twilio credentials, so the message goes to the log
    (an operator trying the service locally reads verification codes there)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str) -> str | None:
        self.sent.append((to, body))
        log.warning("SMS to %s (not sent, no Twilio credentials): %s", mask(to), body)
        return None


class TwilioSender:
    """Twilio's REST client is synchronous (requests): call it from a worker thread."""

    def __init__(
        self, account_sid: str, auth_token: str, from_number: str, api_base: str | None = None
    ) -> None:
        from twilio.rest import Client

        from app.notifications.outbound import BaseUrlHttpClient

        # TWILIO_API_BASE_URL: the same local fake the notification workers use.
        http = BaseUrlHttpClient(api_base, timeout=10) if api_base else None
        self._client = Client(account_sid, auth_token, http_client=http)
        self._from = from_number

    def send(self, to: str, body: str) -> str | None:
        message = self._client.messages.create(to=to, from_=self._from, body=body)
        sid: str | None = message.sid
        return sid


def build_sender(settings: Settings) -> SmsSender:
    if settings.twilio_account_sid:
        return TwilioSender(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.agent_number,
            settings.twilio_api_base_url,
        )
    return LogSender()


def send_sms(session: Session, sender: SmsSender, to: str, body: str) -> bool:
    """Send unless the recipient opted out; True when handed to the sender."""
    if consent.is_opted_out(session, to):
        log.info("not texting %s: opted out", mask(to))
        return False
    sender.send(to, body)
    return True
