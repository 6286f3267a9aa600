"""Connecting an agent to Google Calendar: Google's side of the shared connect flow
(app/calendar/connect.py: signed single-use links, state and cookie checks, storage).

The consent screen's PKCE code verifier is the secret kept on the server; the callback
gives it to a fresh Flow (PKCE is on by default in google-auth-oauthlib, and
`fetch_token(code=...)` does not check state by itself: the shared flow does).
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from requests.exceptions import RequestException
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.calendar.connect import (
    ConnectFlow,
    Consent,
    Grant,
    Outcome,
    b64,
    make_link_token,
)
from app.config import Settings
from app.models import PhoneNumber
from app.notify import SmsSender, send_sms
from app.security import audit
from app.security.vault import TokenVault
from app.turn_rows import AgentLike

log = logging.getLogger(__name__)

SCOPES = (
    # Create, change and delete events on calendars the user owns (no reading of others').
    "https://www.googleapis.com/auth/calendar.events.owned",
    # freebusy.query; calendar.events alone cannot call it.
    "https://www.googleapis.com/auth/calendar.freebusy",
)
START_PATH = "/calendar/google/connect"
CALLBACK_PATH = "/calendar/google/callback"
STATE_COOKIE = "gcal_oauth_state"
GOOGLE_AUTH_URI = "https://accounts.google.com/o/oauth2/auth"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


def redirect_uri(settings: Settings) -> str:
    """The exact URI to register on the Google OAuth client."""
    return settings.public_base_url + CALLBACK_PATH


def client_config(settings: Settings) -> dict[str, Any] | None:
    """The Google client in client-secrets format; None when no client is configured."""
    if settings.google_client_secrets_file is not None:
        config = json.loads(settings.google_client_secrets_file.read_text())
        if "web" not in config:
            raise ValueError("GOOGLE_CLIENT_SECRETS_FILE must be a 'Web application' client")
        parsed: dict[str, Any] = config
        return parsed
    if settings.google_client_id and settings.google_client_secret is not None:
        return {
            "web": {
                "client_id": settings.google_client_id,
                "client_secret": settings.google_client_secret.get_secret_value(),
                "auth_uri": GOOGLE_AUTH_URI,
                "token_uri": GOOGLE_TOKEN_URI,
                "redirect_uris": [redirect_uri(settings)],
            }
        }
    return None


# --- connect links -------------------------------------------------------------------


def connect_url(settings: Settings, agent_id: str, now: datetime, path: str = START_PATH) -> str:
    """The signed link; `path` picks the provider's start page (same token either way)."""
    token = make_link_token(settings, agent_id, now)
    return f"{settings.public_base_url}{path}?{urlencode({'t': token})}"


def caller_numbers(session: Session, agent: AgentLike) -> list[str]:
    """The owner's verified own phones (purpose "caller"): where the link is texted."""
    return list(
        session.scalars(
            select(PhoneNumber.e164).where(
                PhoneNumber.user_id == agent.user_id,
                PhoneNumber.purpose == "caller",
                PhoneNumber.verified_at.is_not(None),
            )
        )
    )


def text_connect_link(
    session: Session,
    sender: SmsSender,
    settings: Settings,
    agent: AgentLike,
    now: datetime,
    reason: str = "Connect your Google Calendar to your scheduling agent",
    path: str = START_PATH,
) -> int:
    """Text a fresh connect link to the owner's verified phones; how many were sent."""
    url = connect_url(settings, agent.id, now, path)
    body = f"{reason}: {url} (link valid {settings.calendar_connect_link_minutes // 60} h)"
    sent = sum(send_sms(session, sender, to, body) for to in caller_numbers(session, agent))
    audit.record(
        session,
        "calendar.link_sent",
        actor="system",
        subject=agent.id,
        details={"recipients": sent},
    )
    return sent


# --- the OAuth web flow --------------------------------------------------------------


class GoogleOAuth(ConnectFlow):
    provider = "google"

    def __init__(self, settings: Settings, config: dict[str, Any], vault: TokenVault) -> None:
        super().__init__(settings, vault)
        self.config = config

    def _flow(self, **kwargs: Any) -> Flow:
        return Flow.from_client_config(
            self.config, scopes=list(SCOPES), redirect_uri=redirect_uri(self.settings), **kwargs
        )

    def _consent(self) -> Consent:
        flow = self._flow()
        url, state = flow.authorization_url(
            access_type="offline", prompt="consent", include_granted_scopes="false"
        )
        return Consent(url, state, flow.code_verifier)

    def _redeem(self, state: str, secret: str, code: str) -> Grant | Outcome:
        flow = self._flow(state=state, code_verifier=secret, autogenerate_code_verifier=False)
        try:
            token = flow.fetch_token(code=code)
        except Warning as changed:
            # oauthlib raises when Google grants other scopes than asked (a box unticked
            # on the consent screen); the token is attached, the scope check is below.
            token = getattr(changed, "token", {})
        except (OAuth2Error, RequestException, ValueError) as exc:
            log.warning("Google code exchange failed: %s", type(exc).__name__)
            return Outcome.EXCHANGE_FAILED
        granted = _scope_set(token.get("scope"))
        if not set(SCOPES) <= granted:
            return Outcome.MISSING_SCOPES
        refresh_token = token.get("refresh_token")
        if not refresh_token:
            return Outcome.EXCHANGE_FAILED
        return Grant(refresh_token, " ".join(sorted(granted)))


def _scope_set(scope: Any) -> set[str]:
    if isinstance(scope, str):
        return set(scope.split())
    if isinstance(scope, list | tuple):
        return {str(s) for s in scope}
    return set()


def pkce_challenge(verifier: str) -> str:
    """S256 code challenge (what Google checks the verifier against)."""
    return b64(hashlib.sha256(verifier.encode()).digest())
