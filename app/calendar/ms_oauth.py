"""Connecting an agent to a Microsoft 365 calendar: the same signed connect link as
Google's, then the authorization code flow with PKCE through MSAL.

MSAL's `initiate_auth_code_flow` makes the state, the nonce and the PKCE verifier; the
whole flow dict stays on the server (oauth_states, encrypted by the token vault), the
browser carries only the state and a cookie binding it. `acquire_token_by_auth_code_flow`
checks state, PKCE and the id_token's nonce. Scopes: `Calendars.ReadWrite` (MSAL adds
`offline_access` and `openid` itself; `profile` is excluded).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

import msal
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.calendar.oauth import ConnectLink, LinkProblem, Outcome, Started, read_link_token
from app.config import Settings
from app.models import Agent, CalendarConnection, OAuthState
from app.security import audit
from app.security.vault import TokenVault, VaultError

log = logging.getLogger(__name__)

SCOPES = ("Calendars.ReadWrite",)
# What the consent screen shows: MSAL adds the reserved scopes to every request.
REQUESTED_SCOPES = ("Calendars.ReadWrite", "offline_access", "openid")
GRAPH_RESOURCE = "https://graph.microsoft.com/"
START_PATH = "/calendar/microsoft/connect"
CALLBACK_PATH = "/calendar/microsoft/callback"
STATE_COOKIE = "ms_oauth_state"
# Errors from the token endpoint that no retry fixes: the owner must consent again.
RECONSENT_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required"})


def redirect_uri(settings: Settings) -> str:
    """The exact URI to register on the Entra app (platform "Web")."""
    return settings.public_base_url + CALLBACK_PATH


def configured(settings: Settings) -> bool:
    return bool(settings.microsoft_client_id and settings.microsoft_client_secret)


class _HttpSession(requests.Session):
    """MSAL's HTTP client: a timeout on every call, and MICROSOFT_CA_BUNDLE honoured
    (requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's `verify`)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.timeout = settings.google_http_timeout_seconds
        if settings.microsoft_ca_bundle is not None:
            self.verify = str(settings.microsoft_ca_bundle)
            self.trust_env = False

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


class MicrosoftIdentity:
    """The MSAL confidential client, built on first use: building it fetches the
    authority's OpenID configuration, which start-up must not wait on."""

    def __init__(self, settings: Settings) -> None:
        assert settings.microsoft_client_id and settings.microsoft_client_secret
        self.settings = settings
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def app(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                settings = self.settings
                assert settings.microsoft_client_secret is not None
                self._app = msal.ConfidentialClientApplication(
                    settings.microsoft_client_id,
                    client_credential=settings.microsoft_client_secret.get_secret_value(),
                    authority=settings.microsoft_authority,
                    # Known Microsoft hosts need no discovery; others are ours to trust.
                    instance_discovery=False,
                    exclude_scopes=["profile"],
                    http_client=_HttpSession(settings),
                    # No token cache beyond the call: refresh tokens live in the vault.
                    token_cache=msal.TokenCache(),
                )
            return self._app

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        """A new access token (and usually a rotated refresh token), or MSAL's error dict."""
        result: dict[str, Any] = self.app().acquire_token_by_refresh_token(
            refresh_token, scopes=list(SCOPES)
        )
        return result


def granted_calendar_scope(scope: Any) -> bool:
    """Entra answers short names or resource-qualified ones, in any case."""
    names = scope.split() if isinstance(scope, str) else list(scope or [])
    wanted = SCOPES[0].lower()
    return any(n.lower() in (wanted, (GRAPH_RESOURCE + SCOPES[0]).lower()) for n in names)


class MicrosoftOAuth:
    """The two halves of the web flow; HTTP-free so routes and tests share it."""

    def __init__(self, settings: Settings, identity: MicrosoftIdentity, vault: TokenVault) -> None:
        self.settings = settings
        self.identity = identity
        self.vault = vault

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
            session.delete(previous)  # opened again before finishing: start afresh
            session.flush()
        try:
            flow = self.identity.app().initiate_auth_code_flow(
                list(SCOPES), redirect_uri=redirect_uri(self.settings), prompt="select_account"
            )
        except (requests.RequestException, ValueError) as exc:
            log.warning("Microsoft authority unavailable: %s", type(exc).__name__)
            return Outcome.EXCHANGE_FAILED
        session.add(
            OAuthState(
                state=flow["state"],
                agent_id=link.agent_id,
                # The whole flow (PKCE verifier, nonce) stays here, encrypted.
                encrypted_code_verifier=self.vault.encrypt(json.dumps(flow)),
                link_nonce=link.nonce,
                expires_at=now + timedelta(minutes=self.settings.oauth_state_minutes),
            )
        )
        audit.record(
            session,
            "calendar.oauth_started",
            actor="link",
            subject=link.agent_id,
            details={"provider": "microsoft"},
        )
        session.commit()
        return Started(flow["auth_uri"], flow["state"])

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
        row.encrypted_code_verifier = None  # single use
        audit.record(
            session,
            "calendar.oauth_finished",
            actor="microsoft",
            subject=row.agent_id,
            details={"outcome": outcome.value, "provider": "microsoft"},
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
            flow = json.loads(self.vault.decrypt(row.encrypted_code_verifier))
        except (VaultError, ValueError):
            return Outcome.MISSING_VERIFIER
        try:
            result = self.identity.app().acquire_token_by_auth_code_flow(
                flow, {"state": row.state, "code": code}
            )
        except (ValueError, RuntimeError, requests.RequestException) as exc:
            # State or nonce mismatch (MSAL raises), or the authority did not answer.
            log.warning("Microsoft code exchange failed: %s", type(exc).__name__)
            return Outcome.EXCHANGE_FAILED
        if "error" in result:
            log.warning("Microsoft code exchange refused: %s", result.get("error"))
            return Outcome.EXCHANGE_FAILED
        if not granted_calendar_scope(result.get("scope")):
            return Outcome.MISSING_SCOPES
        refresh_token = result.get("refresh_token")
        if not refresh_token:  # offline_access was not granted
            return Outcome.MISSING_SCOPES
        account = (result.get("id_token_claims") or {}).get("preferred_username")
        self._store(session, row.agent_id, refresh_token, account)
        return Outcome.CONNECTED

    def _store(
        self, session: Session, agent_id: str, refresh_token: str, account: str | None
    ) -> None:
        connection = session.scalar(
            select(CalendarConnection).where(CalendarConnection.agent_id == agent_id)
        )
        if connection is None:
            connection = CalendarConnection(agent_id=agent_id, provider="microsoft")
            session.add(connection)
        connection.provider = "microsoft"
        connection.calendar_id = "primary"
        connection.account_email = account
        connection.encrypted_refresh_token = self.vault.encrypt(refresh_token)
        connection.scopes = " ".join(REQUESTED_SCOPES)
        connection.status = "active"
        connection.last_error = None
        agent = session.get(Agent, agent_id)
        assert agent is not None
        agent.calendar_provider = "microsoft"
        session.flush()
