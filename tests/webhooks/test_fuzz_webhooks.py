"""Property-based tests over the webhook parsers: whatever form or JSON arrives, no 5xx;
an unsigned or wrongly signed request is never accepted; a signed Twilio request always
gets valid TwiML and a VAPI request always gets JSON.

Bounded for the normal run (fixed seed); FUZZ_EXAMPLES=1000 for a longer run by hand.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from typing import Any

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PUBLIC_BASE_URL, twilio_signature

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
SMS_PATH = "/webhooks/twilio/sms/inbound"
TWILIO_FIELDS = ["MessageSid", "SmsSid", "From", "To", "Body", "OptOutType", "NumMedia"]
# Surrogates cannot be encoded in a form post; anything else goes.
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
phone_like = st.one_of(text, st.from_regex(r"\+1[2-9]\d{9}", fullmatch=True))
forms = st.dictionaries(
    st.one_of(st.sampled_from(TWILIO_FIELDS), text.filter(bool)),
    st.one_of(phone_like, st.sampled_from(["STOP", "START", "HELP", "book tomorrow at 3", ""])),
    max_size=8,
).map(lambda form: {**form, "MessageSid": form.get("MessageSid", "SM" + "0" * 32)})
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
vapi_types = st.sampled_from(
    ["assistant-request", "tool-calls", "function-call", "end-of-call-report", "status-update"]
)
vapi_messages = st.fixed_dictionaries(
    {
        "message": st.fixed_dictionaries(
            {"type": vapi_types},
            optional={
                "call": json_values,
                "customer": json_values,
                "toolCallList": json_values,
                "toolCalls": json_values,
                "functionCall": json_values,
                "phoneNumber": json_values,
            },
        )
    }
)


def is_twiml(body: str) -> bool:
    return ET.fromstring(body).tag == "Response"


@FUZZ
@given(form=forms, forge=st.sampled_from(["none", "wrong-token", "wrong-url"]))
def test_twilio_unsigned_is_refused(client: TestClient, form: dict[str, str], forge: str) -> None:
    headers = {}
    if forge == "wrong-token":
        headers["X-Twilio-Signature"] = twilio_signature(PUBLIC_BASE_URL + SMS_PATH, form, "x")
    elif forge == "wrong-url":
        headers["X-Twilio-Signature"] = twilio_signature("https://evil.example" + SMS_PATH, form)
    response = client.post(SMS_PATH, data=form, headers=headers)
    assert response.status_code == 403


@FUZZ
@given(form=forms)
def test_twilio_signed_forms_get_twiml(client: TestClient, form: dict[str, str]) -> None:
    headers = {"X-Twilio-Signature": twilio_signature(PUBLIC_BASE_URL + SMS_PATH, form)}
    response = client.post(SMS_PATH, data=form, headers=headers)
    assert response.status_code == 200, response.text
    assert is_twiml(response.text)


@FUZZ
@given(payload=st.one_of(vapi_messages, json_values))
def test_vapi_any_json_never_5xx(client: TestClient, payload: Any) -> None:
    body = json.dumps(payload)
    headers = {"Content-Type": "application/json"}
    refused = client.post("/webhooks/vapi", content=body, headers=headers)
    assert refused.status_code in (401, 403)
    signed = client.post(
        "/webhooks/vapi", content=body, headers={**headers, "X-Vapi-Secret": "test-vapi-secret"}
    )
    assert signed.status_code < 500, signed.text
    assert isinstance(signed.json(), dict)
