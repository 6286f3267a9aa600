"""A transaction's last writes, sent together when the session commits.

A turn ends with writes nothing reads back before the commit: its messages, its
conversation's row, its audit entries, the event's stored response. They wait on the
session and go out just before COMMIT: on PostgreSQL as one statement (the others as
data-modifying CTEs of the last), on SQLite one executemany per table (it has no INSERT
in a CTE). They belong to the transaction like any write: a rollback drops them, and
the ORM's own pending changes are flushed first, so a deferred row may refer to any row
the ORM added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CTE, Table, event, insert, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import UpdateBase

from app.db import Base

_KEY = "commit_writes"


@dataclass
class _Deferred:
    rows: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)
    statements: list[UpdateBase] = field(default_factory=list)
    # Called at commit, before the ORM's flush: the last moment an object's final
    # values are known, to turn them into deferred writes.
    preparers: dict[Any, Callable[[Session], None]] = field(default_factory=dict)


def _deferred(session: Session) -> _Deferred:
    # Begin the transaction now, so a rollback of it also drops these writes.
    session.connection()
    found = session.info.get(_KEY)
    if found is None:
        found = session.info[_KEY] = _Deferred()
    return cast(_Deferred, found)


def insert_row(session: Session, table: Any, row: dict[str, Any]) -> None:
    """INSERT `row` at commit; every row of a table must name the same columns."""
    _deferred(session).rows.setdefault(table, []).append(row)


def run_at_commit(session: Session, statement: UpdateBase) -> None:
    """Run `statement` (an UPDATE or DELETE, nothing returned) at commit, after the
    deferred INSERTs."""
    _deferred(session).statements.append(statement)


def prepare_at_commit(session: Session, key: Any, prepare: Callable[[Session], None]) -> None:
    """Call `prepare(session)` at commit, before anything is written (once per key):
    it may defer writes of what the transaction changed last."""
    _deferred(session).preparers.setdefault(key, prepare)


def _tables_in_order(deferred: _Deferred) -> list[Table]:
    """Parents first: foreign keys on SQLite are checked per statement."""
    return [table for table in Base.metadata.sorted_tables if table in deferred.rows]


@event.listens_for(Session, "before_commit")
def write_deferred(session: Session) -> None:
    """Send what waits for the commit now (the commit does it anyway)."""
    deferred = session.info.get(_KEY)
    if deferred is None:
        return
    for prepare in deferred.preparers.values():
        prepare(session)  # may defer more writes
    session.info.pop(_KEY)
    session.flush()
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        # A table's rows in one executemany, then the other statements in order.
        for table in _tables_in_order(deferred):
            connection.execute(insert(table), deferred.rows[table])
        for statement in deferred.statements:
            connection.execute(statement)
        return
    # One round trip: PostgreSQL runs every data-modifying CTE once, whether or not it
    # is referred to, and checks foreign keys at the end of the whole statement.
    ctes = [cte for table in _tables_in_order(deferred) for cte in _chained(table, deferred.rows)]
    main: Any = select(literal(1))  # when only rows wait
    if deferred.statements:
        *leading, main = deferred.statements
        ctes += [statement.cte() for statement in leading]
    for cte in ctes:
        main = main.add_cte(cte)
    connection.execute(main)


def _chained(table: Table, rows_of: dict[Table, list[dict[str, Any]]]) -> list[CTE]:
    """A table's rows as single-row INSERT CTEs, each selecting from the one before:
    sibling CTEs run in no set order, and ids must follow the rows' order (a transcript
    is read by id); a multi-VALUES INSERT would keep the order but SQLAlchemy cannot
    cache it, so it would be compiled at every commit."""
    ctes: list[CTE] = []
    for row in rows_of[table]:
        if not ctes:
            statement = insert(table).values(row)
        else:
            values = select(*(literal(value, table.c[key].type) for key, value in row.items()))
            statement = insert(table).from_select(list(row), values.select_from(ctes[-1]))
        ctes.append(statement.returning(literal(1).label("done")).cte())
    return ctes


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_KEY, None)
