"""A transaction's last writes, sent together when the session commits.

A turn ends with writes nothing reads back before the commit: its messages, its
conversation's row, its audit entries, the event's stored response. They wait on the
session and go out just before COMMIT: on PostgreSQL as one statement (the others as
data-modifying CTEs of the last), on SQLite one executemany per table (it has no INSERT
in a CTE). They belong to the transaction like any write: a rollback drops them, and
the ORM's own pending changes are flushed first, so a deferred row may refer to any row
the ORM added.

The statements are built once per shape (which tables, columns and how many rows) and
kept: a turn's commit then costs neither statement construction nor SQLAlchemy's cache
key generation, only the parameters, which is most of what a commit used to cost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import CTE, Column, Table, bindparam, event, insert, literal, select, update
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.sql.dml import Insert, Update, UpdateBase

from app import sql_fast
from app.db import Base

_KEY = "commit_writes"
# Shapes seen by one process are few (a turn writes the same tables every time); the
# bound only guards against an unforeseen stream of new shapes.
_MAX_SHAPES = 512


@dataclass(frozen=True)
class _RowUpdate:
    """UPDATE one row of `table`, found by `key_column`, setting `columns`."""

    table: Table
    key_column: str
    columns: tuple[str, ...]
    key_value: Any
    values: tuple[Any, ...]


@dataclass
class _Deferred:
    rows: dict[Table, list[dict[str, Any]]] = field(default_factory=dict)
    # In order: _RowUpdate (built per shape and kept) or any UPDATE/DELETE built by the
    # caller (sent as given).
    statements: list[_RowUpdate | UpdateBase] = field(default_factory=list)
    # Called at commit, before the ORM's flush: the last moment an object's final
    # values are known, to turn them into deferred writes.
    preparers: dict[Any, Callable[[Session], None]] = field(default_factory=dict)


def _deferred(session: Session) -> _Deferred:
    found = session.info.get(_KEY)
    if found is None:
        # Begin the transaction now, so a rollback of it also drops these writes (the
        # rollback or the commit removes them: while they wait, it has begun). A turn
        # has begun it already, and asking for its connection again walks the session's
        # transaction machinery for nothing.
        if not session.in_transaction():
            session.connection()
        found = session.info[_KEY] = _Deferred()
    return cast(_Deferred, found)


def insert_row(session: Session, table: Any, row: dict[str, Any]) -> None:
    """INSERT `row` at commit; every row of a table must name the same columns."""
    _deferred(session).rows.setdefault(table, []).append(row)


def update_row(session: Session, table: Any, key: tuple[str, Any], values: dict[str, Any]) -> None:
    """UPDATE the row of `table` whose column `key[0]` is `key[1]`, setting `values`, at
    commit after the deferred INSERTs."""
    _deferred(session).statements.append(
        _RowUpdate(table, key[0], tuple(values), key[1], tuple(values.values()))
    )


def run_at_commit(session: Session, statement: UpdateBase) -> None:
    """Run `statement` (an UPDATE or DELETE, nothing returned) at commit, after the
    deferred INSERTs. Prefer `update_row`, whose statement is built once."""
    _deferred(session).statements.append(statement)


def prepare_at_commit(session: Session, key: Any, prepare: Callable[[Session], None]) -> None:
    """Call `prepare(session)` at commit, before anything is written (once per key):
    it may defer writes of what the transaction changed last."""
    _deferred(session).preparers.setdefault(key, prepare)


def waiting_values(session: Session, table: Any) -> list[dict[str, Any]]:
    """What the writes of `table` waiting for this session's commit will write: each
    INSERT's row and each `update_row`'s values (with the key), in order. For checks of
    a transaction's effects before it commits; nothing is sent."""
    deferred = session.info.get(_KEY)
    if deferred is None:
        return []
    found = [dict(row) for row in deferred.rows.get(table, [])]
    for change in deferred.statements:
        if isinstance(change, _RowUpdate) and change.table is table:
            values = dict(zip(change.columns, change.values, strict=True))
            found.append({**values, change.key_column: change.key_value})
    return found


