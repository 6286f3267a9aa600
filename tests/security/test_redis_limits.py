"""Rate limits shared across processes through the real Redis on this machine: two app
instances (as two processes would be) spend one budget per API key and per caller."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.config import Settings
from app.main import create_app
from app.security.api_keys import Role
from app.security.ratelimit import CallerLimit
from tests.admin.conftest import API, make_key
from tests.conftest import PUBLIC_BASE_URL

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> Iterator[str]:
    unique = f"schedtest-{secrets.token_hex(6)}"
    yield unique
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"*{unique}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def two_apps(
    settings: Settings, session_factory: sessionmaker[Session], clock: FixedClock, prefix: str
) -> Iterator[list[Any]]:
    shared = settings.model_copy(
        update={
            "redis_url": REDIS_URL,
            "rate_limit_key_prefix": prefix,
            "rate_limit_admin": "4/minute",
            "rate_limit_webhook": "3/minute",
        }
    )
    apps = [create_app(shared, session_factory=session_factory, clock=clock) for _ in range(2)]
    clients = [TestClient(app, base_url=PUBLIC_BASE_URL) for app in apps]
    for client in clients:
        client.__enter__()
    yield [*apps, *clients]
    for client in clients:
        client.__exit__(None, None, None)


def test_admin_key_budget_is_shared_between_instances(
    two_apps: list[Any], session_factory: sessionmaker[Session], prefix: str
) -> None:
    _, _, first, second = two_apps
    headers = {"Authorization": f"Bearer {make_key(session_factory, Role.READONLY)}"}
    statuses = [
        (first if i % 2 == 0 else second).get(f"{API}/users", headers=headers).status_code
        for i in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429]
    refused = second.get(f"{API}/users", headers=headers)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    stored = redis.Redis.from_url(REDIS_URL)
    assert any(prefix in key.decode() for key in stored.scan_iter(match=f"*{prefix}*"))
    stored.close()


def test_webhook_caller_limit_is_shared_between_instances(two_apps: list[Any]) -> None:
    first_app, second_app, _, _ = two_apps
    settings = first_app.state.services.settings
    limits = [
        CallerLimit(app.state.services.limiter, settings.rate_limit_webhook, "sms")
        for app in (first_app, second_app)
    ]
    answers = [limits[i % 2].allow("+14155550123") for i in range(4)]
    assert answers == [True, True, True, False]
    assert limits[1].allow("+14155550124") is True
