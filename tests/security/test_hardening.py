"""Body size, content types, security headers, CORS, trusted proxies, metrics, readiness,
masked logs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.config import Settings
from app.logs import configure_logging
from app.main import create_app
from app.security.api_keys import Role
from app.security.ratelimit import client_address
from tests.admin.conftest import API, make_key
from tests.conftest import PUBLIC_BASE_URL


@pytest.fixture
def make_client(
    settings: Settings, session_factory: sessionmaker[Session], clock: FixedClock
) -> Iterator[Any]:
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        app = create_app(
            settings.model_copy(update=overrides), session_factory=session_factory, clock=clock
        )
        client = TestClient(app, base_url=PUBLIC_BASE_URL)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def auth(session_factory: sessionmaker[Session]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(session_factory, Role.ADMIN)}"}


def test_oversized_bodies_get_413_declared_or_streamed(
    make_client: Any, session_factory: sessionmaker[Session]
) -> None:
    client = make_client(max_body_bytes=1000)
    headers = {**auth(session_factory), "Content-Type": "application/json"}
    big = '{"name": "' + "x" * 2000 + '"}'
    declared = client.post(f"{API}/users", content=big, headers=headers)
    assert declared.status_code == 413
    assert declared.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    streamed = client.post(f"{API}/users", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    small = client.post(f"{API}/users", json={"name": "ok"}, headers=auth(session_factory))
    assert small.status_code == 201


def test_json_endpoints_refuse_other_content_types(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    headers = {**auth(session_factory), "Content-Type": "text/plain"}
    refused = client.post(f"{API}/users", content='{"name": "x"}', headers=headers)
    assert refused.status_code == 415
    # Twilio posts forms to webhooks: not a JSON API, not refused for its content type.
    webhook = client.post("/webhooks/twilio/sms/inbound", data={"Body": "hi"})
    assert webhook.status_code == 403


def test_security_headers_everywhere_and_docs_work(client: TestClient) -> None:
    for path in ("/healthz", f"{API}/users", "/no-such-page"):
        response = client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert response.headers["strict-transport-security"].startswith("max-age=")
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "content-security-policy" not in docs.headers
    spec = client.get("/openapi.json").json()
    assert "ApiKey" in spec["components"]["securitySchemes"]


def test_cors_only_for_configured_origins(make_client: Any) -> None:
    client = make_client(cors_origins="https://ops.example.com")
    preflight = {"Access-Control-Request-Method": "GET"}
    allowed = client.options(
        f"{API}/users", headers={"Origin": "https://ops.example.com", **preflight}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example.com"
    other = client.get(f"{API}/users", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("peer", "header", "trusted", "expected"),
    [
        ("203.0.113.9", "1.2.3.4", "", "203.0.113.9"),  # no proxies trusted: header ignored
        ("10.0.0.5", "198.51.100.7", "10.0.0.0/8", "198.51.100.7"),
        ("10.0.0.5", "6.6.6.6, 198.51.100.7", "10.0.0.0/8", "198.51.100.7"),  # spoof on left
        ("10.0.0.5", "198.51.100.7, 10.0.0.9", "10.0.0.0/8", "198.51.100.7"),  # two proxies
        ("203.0.113.9", "1.2.3.4", "10.0.0.0/8", "203.0.113.9"),  # peer not a proxy
        ("10.0.0.5", "not-an-ip", "10.0.0.0/8", "10.0.0.5"),
        ("10.0.0.5", None, "10.0.0.0/8", "10.0.0.5"),
    ],
)
def test_client_address_cannot_be_spoofed(
    peer: str, header: str | None, trusted: str, expected: str
) -> None:
    assert client_address(peer, header, trusted) == expected


def test_metrics_count_requests_and_bookings(client: TestClient) -> None:
    client.get("/healthz")
    body = client.get("/metrics").text
    assert 'sched_http_requests_total{method="GET",route="/healthz",status="200"}' in body
    assert "sched_http_request_duration_seconds_bucket" in body
    for name in (
        "sched_bookings_total",
        "sched_webhook_outcomes_total",
        "sched_rate_limit_refusals_total",
        "sched_calendar_errors_total",
    ):
        assert f"# TYPE {name} counter" in body


def test_readiness_checks_database_and_redis(make_client: Any) -> None:
    ready = make_client(redis_url="redis://127.0.0.1:6379/0").get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}
    down = make_client(redis_url="redis://127.0.0.1:1/0", rate_limit_enabled=False)
    broken = down.get("/readyz")
    assert broken.status_code == 503 and broken.json()["checks"]["redis"].startswith("unavail")


def test_logs_never_show_a_full_number(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        logging.getLogger("test").warning("texting %s now", "+14155550123")
        logging.getLogger("test").warning("from +442071838750 too")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    err = capsys.readouterr().err
    assert "+14155550123" not in err and "0123" in err
    assert "+442071838750" not in err and "8750" in err


def test_per_address_limit_covers_included_routers(make_client: Any) -> None:
    client = make_client(rate_limit_default="2/minute")
    for path in (f"{API}/users", "/calendar/google/connect"):
        statuses = [client.get(path).status_code for _ in range(2)]
        assert 429 not in statuses
        refused = client.get(path, headers={"X-Forwarded-For": "198.51.100.1"})
        assert refused.status_code == 429, path
        assert int(refused.headers["retry-after"]) >= 1
        client = make_client(rate_limit_default="2/minute", rate_limit_key_prefix=path)
    webhook = make_client(rate_limit_default="1/minute")
    codes = [webhook.post("/webhooks/twilio/sms/inbound", data={}).status_code for _ in range(3)]
    assert codes == [403, 403, 403]  # unsigned, but never rate limited per address