def rows_waiting(session: Session, table: Any) -> list[dict[str, Any]]:
    """The rows of `table` this session will INSERT at commit, as queued (not copies:
    read them, do not change them). Empty once the commit has sent them."""
    deferred = session.info.get(_KEY)
    if deferred is None:
        return []
    return cast(_Deferred, deferred).rows.get(table, [])


_table_order: dict[Table, int] = {}


def _tables_in_order(deferred: _Deferred) -> list[Table]:
    """Parents first: foreign keys on SQLite are checked per statement. The metadata's
    order is computed once per process (again only if a table appears that it lacks)."""
    global _table_order
    order = _table_order
    if any(table not in order for table in deferred.rows):
        # A new dict swapped in whole: another thread's commit may be sorting by the old.
        order = {table: n for n, table in enumerate(Base.metadata.sorted_tables)}
        _table_order = order
    return sorted(deferred.rows, key=lambda table: order.get(table, len(order)))


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
    tables = _tables_in_order(deferred)
    if connection.dialect.name != "postgresql":
        # A table's rows in one executemany, then the other statements in order.
        # The kept statements compiled once, sent on the cursor (app/sql_fast.py).
        for table in tables:
            sql_fast.execute_many(connection, _insert_of(table), deferred.rows[table])
        for statement in deferred.statements:
            if isinstance(statement, _RowUpdate):
                params = _update_params(statement, "")
                sql_fast.execute(connection, _update_of(statement, ""), params)
            else:
                connection.execute(statement)
        return
    shape = _shape(tables, deferred)
    if shape is None:  # built for this commit: SQLAlchemy compiles it as any other
        connection.execute(_combine(tables, deferred), _params(tables, deferred))
        return
    found = _combined.get(shape)
    if found is None:
        if len(_combined) >= _MAX_SHAPES:
            _combined.clear()
        names = _param_names(shape)
        found = _combined[shape] = (_combine(tables, deferred), names, tuple(sorted(names)))
    combined, names, sorted_names = found
    params = dict(zip(names, _values(shape, deferred), strict=True))
    sql_fast.execute(connection, combined, params, sorted_keys=sorted_names)


# --- statements, built once per shape --------------------------------------------------

_inserts: dict[Table, Insert] = {}
_updates: dict[tuple[Table, str, tuple[str, ...], str], Update] = {}
# Per shape: the combined statement, its parameters' names in `_values`' order, and
# sorted (what the statement is compiled for, as Connection.execute would).
_combined: dict[tuple[Any, ...], Any] = {}


def _insert_of(table: Table) -> Insert:
    found = _inserts.get(table)
    if found is None:
        found = _inserts[table] = insert(table)
    return found


def _update_of(change: _RowUpdate, prefix: str) -> Update:
    """The UPDATE of `change`'s shape; its parameters are named `prefix` + column
    (`prefix` + "key" for the row's key), so several can share one statement."""
    shape = (change.table, change.key_column, change.columns, prefix)
    found = _updates.get(shape)
    if found is None:
        table = change.table
        found = _updates[shape] = (
            update(table)
            .where(table.c[change.key_column] == _bound(f"{prefix}key", table.c[change.key_column]))
            .values({name: _bound(prefix + name, table.c[name]) for name in change.columns})
        )
    return found


def _update_params(change: _RowUpdate, prefix: str) -> dict[str, Any]:
    params = {
        prefix + name: value for name, value in zip(change.columns, change.values, strict=True)
    }
    params[f"{prefix}key"] = change.key_value
    return params


def _bound(name: str, column: Column[Any]) -> Any:
    return bindparam(name, type_=column.type)


