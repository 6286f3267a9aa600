"""Token vault: OAuth refresh tokens and PKCE verifiers encrypted at rest (MultiFernet).

Keys come from TOKEN_ENCRYPTION_KEYS, comma-separated, newest first: the first key
encrypts, every key decrypts, so a new key is added in front, `keys rotate` re-encrypts
every stored secret under it, and the old key can then be removed.

With no key configured, development keeps one generated key in a file under data/
(created on first use, mode 0600); every other environment has no vault, which refuses
Google connections rather than deriving a key from something guessable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import func, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from app.config import Settings
from app.models import CalendarConnection, OAuthState

log = logging.getLogger(__name__)


class VaultError(Exception):
    """The vault is misconfigured or cannot read a stored secret; safe to show."""


class TokenVault:
    def __init__(self, keys: list[str], source: str = "TOKEN_ENCRYPTION_KEYS") -> None:
        if not keys:
            raise VaultError(f"{source}: no key given")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode()))
            except (ValueError, TypeError):
                # The key itself never appears in the message.
                raise VaultError(
                    f"{source}: key #{position} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes; `python -m app keys generate`)"
                ) from None
        self._primary = fernets[0]
        self._all = MultiFernet(fernets)
        self.key_count = len(fernets)

    def encrypt(self, plaintext: str) -> str:
        return self._primary.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._all.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultError(
                "a stored secret cannot be decrypted with any configured key"
            ) from None

    def is_current(self, ciphertext: str) -> bool:
        """Encrypted under the newest key already (rotation skips it)."""
        try:
            self._primary.decrypt(ciphertext.encode())
        except InvalidToken:
            return False
        return True

    def rotate(self, ciphertext: str) -> str:
        try:
            return self._all.rotate(ciphertext.encode()).decode()
        except InvalidToken:
            raise VaultError(
                "a stored secret cannot be decrypted with any configured key"
            ) from None


def generate_key() -> str:
    return Fernet.generate_key().decode()


def parse_keys(raw: str) -> list[str]:
    return [k.strip() for k in raw.split(",") if k.strip()]


def build_vault(settings: Settings, *, needed: bool) -> TokenVault | None:
    """The configured vault, or None when there is nothing to encrypt with.

    `needed`: a Google client is configured. Then development creates its key file on
    first use, and any other environment without TOKEN_ENCRYPTION_KEYS is a start-up
    error (never a silent key, never a crash at the first connection).
    """
    raw = settings.token_encryption_keys
    keys = parse_keys(raw.get_secret_value()) if raw is not None else []
    if keys:  # an empty TOKEN_ENCRYPTION_KEYS= line counts as not set
        return TokenVault(keys)
    path = settings.token_key_file
    if settings.environment == "development":
        if path.exists() or needed:
            return TokenVault([_dev_key(path)], source=str(path))
        return None
    if needed:
        raise VaultError(
            "a calendar OAuth client (Google or Microsoft) is configured but "
            "TOKEN_ENCRYPTION_KEYS is not set: "
            "set it (`python -m app keys generate` prints a key) to store calendar tokens"
        )
    return None


def _dev_key(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    # O_EXCL: two processes starting together must not write two different keys.
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key + "\n")
    log.warning(
        "no TOKEN_ENCRYPTION_KEYS: created a development token key in %s "
        "(set TOKEN_ENCRYPTION_KEYS in production)",
        path,
    )
    return key


# Every encrypted column in the database: (model, primary key, column).
ENCRYPTED_COLUMNS: tuple[
    tuple[type[Any], InstrumentedAttribute[Any], InstrumentedAttribute[Any]], ...
] = (
    (CalendarConnection, CalendarConnection.id, CalendarConnection.encrypted_refresh_token),
    (OAuthState, OAuthState.state, OAuthState.encrypted_code_verifier),
)


def check_readable(session: Session, vault: TokenVault | None) -> None:
    """Start-up check: stored secrets exist only with a vault that can read them.

    Samples the oldest and newest row of each encrypted column, so a half-finished
    rotation whose old key was already removed is caught too.
    """
    for model, key_column, column in ENCRYPTED_COLUMNS:
        samples = []
        for order in (key_column.asc(), key_column.desc()):
            value = session.scalar(
                select(column).where(column.is_not(None)).order_by(order).limit(1)
            )
            if value is not None:
                samples.append(value)
        if not samples:
            continue
        if vault is None:
            raise VaultError(
                f"{model.__tablename__} holds encrypted secrets but TOKEN_ENCRYPTION_KEYS "
                "is not set: set it to the key(s) they were encrypted with"
            )
        for value in samples:
            try:
                vault.decrypt(value)
            except VaultError:
                raise VaultError(
                    f"TOKEN_ENCRYPTION_KEYS cannot decrypt secrets stored in "
                    f"{model.__tablename__}: the key that encrypted them is missing or wrong. "
                    "Put it back (after the newest key), run `python -m app keys rotate`, "
                    "then remove it."
                ) from None


@dataclass
class RotationReport:
    rotated: int = 0
    already_current: int = 0
    batches: int = 0


def count_encrypted(session_factory: sessionmaker[Session]) -> int:
    """How many stored secrets a rotation goes through (the progress bar's total)."""
    with session_factory() as session:
        return sum(
            session.scalar(select(func.count()).select_from(model).where(column.is_not(None))) or 0
            for model, _key, column in ENCRYPTED_COLUMNS
        )


def rotate_all(
    session_factory: sessionmaker[Session],
    vault: TokenVault,
    *,
    batch_size: int = 1000,
    progress: Callable[[RotationReport], None] | None = None,
) -> RotationReport:
    """Re-encrypt every stored secret under the newest key, one committed batch at a time.

    Rows are locked while a batch is rewritten (FOR UPDATE on PostgreSQL, the write
    transaction on SQLite), so a token stored concurrently is never overwritten with an
    older one. Safe to re-run: rows already under the newest key are skipped.
    """
    report = RotationReport()
    for model, key_column, column in ENCRYPTED_COLUMNS:
        for batch in _batches(session_factory, model, key_column, column, batch_size):
            session, rows = batch
            changes = []
            for key, ciphertext in rows:
                if vault.is_current(ciphertext):
                    report.already_current += 1
                    continue
                changes.append({key_column.key: key, column.key: vault.rotate(ciphertext)})
            if changes:
                session.execute(update(model), changes)
            session.commit()
            report.rotated += len(changes)
            report.batches += 1
            if progress is not None:
                progress(report)
    return report


def _batches(
    session_factory: sessionmaker[Session],
    model: type[Any],
    key_column: InstrumentedAttribute[Any],
    column: InstrumentedAttribute[Any],
    batch_size: int,
) -> Iterator[tuple[Session, list[tuple[Any, str]]]]:
    last_key: Any = None
    while True:
        with session_factory() as session:
            query = select(key_column, column).where(column.is_not(None))
            if last_key is not None:
                query = query.where(key_column > last_key)
            query = query.order_by(key_column).limit(batch_size).with_for_update()
            rows = [(k, v) for k, v in session.execute(query)]
            if not rows:
                return
            yield session, rows
            last_key = rows[-1][0]
