"""Access lines go through the project's logging with secrets redacted and the request
id on them; uvicorn's own access log is off (item 13)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.access_log import redact_query
from app.cli import cli


def access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "app.access"]


def test_oauth_callback_and_connect_link_secrets_are_redacted(
    client: TestClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="app.access")
    callback = client.get(
        "/calendar/google/callback", params={"code": "4/0SECRETCODE", "state": "SECRETSTATE"}
    )
    link = client.get("/calendar/google/connect", params={"t": "SECRETLINKTOKEN"})
    lines = access_lines(caplog)
    text = " ".join(r.getMessage() for r in lines)
    assert "SECRET" not in text
    assert "code=%5Bredacted%5D&state=%5Bredacted%5D" in text and "t=%5Bredacted%5D" in text
    ids = [getattr(r, "request_id", None) for r in lines]
    assert callback.headers["x-request-id"] in ids and link.headers["x-request-id"] in ids


def test_every_request_gets_one_line_with_its_status(
    client: TestClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="app.access")
    client.get("/admin/v1/users")  # refused: no key
    [line] = access_lines(caplog)
    assert '"GET /admin/v1/users" 401' in line.getMessage()


def test_redact_query_keeps_harmless_parameters():
    assert redact_query("limit=5&cursor=abc") == "limit=5&cursor=abc"
    assert redact_query("Token=x&date=2026-11-24") == "Token=%5Bredacted%5D&date=2026-11-24"
    assert redact_query("") == ""


@pytest.mark.parametrize("command", ["serve", "up"])
def test_serve_turns_uvicorns_access_log_off(
    command: str, monkeypatch: pytest.MonkeyPatch, settings: Any
):
    import uvicorn

    import app.cli as app_cli
    import app.startup as startup

    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: ran.update(kw))
    monkeypatch.setattr(app_cli, "get_settings", lambda: settings)
    monkeypatch.setattr(app_cli, "_migrate", lambda s: None)
    monkeypatch.setattr(app_cli, "_print_demo", lambda s: None)
    monkeypatch.setattr(startup, "preflight", lambda s: None)
    result = CliRunner().invoke(cli, [command, "--port", "18152"])
    assert result.exit_code == 0, result.output
    assert ran["access_log"] is False


def test_serve_hands_uvicorn_the_apps_logging_config_and_options(
    monkeypatch: pytest.MonkeyPatch, settings: Any
):
    import uvicorn

    import app.cli as app_cli
    import app.startup as startup

    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: ran.update(kw))
    monkeypatch.setattr(app_cli, "get_settings", lambda: settings)
    monkeypatch.setattr(app_cli, "_migrate", lambda s: None)
    monkeypatch.setattr(app_cli, "_share_metrics_between_workers", lambda: None)
    monkeypatch.setattr(startup, "preflight", lambda s: None)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    args = ["serve", "--port", "18701", "--workers", "3", "--log-level", "debug"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert ran["workers"] == 3
    # One configuration for uvicorn and the app: its handler, its level, in every worker.
    assert ran["log_config"]["root"]["level"] == "DEBUG"
    assert ran["log_config"]["handlers"]["default"]["filters"] == ["context", "phones"]
    import os

    assert os.environ["LOG_LEVEL"] == "DEBUG"
    monkeypatch.delenv("LOG_LEVEL")
    refused = CliRunner().invoke(cli, ["serve", "--log-level", "loud"])
    assert refused.exit_code == 2 and not ran.get("refused")
