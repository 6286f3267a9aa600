"""Engine and session factory: SQLite by default, PostgreSQL when DATABASE_URL says so."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, QueuePool
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import LRUCache

from app import sql_fast
from app.config import Settings
from app.kept_connections import keep_connections

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite hands back naive datetimes even for DateTime(timezone=True); this re-attaches
    UTC on read and refuses naive values on write so a local time can never slip in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    # The processors SQLAlchemy builds from the two methods above call them through a
    # wrapper, after or before the column type's own (SQLite: a datetime written as text
    # by a %-format over a dict, read by fromisoformat). Every turn binds and reads a few
    # dozen datetimes, so where that inner processor is SQLite's default or none, the
    # pair is one function doing the same (tests/test_db.py compares them).

    def bind_processor(self, dialect: Any) -> Any:
        if _sqlite_default(self.impl_instance, dialect):
            return _sqlite_bind
        if dialect.name != "sqlite" and self.impl_instance.bind_processor(dialect) is None:
            return _utc_bind
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        if _sqlite_default(self.impl_instance, dialect):
            return _sqlite_result
        if self.impl_instance.result_processor(dialect, coltype) is None:
            return _utc_result
        return super().result_processor(dialect, coltype)


def _sqlite_default(impl: Any, dialect: Any) -> bool:
    """Whether `impl` is SQLite's DATETIME in its default text form."""
    return (
        dialect.name == "sqlite"
        and type(impl) is SQLITE_DATETIME
        and impl._storage_format == SQLITE_DATETIME._storage_format
        and impl._reg is None
    )


def _utc_bind(value: datetime | None) -> datetime | None:
    """UTCDateTime.process_bind_param, not SQLite."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC)


def _sqlite_bind(value: datetime | None) -> str | None:
    """UTCDateTime.process_bind_param, then SQLite DATETIME's default format."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    value = value.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 (SQLAlchemy's format)
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
    )


def _utc_result(value: datetime | None) -> datetime | None:
    """UTCDateTime.process_result_value."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _sqlite_result(value: str | None) -> datetime | None:
    """SQLite DATETIME's default reading (fromisoformat), then process_result_value."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class StatementCache:
    """SQLAlchemy's compiled-statement cache, looked up first by the identity of the
    statement's cache key.

    SQLAlchemy finds a compiled statement by its cache key: a nested tuple (hundreds of
    items for a turn's larger statements) that is hashed again at every execution, since
    tuples do not keep their hash. A statement built once (the hot path's are module
    constants) keeps the same key object, so a dictionary by the key's id finds it
    without that hash; the entry holds the key, so the id cannot be reused while it is
    there, and a hit is checked to be that very object. Other statements fall back to
    the shared cache, as before.
    """

    # Statements built per use bring a new key object each time: the map is emptied
    # when it reaches this size (the constants come back at their next execution).
    MAX_IDENTITIES = 2000

    def __init__(self, size: int) -> None:
        self._shared: LRUCache[Any, Any] = LRUCache(size)
        self._by_identity: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}

    @staticmethod
    def _identity(key: tuple[Any, ...]) -> tuple[Any, ...]:
        # SQLAlchemy's key: (dialect, statement key, column keys, schema map?, many?).
        _dialect, statement_key, *rest = key
        return (id(statement_key), *rest)

    def get(self, key: tuple[Any, ...], default: Any = None) -> Any:
        found = self._by_identity.get(self._identity(key))
        if found is not None and found[0] is key[1] and found[1] is key[0]:
            return found[2]
        compiled = self._shared.get(key)
        if compiled is None:
            return default
        self._remember(key, compiled)
        return compiled

    def __setitem__(self, key: tuple[Any, ...], compiled: Any) -> None:
        self._shared[key] = compiled
        self._remember(key, compiled)

    def __len__(self) -> int:
        return len(self._shared)

    def clear(self) -> None:
        self._shared.clear()
        self._by_identity = {}

    def _remember(self, key: tuple[Any, ...], compiled: Any) -> None:
        if len(self._by_identity) >= self.MAX_IDENTITIES:
            self._by_identity = {}  # a new dict: other threads may be reading the old
        self._by_identity[self._identity(key)] = (key[1], key[0], compiled)


# As SQLAlchemy's default (create_engine's query_cache_size).
STATEMENT_CACHE_SIZE = 500


def _use_statement_cache(engine: Engine) -> None:
    engine.update_execution_options(compiled_cache=StatementCache(STATEMENT_CACHE_SIZE))


# Sent through app/sql_fast.py: `exec_driver_sql` built SQLAlchemy's whole execution
# context for a statement with no parameters or rows (~6% of an empty transaction's
# CPU); the cursor events (round-trip counter, tracing) and error wrapping are the same.
_BEGIN = text("BEGIN")
_BEGIN_IMMEDIATE = text("BEGIN IMMEDIATE")
SQLITE_WRITER_WAIT_SECONDS = 30
# Set by `read_only` while its session checks a connection out: a reader's, not the writer's.
_reading: ContextVar[bool] = ContextVar("sqlite_reading", default=False)


