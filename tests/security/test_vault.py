"""Token vault: encryption at rest, key rotation, start-up checks."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import Agent, CalendarConnection, OAuthState, utcnow
from app.security.vault import TokenVault, VaultError, build_vault, generate_key, rotate_all
from tests.conftest import PUBLIC_BASE_URL


def test_round_trip_and_nothing_readable_at_rest():
    vault = TokenVault([generate_key()])
    ciphertext = vault.encrypt("1//refresh-token-value")
    assert "refresh-token-value" not in ciphertext
    assert vault.encrypt("1//refresh-token-value") != ciphertext  # random IV
    assert vault.decrypt(ciphertext) == "1//refresh-token-value"
    with pytest.raises(VaultError):
        TokenVault([generate_key()]).decrypt(ciphertext)


def test_malformed_key_is_named_by_position_never_printed():
    good, bad = generate_key(), "not-a-fernet-key-but-a-secret"
    with pytest.raises(VaultError) as error:
        TokenVault([good, bad])
    assert "key #2" in str(error.value) and bad not in str(error.value)


def _seed_tokens(session: Session, demo: DemoData, vault: TokenVault, count: int) -> dict[str, str]:
    agent = session.get(Agent, demo.agent_id)
    agents = [
        {"id": f"agt_rot{n:06d}", "user_id": agent.user_id, "name": f"agent {n}"}
        for n in range(count)
    ]
    session.execute(insert(Agent), agents)
    plain = {f"cal_rot{n:06d}": f"1//token-{n}" for n in range(count)}
    session.execute(
        insert(CalendarConnection),
        [
            {
                "id": cid,
                "agent_id": f"agt_rot{n:06d}",
                "encrypted_refresh_token": vault.encrypt(token),
            }
            for n, (cid, token) in enumerate(plain.items())
        ],
    )
    session.add(
        OAuthState(
            state="st-1",
            agent_id=demo.agent_id,
            encrypted_code_verifier=vault.encrypt("verifier-1"),
            expires_at=utcnow(),
        )
    )
    session.commit()
    return plain


def test_rotation_of_1000_tokens_then_the_old_key_can_go(
    session_factory: sessionmaker[Session], demo: DemoData
):
    old, new = generate_key(), generate_key()
    with session_factory() as session:
        plain = _seed_tokens(session, demo, TokenVault([old]), 1000)

    report = rotate_all(session_factory, TokenVault([new, old]), batch_size=128)
    assert report.rotated == 1001 and report.already_current == 0
    again = rotate_all(session_factory, TokenVault([new, old]), batch_size=128)
    assert again.rotated == 0 and again.already_current == 1001  # re-runnable

    only_new = TokenVault([new])
    with session_factory() as session:
        rows = session.execute(
            select(CalendarConnection.id, CalendarConnection.encrypted_refresh_token)
        ).all()
        assert {cid: only_new.decrypt(ct) for cid, ct in rows} == plain
        verifier = session.get(OAuthState, "st-1").encrypted_code_verifier
        assert only_new.decrypt(verifier) == "verifier-1"


def test_rotation_without_the_old_key_fails_clearly(
    session_factory: sessionmaker[Session], demo: DemoData
):
    with session_factory() as session:
        _seed_tokens(session, demo, TokenVault([generate_key()]), 3)
    with pytest.raises(VaultError, match="cannot be decrypted"):
        rotate_all(session_factory, TokenVault([generate_key()]))


def _app(settings: Settings, session_factory, **update):  # type: ignore[no-untyped-def]
    return create_app(settings.model_copy(update=update), session_factory=session_factory)


def test_startup_refuses_keys_that_cannot_read_stored_tokens(
    settings: Settings, session_factory, demo: DemoData
):
    old = generate_key()
    with session_factory() as session:
        _seed_tokens(session, demo, TokenVault([old]), 2)
    wrong = _app(settings, session_factory, token_encryption_keys=SecretStr(generate_key()))
    with (
        pytest.raises(VaultError, match="key that encrypted them is missing"),
        TestClient(wrong, base_url=PUBLIC_BASE_URL),
    ):
        pass
    missing = _app(settings, session_factory, environment="production")
    with (
        pytest.raises(VaultError, match="TOKEN_ENCRYPTION_KEYS is not set"),
        TestClient(missing, base_url=PUBLIC_BASE_URL),
    ):
        pass
    right = _app(
        settings, session_factory, token_encryption_keys=SecretStr(f"{generate_key()},{old}")
    )
    with TestClient(right, base_url=PUBLIC_BASE_URL) as client:
        assert client.get("/healthz").status_code == 200


def _google_client(settings: Settings, tmp_path: Path) -> dict[str, object]:
    secrets_file = tmp_path / "client.json"
    secrets_file.write_text(
        json.dumps({"web": {"client_id": "id", "client_secret": "s", "token_uri": "x"}})
    )
    return {"google_client_secrets_file": secrets_file, "token_key_file": tmp_path / "dev.key"}


def test_production_with_google_and_no_key_fails_at_create_app(
    settings: Settings, session_factory, tmp_path: Path
):
    with pytest.raises(VaultError, match="TOKEN_ENCRYPTION_KEYS is not set"):
        _app(
            settings,
            session_factory,
            environment="production",
            **_google_client(settings, tmp_path),
        )
    with pytest.raises(VaultError, match="not a valid Fernet key"):
        _app(settings, session_factory, token_encryption_keys=SecretStr("short"))


def test_development_creates_a_private_key_file_once(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    options = _google_client(settings, tmp_path)
    dev = settings.model_copy(update=options)
    assert (
        build_vault(
            settings.model_copy(update={"token_key_file": tmp_path / "dev.key"}), needed=False
        )
        is None
    )
    with caplog.at_level(logging.WARNING):
        first = build_vault(dev, needed=True)
    key_file = tmp_path / "dev.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() not in caplog.text
    second = build_vault(dev, needed=True)
    assert first is not None and second is not None
    assert second.decrypt(first.encrypt("x")) == "x"
