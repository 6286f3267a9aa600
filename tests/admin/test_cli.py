"""`python -m app apikeys`: the first key comes from here, shown once, stored hashed."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch, session_factory):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli, ["apikeys", *args])
    get_settings.cache_clear()


def test_created_key_works_is_listed_by_prefix_only_and_revocation_locks_it_out(
    run, client: TestClient
):
    created = run("create", "--name", "ops", "--role", "readonly")
    assert created.exit_code == 0, created.output
    key = re.search(r"key:\s+(\S+)", created.output).group(1)
    prefix = re.search(r"prefix:\s+(\S+)", created.output).group(1)
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/admin/v1/users", headers=headers).status_code == 200
    assert client.post("/admin/v1/users", headers=headers, json={"name": "x"}).status_code == 403

    listed = run("list")
    assert prefix in listed.output and key not in listed.output

    assert run("revoke", prefix).exit_code == 0
    assert client.get("/admin/v1/users", headers=headers).status_code == 401
    assert run("revoke", "sk_nonexistent").exit_code == 1
