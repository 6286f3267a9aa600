"""Shared fixtures. The database is SQLite by default and PostgreSQL when
TEST_DATABASE_URL points at one; each test run gets its own PostgreSQL database."""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from twilio.request_validator import RequestValidator

from app.clock import FixedClock
from app.config import Settings
from app.db import Base, make_engine, make_session_factory, upgrade_to_head
from app.demo import DemoData, load_demo

FIXTURES = Path(__file__).parent / "fixtures"
PUBLIC_BASE_URL = "https://agent.example.com"
TWILIO_TOKEN = "test-twilio-auth-token"
# Monday 23 November 2026, 08:00 in Los Angeles (the demo agent's zone).
PINNED_NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def _postgres_database(base_url: str) -> Iterator[str]:
    url = make_url(base_url.replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"sched_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = os.environ.get("TEST_DATABASE_URL")
    if base and base.startswith("postgresql"):
        yield from _postgres_database(base)
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        public_base_url=PUBLIC_BASE_URL,
        twilio_auth_token=TWILIO_TOKEN,
        rate_limit_webhook="1000/minute",
        rate_limit_default="1000/minute",
        vapi_secret="test-vapi-secret",
        vapi_hmac_secret="test-vapi-hmac-secret",
        redis_url=None,
        # Tests seal the audit log themselves; a background seal would race them.
        audit_seal_interval_seconds=0,
        # Calendar writes on the request's thread, so a test sees them when it returns
        # (tests/calendar/test_after_commit.py covers the background pool).
        calendar_writes_in_background=False,
    )


@pytest.fixture(scope="session")
def db_engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def _empty_tables(engine: Engine) -> None:
    """Every table emptied. On PostgreSQL a turn the previous test left running past its
    budget (tests of the budget do) may still be committing: TRUNCATE's table locks can
    deadlock with it, and PostgreSQL then aborts one side; a moment later it has finished."""
    for attempt in range(5):
        try:
            _truncate(engine)
            return
        except OperationalError as exc:
            if "deadlock" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def _truncate(engine: Engine) -> None:
    tables = list(reversed(Base.metadata.sorted_tables))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            names = ", ".join(t.name for t in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                connection.execute(table.delete())


@pytest.fixture
def session_factory(db_engine: Engine) -> Iterator[sessionmaker[Session]]:
    _empty_tables(db_engine)
    yield make_session_factory(db_engine)


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as session:
        yield session


class Reader:
    """Reads in a fresh short transaction each time.

    On SQLite every transaction here is BEGIN IMMEDIATE, so a test holding the `session`
    fixture open while the app writes would wait on its own lock; tests that interleave
    requests and checks read through this instead.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def scalar(self, statement: Any) -> Any:
        with self._factory() as session:
            return session.scalar(statement)

    def scalars(self, statement: Any) -> list[Any]:
        with self._factory() as session:
            return list(session.scalars(statement))

    def get(self, model: type, key: Any) -> Any:
        with self._factory() as session:
            return session.get(model, key)

    def count(self, model: type) -> int:
        from sqlalchemy import func, select

        return self.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Reader:
    return Reader(session_factory)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(PINNED_NOW)


@pytest.fixture
def demo(session_factory: sessionmaker[Session]) -> DemoData:
    with session_factory() as session:
        return load_demo(session)


@pytest.fixture
def app(settings: Settings, session_factory: sessionmaker[Session], clock: FixedClock):  # type: ignore[no-untyped-def]
    from app.main import create_app

    return create_app(settings, session_factory=session_factory, clock=clock)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url=PUBLIC_BASE_URL) as test_client:
        yield test_client


def twilio_signature(url: str, params: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


class TwilioClient:
    """Posts form webhooks signed the way Twilio signs them."""

    def __init__(self, client: TestClient, token: str = TWILIO_TOKEN) -> None:
        self.client = client
        self.token = token

    def post(self, path: str, params: dict[str, str], **kwargs: Any):  # type: ignore[no-untyped-def]
        signature = twilio_signature(PUBLIC_BASE_URL + path, params, self.token)
        headers = {"X-Twilio-Signature": signature, **kwargs.pop("headers", {})}
        return self.client.post(path, data=params, headers=headers, **kwargs)


@pytest.fixture
def twilio(client: TestClient) -> TwilioClient:
    return TwilioClient(client)