def _shape(tables: list[Table], deferred: _Deferred) -> tuple[Any, ...] | None:
    """What decides the combined statement's text; None when it cannot be kept (a
    statement the caller built carries its own values)."""
    parts: list[Any] = []
    for table in tables:
        rows = deferred.rows[table]
        columns = tuple(rows[0])
        if any(row.keys() != rows[0].keys() for row in rows):
            raise ValueError(f"rows deferred for {table.name} name different columns")
        parts.append((table, columns, len(rows)))
    for statement in deferred.statements:
        if not isinstance(statement, _RowUpdate):
            return None
        parts.append((statement.table, statement.key_column, statement.columns))
    return tuple(parts)


def _row_param(table: Table, index: int, column: str) -> str:
    return f"{table.name}_{index}_{column}"


def _params(tables: list[Table], deferred: _Deferred) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for table in tables:
        for index, row in enumerate(deferred.rows[table]):
            for column, value in row.items():
                params[_row_param(table, index, column)] = value
    for number, statement in enumerate(deferred.statements):
        if isinstance(statement, _RowUpdate):
            params.update(_update_params(statement, f"u{number}_"))
    return params


def _param_names(shape: tuple[Any, ...]) -> tuple[str, ...]:
    """The combined statement's parameter names, in `_values`'s order (`_params`'s
    names, made once per shape instead of formatted per value at each commit)."""
    names: list[str] = []
    updates = 0
    for part in shape:
        if len(part) == 3 and isinstance(part[2], int):  # (table, columns, rows)
            table, columns, count = part
            names += [_row_param(table, i, column) for i in range(count) for column in columns]
        else:  # (table, key column, columns) of an update_row
            prefix = f"u{updates}_"
            names += [prefix + column for column in part[2]] + [f"{prefix}key"]
            updates += 1
    return tuple(names)


def _values(shape: tuple[Any, ...], deferred: _Deferred) -> list[Any]:
    """The values of every deferred row and update, in the order of `_param_names`."""
    values: list[Any] = []
    for part in shape:
        if len(part) == 3 and isinstance(part[2], int):
            columns = part[1]
            values += [row[column] for row in deferred.rows[part[0]] for column in columns]
    for change in deferred.statements:
        values += cast(_RowUpdate, change).values
        values.append(cast(_RowUpdate, change).key_value)
    return values


def _combine(tables: list[Table], deferred: _Deferred) -> Any:
    """One statement: PostgreSQL runs every data-modifying CTE once, whether or not it
    is referred to, and checks foreign keys at the end of the whole statement."""
    ctes = [cte for table in tables for cte in _chained(table, deferred.rows[table])]
    statements: list[UpdateBase] = [
        _update_of(statement, f"u{number}_") if isinstance(statement, _RowUpdate) else statement
        for number, statement in enumerate(deferred.statements)
    ]
    main: Any = select(literal(1))  # when only rows wait
    if statements:
        *leading, main = statements
        ctes += [statement.cte() for statement in leading]
    for cte in ctes:
        main = main.add_cte(cte)
    return main


def _chained(table: Table, rows: list[dict[str, Any]]) -> list[CTE]:
    """A table's rows as single-row INSERT CTEs, each selecting from the one before:
    sibling CTEs run in no set order, and ids must follow the rows' order (a transcript
    is read by id); a multi-VALUES INSERT would keep the order but SQLAlchemy cannot
    cache it."""
    columns = list(rows[0])
    ctes: list[CTE] = []
    for index in range(len(rows)):
        values = [_bound(_row_param(table, index, name), table.c[name]) for name in columns]
        if not ctes:
            statement = insert(table).values(dict(zip(columns, values, strict=True)))
        else:
            statement = insert(table).from_select(columns, select(*values).select_from(ctes[-1]))
        ctes.append(statement.returning(literal(1).label("done")).cte())
    return ctes


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_KEY, None)


@event.listens_for(Session, "after_transaction_end")
def _drop_at_end(session: Session, transaction: SessionTransaction) -> None:
    # close() ends the transaction without an after_rollback: what waited for its
    # commit must not be written by the session's next one.
    if transaction.parent is None:
        session.info.pop(_KEY, None)
