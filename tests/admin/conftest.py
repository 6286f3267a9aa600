"""Admin API fixtures: a recording SMS sender on app.state, and one key per role."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.security import api_keys
from app.security.api_keys import Role

API = "/admin/v1"


class RecordingSender:
    """An SmsSender that keeps what it was asked to send (the provider is off-machine)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, body: str) -> str | None:
        self.sent.append((to, body))
        return f"SM{len(self.sent):032d}"

    def last_code(self, to: str) -> str:
        for number, body in reversed(self.sent):
            if number == to:
                match = re.search(r"\b(\d{6})\b", body)
                assert match, body
                return match.group(1)
        raise AssertionError(f"nothing sent to {to}")


@pytest.fixture
def sender(app: Any) -> RecordingSender:
    recording = RecordingSender()
    app.state.services.sms_sender = recording
    return recording


def make_key(session_factory: sessionmaker[Session], role: Role, user_id: str | None = None) -> str:
    with session_factory() as session:
        new = api_keys.create_key(session, name=f"test {role}", role=role, user_id=user_id)
        session.commit()
        return new.plaintext


@pytest.fixture
def keys(session_factory: sessionmaker[Session]) -> dict[str, str]:
    return {role.value: make_key(session_factory, role) for role in Role}


class Api:
    """The admin API as a client with a key."""

    def __init__(self, client: TestClient, key: str | None) -> None:
        self.client = client
        self.key = key

    def as_key(self, key: str | None) -> Api:
        return Api(self.client, key)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.key is not None:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        return self.client.request(method, API + path, headers=headers, **kwargs)

    def __getattr__(self, method: str) -> Callable[..., httpx.Response]:
        if method not in ("get", "post", "patch", "delete", "put"):
            raise AttributeError(method)
        return lambda path, **kw: self.request(method.upper(), path, **kw)


@pytest.fixture
def api(client: TestClient, keys: dict[str, str], sender: RecordingSender) -> Api:
    return Api(client, keys["admin"])


def create_user(api: Api, name: str = "Alex Doe") -> dict[str, Any]:
    response = api.post("/users", json={"name": name, "email": "alex@example.com"})
    assert response.status_code == 201, response.text
    return response.json()


def create_agent(api: Api, user_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "user_id": user_id,
        "name": "Front desk",
        "timezone": "America/Los_Angeles",
        "weekly_hours": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
        "appointment_types": [
            {"key": "consultation", "name": "Consultation", "duration_minutes": 30}
        ],
        **fields,
    }
    response = api.post("/agents", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def verified_number(api: Api, sender: RecordingSender, user_id: str, number: str) -> str:
    response = api.post(f"/users/{user_id}/phone-numbers", json={"number": number})
    assert response.status_code == 202, response.text
    number_id = response.json()["phone_number"]["id"]
    code = sender.last_code(number)
    verified = api.post(f"/phone-numbers/{number_id}/verify", json={"code": code})
    assert verified.json()["status"] == "verified", verified.text
    return number_id