class SQLiteWriterPool(QueuePool):
    """A SQLite file's pool: one connection kept for writing, handed out one checkout at a
    time and in order; the others serve `read_only` sessions.

    Writes are one at a time anyway (SQLite allows one writer), and queued in the
    process: threads left to SQLite's busy handler poll with sleeps of up to 100 ms,
    which a caller would hear as latency under load. In WAL mode a connection drops its
    whole page cache when it begins a transaction after another connection committed:
    with writes spread over the pool, every turn read its pages again (~50 pread64 a
    turn under load) and parsed them again. On the one writer connection the cache stays
    valid from one write to the next. The turn is taken at checkout and given back at
    check-in, after COMMIT or ROLLBACK (a checked-out connection that never writes holds
    it too: SQLAlchemy begins at the first statement anyway).
    """

    def __init__(
        self,
        creator: Callable[..., Any],
        *,
        writer_lock: threading.Lock | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(creator, **kw)
        # Shared with the pools `recreate` makes (engine.dispose()): a connection still
        # checked out from this one keeps the turn until it is checked in.
        self._writer_lock = writer_lock or threading.Lock()
        self._writer: ConnectionPoolEntry | None = None

    def _do_get(self) -> ConnectionPoolEntry:
        if _reading.get():
            return super()._do_get()
        if not self._writer_lock.acquire(timeout=SQLITE_WRITER_WAIT_SECONDS):
            raise TimeoutError("the database is busy: no write turn within the wait")
        try:
            if self._writer is None:
                self._writer = self._create_connection()
        except BaseException:
            self._writer_lock.release()
            raise
        return self._writer

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        if record is self._writer:
            self._writer_lock.release()
        else:
            super()._do_return_conn(record)

    def recreate(self) -> QueuePool:
        pool = super().recreate()
        assert isinstance(pool, SQLiteWriterPool)
        pool._writer_lock = self._writer_lock
        return pool

    def dispose(self) -> None:
        super().dispose()
        # As the queue's connections: closed unless checked out (then left as it is).
        if self._writer is not None and self._writer_lock.acquire(blocking=False):
            try:
                self._writer.close()
            finally:
                self._writer_lock.release()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers are serialised (SQLiteWriterPool): a deferred transaction that reads and
        # then writes can fail with SQLITE_BUSY under concurrency, and the booking overlap
        # check must see every committed row. Read-only sessions opt out.
        if connection.get_execution_options().get("sqlite_deferred"):
            sql_fast.execute(connection, _BEGIN)
        else:
            sql_fast.execute(connection, _BEGIN_IMMEDIATE)


def make_engine(settings: Settings) -> Engine:
    engine = _create(settings)
    _use_statement_cache(engine)
    # Audit entries written through this engine are signed with the configured key.
    from app.security.audit import use_signing_key

    use_signing_key(engine, settings.audit_signing_key.get_secret_value())
    return engine


def _create(settings: Settings) -> Engine:
    url = settings.database_url
    if url.startswith("sqlite"):
        # An in-memory database is one per connection (SQLAlchemy's per-thread pool):
        # nothing to share, so nothing to queue.
        file = make_url(url).database not in (None, "", ":memory:") and "mode=memory" not in url
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            # The readers' connections last in, first out: the warmest cache.
            **({"poolclass": SQLiteWriterPool, "pool_use_lifo": True} if file else {}),
        )
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    from app.pg_cursor import LazyDescriptionCursor

    engine = create_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=settings.database_pre_ping,
        pool_recycle=settings.database_pool_recycle_seconds,
        connect_args={
            "prepare_threshold": _prepare_threshold(settings),
            # Its description is made only when read (app/pg_cursor.py).
            "cursor_factory": LazyDescriptionCursor,
        },
    )
    if not settings.database_pre_ping:  # the ping is the pool's, at checkout
        # Half the pool at most, so other work always finds connections in it.
        size = min(settings.turn_concurrency, settings.database_pool_size // 2)
        keep_connections(engine, size, settings.database_pool_recycle_seconds)
    return engine


def _prepare_threshold(settings: Settings) -> int | None:
    """psycopg's setting: None never prepares."""
    threshold = settings.database_prepare_threshold
    return None if threshold < 0 else threshold


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def read_only(session: Session) -> Iterator[Session]:
    """Open the session's transaction as a plain (deferred) read on SQLite, on one of the
    readers' connections."""
    reading = _reading.set(True)
    try:
        session.connection(execution_options={"sqlite_deferred": True})
    finally:
        _reading.reset(reading)
    yield session


# An arbitrary constant shared by every process of this service (pg advisory lock key space).
MIGRATION_LOCK_KEY = 0x5C4ED01E


def upgrade_to_head(engine: Engine) -> None:
    """Run Alembic migrations up to head on this engine."""
    from alembic.config import Config

    from alembic import command
    from app.config import PROJECT_ROOT

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.attributes["configure_logging"] = False
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together queue here; the second finds the schema at head.
            # Transaction-scoped, so a crashed migrator releases it with its connection.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
