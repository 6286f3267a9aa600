"""Connecting an agent to Google Calendar: signed connect links and the OAuth web flow.

A connect link names one agent and expires; it is signed with APP_SECRET_KEY, so nobody
can attach their Google account to someone else's agent. Opening it starts a consent
flow whose state and PKCE code verifier stay on the server (oauth_states, the verifier
encrypted by the token vault); the browser only ever carries the state. The callback
checks the state against that row and against a cookie set when the flow started, gives
the stored verifier to a fresh Flow (PKCE is on by default in google-auth-oauthlib, and
`fetch_token(code=...)` does not check state by itself), and stores the refresh token
encrypted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from google_auth_oauthlib.flow import Flow
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from requests.exceptions import RequestException
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Agent, CalendarConnection, OAuthState, PhoneNumber
from app.notify import SmsSender, send_sms
from app.security import audit
from app.security.vault import TokenVault, VaultError

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
_LINK_PURPOSE = b"calendar-connect-link:v1"
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


class LinkProblem(StrEnum):
    INVALID = "invalid"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ConnectLink:
    agent_id: str
    nonce: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return _b64(hmac.new(secret.encode(), _LINK_PURPOSE + payload.encode(), "sha256").digest())


def make_link_token(settings: Settings, agent_id: str, now: datetime) -> str:
    expires = int((now + timedelta(minutes=settings.calendar_connect_link_minutes)).timestamp())
    payload = _b64(f"{agent_id}|{secrets.token_urlsafe(16)}|{expires}".encode())
    return f"{payload}.{_sign(settings.app_secret_key.get_secret_value(), payload)}"


def connect_url(settings: Settings, agent_id: str, now: datetime, path: str = START_PATH) -> str:
    """The signed link; `path` picks the provider's start page (same token either way)."""
    token = make_link_token(settings, agent_id, now)
    return f"{settings.public_base_url}{path}?{urlencode({'t': token})}"


def read_link_token(settings: Settings, token: str, now: datetime) -> ConnectLink | LinkProblem:
    payload, _, signature = token.partition(".")
    expected = _sign(settings.app_secret_key.get_secret_value(), payload)
    if not payload or not hmac.compare_digest(signature.encode(), expected.encode()):
        return LinkProblem.INVALID
    try:
        agent_id, nonce, expires = _unb64(payload).decode().split("|")
        expires_at = datetime.fromtimestamp(int(expires), now.tzinfo)
    except (ValueError, UnicodeDecodeError):
        return LinkProblem.INVALID
    if now >= expires_at:
        return LinkProblem.EXPIRED
    return ConnectLink(agent_id, nonce, expires_at)


def caller_numbers(session: Session, agent: Agent) -> list[str]:
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
    agent: Agent,
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


class Outcome(StrEnum):
    CONNECTED = "connected"
    NOT_CONFIGURED = "not_configured"
    INVALID_LINK = "invalid_link"
    EXPIRED_LINK = "expired_link"
    REPLAYED = "replayed"
    UNKNOWN_AGENT = "unknown_agent"
    STATE_MISMATCH = "state_mismatch"
    EXPIRED_STATE = "expired_state"
    DENIED = "denied"
    MISSING_VERIFIER = "missing_verifier"
    MISSING_SCOPES = "missing_scopes"
    EXCHANGE_FAILED = "exchange_failed"


@dataclass(frozen=True)
class Started:
    authorization_url: str
    state: str


class GoogleOAuth:
    """The two halves of the web flow; HTTP-free so routes and tests share it."""

    def __init__(self, settings: Settings, config: dict[str, Any], vault: TokenVault) -> None:
        self.settings = settings
        self.config = config
        self.vault = vault

    def _flow(self, **kwargs: Any) -> Flow:
        return Flow.from_client_config(
            self.config, scopes=list(SCOPES), redirect_uri=redirect_uri(self.settings), **kwargs
        )

    def start(self, session: Session, token: str, now: datetime) -> Started | Outcome:
        link = read_link_token(self.settings, token, now)
        if link is LinkProblem.EXPIRED:
            return Outcome.EXPIRED_LINK
        if not isinstance(link, ConnectLink):
            return Outcome.INVALID_LINK
        if session.get(Agent, link.agent_id) is None:
            return Outcome.UNKNOWN_AGENT
        previous = session.scalar(select(OAuthState).where(OAuthState.link_nonce == link.nonce))
        if previous is not None:
            if previous.used_at is not None:
                return Outcome.REPLAYED
            # Opened again before finishing (a back button, a second tap): start afresh.
            session.delete(previous)
            session.flush()
        flow = self._flow()
        url, state = flow.authorization_url(
            access_type="offline", prompt="consent", include_granted_scopes="false"
        )
        session.add(
            OAuthState(
                state=state,
                agent_id=link.agent_id,
                encrypted_code_verifier=self.vault.encrypt(flow.code_verifier),
                link_nonce=link.nonce,
                expires_at=now + timedelta(minutes=self.settings.oauth_state_minutes),
            )
        )
        audit.record(session, "calendar.oauth_started", actor="link", subject=link.agent_id)
        session.commit()
        return Started(url, state)

    def finish(
        self,
        session: Session,
        *,
        state: str | None,
        cookie_state: str | None,
        code: str | None,
        error: str | None,
        now: datetime,
    ) -> Outcome:
        row = session.get(OAuthState, state) if state else None
        if (
            row is None
            or cookie_state is None
            or not hmac.compare_digest(cookie_state.encode(), (state or "").encode())
        ):
            return Outcome.STATE_MISMATCH
        if row.used_at is not None:
            return Outcome.REPLAYED
        if now >= row.expires_at:
            return Outcome.EXPIRED_STATE
        outcome = self._exchange(session, row, code, error)
        row.used_at = now
        row.encrypted_code_verifier = None  # single use; nothing left to steal
        audit.record(
            session,
            "calendar.oauth_finished",
            actor="google",
            subject=row.agent_id,
            details={"outcome": outcome.value},
        )
        session.commit()
        return outcome

    def _exchange(
        self, session: Session, row: OAuthState, code: str | None, error: str | None
    ) -> Outcome:
        if error or not code:
            return Outcome.DENIED
        if row.encrypted_code_verifier is None:
            return Outcome.MISSING_VERIFIER
        try:
            verifier = self.vault.decrypt(row.encrypted_code_verifier)
        except VaultError:
            return Outcome.MISSING_VERIFIER
        flow = self._flow(state=row.state, code_verifier=verifier, autogenerate_code_verifier=False)
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
        self._store(session, row.agent_id, refresh_token, granted)
        return Outcome.CONNECTED

    def _store(self, session: Session, agent_id: str, refresh_token: str, scopes: set[str]) -> None:
        connection = session.scalar(
            select(CalendarConnection).where(CalendarConnection.agent_id == agent_id)
        )
        if connection is None:
            connection = CalendarConnection(agent_id=agent_id, provider="google")
            session.add(connection)
        connection.provider = "google"
        connection.encrypted_refresh_token = self.vault.encrypt(refresh_token)
        connection.scopes = " ".join(sorted(scopes))
        connection.status = "active"
        connection.last_error = None
        agent = session.get(Agent, agent_id)
        assert agent is not None
        agent.calendar_provider = "google"
        session.flush()


def _scope_set(scope: Any) -> set[str]:
    if isinstance(scope, str):
        return set(scope.split())
    if isinstance(scope, list | tuple):
        return {str(s) for s in scope}
    return set()


def pkce_challenge(verifier: str) -> str:
    """S256 code challenge (what Google checks the verifier against)."""
    return _b64(hashlib.sha256(verifier.encode()).digest())
