"""The connect link and OAuth web flow, with Google's token endpoint faked locally."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.calendar.google import event_id_for
from app.calendar.oauth import SCOPES, STATE_COOKIE, connect_url, pkce_challenge
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import Agent, Appointment, AuditEntry, CalendarConnection, OAuthState
from app.security.vault import TokenVault
from app.tools.registry import run_tool
from app.tools.service import SchedulingTools, ToolContext
from tests.calendar.conftest import RecordingSender
from tests.calendar.fake_google import FakeGoogle
from tests.conftest import PUBLIC_BASE_URL


@pytest.fixture
def google_client(
    google_settings: Settings,
    session_factory,
    clock: FixedClock,
    sender: RecordingSender,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[TestClient]:
    # The fake token endpoint is plain http on 127.0.0.1; oauthlib insists on https.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    app = create_app(
        google_settings, session_factory=session_factory, clock=clock, sms_sender=sender
    )
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        yield client


def open_link(client: TestClient, url: str):  # type: ignore[no-untyped-def]
    return client.get(url.removeprefix(PUBLIC_BASE_URL), follow_redirects=False)


def consent(fake: FakeGoogle, location: str) -> tuple[str, str, str]:
    """What Google's consent screen does: a code bound to the PKCE challenge."""
    query = parse_qs(urlparse(location).query)
    code, refresh_token = fake.issue_code(query["code_challenge"][0])
    return query["state"][0], code, refresh_token


def test_connect_link_connects_the_calendar_and_the_tools_book_into_it(
    google_client: TestClient,
    session: Session,
    demo: DemoData,
    fake: FakeGoogle,
    google_settings: Settings,
    clock: FixedClock,
    vault: TokenVault,
):
    started = open_link(google_client, connect_url(google_settings, demo.agent_id, clock()))
    assert started.status_code == 302
    location = started.headers["location"]
    query = parse_qs(urlparse(location).query)
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert set(query["scope"][0].split()) == set(SCOPES)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [f"{PUBLIC_BASE_URL}/calendar/google/callback"]
    # The verifier stays on the server: only its challenge travels.
    row = session.get(OAuthState, query["state"][0])
    verifier = vault.decrypt(row.encrypted_code_verifier)
    assert verifier not in location and verifier not in started.headers.get("set-cookie", "")
    assert pkce_challenge(verifier) == query["code_challenge"][0]
    session.rollback()  # end the read: SQLite would keep the app's writes waiting

    state, code, refresh_token = consent(fake, location)
    done = google_client.get("/calendar/google/callback", params={"state": state, "code": code})
    assert done.status_code == 200 and "Google Calendar connected" in done.text
    session.expire_all()
    connection = session.scalar(select(CalendarConnection))
    assert connection.status == "active" and connection.provider == "google"
    assert refresh_token not in connection.encrypted_refresh_token
    assert vault.decrypt(connection.encrypted_refresh_token) == refresh_token
    assert session.get(Agent, demo.agent_id).calendar_provider == "google"
    assert session.get(OAuthState, state).encrypted_code_verifier is None
    audit_text = " ".join(str(d) for d in session.scalars(select(AuditEntry.details)))
    assert refresh_token not in audit_text and code not in audit_text
    session.commit()

    # From now on the agent books into Google.
    agent = session.get(Agent, demo.agent_id)
    calendar = google_client.app.state.services.calendar_factory(session, agent)
    tools = SchedulingTools(ToolContext(session, agent, calendar, clock(), demo.caller, "sms"))
    result = run_tool(
        tools, "book_appointment", {"start": "2026-11-24T14:00:00-08:00"}, request_key="c1"
    )
    session.commit()
    assert result.ok, result.message
    key = session.scalar(select(Appointment.idempotency_key))
    assert event_id_for(agent.id, key) in fake.live_events()
    assert session.scalar(select(Appointment)).sync_status == "synced"


def test_replayed_callback_and_reused_link_are_refused(
    google_client: TestClient, session: Session, demo, fake, google_settings, clock
):
    link = connect_url(google_settings, demo.agent_id, clock())
    state, code, _ = consent(fake, open_link(google_client, link).headers["location"])
    params = {"state": state, "code": code}
    assert google_client.get("/calendar/google/callback", params=params).status_code == 200
    # The same browser comes back with the same answer (back button, replay).
    google_client.cookies.set(STATE_COOKIE, state, path="/calendar/google/callback")
    replay = google_client.get("/calendar/google/callback", params=params)
    assert replay.status_code == 409 and "already used" in replay.text
    reused = open_link(google_client, link)
    assert reused.status_code == 409


