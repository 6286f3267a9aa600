"""Crafted bodies on the webhooks get a 4xx with a reason, never a 5xx (items 4 and 5)."""

from __future__ import annotations

import hashlib
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.models import AuditEntry
from app.webhooks.vapi_payload import MAX_DEPTH, PayloadRejected, depth, parse_body
from tests.conftest import PUBLIC_BASE_URL, Reader, load_fixture, twilio_signature
from tests.webhooks.test_vapi import Vapi

TWILIO_PATHS = [
    "/webhooks/twilio/sms/inbound",
    "/webhooks/twilio/sms/status",
    "/webhooks/twilio/voice/inbound",
    "/webhooks/twilio/voice/gather",
    "/webhooks/twilio/voice/status",
]  # /voice/fallback checks nothing and always answers TwiML (tested with the voice webhooks)


def nested(levels: int) -> bytes:
    return b'{"message":' + b"[" * levels + b"]" * levels + b"}"


@pytest.mark.parametrize("path", TWILIO_PATHS)
def test_json_body_with_any_signature_is_415(client: TestClient, db: Reader, path: str):
    body = json.dumps(load_fixture("twilio/inbound-sms.json"))
    response = client.post(
        path,
        content=body,
        headers={"Content-Type": "application/json", "X-Twilio-Signature": "anything"},
    )
    assert response.status_code == 415
    assert "x-www-form-urlencoded" in response.json()["detail"]
    reasons = [e.details["reason"] for e in db.scalars(select(AuditEntry))]
    assert reasons == ["not a form body"]


def test_json_body_signed_the_bodysha256_way_is_still_415(client: TestClient):
    """Twilio signs JSON bodies by bodySHA256; these endpoints still only take forms."""
    body = b'{"From": "+14155550123", "Body": "hi"}'
    query = f"bodySHA256={hashlib.sha256(body).hexdigest()}"
    path = f"/webhooks/twilio/sms/inbound?{query}"
    signature = twilio_signature(PUBLIC_BASE_URL + path, {})
    response = client.post(
        path,
        content=body,
        headers={"Content-Type": "application/json", "X-Twilio-Signature": signature},
    )
    assert response.status_code == 415


def test_multipart_body_is_415(client: TestClient):
    response = client.post(
        "/webhooks/twilio/sms/inbound",
        files={"Body": ("b.txt", b"hi")},
        headers={"X-Twilio-Signature": "anything"},
    )
    assert response.status_code == 415


def test_a_signed_form_with_a_charset_still_works(twilio, demo):  # type: ignore[no-untyped-def]
    params = dict(load_fixture("twilio/inbound-sms.json"))
    params["From"] = demo.caller
    response = twilio.post(
        "/webhooks/twilio/sms/inbound",
        params,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.text.startswith("<?xml")


@pytest.mark.parametrize("levels", [100_000, MAX_DEPTH + 1])
@pytest.mark.parametrize("path", ["/webhooks/vapi", "/tools/book_appointment"])
def test_deeply_nested_json_with_a_valid_credential_is_400(vapi: Vapi, path: str, levels: int):
    response = vapi.post(nested(levels), path=path)
    assert response.status_code == 400
    assert response.json() == {"error": "the body is nested too deeply"}


def test_nesting_within_the_bound_is_read(vapi: Vapi):
    response = vapi.post(nested(MAX_DEPTH - 2))
    assert response.status_code == 200  # no message type we use: acknowledged


def test_parse_body_bounds():
    assert depth({"a": [1, {"b": []}]}) == 4
    assert depth("flat") == 0
    # The deepest branch counts, wherever it sits among scalars and shallower ones.
    assert depth(["x", 1, {"a": [[], {"b": {}}], "c": "y"}, [], None]) == 5
    assert depth({"wide": [{"k": i} for i in range(1000)]}) == 3
    assert parse_body(b'{"a": 1}') == {"a": 1}
    for bad in (b"{", nested(MAX_DEPTH + 1), nested(50_000)):
        with pytest.raises(PayloadRejected):
            parse_body(bad)
    with pytest.raises(PayloadRejected, match="too large"):
        parse_body(b" " * (4 * 1024 * 1024 + 1))
