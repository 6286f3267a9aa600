"""Audit log: appended without a lock, sealed in order afterwards, checkpoints signed.

`record()` queues an entry on the session; just before the session commits the entries
are inserted with an HMAC of their content (AUDIT_SIGNING_KEY), so the trail commits or
rolls back with the work it describes and no writer waits for another.

`seal()` (a background job; `python -m app audit seal`) takes the entries not yet chained,
in id order, gives each the next sequence number and a hash linking it to the previous
one, and writes a checkpoint (the chain's head) signed with the same key. The key is not
in the database, so someone who can write the database can neither forge an entry nor
re-sign the chain after deleting its newest entries. `verify_chain()` recomputes it all.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from app import commit_writes
from app.config import DEV_AUDIT_SIGNING_KEY
from app.models import AuditCheckpoint, AuditEntry, utcnow
from app.phone import mask

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
_SECRET_KEYS = re.compile(r"token|secret|password|passwd|authorization|api_key|pin|code", re.I)
_PHONE = re.compile(r"\+\d{7,15}\b")
# Any integer that fits a signed 64-bit advisory lock key: only sealers take it, never
# a request, so it orders seals without touching the hot path.
_SEAL_LOCK_ID = 7_202_612
# The signing key of each engine, registered by app.db.make_engine from its settings.
_KEYS: weakref.WeakKeyDictionary[Engine, bytes] = weakref.WeakKeyDictionary()


def scrub(value: Any) -> Any:
    """Details without secrets or full phone numbers, whatever a caller passed in."""
    if type(value) is str:  # the common case first (a subclass takes the long way)
        return _masked(value)
    if isinstance(value, dict):
        return _scrubbed_dict(value)
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _masked(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _scrubbed_dict(value: dict[Any, Any]) -> dict[str, Any]:
    # Details are mostly string keys and values: those take no second call of scrub.
    scrubbed: dict[str, Any] = {}
    for k, v in value.items():
        key = k if type(k) is str else str(k)
        if _is_secret_key(key):
            scrubbed[key] = "[redacted]"
        elif type(v) is str:
            scrubbed[key] = _masked(v)
        else:
            scrubbed[key] = scrub(v)
    return scrubbed


def _masked(text: str) -> str:
    # Every number _PHONE matches starts with "+": a text without one has none.
    return _PHONE.sub(lambda m: mask(m.group()), text) if "+" in text else text


@lru_cache(maxsize=1024)
def _is_secret_key(key: str) -> bool:
    """Whether a details key names a secret (a pure function of the key; details use
    few distinct keys, so each is searched once)."""
    return _SECRET_KEYS.search(key) is not None


def mask_phones(text: str) -> str:
    return _PHONE.sub(lambda m: mask(m.group()), text)


# --- keys ---------------------------------------------------------------------------------


def use_signing_key(engine: Engine, key: str) -> None:
    _KEYS[engine] = key.encode()


def signing_key(bind: Engine | Connection) -> bytes:
    engine = bind.engine if isinstance(bind, Connection) else bind
    # Engines built by hand (tests, scripts) get the development key; make_engine always
    # registers the configured one, and settings refuse the development key in production.
    return _KEYS.get(engine, DEV_AUDIT_SIGNING_KEY.encode())


def _session_key(session: Session) -> bytes:
    # What get_bind() answers when asked about no mapper or clause: the session's bind.
    bind = session.bind
    return signing_key(bind if bind is not None else session.get_bind())


# --- hashes -------------------------------------------------------------------------------

# What json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False) builds
# per call; an encoder keeps no state between encodes.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(document: dict[str, Any]) -> str:
    """The text an entry's MAC signs: sorted, compact JSON (json.dumps's, as stored)."""
    return _CANONICAL.encode(document)


def entry_mac(
    key: bytes, at: datetime, actor: str, action: str, subject: str | None, details: Any
) -> str:
    canonical = canonical_json(
        {
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        }
    )
    mac = _keyed(key).copy()
    mac.update(canonical.encode())
    return mac.hexdigest()


# An HMAC-SHA256 keyed and not yet fed, per key (a process has one or two): a copy of it
# is what hmac.new(key, ..., sha256) makes, without OpenSSL's digest look-up and key setup
# at every entry.
_KEYED: dict[bytes, hmac.HMAC] = {}


def _keyed(key: bytes) -> hmac.HMAC:
    found = _KEYED.get(key)
    if found is None:
        if len(_KEYED) >= 16:  # keys built by hand (tests) must not pile up
            _KEYED.clear()
        found = _KEYED[key] = hmac.new(key, digestmod=hashlib.sha256)
    return found


def link_hash(prev_hash: str, seq: int, entry_id: int, mac: str) -> str:
    return hashlib.sha256(f"{prev_hash}|{seq}|{entry_id}|{mac}".encode()).hexdigest()


def checkpoint_signature(
    key: bytes, seq: int, first_seq: int, head_hash: str, prev_signature: str
) -> str:
    message = f"{seq}|{first_seq}|{head_hash}|{prev_signature}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


# --- appending ----------------------------------------------------------------------------


def record(
    session: Session,
    action: str,
    *,
    actor: str,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Queue an entry, signed now, for the transaction's commit (app/commit_writes.py):
    one INSERT for all its entries, no read of the chain, no lock; a rollback drops it."""
    at, actor, subject = utcnow(), scrub(actor), scrub(subject)
    details = scrub(details or {})
    mac = entry_mac(_session_key(session), at, actor, action, subject, details)
    commit_writes.insert_row(
        session,
        AuditEntry.__table__,
        {
            "at": at,
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
            "mac": mac,
        },
    )


