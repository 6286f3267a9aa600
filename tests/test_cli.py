"""`serve` migrates before it listens unless a release step already did (--no-migrate)."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

import app.cli
import app.startup
from app.cli import cli


@pytest.mark.parametrize(("flags", "migrated"), [([], True), (["--no-migrate"], False)])
def test_serve_migrates_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch, flags: list[str], migrated: bool
) -> None:
    steps: list[str] = []
    monkeypatch.setattr(app.cli, "_migrate", lambda _settings: steps.append("migrate"))
    monkeypatch.setattr(app.startup, "preflight", lambda _settings: steps.append("preflight"))

    def listen(*_args: Any, **kwargs: Any) -> None:
        steps.append(f"listen workers={kwargs['workers']}")

    monkeypatch.setattr(uvicorn, "run", listen)

    result = CliRunner().invoke(cli, ["serve", "--port", "18999", *flags])

    assert result.exit_code == 0, result.output
    expected = ["preflight", "listen workers=1"]
    assert steps == (["migrate", *expected] if migrated else expected)


def test_call_help_shows_its_options_not_a_missing_subcommand():
    result = CliRunner().invoke(cli, ["call", "--help"])
    assert result.exit_code == 0, result.output
    assert "call [OPTIONS]" in result.output and "COMMAND" not in result.output
    assert "--stream" in result.output and "--from" in result.output
