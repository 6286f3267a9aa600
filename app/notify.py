"""Outbound SMS behind a small interface, so nothing else imports Twilio's REST client
and tests replace the sender, not HTTP. Consent is checked here, once, for every send."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
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


# Texts carry single-use secrets in two shapes: links (connect and sign-in tokens) and
# 6-digit codes. Neither may reach a log, whatever the message.
_LINK = re.compile(r"https?://\S+")
_CODE = re.compile(r"(?<![\d:.])\d{6}(?![\d:])")


def loggable(body: str) -> str:
    """An SMS text as a log line may hold it: links and one-time codes withheld."""
    return _CODE.sub("[code withheld]", _LINK.sub("[link withheld]", body))


class LogSender:
    """The embedded default: no Twilio credentials, so nothing is sent. The log gets the
    text with its secrets withheld; in development the whole text also goes to the
    outbox file (mode 0600, like the message log of Twilio's console), which
    `python -m app outbox` prints for an operator verifying a number locally."""

    def __init__(self, outbox: Path | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self._outbox = outbox

    def send(self, to: str, body: str) -> str | None:
        self.sent.append((to, body))
        log.warning("SMS to %s (not sent, no Twilio credentials): %s", mask(to), loggable(body))
        if self._outbox is not None:
            write_outbox(self._outbox, to, body)
        return None


def write_outbox(path: Path, to: str, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as outbox:
        outbox.write(f"to {mask(to)}: {' '.join(body.split())}\n")


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
    development = settings.environment == "development"
    return LogSender(settings.dev_outbox_file if development else None)


def send_sms(session: Session, sender: SmsSender, to: str, body: str) -> bool:
    """Send unless the recipient opted out; True when handed to the sender."""
    if consent.is_opted_out(session, to):
        log.info("not texting %s: opted out", mask(to))
        return False
    sender.send(to, body)
    return True
