"""The HTTP side of connecting a calendar, for every provider: the connect link's page
and the OAuth callback (app/calendar/connect.py holds the flow itself).

The person on the other end is an agent owner in a browser (often a phone, from a text),
so every outcome is a small HTML page saying what happened and what to do next.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.calendar.connect import ConnectFlow, Outcome, Started
from app.deps import SessionDep
from app.services import services_of

ASK_AGAIN = "Ask the service's operator to text you a new link."
PAGES: dict[Outcome, tuple[int, str, str]] = {
    Outcome.CONNECTED: (
        200,
        "{calendar} connected",
        "Your agent now checks your {calendar} before offering times and puts new "
        "bookings in it. You can close this page.",
    ),
    Outcome.NOT_CONFIGURED: (
        503,
        "{calendar} is not available",
        "This service has no {company} sign-in configured yet. Your agent keeps using its "
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
        "Open your connect link again and finish the {company} screens within a few minutes.",
    ),
    Outcome.DENIED: (
        200,
        "Nothing was connected",
        "You declined access on {company}'s screen, so nothing changed. " + ASK_AGAIN,
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
        "{company} did not complete the sign-in",
        "Please open your connect link again in a minute.",
    ),
}


# A refused callback whose state never matched this browser's consumed nothing: clearing
# the cookie would let a forged callback break the genuine one that follows. Only a
# consumed or expired state clears it.
KEEPS_STATE_COOKIE = frozenset({Outcome.STATE_MISMATCH, Outcome.NOT_CONFIGURED})


def page(outcome: Outcome, calendar: str, company: str) -> HTMLResponse:
    status, title, text = PAGES[outcome]
    title = title.format(calendar=calendar, company=company)
    text = text.format(calendar=calendar, company=company)
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family:sans-serif;"
        f"max-width:32rem;margin:3rem auto;padding:0 1rem'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@dataclass(frozen=True)
class ProviderPages:
    """What differs between providers on the web side."""

    calendar: str  # "Google Calendar"
    company: str  # "Google"
    start_path: str
    callback_path: str
    state_cookie: str
    flow_of: Callable[[Request], ConnectFlow | None]


def provider_router(provider: ProviderPages) -> APIRouter:
    """The connect link's page and the callback, for one provider."""
    router = APIRouter(tags=["calendar"])

    def show(outcome: Outcome) -> HTMLResponse:
        return page(outcome, provider.calendar, provider.company)

    @router.get(
        provider.start_path,
        summary=f"Open a calendar connect link (redirects to {provider.company})",
    )
    def connect(
        request: Request, session: SessionDep, t: Annotated[str, Query(max_length=512)] = ""
    ) -> Response:
        flow = provider.flow_of(request)
        if flow is None:
            return show(Outcome.NOT_CONFIGURED)
        result = flow.start(session, t, services_of(request).clock())
        if not isinstance(result, Started):
            return show(result)
        response = RedirectResponse(result.authorization_url, status_code=302)
        # Binds the callback to this browser: a callback URL replayed elsewhere fails.
        response.set_cookie(
            provider.state_cookie,
            result.state,
            max_age=flow.settings.oauth_state_minutes * 60,
            path=provider.callback_path,
            httponly=True,
            secure=flow.settings.public_base_url.startswith("https://"),
            samesite="lax",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    @router.get(provider.callback_path, summary=f"{provider.company} OAuth redirect target")
    def callback(
        request: Request,
        session: SessionDep,
        state: Annotated[str | None, Query(max_length=128)] = None,
        # Entra's codes run past 2,000 characters; Google's are shorter.
        code: Annotated[str | None, Query(max_length=4096)] = None,
        error: Annotated[str | None, Query(max_length=200)] = None,
    ) -> Response:
        flow = provider.flow_of(request)
        if flow is None:
            return show(Outcome.NOT_CONFIGURED)
        outcome = flow.finish(
            session,
            state=state,
            cookie_state=request.cookies.get(provider.state_cookie),
            code=code,
            error=error,
            now=services_of(request).clock(),
        )
        response = show(outcome)
        if outcome not in KEEPS_STATE_COOKIE:
            response.delete_cookie(provider.state_cookie, path=provider.callback_path)
        return response

    return router
