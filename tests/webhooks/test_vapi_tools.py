"""POST /tools/{name}: the same tools over REST, behind the VAPI credential."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import Appointment
from tests.conftest import PUBLIC_BASE_URL, load_fixture
from tests.webhooks.test_vapi import NoEngine

HEADERS = {"X-Vapi-Secret": "test-vapi-secret"}


@pytest.fixture
def tools_client(
    settings: Settings, session_factory: sessionmaker[Session], clock: FixedClock, demo: DemoData
) -> Iterator[TestClient]:
    app = create_app(settings, session_factory=session_factory, clock=clock, engine=NoEngine())
    with TestClient(app, base_url=PUBLIC_BASE_URL) as client:
        yield client


def post(client: TestClient, name: str, body: Any, **headers: str) -> Any:
    return client.post(f"/tools/{name}", json=body, headers={**HEADERS, **headers})


def test_plain_json_books_for_the_caller(tools_client: TestClient, session: Session, demo):
    body = {"caller": demo.caller, "start": "2026-11-24T15:00:00", "name": "Dana"}
    response = post(tools_client, "book_appointment", body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["name"] == "book_appointment"
    assert "result" in answer and "\n" not in answer["result"]
    appointment = session.scalar(select(Appointment))
    assert appointment is not None and appointment.contact_e164 == demo.caller


def test_plain_json_with_arguments_object_and_idempotency_key(
    tools_client: TestClient, session: Session, demo: DemoData
):
    body = {"caller_number": demo.caller, "arguments": {"start": "2026-11-24T15:00:00"}}
    first = post(tools_client, "book_appointment", body, **{"Idempotency-Key": "k-1"})
    again = post(tools_client, "book_appointment", body, **{"Idempotency-Key": "k-1"})
    assert first.json() == again.json()
    assert session.scalar(select(func.count()).select_from(Appointment)) == 1


def test_vapi_tool_call_body(tools_client: TestClient):
    response = post(
        tools_client, "check_availability", load_fixture("vapi/tool-calls.current.json")
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["toolCallId"] == "call_tool_1a"
    assert results[0]["result"].startswith("Free consultation times")


def test_unknown_caller_gets_an_error_line(tools_client: TestClient):
    answer = post(tools_client, "check_availability", {"caller": "+14155550999"}).json()
    assert "isn't registered" in answer["error"]


def test_unknown_tool_is_404(tools_client: TestClient, demo: DemoData):
    response = post(tools_client, "teleport", {"caller": demo.caller})
    assert response.status_code == 404


def test_credential_is_required(tools_client: TestClient, demo: DemoData):
    body = json.dumps({"caller": demo.caller}).encode()
    assert tools_client.post("/tools/check_availability", content=body).status_code == 401
    wrong = {"X-Vapi-Secret": "nope"}
    assert (
        tools_client.post("/tools/check_availability", content=body, headers=wrong).status_code
        == 403
    )


def test_body_must_be_a_json_object(tools_client: TestClient):
    assert post(tools_client, "check_availability", [1]).status_code == 400
    bad = tools_client.post("/tools/check_availability", content=b"{", headers=HEADERS)
    assert bad.status_code == 400