# --- sealing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealResult:
    sealed: int
    checkpoint: AuditCheckpoint | None = None
    # An entry whose MAC does not match: the seal stops before it (tampering).
    refused_id: int | None = None
    busy: bool = False


def _take_seal_turn(session: Session) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        return True  # SQLite: the write transaction (BEGIN IMMEDIATE) is the turn.
    return bool(
        session.scalar(text("SELECT pg_try_advisory_xact_lock(:id)"), {"id": _SEAL_LOCK_ID})
    )


def _head(session: Session) -> tuple[int, str, str]:
    last = session.scalar(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1))
    if last is None:
        return 0, GENESIS_HASH, ""
    return last.seq, last.head_hash, last.signature


def seal(session: Session, batch: int = 1000) -> SealResult:
    """Chain up to `batch` unsealed entries in id order and sign a checkpoint; commits.

    Entries of transactions still open are invisible here and are sealed by a later run
    with later sequence numbers, so no entry is skipped however commits interleave.
    """
    if not _take_seal_turn(session):
        session.rollback()
        return SealResult(0, busy=True)
    key = _session_key(session)
    seq, prev, prev_signature = _head(session)
    rows = session.scalars(
        select(AuditEntry).where(AuditEntry.seq.is_(None)).order_by(AuditEntry.id).limit(batch)
    ).all()
    first_seq, links, refused = seq + 1, [], None
    for row in rows:
        if entry_mac(key, row.at, row.actor, row.action, row.subject, row.details) != row.mac:
            refused = row.id
            break
        seq += 1
        digest = link_hash(prev, seq, row.id, row.mac)
        links.append({"entry_id": row.id, "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    if not links:
        session.rollback()
        _warn_refused(refused)
        return SealResult(0, refused_id=refused)
    _write_links(session, links)
    checkpoint = AuditCheckpoint(
        seq=seq,
        first_seq=first_seq,
        head_hash=prev,
        sealed_at=utcnow(),
        signature=checkpoint_signature(key, seq, first_seq, prev, prev_signature),
    )
    session.add(checkpoint)
    session.commit()
    # The log is a copy of the head outside the database: `audit verify --expect` takes it.
    log.info("audit sealed %d entries; checkpoint %d:%s", len(links), seq, prev)
    _warn_refused(refused)
    return SealResult(len(links), checkpoint, refused)


def _write_links(session: Session, links: list[dict[str, Any]]) -> None:
    table = cast(Table, AuditEntry.__table__)
    statement = (
        update(table)
        .where(table.c.id == bindparam("entry_id"))
        .values(seq=bindparam("seq"), prev_hash=bindparam("prev_hash"), hash=bindparam("hash"))
    )
    session.connection().execute(statement, links)


def _warn_refused(entry_id: int | None) -> None:
    if entry_id is not None:
        log.error("audit entry %d fails its signature: not sealed; run `audit verify`", entry_id)


def seal_all(session_factory: Any, batch: int = 1000) -> int:
    """Seal until nothing is left (or another sealer holds the turn); entries sealed."""
    total = 0
    while True:
        with session_factory() as session:
            result = seal(session, batch)
        total += result.sealed
        if result.sealed < batch or result.refused_id is not None:
            return total


# --- verifying ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    entries: int
    first_bad_id: int | None = None
    reason: str | None = None
    sealed: int = 0
    head: str | None = None


class _Broken(Exception):
    def __init__(self, entry_id: int | None, reason: str) -> None:
        super().__init__(reason)
        self.entry_id = entry_id
        self.reason = reason


def _batches(session: Session, query: Any, key: Any, batch_size: int) -> Iterator[Any]:
    last: int | None = None
    while True:
        page = query if last is None else query.where(key > last)
        rows = session.scalars(page.order_by(key).limit(batch_size)).all()
        if not rows:
            return
        yield from rows
        last = getattr(rows[-1], key.key)
        session.expunge_all()


class _Verifier:
    def __init__(self, session: Session, batch_size: int) -> None:
        self.session = session
        self.key = _session_key(session)
        self.batch_size = batch_size
        self.checked = 0
        self.seq = 0
        self.prev = GENESIS_HASH
        self.heads: dict[int, str] = {}

    def check_mac(self, row: AuditEntry) -> None:
        mac = entry_mac(self.key, row.at, row.actor, row.action, row.subject, row.details)
        if not hmac.compare_digest(mac, row.mac or ""):
            raise _Broken(row.id, "entry altered or inserted (signature does not match)")

    def sealed_entries(self, checkpoints: Iterator[AuditCheckpoint]) -> AuditCheckpoint | None:
        pending = next(checkpoints, None)
        last_ok: AuditCheckpoint | None = None
        query = select(AuditEntry).where(AuditEntry.seq.is_not(None))
        for row in _batches(self.session, query, AuditEntry.seq, self.batch_size):
            if row.seq != self.seq + 1:
                raise _Broken(row.id, f"entries {self.seq + 1}..{row.seq - 1} of the chain deleted")
            self.check_mac(row)
            if row.prev_hash != self.prev or row.hash != link_hash(
                self.prev, row.seq, row.id, row.mac
            ):
                raise _Broken(row.id, "link to previous entry broken")
            self.seq, self.prev = row.seq, row.hash
            self.checked += 1
            if pending is not None and pending.seq == row.seq:
                self.check_checkpoint(pending, last_ok, row.id)
                last_ok, pending = pending, next(checkpoints, None)
        if pending is not None or (last_ok is None) != (self.seq == 0):
            raise _Broken(None, "newest sealed entries deleted (a signed checkpoint covers them)")
        if last_ok is not None and last_ok.seq != self.seq:
            raise _Broken(None, "sealed entries beyond the last signed checkpoint")
        return last_ok

    def check_checkpoint(
        self, point: AuditCheckpoint, previous: AuditCheckpoint | None, entry_id: int
    ) -> None:
        prev_signature = previous.signature if previous else ""
        first = previous.seq + 1 if previous else 1
        expected = checkpoint_signature(self.key, point.seq, first, point.head_hash, prev_signature)
        if point.first_seq != first or not hmac.compare_digest(expected, point.signature):
            raise _Broken(entry_id, f"checkpoint {point.seq} not signed by the audit key")
        if point.head_hash != self.prev:
            raise _Broken(entry_id, f"chain differs from signed checkpoint {point.seq}")
        self.heads[point.seq] = point.head_hash

    def unsealed_entries(self) -> None:
        query = select(AuditEntry).where(AuditEntry.seq.is_(None))
        for row in _batches(self.session, query, AuditEntry.id, self.batch_size):
            self.check_mac(row)
            self.checked += 1


def verify_chain(
    session: Session, batch_size: int = 5000, expect: Sequence[tuple[int, str]] = ()
) -> ChainReport:
    """Recompute every signature and link. `expect`: checkpoints (seq, head hash) kept
    outside the database (the seal's log lines), which must still be in the chain."""
    verifier = _Verifier(session, batch_size)
    checkpoints = _batches(session, select(AuditCheckpoint), AuditCheckpoint.seq, batch_size)
    try:
        verifier.sealed_entries(checkpoints)
        for seq, head in expect:
            if verifier.heads.get(seq) != head:
                raise _Broken(None, f"checkpoint {seq} kept outside the database is missing")
        verifier.unsealed_entries()
    except _Broken as broken:
        return ChainReport(False, verifier.checked, broken.entry_id, broken.reason, verifier.seq)
    return ChainReport(True, verifier.checked, sealed=verifier.seq, head=verifier.prev)
