"""Owner dashboard endpoints under /dashboard: sign-in, agenda, conversations (live),
settings, calendar, phone numbers and insights. Every page is scoped to the signed-in
owner; another owner's agent, appointment or conversation is a 404."""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from app.calendar import oauth
from app.calendar.ms_oauth import START_PATH as MS_START_PATH
from app.calendar.two_way import stop_push
from app.dashboard import actions, auth, settings_form, views
from app.dashboard.web import (
    LANG_COOKIE,
    NotFound,
    ReadSession,
    check_csrf,
    owner_id,
    redirect,
    render,
    set_cookie,
)
from app.deps import SessionDep
from app.models import Agent
from app.notifications.plan import settings_for
from app.phone import try_e164
from app.security.ratelimit import CallerLimit
from app.security.verification import Outcome
from app.services import services_of

router = APIRouter(prefix="/dashboard", include_in_schema=False)
Csrf = Annotated[None, Depends(check_csrf)]
BASE = "/dashboard"


def _agent(session: Session, user_id: str, agent_id: str) -> Agent:
    agent = views.owned_agent(session, user_id, agent_id)
    if agent is None:
        raise NotFound
    return agent


def _page(
    request: Request, session: Session, user_id: str, agent: Agent, template: str, **context: object
) -> HTMLResponse:
    return render(
        request,
        template,
        {"agent": agent, "agents": views.owned_agents(session, user_id), **context},
    )


# --- sign-in -----------------------------------------------------------------------------


@router.get("")
def home(request: Request, session: ReadSession) -> Response:
    user_id = owner_id(request, session)
    agents = views.owned_agents(session, user_id)
    if not agents:
        return render(request, "no_agent.html", {"agent": None, "agents": []})
    return redirect(request, f"{BASE}/a/{agents[0].id}/agenda")


@router.get("/sign-in")
def sign_in_page(request: Request) -> HTMLResponse:
    anon = request.cookies.get(auth.ANON_COOKIE) or secrets.token_urlsafe(24)
    return render(request, "sign_in.html", {"step": "phone"}, anon_cookie=anon)


def _allowed(request: Request, who: str) -> bool:
    settings = services_of(request).settings
    limit = CallerLimit(services_of(request).limiter, settings.rate_limit_dashboard_sign_in, "dash")
    return limit.allow(who)


@router.post("/sign-in")
def request_sign_in(
    request: Request, session: SessionDep, _csrf: Csrf, phone: Annotated[str, Form()] = ""
) -> HTMLResponse:
    settings = services_of(request).settings
    number = try_e164(phone.strip(), settings.default_region)
    if number is None:
        error = "Enter a phone number we can read, e.g. +1 415 555 0123."
        return render(request, "sign_in.html", {"step": "phone", "error": error}, 422)
    address = request.client.host if request.client else "unknown"
    if not (_allowed(request, f"ip:{address}") and _allowed(request, f"n:{number}")):
        error = "Too many sign-in requests. Try again later."
        return render(request, "sign_in.html", {"step": "phone", "error": error}, 429)
    owner = auth.owner_of(session, number)
    sign_in_id = None
    if owner is not None:
        spanish = request.cookies.get(LANG_COOKIE) == "es"
        sign_in_id = auth.text_sign_in(
            session,
            services_of(request).sms_sender,
            settings,
            number,
            owner,
            services_of(request).clock(),
            spanish=spanish,
        )
        session.commit()
    # The same answer whether or not the number is an owner's: no one learns who is.
    pending = sign_in_id or f"osi_{secrets.token_hex(8)}"
    return render(request, "sign_in.html", {"step": "code", "sign_in_id": pending})


