"""HTTP side of connecting a Microsoft 365 calendar: the connect link and the callback.

Same pages and cookie rules as Google's (app/calendar/oauth_routes.py), naming Microsoft.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.calendar.ms_oauth import CALLBACK_PATH, START_PATH, STATE_COOKIE, MicrosoftOAuth
from app.calendar.oauth import Outcome, Started
from app.calendar.oauth_routes import KEEPS_STATE_COOKIE, page
from app.deps import SessionDep
from app.services import services_of

router = APIRouter(tags=["calendar"])


def ms_page(outcome: Outcome) -> HTMLResponse:
    response = page(outcome)
    body = bytes(response.body).decode().replace("Google Calendar", "Microsoft 365 calendar")
    return HTMLResponse(
        body.replace("Google", "Microsoft"),
        status_code=response.status_code,
        headers={"Cache-Control": "no-store"},
    )


def _oauth(request: Request) -> MicrosoftOAuth | None:
    return services_of(request).microsoft_oauth


@router.get(START_PATH, summary="Open a calendar connect link (redirects to Microsoft)")
def connect(
    request: Request, session: SessionDep, t: Annotated[str, Query(max_length=512)] = ""
) -> Response:
    oauth = _oauth(request)
    if oauth is None:
        return ms_page(Outcome.NOT_CONFIGURED)
    result = oauth.start(session, t, services_of(request).clock())
    if not isinstance(result, Started):
        return ms_page(result)
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


@router.get(CALLBACK_PATH, summary="Microsoft OAuth redirect target")
def callback(
    request: Request,
    session: SessionDep,
    state: Annotated[str | None, Query(max_length=128)] = None,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    oauth = _oauth(request)
    if oauth is None:
        return ms_page(Outcome.NOT_CONFIGURED)
    outcome = oauth.finish(
        session,
        state=state,
        cookie_state=request.cookies.get(STATE_COOKIE),
        code=code,
        error=error,
        now=services_of(request).clock(),
    )
    response = ms_page(outcome)
    if outcome not in KEEPS_STATE_COOKIE:
        response.delete_cookie(STATE_COOKIE, path=CALLBACK_PATH)
    return response
