"""TwilioVerifier against Twilio's own published vectors and Starlette's FormData."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode

import pytest
from starlette.requests import Request

from app.security.twilio_signature import SignatureRejected, TwilioVerifier, public_url

# Twilio's published example (tests/fixtures/twilio/README.md).
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


def make_request(
    path: str, query: str, body: bytes, headers: dict[str, str], host: str = "internal:8000"
) -> Request:
    sent = False

    async def receive() -> dict[str, object]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"host", host.encode()))
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": raw_headers,
        "server": ("internal", 8000),
    }
    return Request(scope, receive)


def verify(
    signature: str, params: list[tuple[str, str]] | dict[str, str], token: str = "12345"
) -> object:
    body = urlencode(params).encode()
    request = make_request(
        "/myapp.php",
        "foo=1&bar=2",
        body,
        {
            "content-type": "application/x-www-form-urlencoded",
            "x-twilio-signature": signature,
        },
    )
    verifier = TwilioVerifier(token, "https://mycompany.com")
    return asyncio.run(verifier.verified_form(request))


def test_public_url_is_configured_base_plus_path_and_query():
    request = make_request("/myapp.php", "foo=1&bar=2", b"", {}, host="10.0.0.7:8000")
    assert (
        public_url("https://mycompany.com", request)
        == "https://mycompany.com/myapp.php?foo=1&bar=2"
    )


def test_twilio_published_vector_passes_behind_a_proxy():
    form = verify("RSOYDt4T1cUTdK1PDd93/VVr8B8=", VECTOR_PARAMS)
    assert form["Digits"] == "1234"  # type: ignore[index]


def test_twilio_published_vector_with_port_passes():
    verify("kvajT1Ptam85bY51eRf/AJRuM3w=", VECTOR_PARAMS)


@pytest.mark.parametrize(
    ("signature", "params", "token"),
    [
        ("RSOYDt4T1cUTdK1PDd93/VVr8B8=", {**VECTOR_PARAMS, "Digits": "1235"}, "12345"),
        ("RSOYDt4T1cUTdK1PDd93/VVr8B8=", VECTOR_PARAMS, "54321"),
        ("", VECTOR_PARAMS, "12345"),
    ],
)
def test_tampered_params_wrong_token_or_no_signature_are_rejected(signature, params, token):
    with pytest.raises(SignatureRejected):
        verify(signature, params, token)


def test_repeated_keys_and_blank_values_are_signed_as_sent():
    from twilio.request_validator import RequestValidator

    params = [("MediaUrl", "a"), ("MediaUrl", "b"), ("Body", ""), *VECTOR_PARAMS.items()]

    class Multi(dict):  # what the signer sees: every value of a repeated key
        def getlist(self, key: str) -> list[str]:
            return [v for k, v in params if k == key]

    signature = RequestValidator("12345").compute_signature(
        "https://mycompany.com/myapp.php?foo=1&bar=2", Multi(params)
    )
    form = verify(signature, params)
    assert form.getlist("MediaUrl") == ["a", "b"]  # type: ignore[attr-defined]
    with pytest.raises(SignatureRejected):
        verify(signature, [p for p in params if p != ("MediaUrl", "b")])
