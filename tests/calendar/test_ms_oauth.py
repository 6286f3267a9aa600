"""Connecting a Microsoft 365 calendar from the texted link: MSAL's auth code flow with
PKCE against the local fake identity platform, through the app's routes."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.calendar.ms_oauth import START_PATH, STATE_COOKIE
from app.calendar.oauth import connect_url, text_connect_link
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.fakes.graph import FakeGraph
from app.main import create_app
from app.models import Agent, CalendarConnection, OAuthState
from app.security.vault import TokenVault
from tests.calendar.conftest import RecordingSender
from tests.conftest import PUBLIC_BASE_URL


@pytest.fixture
def ms_client(
    ms_settings: Settings, session_factory, clock: FixedClock, sender: RecordingSender
) -> Iterator[TestClient]:
    app = create_app(ms_settings, session_factory=session_factory, clock=clock, sms_sender=sender)
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        yield client


def link(settings: Settings, demo: DemoData, clock: FixedClock) -> str:
    return connect_url(settings, demo.agent_id, clock(), START_PATH).removeprefix(PUBLIC_BASE_URL)


def consent(graph: FakeGraph, location: str) -> tuple[str, str]:
    """What Microsoft's consent screen does: a code bound to the challenge and nonce."""
    query = parse_qs(urlparse(location).query)
    return query["state"][0], graph.issue_code(query["code_challenge"][0], query["nonce"][0])


def callback(client: TestClient, state: str, code: str):  # type: ignore[no-untyped-def]
    return client.get("/calendar/microsoft/callback", params={"state": state, "code": code})


def test_texted_link_connects_with_pkce_and_minimal_scopes(
    ms_client: TestClient,
    ms_settings: Settings,
    session: Session,
    db,
    demo: DemoData,
    clock: FixedClock,
    graph: FakeGraph,
    vault: TokenVault,
    sender: RecordingSender,
):
    agent = session.get(Agent, demo.agent_id)
    assert text_connect_link(session, sender, ms_settings, agent, clock(), path=START_PATH) == 1
    session.commit()
    texted = sender.sent[0][1].split(": ", 1)[1].split(" ")[0]
    assert texted.startswith(f"{PUBLIC_BASE_URL}{START_PATH}?t=")

    started = ms_client.get(texted.removeprefix(PUBLIC_BASE_URL), follow_redirects=False)
    assert started.status_code == 302
    location = started.headers["location"]
    assert location.startswith(f"{graph.authority}/oauth2/v2.0/authorize?")
    query = parse_qs(urlparse(location).query)
    assert set(query["scope"][0].split()) == {"Calendars.ReadWrite", "offline_access", "openid"}
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == [f"{PUBLIC_BASE_URL}/calendar/microsoft/callback"]
    # The verifier stays on the server, encrypted: only its challenge travels.
    row = db.get(OAuthState, query["state"][0])
    verifier = json.loads(vault.decrypt(row.encrypted_code_verifier))["code_verifier"]
    assert verifier not in location and verifier not in started.headers["set-cookie"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    assert challenge.rstrip(b"=").decode() == query["code_challenge"][0]

    state, code = consent(graph, location)
    finished = callback(ms_client, state, code)
    assert finished.status_code == 200 and "Microsoft 365 calendar connected" in finished.text
    connection = db.scalar(select(CalendarConnection))
    assert (connection.provider, connection.status) == ("microsoft", "active")
    assert connection.account_email == "owner@contoso.example"
    refresh = vault.decrypt(connection.encrypted_refresh_token)
    assert graph.refresh_tokens[refresh] == "ok"
    assert db.get(Agent, demo.agent_id).calendar_provider == "microsoft"
    assert db.get(OAuthState, state).encrypted_code_verifier is None

    # The link and the callback are single-use (the state cookie is spent too).
    assert ms_client.get(texted.removeprefix(PUBLIC_BASE_URL)).status_code == 409
    ms_client.cookies.set(STATE_COOKIE, state, path="/calendar/microsoft/callback")
    assert callback(ms_client, state, code).status_code == 409


def test_a_code_bound_to_another_challenge_is_refused(
    ms_client: TestClient, ms_settings, db, demo, clock, graph: FakeGraph
):
    started = ms_client.get(link(ms_settings, demo, clock), follow_redirects=False)
    query = parse_qs(urlparse(started.headers["location"]).query)
    stolen = graph.issue_code("a-challenge-from-another-flow", query["nonce"][0])
    refused = callback(ms_client, query["state"][0], stolen)
    assert refused.status_code == 502
    assert db.scalar(select(CalendarConnection)) is None


def test_consent_without_calendar_access_connects_nothing(
    ms_client: TestClient, ms_settings, db, demo, clock, graph: FakeGraph
):
    graph.granted_scope = "openid"  # the permission was not granted
    started = ms_client.get(link(ms_settings, demo, clock), follow_redirects=False)
    state, code = consent(graph, started.headers["location"])
    refused = callback(ms_client, state, code)
    assert refused.status_code == 400 and "not granted" in refused.text
    assert db.scalar(select(CalendarConnection)) is None


def test_a_callback_from_another_browser_or_with_a_forged_state_is_refused(
    ms_client: TestClient, ms_settings, db, demo, clock, graph: FakeGraph
):
    started = ms_client.get(link(ms_settings, demo, clock), follow_redirects=False)
    state, code = consent(graph, started.headers["location"])
    ms_client.cookies.delete(STATE_COOKIE, path="/calendar/microsoft/callback")
    other = TestClient(ms_client.app, base_url=PUBLIC_BASE_URL)
    assert callback(other, state, code).status_code == 400
    assert callback(other, "forged", code).status_code == 400
    assert db.scalar(select(CalendarConnection)) is None


def test_without_a_microsoft_client_the_link_says_so(client: TestClient, settings, demo, clock):
    page = client.get(link(settings, demo, clock))
    assert page.status_code == 503 and "Microsoft" in page.text
