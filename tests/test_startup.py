"""Configuration errors: one line naming the setting and the fix, exit code 2, never any
part of a secret, in every command (item 11). The CLI runs as operators run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
REAL_SECRET = "vapi-live-7f3c9a1e5b2d4c6e8a0f"


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.isupper() or k in ("PATH", "HOME")}
    clean.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        TOKEN_KEY_FILE=str(tmp_path / "token.key"),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=tmp_path,  # no .env from the repository
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_one_clean_line(result: subprocess.CompletedProcess[str], names: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("configuration error: ") and names in lines[0]
    assert "Traceback" not in result.stderr


def test_wrong_token_key_stops_serve_with_one_line(tmp_path: Path):
    result = run_cli(
        tmp_path,
        "serve",
        "--port",
        "18151",
        TOKEN_ENCRYPTION_KEYS="not-a-fernet-key-but-secret-looking",
        GOOGLE_CLIENT_ID="client.apps.googleusercontent.com",
        GOOGLE_CLIENT_SECRET="google-client-secret-value",
    )
    assert_one_clean_line(result, "TOKEN_ENCRYPTION_KEYS")
    assert "keys generate" in result.stderr
    assert "not-a-fernet" not in result.stderr + result.stdout


@pytest.mark.parametrize("command", [["migrate"], ["audit", "verify"], ["serve"]])
def test_production_guard_never_echoes_a_secret(tmp_path: Path, command: list[str]):
    result = run_cli(
        tmp_path,
        *command,
        ENVIRONMENT="production",
        VAPI_SECRET=REAL_SECRET,
        TWILIO_AUTH_TOKEN="twilio-real-token-0123456789abcdef",
    )
    assert_one_clean_line(result, "APP_SECRET_KEY")
    output = result.stderr + result.stdout
    assert REAL_SECRET[4:12] not in output and "twilio-real" not in output


def test_a_malformed_setting_is_named(tmp_path: Path):
    result = run_cli(tmp_path, "migrate", VAPI_BUDGET_SECONDS="soon")
    assert_one_clean_line(result, "VAPI_BUDGET_SECONDS")
    assert "soon" not in result.stderr