def _signed_in(request: Request, session: Session, user_id: str) -> RedirectResponse:
    settings = services_of(request).settings
    token = auth.start_session(session, settings, user_id, services_of(request).clock())
    session.commit()
    response = redirect(request, BASE)
    set_cookie(
        response, settings, auth.SESSION_COOKIE, token, settings.dashboard_session_hours * 3600
    )
    response.delete_cookie(auth.ANON_COOKIE, path=auth.COOKIE_PATH)
    return response


@router.post("/sign-in/code")
def sign_in_with_code(
    request: Request,
    session: SessionDep,
    _csrf: Csrf,
    sign_in_id: Annotated[str, Form(max_length=32)] = "",
    code: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    settings = services_of(request).settings
    row = auth.redeem_code(session, settings, sign_in_id, code, services_of(request).clock())
    if row is None:
        session.commit()  # a wrong code still counts as an attempt
        error = "That code is not valid or has expired."
        context = {"step": "code", "sign_in_id": sign_in_id, "error": error}
        return render(request, "sign_in.html", context, 400)
    return _signed_in(request, session, row.user_id)


@router.get("/auth")
def link_landing(request: Request) -> HTMLResponse:
    # The token is in the URL fragment (never sent here); dashboard.js puts it in the
    # form. Link previews in messaging apps fetch GET links: only the POST spends it.
    anon = request.cookies.get(auth.ANON_COOKIE) or secrets.token_urlsafe(24)
    return render(request, "sign_in.html", {"step": "link"}, anon_cookie=anon)


@router.post("/auth")
def redeem_link(
    request: Request, session: SessionDep, _csrf: Csrf, t: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    row = auth.redeem_link(session, services_of(request).settings, t, services_of(request).clock())
    if row is None:
        error = "This sign-in link is not valid, was used already or has expired."
        return render(request, "sign_in.html", {"step": "phone", "error": error}, 400)
    return _signed_in(request, session, row.user_id)


@router.post("/sign-out")
def sign_out(request: Request, session: SessionDep, _csrf: Csrf) -> Response:
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        auth.end_session(session, token, services_of(request).clock())
        session.commit()
    response = redirect(request, f"{BASE}/sign-in")
    response.delete_cookie(auth.SESSION_COOKIE, path=auth.COOKIE_PATH)
    return response


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str = BASE) -> Response:
    target = next if next.startswith(f"{BASE}") and "//" not in next else BASE
    response = redirect(request, target)
    if code in ("en", "es"):
        set_cookie(response, services_of(request).settings, LANG_COOKIE, code, 365 * 24 * 3600)
    return response


# --- agenda ----------------------------------------------------------------------------------


LAST_AGENDA_DAY = date(2199, 12, 31)


@router.get("/a/{agent_id}/agenda")
def agenda(
    request: Request,
    agent_id: str,
    session: ReadSession,
    # Bounded so a week after it is still a date (9999-12-31 + 7 days would overflow).
    start: Annotated[date | None, Query(le=LAST_AGENDA_DAY)] = None,
) -> HTMLResponse:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    week = views.agenda(session, agent, services_of(request).clock(), start)
    return _page(request, session, user_id, agent, "agenda.html", week=week, days=week.days)


def _appointment_outcome(request: Request, agent: Agent, ok: bool, message: str) -> Response:
    back = f"{BASE}/a/{agent.id}/agenda"
    if request.headers.get("hx-request"):
        return render(request, "_outcome.html", {"ok": ok, "message": message, "back": back})
    return redirect(request, back, flash=message)


@router.get("/a/{agent_id}/appointments/{appointment_id}")
def appointment_page(
    request: Request, agent_id: str, appointment_id: str, session: ReadSession
) -> HTMLResponse:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    row = actions.owned_appointment(session, agent, appointment_id)
    if row is None:
        raise NotFound
    shown = views.appointment(agent, row)
    return _page(
        request,
        session,
        user_id,
        agent,
        "appointment.html",
        row=shown,
        day=shown.day,
        local_start=shown.local_start,
        status=row.status,
        base=f"{BASE}/a/{agent.id}/appointments/{row.id}",
    )


@router.post("/a/{agent_id}/appointments/{appointment_id}/cancel")
def cancel_appointment(
    request: Request, agent_id: str, appointment_id: str, session: SessionDep, _csrf: Csrf
) -> Response:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    row = actions.owned_appointment(session, agent, appointment_id)
    if row is None:
        raise NotFound
    state = services_of(request)
    result = actions.cancel(session, state.calendar_factory, user_id, agent, row, state.clock())
    return _appointment_outcome(request, agent, result.ok, result.one_line())


@router.post("/a/{agent_id}/appointments/{appointment_id}/move")
def move_appointment(
    request: Request,
    agent_id: str,
    appointment_id: str,
    session: SessionDep,
    _csrf: Csrf,
    new_start: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    row = actions.owned_appointment(session, agent, appointment_id)
    if row is None:
        raise NotFound
    try:
        start = datetime.fromisoformat(new_start)
    except ValueError:
        return _appointment_outcome(request, agent, False, "Pick a date and time to move it to.")
    state = services_of(request)
    result = actions.move(
        session, state.calendar_factory, user_id, agent, row, start, state.clock()
    )
    return _appointment_outcome(request, agent, result.ok, result.one_line())


# --- settings -------------------------------------------------------------------------------


def _settings_page(
    request: Request,
    session: Session,
    user_id: str,
    agent: Agent,
    form: settings_form.SettingsForm,
    reminders: settings_form.SettingsForm | None = None,
) -> HTMLResponse:
    if reminders is None:
        reminders = settings_form.from_reminders(settings_for(session, agent.id))
    response = _page(
        request,
        session,
        user_id,
        agent,
        "settings.html",
        form=form,
        days=settings_form.DAYS,
        day_names=settings_form.DAY_NAMES,
        languages=settings_form.LANGUAGE_CHOICES,
        has_pin=agent.pin_hash is not None,
        reminders=reminders,
    )
    if form.errors or reminders.errors:
        response.status_code = 422
    return response


@router.get("/a/{agent_id}/settings")
def settings_page(request: Request, agent_id: str, session: ReadSession) -> HTMLResponse:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    return _settings_page(request, session, user_id, agent, settings_form.from_agent(agent))


async def _form(request: Request) -> FormData:
    return await request.form()


@router.post("/a/{agent_id}/settings")
def save_settings(
    request: Request,
    agent_id: str,
    session: SessionDep,
    _csrf: Csrf,
    form: Annotated[FormData, Depends(_form)],
) -> Response:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    update, shown, clear_cap = settings_form.parse(form)
    if update is None:
        return _settings_page(request, session, user_id, agent, shown)
    actions.save_settings(session, user_id, agent, update, clear_cap)
    return redirect(request, f"{BASE}/a/{agent.id}/settings", flash="Saved.")


@router.post("/a/{agent_id}/settings/reminders")
def save_reminders(
    request: Request,
    agent_id: str,
    session: SessionDep,
    _csrf: Csrf,
    form: Annotated[FormData, Depends(_form)],
) -> Response:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    body, shown = settings_form.parse_reminders(form)
    if body is None:
        page = settings_form.from_agent(agent)
        return _settings_page(request, session, user_id, agent, page, shown)
    actions.save_reminders(session, user_id, agent, body)
    return redirect(request, f"{BASE}/a/{agent.id}/settings", flash="Saved.")


# --- calendar ---------------------------------------------------------------------------------


@router.get("/a/{agent_id}/calendar")
def calendar_page(request: Request, agent_id: str, session: ReadSession) -> HTMLResponse:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    status = views.calendar_status(session, agent)
    configured = services_of(request).google_oauth is not None
    ms_configured = services_of(request).microsoft_oauth is not None
    return _page(
        request,
        session,
        user_id,
        agent,
        "calendar.html",
        cal=status,
        configured=configured,
        ms_configured=ms_configured,
    )


@router.get("/a/{agent_id}/calendar/connect")
def connect_calendar(request: Request, agent_id: str, session: ReadSession) -> Response:
    """Into the same signed, single-use connect link the operator texts (app/calendar)."""
    return _connect_redirect(request, session, agent_id, oauth.START_PATH)


@router.get("/a/{agent_id}/calendar/connect/microsoft")
def connect_microsoft(request: Request, agent_id: str, session: ReadSession) -> Response:
    """The same signed link, opening Microsoft's sign-in instead of Google's."""
    return _connect_redirect(request, session, agent_id, MS_START_PATH)


def _connect_redirect(request: Request, session: Session, agent_id: str, path: str) -> Response:
    agent = _agent(session, owner_id(request, session), agent_id)
    services = services_of(request)
    url = oauth.connect_url(services.settings, agent.id, services.clock(), path)
    response = RedirectResponse(url, status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/a/{agent_id}/calendar/disconnect")
def disconnect_calendar(
    request: Request, agent_id: str, session: SessionDep, _csrf: Csrf
) -> Response:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    # Stop the provider's pushes while the token can still do it.
    stop_push(session, services_of(request).calendar_factory, agent)
    actions.disconnect_calendar(session, user_id, agent)
    return redirect(request, f"{BASE}/a/{agent.id}/calendar", flash="Saved.")


# --- phone numbers -----------------------------------------------------------------------------


@router.get("/a/{agent_id}/numbers")
def numbers_page(request: Request, agent_id: str, session: ReadSession) -> HTMLResponse:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    rows = views.numbers(session, user_id)
    return _page(request, session, user_id, agent, "numbers.html", numbers=rows)


@router.post("/a/{agent_id}/numbers")
def add_number(
    request: Request,
    agent_id: str,
    session: SessionDep,
    _csrf: Csrf,
    phone: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    state = services_of(request)
    number = try_e164(phone.strip(), state.settings.default_region)
    if number is None:
        problem: str | None = "Enter a phone number we can read, e.g. +1 415 555 0123."
    else:
        problem = actions.add_number(
            session, state.sms_sender, state.settings, user_id, number, state.clock()
        )
    if problem is not None:
        rows = views.numbers(session, user_id)
        response = _page(
            request, session, user_id, agent, "numbers.html", numbers=rows, error=problem
        )
        response.status_code = 422
        return response
    return redirect(request, f"{BASE}/a/{agent.id}/numbers", flash="Code sent.")


@router.post("/a/{agent_id}/numbers/{number_id}/verify")
def verify_number(
    request: Request,
    agent_id: str,
    number_id: str,
    session: SessionDep,
    _csrf: Csrf,
    code: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    row = actions.pending_number(session, user_id, number_id)
    if row is None:
        raise NotFound
    state = services_of(request)
    outcome = actions.verify_number(session, state.settings, user_id, row, code, state.clock())
    message = "Verified" if outcome is Outcome.VERIFIED else VERIFY_MESSAGES[outcome]
    return redirect(request, f"{BASE}/a/{agent.id}/numbers", flash=message)


VERIFY_MESSAGES = {
    Outcome.WRONG_CODE: "That code is not right. Try again.",
    Outcome.EXPIRED: "That code has expired. Ask for a new one.",
    Outcome.LOCKED: "Too many wrong codes. Ask for a new one.",
    Outcome.NO_PENDING: "No code is waiting for this number. Ask for a new one.",
}


# --- insights ---------------------------------------------------------------------------------


@router.get("/a/{agent_id}/insights")
def insights_page(request: Request, agent_id: str, session: ReadSession) -> HTMLResponse:
    user_id = owner_id(request, session)
    agent = _agent(session, user_id, agent_id)
    data = views.insights(session, agent, services_of(request).clock())
    return _page(request, session, user_id, agent, "insights.html", insights=data)
