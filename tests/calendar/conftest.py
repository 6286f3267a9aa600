"""Google Calendar fixtures: a local fake Google, a vault, a recording SMS sender and an
agent connected to the fake (the demo agent)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session

from app.calendar.backend import default_calendar_factory
from app.calendar.google import GoogleCalendarFactory
from app.calendar.microsoft import MicrosoftCalendarFactory
from app.calendar.ms_oauth import MicrosoftIdentity
from app.calendar.oauth import redirect_uri
from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.fakes.graph import CLIENT_ID as GRAPH_CLIENT_ID
from app.fakes.graph import CLIENT_SECRET as GRAPH_CLIENT_SECRET
from app.fakes.graph import FakeGraph
from app.models import Agent, CalendarConnection
from app.security.vault import TokenVault, generate_key
from tests.calendar.fake_google import FakeGoogle


class RecordingSender:
    """An SmsSender that keeps what it would have sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str) -> str | None:
        self.sent.append((to, body))
        return f"SM{len(self.sent):032d}"


@pytest.fixture
def fake() -> Iterator[FakeGoogle]:
    google = FakeGoogle().start()
    yield google
    google.stop()


@pytest.fixture
def token_key() -> str:
    return generate_key()


@pytest.fixture
def google_settings(
    settings: Settings, fake: FakeGoogle, token_key: str, tmp_path: Path
) -> Settings:
    secrets_file = tmp_path / "client_secret.json"
    secrets_file.write_text(json.dumps(fake.client_secrets(redirect_uri(settings))))
    return settings.model_copy(
        update={
            "token_encryption_keys": SecretStr(token_key),
            "token_key_file": tmp_path / "unused.key",
            "google_client_secrets_file": secrets_file,
            "google_calendar_api_endpoint": fake.api_endpoint,
            "google_http_timeout_seconds": 0.2,
            "google_request_budget_seconds": 1.5,
        }
    )


@pytest.fixture
def vault(token_key: str) -> TokenVault:
    return TokenVault([token_key])


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def factory(
    google_settings: Settings,
    vault: TokenVault,
    sender: RecordingSender,
    clock: FixedClock,
    fake: FakeGoogle,
    sleeps: list[float],
) -> GoogleCalendarFactory:
    config = json.loads(google_settings.google_client_secrets_file.read_text())  # type: ignore[union-attr]
    return GoogleCalendarFactory(
        google_settings, config, vault, sender, clock=clock, sleep=sleeps.append
    )


@pytest.fixture
def refresh_token(fake: FakeGoogle) -> str:
    return fake.add_refresh_token()


@pytest.fixture
def connected(
    session_factory, demo: DemoData, vault: TokenVault, refresh_token: str
) -> CalendarConnection:
    with session_factory() as session:
        session: Session
        agent = session.get(Agent, demo.agent_id)
        assert agent is not None
        agent.calendar_provider = "google"
        connection = CalendarConnection(
            agent_id=agent.id,
            provider="google",
            calendar_id="primary",
            encrypted_refresh_token=vault.encrypt(refresh_token),
            status="active",
        )
        session.add(connection)
        session.commit()
        return connection


# --- Microsoft 365 ---------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake_graph = FakeGraph().start()
    yield fake_graph
    fake_graph.stop()


@pytest.fixture
def ms_settings(settings: Settings, graph: FakeGraph, token_key: str, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "token_encryption_keys": SecretStr(token_key),
            "token_key_file": tmp_path / "unused.key",
            "microsoft_client_id": GRAPH_CLIENT_ID,
            "microsoft_client_secret": SecretStr(GRAPH_CLIENT_SECRET),
            "microsoft_authority": graph.authority,
            "microsoft_graph_base_url": graph.graph_base_url,
            "microsoft_ca_bundle": Path(graph.ca_file),
            "google_http_timeout_seconds": 0.3,
            "google_request_budget_seconds": 1.5,
        }
    )


@pytest.fixture
def ms_factory(
    ms_settings: Settings,
    vault: TokenVault,
    sender: RecordingSender,
    clock: FixedClock,
    sleeps: list[float],
) -> Iterator[MicrosoftCalendarFactory]:
    factory = MicrosoftCalendarFactory(
        ms_settings,
        MicrosoftIdentity(ms_settings),
        vault,
        sender,
        clock=clock,
        fallback=default_calendar_factory,
        sleep=sleeps.append,
    )
    yield factory
    factory.close()


@pytest.fixture
def ms_refresh_token(graph: FakeGraph) -> str:
    return graph.add_refresh_token()


@pytest.fixture
def ms_connected(
    session_factory, demo: DemoData, vault: TokenVault, ms_refresh_token: str
) -> CalendarConnection:
    with session_factory() as session:
        session: Session
        agent = session.get(Agent, demo.agent_id)
        assert agent is not None
        agent.calendar_provider = "microsoft"
        connection = CalendarConnection(
            agent_id=agent.id,
            provider="microsoft",
            calendar_id="primary",
            encrypted_refresh_token=vault.encrypt(ms_refresh_token),
            status="active",
        )
        session.add(connection)
        session.commit()
        return connection
