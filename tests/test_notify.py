"""Without a Twilio account nothing is sent; the log never holds a text's secrets."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings
from app.notify import LogSender, build_sender, loggable

SIGN_IN = (
    "Your dashboard: https://agent.example.com/dashboard/sign-in#t=Zk3q9xY2bW (or enter "
    "code 048213). Expires in 15 min, works once."
)


def test_loggable_withholds_links_and_codes_but_keeps_times_and_years() -> None:
    text = loggable(SIGN_IN + " Booked: Tue Dec 8, 2026 at 10:30 AM, 45 min.")

    assert "048213" not in text and "Zk3q9xY2bW" not in text and "https://" not in text
    assert "[code withheld]" in text and "[link withheld]" in text
    assert "Dec 8, 2026 at 10:30 AM, 45 min" in text


def test_log_sender_logs_no_secret_or_full_number_and_keeps_the_text_in_the_outbox(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "data" / "outbox.txt"
    caplog.set_level(logging.WARNING)

    LogSender(outbox).send("+12125550188", SIGN_IN)

    logged = caplog.text
    assert "048213" not in logged and "Zk3q9xY2bW" not in logged
    assert "2125550188" not in logged and "0188" in logged
    written = outbox.read_text()
    assert "048213" in written and "Zk3q9xY2bW" in written
    assert "2125550188" not in written
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o600


def test_only_development_keeps_an_outbox(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.txt"
    development = build_sender(Settings(_env_file=None, dev_outbox_file=outbox))
    development.send("+12125550188", SIGN_IN)
    assert outbox.exists()

    outbox.unlink()
    production = Settings(
        _env_file=None,
        environment="production",
        twilio_auth_token="a-real-token",
        vapi_secret="a-real-vapi-secret",
        app_secret_key="a-long-random-app-secret",
        audit_signing_key="a-long-random-audit-key",
        dev_outbox_file=outbox,
    )
    build_sender(production).send("+12125550188", SIGN_IN)
    assert not outbox.exists()


def test_outbox_command_prints_the_newest_texts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = tmp_path / "outbox.txt"
    monkeypatch.setenv("DEV_OUTBOX_FILE", str(outbox))
    get_settings.cache_clear()
    try:
        sender = LogSender(outbox)
        for n in range(3):
            sender.send("+12125550188", f"text {n}, code {n}12345")

        result = CliRunner().invoke(cli, ["outbox", "--last", "2"])
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    assert "012345" not in result.output
    assert "112345" in result.output and "212345" in result.output
