from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from starlette.datastructures import Headers

from app.config import Settings
from app.security.vapi_auth import VapiAuthenticator, VapiRejected, sign

NOW = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
BODY = b'{"message": {"type": "status-update"}}'


def auth(**overrides: object) -> VapiAuthenticator:
    values: dict[str, object] = {"vapi_secret": "s3cret", "vapi_hmac_secret": "h-secret"}
    values.update(overrides)
    return VapiAuthenticator(Settings(_env_file=None, **values))


def check(authenticator: VapiAuthenticator, headers: dict[str, str], body: bytes = BODY) -> str:
    return authenticator.check(Headers(headers), body, NOW)


def rejected(authenticator: VapiAuthenticator, headers: dict[str, str], body: bytes = BODY) -> int:
    with pytest.raises(VapiRejected) as caught:
        check(authenticator, headers, body)
    return caught.value.status_code


def test_hmac_signature_is_hex_sha256_over_timestamp_dot_body():
    # hex HMAC-SHA256(key="key", message="1700000000.{}"), computed independently.
    expected = "9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
    assert sign("key", "1700000000", b"{}") == expected


def test_bearer_in_configured_header_or_authorization():
    assert check(auth(), {"X-Vapi-Secret": "s3cret"}) == "bearer"
    assert check(auth(), {"Authorization": "Bearer s3cret"}) == "bearer"
    custom = auth(vapi_secret_header="X-Custom-Auth")
    assert check(custom, {"X-Custom-Auth": "Bearer s3cret"}) == "bearer"


def test_other_authorization_schemes_are_not_bearer():
    assert rejected(auth(), {"Authorization": "Basic czNjcmV0"}) == 401


def test_hmac_fresh_and_matching():
    stamp = str(int(NOW.timestamp()) - 10)
    headers = {"x-timestamp": stamp, "x-signature": sign("h-secret", stamp, BODY)}
    assert check(auth(), headers) == "hmac"


def test_hmac_without_timestamp_is_401_and_stale_is_403():
    stamp = str(int(NOW.timestamp()) - 301)
    assert rejected(auth(), {"x-signature": sign("h-secret", stamp, BODY)}) == 401
    headers = {"x-timestamp": stamp, "x-signature": sign("h-secret", stamp, BODY)}
    assert rejected(auth(), headers) == 403
    assert rejected(auth(), {"x-timestamp": "soon", "x-signature": "ab"}) == 403


def test_no_configured_credential_accepts_nothing():
    none = auth(vapi_secret=None, vapi_hmac_secret=None)
    assert rejected(none, {"X-Vapi-Secret": "s3cret"}) == 403


def test_hmac_only_server_refuses_a_bearer():
    hmac_only = auth(vapi_secret=None)
    assert rejected(hmac_only, {"X-Vapi-Secret": "s3cret"}) == 403


def test_secret_is_a_secret_str():
    assert isinstance(auth().settings.vapi_secret, SecretStr)
