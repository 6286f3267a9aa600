"""Owner sign-in: texted single-use link or code, session cookie, CSRF, rate limit,
sign-out, and secrets that never reach logs or the audit trail."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import AuditEntry, OwnerSession
from tests.conftest import PUBLIC_BASE_URL, Reader
from tests.dashboard.conftest import CODE, LINK, RecordingSender, csrf_of, sign_in


def ask_for_link(client: TestClient, phone: str) -> tuple[int, str]:
    page = client.get("/dashboard/sign-in")
    answer = client.post("/dashboard/sign-in", data={"phone": phone, "csrf": csrf_of(page.text)})
    return answer.status_code, answer.text


def test_pages_need_sign_in(client: TestClient, demo: DemoData) -> None:
    for path in ("/dashboard", f"/dashboard/a/{demo.agent_id}/agenda"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == "/dashboard/sign-in"


def test_texted_link_signs_in_once(
    client: TestClient, sender: RecordingSender, demo: DemoData
) -> None:
    status, _ = ask_for_link(client, "(415) 555-0123")
    assert status == 200
    text = sender.last_to(demo.caller)
    token = LINK.search(text)
    assert token and text.startswith("Your dashboard: " + PUBLIC_BASE_URL)

    # Opening the link (or a preview bot fetching it) spends nothing.
    landing = client.get("/dashboard/auth")
    assert landing.status_code == 200
    done = client.post("/dashboard/auth", data={"t": token[1], "csrf": csrf_of(landing.text)})
    assert done.status_code == 303 and done.headers["location"] == "/dashboard"
    cookie = done.headers["set-cookie"]
    assert "dash_session=" in cookie and "HttpOnly" in cookie
    assert "SameSite=lax" in cookie.replace("Lax", "lax") and "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # development; see the production test below
    agenda = client.get("/dashboard", follow_redirects=True)
    assert agenda.status_code == 200 and "Upcoming appointments" in agenda.text

    # A second use of the same link is refused, in a fresh browser too.
    client.cookies.clear()
    again = client.get("/dashboard/auth")
    refused = client.post("/dashboard/auth", data={"t": token[1], "csrf": csrf_of(again.text)})
    assert refused.status_code == 400 and "already" in refused.text
    assert "dash_session" not in refused.headers.get("set-cookie", "")


def test_code_typed_on_the_page_signs_in_and_wrong_codes_lock_it(
    client: TestClient, sender: RecordingSender, demo: DemoData
) -> None:
    _, page = ask_for_link(client, demo.caller)
    code = CODE.search(sender.last_to(demo.caller))
    assert code
    sign_in_id = page.split('name="sign_in_id" value="')[1].split('"')[0]
    wrong = "000000" if code[1] != "000000" else "111111"
    for _ in range(5):
        bad = client.post(
            "/dashboard/sign-in/code",
            data={"sign_in_id": sign_in_id, "code": wrong, "csrf": csrf_of(page)},
        )
        assert bad.status_code == 400 and "not valid" in bad.text
    locked = client.post(
        "/dashboard/sign-in/code",
        data={"sign_in_id": sign_in_id, "code": code[1], "csrf": csrf_of(page)},
    )
    assert locked.status_code == 400

    _, page = ask_for_link(client, demo.caller)
    code = CODE.search(sender.last_to(demo.caller))
    assert code
    sign_in_id = page.split('name="sign_in_id" value="')[1].split('"')[0]
    good = client.post(
        "/dashboard/sign-in/code",
        data={"sign_in_id": sign_in_id, "code": code[1], "csrf": csrf_of(page)},
    )
    assert good.status_code == 303 and "dash_session=" in good.headers["set-cookie"]


def test_unknown_number_gets_the_same_answer_and_no_text(
    client: TestClient, sender: RecordingSender, demo: DemoData
) -> None:
    status, page = ask_for_link(client, "+14155550100")
    assert status == 200 and "we texted it a link" in page
    assert sender.sent == []
    bad = client.post("/dashboard/sign-in", data={"phone": "not a number", "csrf": "x"})
    assert bad.status_code == 403  # CSRF first
    page = client.get("/dashboard/sign-in").text
    bad = client.post("/dashboard/sign-in", data={"phone": "call me", "csrf": csrf_of(page)})
    assert bad.status_code == 422 and "phone number we can read" in bad.text


def test_link_expires(
    client: TestClient, sender: RecordingSender, demo: DemoData, clock: FixedClock
) -> None:
    ask_for_link(client, demo.caller)
    token = LINK.search(sender.last_to(demo.caller))
    assert token
    clock.advance(minutes=11)
    landing = client.get("/dashboard/auth")
    late = client.post("/dashboard/auth", data={"t": token[1], "csrf": csrf_of(landing.text)})
    assert late.status_code == 400


def test_every_form_needs_this_browsers_csrf_token(
    client: TestClient, sender: RecordingSender, demo: DemoData
) -> None:
    sign_in(client, sender, demo.caller)
    path = f"/dashboard/a/{demo.agent_id}/settings"
    good = csrf_of(client.get(path).text)
    assert client.post(path, data={"hours_mon": "09:00-10:00"}).status_code == 403
    assert client.post(path, data={"hours_mon": "09:00-10:00", "csrf": "0" * 32}).status_code == 403
    other = TestClient(client.app, base_url=PUBLIC_BASE_URL, follow_redirects=False)
    other.cookies.set("dash_session", "someone-elses", path="/dashboard")
    assert other.post(path, data={"csrf": good}).status_code == 403
    assert client.post("/dashboard/sign-out", data={}).status_code == 403


def test_sign_in_requests_are_rate_limited_per_number(
    client: TestClient, sender: RecordingSender, demo: DemoData
) -> None:
    statuses = [ask_for_link(client, demo.caller)[0] for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert len(sender.sent) == 5


def test_sign_out_ends_the_session(
    client: TestClient, sender: RecordingSender, demo: DemoData, db: Reader
) -> None:
    sign_in(client, sender, demo.caller)
    cookie = client.cookies.get("dash_session")
    page = client.get(f"/dashboard/a/{demo.agent_id}/agenda")
    out = client.post("/dashboard/sign-out", data={"csrf": csrf_of(page.text)})
    assert out.status_code == 303
    assert db.scalar(select(OwnerSession.revoked_at)) is not None
    client.cookies.set("dash_session", cookie, path="/dashboard")
    assert client.get(f"/dashboard/a/{demo.agent_id}/agenda").status_code == 303


def test_cookie_is_secure_outside_development(
    settings: Settings,
    session_factory: sessionmaker[Session],
    clock: FixedClock,
    demo: DemoData,
) -> None:
    production = settings.model_copy(update={"environment": "production"})
    sender = RecordingSender()
    app = create_app(production, session_factory=session_factory, clock=clock, sms_sender=sender)
    with TestClient(app, base_url=PUBLIC_BASE_URL, follow_redirects=False) as client:
        page = client.get("/dashboard/sign-in")
        assert "Secure" in page.headers["set-cookie"]
        client.post("/dashboard/sign-in", data={"phone": demo.caller, "csrf": csrf_of(page.text)})
        token = LINK.search(sender.last_to(demo.caller))
        assert token
        landing = client.get("/dashboard/auth")
        done = client.post("/dashboard/auth", data={"t": token[1], "csrf": csrf_of(landing.text)})
        assert "Secure" in done.headers["set-cookie"]


def test_link_and_code_never_reach_logs_or_audit(
    client: TestClient,
    sender: RecordingSender,
    demo: DemoData,
    db: Reader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sign_in(client, sender, demo.caller)
    text = sender.last_to(demo.caller)
    token, code = LINK.search(text), CODE.search(text)
    assert token and code
    logged = "\n".join(r.getMessage() for r in caplog.records)
    trail = " ".join(str(e.details) + str(e.subject) for e in db.scalars(select(AuditEntry)))
    for secret in (token[1], code[1], demo.caller):
        assert secret not in logged
        assert secret not in trail
    actions = {e.action for e in db.scalars(select(AuditEntry))}
    assert {"dashboard.sign_in.sent", "dashboard.signed_in"} <= actions


def test_operator_printed_link_signs_the_owner_in(
    client: TestClient, settings: Settings, demo: DemoData, session_factory: sessionmaker[Session]
) -> None:
    from app.dashboard.cli import sign_in_link

    with session_factory() as session:
        link = sign_in_link(session, settings, demo.user_id)
        assert sign_in_link(session, settings, "usr_missing") is None
    token = LINK.search(link or "")
    assert token
    landing = client.get("/dashboard/auth")
    done = client.post("/dashboard/auth", data={"t": token[1], "csrf": csrf_of(landing.text)})
    assert done.status_code == 303 and "dash_session=" in done.headers["set-cookie"]
