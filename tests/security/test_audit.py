from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, delete, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app import commit_writes
from app.cli import cli
from app.config import DEV_AUDIT_SIGNING_KEY, Settings, get_settings
from app.models import AuditCheckpoint, AuditEntry, utcnow
from app.security import audit


def write_entries(factory: sessionmaker[Session], count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        with factory() as session:
            audit.record(
                session,
                "test.event",
                actor="tester",
                subject=f"s{i}",
                details={"n": i, "caller": "+14155550123", "auth_token": "abc"},
            )
            session.commit()


def entries(factory: sessionmaker[Session]) -> list[AuditEntry]:
    with factory() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def sealed(factory: sessionmaker[Session], count: int, batch: int = 1000) -> None:
    write_entries(factory, count)
    assert audit.seal_all(factory, batch) == count


def verify(factory: sessionmaker[Session], **kwargs) -> audit.ChainReport:  # type: ignore[no-untyped-def]
    with factory() as session:
        return audit.verify_chain(session, **kwargs)


def change(factory: sessionmaker[Session], statement) -> None:  # type: ignore[no-untyped-def]
    with factory() as session:
        session.execute(statement)
        session.commit()


def test_entries_are_signed_sealed_in_order_and_hide_secrets_and_numbers(session_factory):
    write_entries(session_factory, 3)
    rows = entries(session_factory)
    assert all(r.seq is None and r.hash is None and len(r.mac) == 64 for r in rows)
    assert rows[0].details["auth_token"] == "[redacted]"
    assert rows[0].details["caller"] == "+1••••••0123"
    report = verify(session_factory)
    assert report.ok and report.entries == 3 and report.sealed == 0

    assert audit.seal_all(session_factory, batch=2) == 3
    rows = entries(session_factory)
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == audit.GENESIS_HASH
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    with session_factory() as session:
        points = list(session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)))
    assert [(p.first_seq, p.seq) for p in points] == [(1, 2), (3, 3)]
    assert points[-1].head_hash == rows[-1].hash
    report = verify(session_factory)
    assert report.ok and report.entries == 3 and report.sealed == 3
    assert report.head == rows[-1].hash


def test_new_entries_after_a_seal_extend_the_chain(session_factory):
    sealed(session_factory, 2)
    write_entries(session_factory, 2, start=2)
    assert verify(session_factory).ok
    assert audit.seal_all(session_factory) == 2
    report = verify(session_factory)
    assert report.ok and report.sealed == 4
    assert audit.seal_all(session_factory) == 0


def test_rolled_back_work_leaves_no_audit_entry(session_factory, session: Session):
    with session_factory() as other:
        audit.record(other, "test.event", actor="tester")
        other.rollback()
        other.commit()
    assert session.query(AuditEntry).count() == 0


@pytest.mark.parametrize("seal_first", [True, False], ids=["sealed", "awaiting-seal"])
def test_altered_entry_is_found(session_factory, seal_first: bool):
    write_entries(session_factory, 4)
    if seal_first:
        audit.seal_all(session_factory)
    third = entries(session_factory)[2]
    change(session_factory, update(AuditEntry).where(AuditEntry.id == third.id).values(actor="x"))
    report = verify(session_factory)
    assert not report.ok and report.first_bad_id == third.id and report.entries == 2
    assert "altered" in (report.reason or "")


def test_inserted_entry_is_found_and_never_sealed(session_factory):
    sealed(session_factory, 2)
    forged = {
        "at": utcnow(),
        "actor": "mallory",
        "action": "booking.created",
        "subject": None,
        "details": {},
        "mac": "0" * 64,
    }
    change(session_factory, insert(AuditEntry).values(**forged))
    report = verify(session_factory)
    assert not report.ok and "inserted" in (report.reason or "")
    with session_factory() as session:
        result = audit.seal(session)
    assert result.sealed == 0 and result.refused_id == entries(session_factory)[-1].id


def test_removed_entry_breaks_the_chain(session_factory):
    sealed(session_factory, 4)
    second = entries(session_factory)[1]
    change(session_factory, delete(AuditEntry).where(AuditEntry.id == second.id))
    report = verify(session_factory)
    assert not report.ok and report.reason == "entries 2..2 of the chain deleted"


def test_removed_newest_entries_are_found(session_factory):
    sealed(session_factory, 5)
    newest = entries(session_factory)[-2:]
    change(session_factory, delete(AuditEntry).where(AuditEntry.id.in_([r.id for r in newest])))
    report = verify(session_factory)
    assert not report.ok and "newest sealed entries deleted" in (report.reason or "")


def test_a_checkpoint_rewritten_without_the_key_is_found(session_factory):
    # Delete the newest entry and move the checkpoint back onto the entry before it:
    # whoever only has the database cannot sign the new head.
    sealed(session_factory, 3)
    rows = entries(session_factory)
    change(session_factory, delete(AuditEntry).where(AuditEntry.id == rows[-1].id))
    change(
        session_factory,
        update(AuditCheckpoint).values(seq=2, head_hash=rows[1].hash),
    )
    report = verify(session_factory)
    assert not report.ok and "not signed by the audit key" in (report.reason or "")


