"""The OpenAPI document lists the form fields Twilio posts to each webhook, and what it
says is required is what Twilio's real requests (tests/fixtures/twilio) carry."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.webhooks.forms import FORM, FORMS
from tests.conftest import load_fixture

FIXTURES = {
    "/webhooks/twilio/sms/inbound": "inbound-sms.json",
    "/webhooks/twilio/sms/status": "message-status-delivered.json",
    "/webhooks/twilio/voice/inbound": "inbound-voice.json",
    "/webhooks/twilio/voice/gather": "gather-speech-result.json",
    "/webhooks/twilio/voice/status": "call-status-completed.json",
}


@pytest.fixture
def paths(client: TestClient) -> dict[str, Any]:
    paths: dict[str, Any] = client.get("/openapi.json").json()["paths"]
    return paths


def form_schema(paths: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = paths[path]["post"]["requestBody"]["content"][FORM]["schema"]
    return schema


def test_every_twilio_webhook_documents_its_form(paths: dict[str, Any]):
    for path in FORMS:
        assert form_schema(paths, path)["properties"], path
    inbound = form_schema(paths, "/webhooks/twilio/sms/inbound")
    assert {"From", "To", "Body", "MessageSid"} <= set(inbound["required"])


@pytest.mark.parametrize("path", sorted(FIXTURES))
def test_required_fields_are_in_what_twilio_really_sends(paths: dict[str, Any], path: str):
    sent = set(load_fixture(f"twilio/{FIXTURES[path]}"))
    assert set(form_schema(paths, path)["required"]) <= sent
