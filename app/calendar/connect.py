"""Connecting an agent's calendar, whatever the provider: the signed connect link and the
two halves of the OAuth web flow, with each provider's specifics behind `ConnectFlow`'s
two hooks (as provider plugins do: the flow is shared, the provider fills in).

A connect link names one agent and expires; it is signed with APP_SECRET_KEY, so nobody
can attach their account to someone else's agent, and it is single use (its nonce is
recorded when the flow starts). The flow's secret (Google's PKCE verifier, MSAL's whole
flow dict) stays on the server in `oauth_states`, encrypted by the token vault; the
browser only carries the state, bound to it by a cookie the callback checks.

Providers: `app/calendar/oauth.py` (Google, google-auth-oauthlib) and
`app/calendar/ms_oauth.py` (Microsoft 365, MSAL).
"""

from __future__ import annotations

import base64
import hmac
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Agent, CalendarConnection, OAuthState
from app.security import audit
from app.security.vault import TokenVault, VaultError

_LINK_PURPOSE = b"calendar-connect-link:v1"


# --- connect links -------------------------------------------------------------------


class LinkProblem(StrEnum):
    INVALID = "invalid"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ConnectLink:
    agent_id: str
    nonce: str
    expires_at: datetime


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: str) -> str:
    return b64(hmac.new(secret.encode(), _LINK_PURPOSE + payload.encode(), "sha256").digest())


def make_link_token(settings: Settings, agent_id: str, now: datetime) -> str:
    expires = int((now + timedelta(minutes=settings.calendar_connect_link_minutes)).timestamp())
    payload = b64(f"{agent_id}|{secrets.token_urlsafe(16)}|{expires}".encode())
    return f"{payload}.{_sign(settings.app_secret_key.get_secret_value(), payload)}"


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


@dataclass(frozen=True)
class Consent:
    """A provider's consent screen, ready: where to send the browser, the state it
    carries back, and the secret the code exchange will need (kept encrypted here)."""

    authorization_url: str
    state: str
    secret: str


@dataclass(frozen=True)
class Grant:
    """What a successful code exchange gives: stored on the agent's connection."""

    refresh_token: str
    scopes: str
    account: str | None = None
    calendar_id: str | None = None  # None keeps the connection's calendar


class ConnectFlow(ABC):
    """The two halves of the web flow; HTTP-free so routes and tests share it. A
    provider names itself and fills in `_consent` and `_redeem`."""

    provider: str

    def __init__(self, settings: Settings, vault: TokenVault) -> None:
        self.settings = settings
        self.vault = vault

    @abstractmethod
    def _consent(self) -> Consent | Outcome:
        """A new consent screen (state, PKCE, nonce), or why none can be made."""

    @abstractmethod
    def _redeem(self, state: str, secret: str, code: str) -> Grant | Outcome:
        """Exchange the code with the secret kept at the start; check what was granted."""

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
        consent = self._consent()
        if isinstance(consent, Outcome):
            return consent
        session.add(
            OAuthState(
                state=consent.state,
                agent_id=link.agent_id,
                encrypted_code_verifier=self.vault.encrypt(consent.secret),
                link_nonce=link.nonce,
                expires_at=now + timedelta(minutes=self.settings.oauth_state_minutes),
            )
        )
        audit.record(
            session,
            "calendar.oauth_started",
            actor="link",
            subject=link.agent_id,
            details={"provider": self.provider},
        )
        session.commit()
        return Started(consent.authorization_url, consent.state)

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
            actor=self.provider,
            subject=row.agent_id,
            details={"outcome": outcome.value, "provider": self.provider},
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
            secret = self.vault.decrypt(row.encrypted_code_verifier)
        except VaultError:
            return Outcome.MISSING_VERIFIER
        grant = self._redeem(row.state, secret, code)
        if isinstance(grant, Outcome):
            return grant
        self._store(session, row.agent_id, grant)
        return Outcome.CONNECTED

    def _store(self, session: Session, agent_id: str, grant: Grant) -> None:
        connection = session.scalar(
            select(CalendarConnection).where(CalendarConnection.agent_id == agent_id)
        )
        if connection is None:
            connection = CalendarConnection(agent_id=agent_id, provider=self.provider)
            session.add(connection)
        connection.provider = self.provider
        if grant.calendar_id is not None:
            connection.calendar_id = grant.calendar_id
        if grant.account is not None:
            connection.account_email = grant.account
        connection.encrypted_refresh_token = self.vault.encrypt(grant.refresh_token)
        connection.scopes = grant.scopes
        connection.status = "active"
        connection.last_error = None
        agent = session.get(Agent, agent_id)
        assert agent is not None
        agent.calendar_provider = self.provider
        session.flush()
