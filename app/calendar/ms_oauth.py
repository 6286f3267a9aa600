"""Connecting an agent to a Microsoft 365 calendar: Microsoft's side of the shared
connect flow (app/calendar/connect.py: the same signed link, state and cookie checks
and storage as Google's), the authorization code flow with PKCE through MSAL.

MSAL's `initiate_auth_code_flow` makes the state, the nonce and the PKCE verifier; the
whole flow dict stays on the server (oauth_states, encrypted by the token vault), the
browser carries only the state and a cookie binding it. `acquire_token_by_auth_code_flow`
checks state, PKCE and the id_token's nonce. Scopes: `Calendars.ReadWrite` (MSAL adds
`offline_access` and `openid` itself; `profile` is excluded).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import msal
import requests

from app.calendar.connect import ConnectFlow, Consent, Grant, Outcome
from app.config import Settings
from app.security.vault import TokenVault

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


class MicrosoftOAuth(ConnectFlow):
    provider = "microsoft"

    def __init__(self, settings: Settings, identity: MicrosoftIdentity, vault: TokenVault) -> None:
        super().__init__(settings, vault)
        self.identity = identity

    def _consent(self) -> Consent | Outcome:
        try:
            flow = self.identity.app().initiate_auth_code_flow(
                list(SCOPES), redirect_uri=redirect_uri(self.settings), prompt="select_account"
            )
        except (requests.RequestException, ValueError) as exc:
            log.warning("Microsoft authority unavailable: %s", type(exc).__name__)
            return Outcome.EXCHANGE_FAILED
        # The whole flow (PKCE verifier, nonce) is the secret kept on the server.
        return Consent(flow["auth_uri"], flow["state"], json.dumps(flow))

    def _redeem(self, state: str, secret: str, code: str) -> Grant | Outcome:
        try:
            flow = json.loads(secret)
        except ValueError:
            return Outcome.MISSING_VERIFIER
        try:
            result = self.identity.app().acquire_token_by_auth_code_flow(
                flow, {"state": state, "code": code}
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
        return Grant(refresh_token, " ".join(REQUESTED_SCOPES), account, calendar_id="primary")