def test_entries_signed_with_another_key_are_refused(session_factory, db_engine):
    sealed(session_factory, 2)
    audit.use_signing_key(db_engine, "another-key")
    try:
        report = verify(session_factory)
    finally:
        audit.use_signing_key(db_engine, get_settings().audit_signing_key.get_secret_value())
    assert not report.ok and report.first_bad_id == entries(session_factory)[0].id


def test_whole_batches_deleted_with_their_checkpoint_are_found_by_an_outside_copy(
    session_factory,
):
    write_entries(session_factory, 2)
    with session_factory() as session:
        first = audit.seal(session).checkpoint
    write_entries(session_factory, 2, start=2)
    with session_factory() as session:
        second = audit.seal(session).checkpoint
    assert first is not None and second is not None
    kept = [(second.seq, second.head_hash)]
    assert verify(session_factory, expect=kept).ok
    change(session_factory, delete(AuditEntry).where(AuditEntry.seq > first.seq))
    change(session_factory, delete(AuditCheckpoint).where(AuditCheckpoint.seq == second.seq))
    assert verify(session_factory).ok  # what the database alone still shows...
    report = verify(session_factory, expect=kept)  # ...and what the outside copy proves
    assert not report.ok and "outside the database is missing" in (report.reason or "")


def _postgres_only(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("concurrent writers need PostgreSQL (SQLite has one writer)")


def test_writers_append_without_waiting_for_each_other(session_factory):
    _postgres_only(session_factory)
    with session_factory() as first, session_factory() as second:
        audit.record(first, "test.first", actor="tester")
        # Insert the first transaction's entry now (what commit does), leaving it open.
        commit_writes.write_deferred(first)
        # A global chain lock would make this wait for `first`: fail fast instead.
        second.execute(text("SET LOCAL lock_timeout = '2s'"))
        audit.record(second, "test.second", actor="tester")
        second.commit()
        # The seal sees only committed entries; the open one is sealed by a later run.
        assert audit.seal_all(session_factory) == 1
        first.commit()
    assert audit.seal_all(session_factory) == 1
    rows = entries(session_factory)
    assert [(r.action, r.seq) for r in rows] == [("test.first", 2), ("test.second", 1)]
    assert verify(session_factory).ok


def test_only_one_sealer_at_a_time(session_factory):
    _postgres_only(session_factory)
    write_entries(session_factory, 3)
    with session_factory() as holder:
        assert audit._take_seal_turn(holder)
        with session_factory() as session:
            result = audit.seal(session)
        assert result.busy and result.sealed == 0
    assert audit.seal_all(session_factory) == 3


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_audit_seal_and_verify_commands(cli_env, session_factory):
    write_entries(session_factory, 2)
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0 and "2 entries (0 sealed, 2 awaiting the seal)" in ok.output
    assert "sealed 2 entries" in runner.invoke(cli, ["audit", "seal"]).output
    with session_factory() as session:
        head = session.scalar(select(AuditCheckpoint.head_hash))
    kept = f"2:{head}"
    ok = runner.invoke(cli, ["audit", "verify", "--expect", kept])
    assert ok.exit_code == 0 and "2 entries (2 sealed, 0 awaiting the seal)" in ok.output
    bad = runner.invoke(cli, ["audit", "verify", "--expect", "2:nothex"])
    assert bad.exit_code == 2 and "SEQ:HEAD_HASH" in bad.output
    change(session_factory, update(AuditEntry).values(details={"n": 99}))
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1 and "altered" in broken.output


def test_checkpoints_cover_every_sealed_entry(session_factory):
    sealed(session_factory, 7, batch=3)
    with session_factory() as session:
        points = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq)).all()
        count = session.scalar(select(func.count()).select_from(AuditEntry))
    assert [(p.first_seq, p.seq) for p in points] == [(1, 3), (4, 6), (7, 7)]
    assert count == 7


def test_the_service_seals_in_the_background(settings: Settings, session_factory, clock):
    from fastapi.testclient import TestClient

    from app.main import create_app

    write_entries(session_factory, 3)
    # A long interval: the first seal runs at start-up, the next one never within the test.
    app = create_app(
        settings.model_copy(update={"audit_seal_interval_seconds": 3600}),
        session_factory=session_factory,
        clock=clock,
        background_jobs=True,  # as `serve` runs: the seal is a job of the embedded engine
    )
    with TestClient(app):
        deadline = time.monotonic() + 20
        while verify(session_factory).sealed < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    report = verify(session_factory)
    assert report.ok and report.sealed == 3


