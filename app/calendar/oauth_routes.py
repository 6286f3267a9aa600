"""HTTP side of connecting Google Calendar: the connect link and the OAuth callback.

The person on the other end is an agent owner in a browser (often a phone, from a text),
so every outcome is a small HTML page saying what happened and what to do next.
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.calendar.oauth import (
    CALLBACK_PATH,
    START_PATH,
    STATE_COOKIE,
    GoogleOAuth,
    Outcome,
    Started,
)
from app.deps import SessionDep
from app.services import services_of

router = APIRouter(tags=["calendar"])

ASK_AGAIN = "Ask the service's operator to text you a new link."
PAGES: dict[Outcome, tuple[int, str, str]] = {
    Outcome.CONNECTED: (
        200,
        "Google Calendar connected",
        "Your agent now checks your Google Calendar before offering times and puts new "
        "bookings in it. You can close this page.",
    ),
    Outcome.NOT_CONFIGURED: (
        503,
        "Google Calendar is not available",
        "This service has no Google sign-in configured yet. Your agent keeps using its "
        "built-in calendar.",
    ),
    Outcome.INVALID_LINK: (400, "This link is not valid", f"It may be incomplete. {ASK_AGAIN}"),
    Outcome.EXPIRED_LINK: (410, "This link has expired", ASK_AGAIN),
    Outcome.REPLAYED: (
        409,
        "This link was already used",
        f"Each link connects a calendar once. {ASK_AGAIN}",
    ),
    Outcome.UNKNOWN_AGENT: (404, "Agent not found", "The agent this link was made for is gone."),
    Outcome.STATE_MISMATCH: (
        400,
        "We could not match this sign-in",
        "The sign-in did not start from this browser or was tampered with. Open your "
        "connect link again in the same browser.",
    ),
    Outcome.EXPIRED_STATE: (
        410,
        "The sign-in took too long",
        "Open your connect link again and finish the Google screens within a few minutes.",
    ),
    Outcome.DENIED: (
        200,
        "Nothing was connected",
        f"You declined access on Google's screen, so nothing changed. {ASK_AGAIN}",
    ),
    Outcome.MISSING_VERIFIER: (
        400,
        "This sign-in cannot be finished",
        "Open your connect link again to start over.",
    ),
    Outcome.MISSING_SCOPES: (
        400,
        "Calendar access was not granted",
        "Your agent needs both permissions (see your free/busy times, manage its events). "
        "Open your connect link again and leave both boxes ticked.",
    ),
    Outcome.EXCHANGE_FAILED: (
        502,
        "Google did not complete the sign-in",
        "Please open your connect link again in a minute.",
    ),
}


# A refused callback whose state never matched this browser's consumed nothing: clearing
# the cookie would let a forged callback break the genuine one that follows. Only a
# consumed or expired state clears it.
KEEPS_STATE_COOKIE = frozenset({Outcome.STATE_MISMATCH, Outcome.NOT_CONFIGURED})


def page(outcome: Outcome) -> HTMLResponse:
    status, title, text = PAGES[outcome]
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family:sans-serif;"
        f"max-width:32rem;margin:3rem auto;padding:0 1rem'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _oauth(request: Request) -> GoogleOAuth | None:
    oauth: GoogleOAuth | None = services_of(request).google_oauth
    return oauth


@router.get(START_PATH, summary="Open a calendar connect link (redirects to Google)")
def connect(
    request: Request, session: SessionDep, t: Annotated[str, Query(max_length=512)] = ""
) -> Response:
    oauth = _oauth(request)
    if oauth is None:
        return page(Outcome.NOT_CONFIGURED)
    result = oauth.start(session, t, services_of(request).clock())
    if not isinstance(result, Started):
        return page(result)
    response = RedirectResponse(result.authorization_url, status_code=302)
    # Binds the callback to this browser: a callback URL replayed elsewhere fails.
    response.set_cookie(
        STATE_COOKIE,
        result.state,
        max_age=oauth.settings.oauth_state_minutes * 60,
        path=CALLBACK_PATH,
        httponly=True,
        secure=oauth.settings.public_base_url.startswith("https://"),
        samesite="lax",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get(CALLBACK_PATH, summary="Google OAuth redirect target")
def callback(
    request: Request,
    session: SessionDep,
    state: Annotated[str | None, Query(max_length=128)] = None,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    oauth = _oauth(request)
    if oauth is None:
        return page(Outcome.NOT_CONFIGURED)
    outcome = oauth.finish(
        session,
        state=state,
        cookie_state=request.cookies.get(STATE_COOKIE),
        code=code,
        error=error,
        now=services_of(request).clock(),
    )
    response = page(outcome)
    if outcome not in KEEPS_STATE_COOKIE:
        response.delete_cookie(STATE_COOKIE, path=CALLBACK_PATH)
    return response