def test_state_mismatch_and_foreign_browser_are_refused(
    google_client: TestClient, session: Session, demo, fake, google_settings, clock
):
    location = open_link(
        google_client, connect_url(google_settings, demo.agent_id, clock())
    ).headers["location"]
    state, code, _ = consent(fake, location)
    forged = google_client.get(
        "/calendar/google/callback", params={"state": "not-the-state", "code": code}
    )
    assert forged.status_code == 400 and "could not match" in forged.text
    # The right state from a browser that never started the flow (no cookie).
    with TestClient(google_client.app, base_url=PUBLIC_BASE_URL) as other:
        foreign = other.get("/calendar/google/callback", params={"state": state, "code": code})
    assert foreign.status_code == 400
    assert session.scalar(select(CalendarConnection)) is None


def test_a_forged_callback_does_not_break_the_genuine_one(
    google_client: TestClient, session: Session, demo, fake, google_settings, clock
):
    location = open_link(
        google_client, connect_url(google_settings, demo.agent_id, clock())
    ).headers["location"]
    state, code, _ = consent(fake, location)
    forged = google_client.get(
        "/calendar/google/callback", params={"state": "forged-state", "code": "x"}
    )
    assert forged.status_code == 400
    assert "set-cookie" not in forged.headers  # the state cookie is left alone
    genuine = google_client.get("/calendar/google/callback", params={"state": state, "code": code})
    assert genuine.status_code == 200 and "Google Calendar connected" in genuine.text
    assert STATE_COOKIE in genuine.headers["set-cookie"]  # consumed: now it is cleared
    assert session.scalar(select(CalendarConnection)) is not None


def test_denied_consent_connects_nothing(
    google_client: TestClient, session: Session, demo, google_settings, clock
):
    location = open_link(
        google_client, connect_url(google_settings, demo.agent_id, clock())
    ).headers["location"]
    state = parse_qs(urlparse(location).query)["state"][0]
    denied = google_client.get(
        "/calendar/google/callback", params={"state": state, "error": "access_denied"}
    )
    assert denied.status_code == 200 and "Nothing was connected" in denied.text
    assert session.scalar(select(CalendarConnection)) is None


def test_missing_verifier_cannot_finish(
    google_client: TestClient, session: Session, demo, fake, google_settings, clock
):
    location = open_link(
        google_client, connect_url(google_settings, demo.agent_id, clock())
    ).headers["location"]
    state, code, _ = consent(fake, location)
    session.get(OAuthState, state).encrypted_code_verifier = None
    session.commit()
    response = google_client.get("/calendar/google/callback", params={"state": state, "code": code})
    assert response.status_code == 400 and "cannot be finished" in response.text
    assert session.scalar(select(CalendarConnection)) is None


def test_expired_tampered_and_foreign_links(
    google_client: TestClient, demo, google_settings: Settings, clock: FixedClock
):
    link = connect_url(google_settings, demo.agent_id, clock())
    tampered = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    assert open_link(google_client, tampered).status_code == 400
    other_secret = google_settings.model_copy(update={"app_secret_key": SecretStr("someone-else")})
    forged = connect_url(other_secret, demo.agent_id, clock())
    assert open_link(google_client, forged).status_code == 400
    clock.advance(minutes=google_settings.calendar_connect_link_minutes + 1)
    expired = open_link(google_client, link)
    assert expired.status_code == 410 and "expired" in expired.text


def test_consent_screen_left_open_too_long(
    google_client: TestClient, demo, fake, google_settings, clock: FixedClock
):
    location = open_link(
        google_client, connect_url(google_settings, demo.agent_id, clock())
    ).headers["location"]
    state, code, _ = consent(fake, location)
    clock.advance(minutes=google_settings.oauth_state_minutes + 1)
    late = google_client.get("/calendar/google/callback", params={"state": state, "code": code})
    assert late.status_code == 410


def test_unticked_permission_is_reported(
    google_client: TestClient, session: Session, demo, fake: FakeGoogle, google_settings, clock
):
    fake.granted_scope = SCOPES[0]  # the owner unticked free/busy
    location = open_link(
        google_client, connect_url(google_settings, demo.agent_id, clock())
    ).headers["location"]
    state, code, _ = consent(fake, location)
    response = google_client.get("/calendar/google/callback", params={"state": state, "code": code})
    assert response.status_code == 400 and "not granted" in response.text
    assert session.scalar(select(CalendarConnection)) is None


def test_without_a_google_client_the_link_says_so(client: TestClient, demo, settings, clock):
    response = client.get(
        connect_url(settings, demo.agent_id, clock()).removeprefix(PUBLIC_BASE_URL)
    )
    assert response.status_code == 503 and "built-in calendar" in response.text
