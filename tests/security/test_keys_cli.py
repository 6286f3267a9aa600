"""`python -m app keys rotate`: a progress bar with the total, then the summary."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings
from app.demo import DemoData
from app.security import keys_cli
from app.security.vault import TokenVault, generate_key
from tests.security.test_vault import _seed_tokens


def test_rotate_shows_progress_against_the_total_then_the_summary(
    settings: Settings,
    session_factory: sessionmaker[Session],
    demo: DemoData,
    monkeypatch: pytest.MonkeyPatch,
):
    old, new = generate_key(), generate_key()
    with session_factory() as session:
        _seed_tokens(session, demo, TokenVault([old]), 5)  # 5 connections + 1 OAuth state
    keys = SecretStr(f"{new},{old}")
    monkeypatch.setattr(
        keys_cli,
        "get_settings",
        lambda: settings.model_copy(update={"token_encryption_keys": keys}),
    )
    monkeypatch.setattr(keys_cli, "make_session_factory", lambda _engine: session_factory)
    result = CliRunner().invoke(cli, ["keys", "rotate", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert "re-encrypting" in result.output and "6/6" in result.output
    assert "re-encrypted 6, already current 0" in result.output
