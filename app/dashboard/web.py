"""Rendering helpers shared by the dashboard endpoints: templates, the signed-in owner,
CSRF, cookies and flash messages. HTTP only; the data comes from views and actions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from app.config import Settings
from app.dashboard import auth, i18n
from app.db import read_only
from app.services import services_of

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# Pages load only our own files; the SVG chart is inline markup, not script.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; media-src 'self' https:; frame-ancestors 'none'; base-uri 'none'"
)
FLASH_COOKIE = "dash_flash"
LANG_COOKIE = "dash_lang"


def read_session(request: Request) -> Iterator[Session]:
    """A plain read: on SQLite, pages must not queue for the single write turn that
    webhooks are using (every other transaction there is BEGIN IMMEDIATE)."""
    with services_of(request).session_factory() as session, read_only(session):
        yield session


ReadSession = Annotated[Session, Depends(read_session)]


class NotFound(Exception):
    """Not this owner's (or not there): answered with an HTML 404 page, never a hint."""


class SignInRequired(Exception):
    """Raised by owner_id(); answered with a redirect to the sign-in page."""


def secure_cookies(settings: Settings) -> bool:
    return settings.environment != "development"


def owner_id(request: Request, session: Session) -> str:
    user_id = auth.session_user(
        session, request.cookies.get(auth.SESSION_COOKIE), services_of(request).clock()
    )
    if user_id is None:
        raise SignInRequired
    return user_id


def cookie_value(request: Request) -> str | None:
    """What CSRF tokens are bound to: the session cookie, else the pre-sign-in one."""
    return request.cookies.get(auth.SESSION_COOKIE) or request.cookies.get(auth.ANON_COOKIE)


async def check_csrf(request: Request) -> None:
    form = await request.form()
    submitted = form.get("csrf")
    settings = services_of(request).settings
    if not auth.csrf_ok(settings, cookie_value(request), str(submitted) if submitted else None):
        raise HTTPException(403, "The form expired or did not come from this site. Reload it.")


def language(request: Request) -> str:
    return i18n.pick(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
    anon_cookie: str | None = None,
) -> HTMLResponse:
    lang = language(request)
    csrf_source = anon_cookie or cookie_value(request) or ""
    settings = services_of(request).settings
    flash = request.cookies.get(FLASH_COOKIE)
    full = {
        "request": request,
        "lang": lang,
        "_": i18n.translator(lang),
        "csrf": auth.csrf_token(settings, csrf_source) if csrf_source else "",
        "flash": unquote(flash) if flash else None,
        **context,
    }
    response = templates.TemplateResponse(request, template, full, status_code=status_code)
    _no_store(response)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=auth.COOKIE_PATH)
    if anon_cookie:
        set_cookie(response, settings, auth.ANON_COOKIE, anon_cookie, 3600)
    return response


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = CSP


def set_cookie(response: Response, settings: Settings, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path=auth.COOKIE_PATH,
        httponly=True,
        secure=secure_cookies(settings),
        samesite="lax",
    )


def redirect(request: Request, url: str, flash: str | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    _no_store(response)
    if flash:
        set_cookie(response, services_of(request).settings, FLASH_COOKIE, quote(flash), 60)
    return response