def test_verify_reads_in_pages(session_factory):
    sealed(session_factory, 7, batch=3)
    write_entries(session_factory, 3, start=7)
    report = verify(session_factory, batch_size=2)
    assert report.ok and report.entries == 10 and report.sealed == 7
    newest = entries(session_factory)[6]
    change(session_factory, delete(AuditEntry).where(AuditEntry.id == newest.id))
    report = verify(session_factory, batch_size=2)
    assert not report.ok and "newest sealed entries deleted" in (report.reason or "")


def _reference_mac(key: bytes, at: Any, actor: str, action: str, subject: Any, details: Any) -> str:
    """The entry's MAC as first written: json.dumps per call and an HMAC object."""
    canonical = json.dumps(
        {
            "at": at.isoformat(),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _reference_scrub(value: Any) -> Any:
    """scrub as first written: every string searched, every key matched."""
    if isinstance(value, dict):
        return {
            str(k): ("[redacted]" if audit._SECRET_KEYS.search(str(k)) else _reference_scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_reference_scrub(v) for v in value]
    if isinstance(value, str):
        return audit._PHONE.sub(lambda m: audit.mask(m.group()), value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class _Text(str):
    pass


_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.sampled_from(
        ["+14155550123", "call +14155550123 now", "+1234", "a+b", "é 🙂 +4915112345678"]
    ),
    st.datetimes(timezones=st.just(UTC)),
    st.builds(_Text, st.sampled_from(["+14155550123", "plain"])),
)
_KEYS = st.one_of(st.text(max_size=12), st.sampled_from(["token", "API_KEY", "pin", "from", "n"]))
_DETAILS = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(_KEYS, st.integers()), inner, max_size=4),
    ),
    max_leaves=12,
)


@examples(max_examples=300)
@given(_DETAILS)
def test_scrub_is_the_reference_scrub(value: Any) -> None:
    assert audit.scrub(value) == _reference_scrub(value)


@examples(max_examples=300)
@given(
    st.text(),
    st.text(),
    st.one_of(st.none(), st.text()),
    st.dictionaries(st.text(max_size=8), _LEAVES, max_size=4),
)
def test_entry_mac_is_the_reference_mac(
    actor: str, action: str, subject: Any, details: Any
) -> None:
    at, key = utcnow(), b"k3y"
    details = audit.scrub(details)
    expected = _reference_mac(key, at, actor, action, subject, details)
    assert audit.entry_mac(key, at, actor, action, subject, details) == expected


def test_an_entry_is_signed_with_the_key_of_the_sessions_bind(
    settings: Settings, db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    configured = settings.audit_signing_key.get_secret_value().encode()
    with session_factory() as session:
        assert audit._session_key(session) == configured
    with db_engine.connect() as connection, Session(bind=connection) as on_connection:
        assert audit._session_key(on_connection) == configured
    # An engine nobody registered a key for signs with the development key.
    with Session(bind=create_engine("sqlite://")) as unregistered:
        assert audit._session_key(unregistered) == DEV_AUDIT_SIGNING_KEY.encode()


def test_entry_macs_under_different_keys_differ_and_repeat() -> None:
    at, details = utcnow(), {"n": 1}
    first = audit.entry_mac(b"one", at, "a", "b", None, details)
    assert first == audit.entry_mac(b"one", at, "a", "b", None, details)
    assert first == _reference_mac(b"one", at, "a", "b", None, details)
    assert audit.entry_mac(b"two", at, "a", "b", None, details) != first
    for index in range(40):  # more keys than are kept: each still signs with its own
        key = f"key-{index}".encode()
        assert audit.entry_mac(key, at, "a", "b", None, details) == _reference_mac(
            key, at, "a", "b", None, details
        )


@examples(max_examples=300)
@given(st.binary(max_size=200), st.text())
def test_entry_mac_is_hmac_sha256_under_keys_of_any_length(key: bytes, actor: str) -> None:
    """Keyed once per key and copied per entry: shorter, as long as and longer than
    SHA-256's block (a longer key is hashed first), the MAC is hmac.new's."""
    at = utcnow()
    assert audit.entry_mac(key, at, actor, "x", None, {}) == _reference_mac(
        key, at, actor, "x", None, {}
    )
    for length in (0, 1, 63, 64, 65, 128, 200):
        sized = bytes(range(length % 256)) * (length // 256) + bytes(range(length % 256))
        assert audit.entry_mac(sized, at, actor, "x", None, {}) == _reference_mac(
            sized, at, actor, "x", None, {}
        )


@examples(max_examples=300)
@given(st.dictionaries(st.text(max_size=8), _DETAILS, max_size=5))
def test_the_canonical_text_is_json_dumps_sorted_and_compact(document: Any) -> None:
    document = audit.scrub(document)
    expected = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert audit.canonical_json(document) == expected


def test_the_canonical_text_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError):
        audit.canonical_json({"x": object()})
    assert audit.canonical_json({"b": float("nan"), "a": 1.5}) == '{"a":1.5,"b":NaN}'
