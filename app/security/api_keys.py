"""Admin API keys: random, shown once, stored as a SHA-256 digest, found by a visible prefix.

A key looks like `sk_<prefix>_<secret>`. The prefix (12 hex characters) is stored in
clear so operators can tell keys apart in listings and logs; the whole key is hashed.
The secret carries 256 random bits, so a fast hash is safe (nothing to brute-force) and
verification costs microseconds on every request, unlike a password hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ApiKey

KEY_SCHEME = "sk"
# Writing last_used_at on every request would turn every read into a write; once a
# minute is enough to tell a live key from a forgotten one.
LAST_USED_GRANULARITY = timedelta(minutes=1)


class Role(StrEnum):
    READONLY = "readonly"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANKS = {Role.READONLY: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    plaintext: str  # shown once, never stored


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def split_key(plaintext: str) -> str | None:
    """The prefix of a well-formed key, or None."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1]


def create_key(session: Session, *, name: str, role: Role, user_id: str | None = None) -> NewKey:
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        prefix=prefix, key_hash=hash_key(plaintext), name=name, role=role.value, user_id=user_id
    )
    session.add(key)
    session.flush()
    return NewKey(key, plaintext)


def authenticate(session: Session, presented: str, now: datetime) -> ApiKey | None:
    """The live key matching `presented`, with its last use recorded; None otherwise."""
    prefix = split_key(presented.strip())
    if prefix is None:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.key_hash, hash_key(presented.strip())):
        return None
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_GRANULARITY:
        key.last_used_at = now
    return key


def revoke(session: Session, key_id_or_prefix: str, now: datetime) -> ApiKey | None:
    key = session.get(ApiKey, key_id_or_prefix) or session.scalar(
        select(ApiKey).where(ApiKey.prefix == key_id_or_prefix)
    )
    if key is None:
        return None
    if key.revoked_at is None:
        key.revoked_at = now
    return key


def list_keys(session: Session, include_revoked: bool = True) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))
