"""How a hot statement reaches the driver: compiled once, sent on the session's cursor.

`Connection.execute` pays, for every statement, SQLAlchemy's execution context: the
compiled-cache lookup, `construct_params` over every bind, the bind processors, the
cursor's result metadata and a Row per fetched row through the result's processors. A
turn's hot statements are module constants whose SQL never changes, so here each is
compiled once per dialect into what that machinery would hand the driver (the SQL text,
the order of its parameters, their bind processors and Python-side defaults) and what
it would make of the rows (the columns' names and result processors), and executed on
the DBAPI cursor of the connection's current transaction: the session's, so the SQLite
writer lock taken at BEGIN and PostgreSQL's transaction are the same as before, and the
statement commits or rolls back with the rest of the turn.

What is kept from `Connection.execute`: the same SQL and parameters (tests compare both
ways), `before_cursor_execute`/`after_cursor_execute` events (the round-trip counter),
errors wrapped as SQLAlchemy's `DBAPIError`s with a dropped connection invalidated, and
rows answering attribute access by column label, index access and unpacking.

A statement this path cannot reproduce exactly (expanding or literal-execute
parameters, a schema translate map, callable defaults that read the execution context,
duplicate result labels) is refused when compiled, not approximated.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import BindTyping
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util import get_callable_argspec

Processor = Callable[[Any], Any]
_NO_VALUE = object()


class Unsupported(InvalidRequestError):
    """The statement needs part of SQLAlchemy's execution machinery this path lacks."""


@dataclass(frozen=True, slots=True)
class _Bind:
    """Where one driver parameter's value comes from."""

    driver_key: str  # the key in the driver's dict (named paramstyle)
    key: str  # the bind parameter's key in the caller's params
    name: str  # its compiled name (SQLAlchemy also looks this up)
    fixed: Any  # the statement's own value (literals), _NO_VALUE when required
    processor: Processor | None


@dataclass(frozen=True, slots=True)
class _Default:
    """A column's Python-side default, computed per row as SQLAlchemy's prefetch does."""

    name: str
    value: Any
    call: Callable[[], Any] | None


class Compiled:
    """One statement compiled for one dialect: what the driver gets, what rows become."""

    def __init__(self, compiled: SQLCompiler, dialect: Dialect) -> None:
        _refuse_unsupported(compiled, dialect)
        self.compiled = compiled
        self.sql: str = compiled.string
        self.positional: bool = compiled.positional
        self.defaults = _defaults_of(compiled)
        self.binds = _binds_of(compiled, {default.name for default in self.defaults})
        self._gather = _gatherer(self.binds, self.positional)
        self.result_types = [entry[3] for entry in compiled._result_columns]
        self.labels = [entry[0] for entry in compiled._result_columns]
        self.dialect = dialect
        # Made at the first fetch, from the cursor's description (as SQLAlchemy's
        # result metadata, cached with its compiled statement, is).
        self.row_maker: Callable[[Sequence[Any]], Any] | None = None
        if len(set(self.labels)) != len(self.labels):
            raise Unsupported(f"duplicate result labels {self.labels}")

    def parameters(self, params: Mapping[str, Any]) -> Any:
        """The driver's parameters for one execution, as `_init_compiled` builds them."""
        values = _with_defaults(params, self.defaults)
        try:
            return self._gather(values)
        except KeyError:  # a value given under the compiled name, or none: the rules
            return self._parameters_by_rule(values)

    def _parameters_by_rule(self, values: Mapping[str, Any]) -> Any:
        if self.positional:
            return tuple(_value(bind, values) for bind in self.binds)
        return {bind.driver_key: _value(bind, values) for bind in self.binds}

    def rows(self, cursor: Any) -> list[Any]:
        description = cursor.description
        if description is None:
            return []
        fetched = cursor.fetchall()
        make = self.row_maker
        if make is None:
            make = self.row_maker = self._row_maker(description)
        return list(map(make, fetched))

    def _row_maker(self, description: Sequence[Any]) -> Callable[[Sequence[Any]], Any]:
        if len(description) != len(self.labels):
            raise Unsupported("the cursor's columns do not match the compiled statement's")
        processors = [
            kind._cached_result_processor(self.dialect, column[1])
            for kind, column in zip(self.result_types, description, strict=True)
        ]
        return _maker(_row_type(tuple(self.labels)), processors)


def _maker(row_type: type[Any], processors: Sequence[Processor | None]) -> Callable[..., Any]:
    """The named tuple of a fetched row, each value through its column's result
    processor. A row is as wide as the description, checked once against the
    statement's columns, so `_make`'s length check is left to that; and only the columns
    that have a processor are visited (a few of a wide row: its datetimes and JSON)."""
    processed = [(index, p) for index, p in enumerate(processors) if p is not None]
    new = tuple.__new__
    if not processed:
        return partial(new, row_type)

    def make(row: Sequence[Any]) -> Any:
        values = list(row)
        for index, processor in processed:
            values[index] = processor(values[index])
        return new(row_type, values)

    return make


_row_types: dict[tuple[str, ...], type[Any]] = {}


def _row_type(labels: tuple[str, ...]) -> type[Any]:
    """A named tuple per column list: attribute access by label, index access, unpacking."""
    found = _row_types.get(labels)
    if found is not None:
        return found
    try:
        made: type[Any] = namedtuple("FastRow", labels)  # type: ignore[misc]
    except ValueError as error:  # a label that is no Python name
        raise Unsupported(str(error)) from error
    _row_types[labels] = made
    return made


def _refuse_unsupported(compiled: SQLCompiler, dialect: Dialect) -> None:
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise Unsupported("expanding or literal-execute parameters are rendered per execution")
    if compiled.schema_translate_map:
        raise Unsupported("a schema translate map is applied per execution")
    if dialect.bind_typing is BindTyping.SETINPUTSIZES:
        raise Unsupported("the dialect sets input sizes per execution")


def _binds_of(compiled: SQLCompiler, defaulted: set[str]) -> tuple[_Bind, ...]:
    names = compiled.bind_names
    by_name = {name: bind for bind, name in names.items()}
    order = compiled.positiontup if compiled.positional else list(names.values())
    if order is None:
        raise Unsupported("a positional statement without its parameter order")
    escaped = compiled.escaped_bind_names
    processors = compiled._bind_processors
    binds = []
    for name in order:
        bind = by_name[name]
        if bind.callable is not None:
            raise Unsupported(f"the value of {bind.key!r} is computed per execution")
        fixed = _NO_VALUE if bind.required and name not in defaulted else bind.effective_value
        binds.append(
            _Bind(escaped.get(name, name), bind.key, name, fixed, processors.get(name))  # type: ignore[arg-type]
        )
    return tuple(binds)


def _defaults_of(compiled: SQLCompiler) -> tuple[_Default, ...]:
    columns = compiled.insert_prefetch or compiled.update_prefetch
    if not columns:
        return ()
    key_of = compiled._within_exec_param_key_getter
    is_insert = bool(compiled.insert_prefetch)
    found = []
    for column in columns:
        default = column.default if is_insert else column.onupdate
        if default is None or not (default.is_scalar or default.is_callable):
            raise Unsupported(f"the default of {column} is not a Python value")
        call = _context_free(default.arg) if default.is_callable else None  # type: ignore[attr-defined]
        found.append(_Default(key_of(column), default.arg, call))  # type: ignore[attr-defined]
    return tuple(found)


def _context_free(wrapped: Any) -> Callable[[], Any]:
    """The zero-argument function SQLAlchemy wrapped (it passes the execution context
    to the wrapper, which drops it); a default that reads the context is refused."""
    original = getattr(wrapped, "__wrapped__", None)
    if original is None or _positionals(original) != 0:
        raise Unsupported(f"the default {wrapped!r} reads the execution context")
    return cast(Callable[[], Any], original)


def _positionals(function: Callable[..., Any]) -> int:
    spec = get_callable_argspec(function, no_self=True)
    return len(spec[0]) - len(spec[3] or ())


def _with_defaults(params: Mapping[str, Any], defaults: tuple[_Default, ...]) -> Mapping[str, Any]:
    if not defaults:
        return params
    values = dict(params)
    for default in defaults:
        values[default.name] = default.value if default.call is None else default.call()
    return values


def _value(bind: _Bind, params: Mapping[str, Any]) -> Any:
    # As construct_params: the bind's key, then its compiled name, then its own value.
    value = params.get(bind.key, _NO_VALUE)
    if value is _NO_VALUE:
        value = params.get(bind.name, bind.fixed)
        if value is _NO_VALUE:
            raise InvalidRequestError(f"A value is required for bind parameter {bind.key!r}")
    return value if bind.processor is None else bind.processor(value)


def _gatherer(binds: tuple[_Bind, ...], positional: bool) -> Callable[[Mapping[str, Any]], Any]:
    """One expression that builds the driver's parameters: a statement of the last
    writes has a hundred or more, and a call of `_value` for each was most of their
    cost. Each value is looked up by its key as `_value` does first; a key that is
    missing raises KeyError, and the caller then applies `_value`'s rules in full (the
    compiled name, the statement's own value, the error)."""
    names: dict[str, Any] = {}
    parts = []
    for number, bind in enumerate(binds):
        if bind.fixed is _NO_VALUE:
            found = f"p[{bind.key!r}]"
        else:
            names[f"f{number}"] = bind.fixed
            found = f"p.get({bind.key!r}, f{number})"
            if bind.key != bind.name:
                # A value of its own (a literal's) under another name: as `_value`, the
                # key, then the compiled name, then its own value.
                found = f"p.get({bind.key!r}, p.get({bind.name!r}, f{number}))"
        if bind.processor is not None:
            names[f"c{number}"] = bind.processor
            found = f"c{number}({found})"
        parts.append(found if positional else f"{bind.driver_key!r}: {found}")
    listed = "".join(f"{part}, " for part in parts)
    body = f"({listed})" if positional else f"{{{listed}}}"
    # Keys enter the source as repr() of their str: no caller text becomes code.
    exec(f"def gather(p):\n    return {body}\n", names)
    return cast(Callable[[Mapping[str, Any]], Any], names["gather"])


# --- compiled once per statement and dialect ----------------------------------------------

# By the statement's id; the entry keeps the statement, so the id is not reused while
# it is there. Hot statements are module constants: the map stays small; it is emptied
# if statements built per use ever fill it.
_MAX_ENTRIES = 2000
_compiled: dict[tuple[Any, ...], tuple[Executable, Compiled]] = {}


def compiled_for(
    statement: Executable, dialect: Dialect, keys: tuple[str, ...] | None, many: bool
) -> Compiled:
    """`statement` compiled for `dialect` as `Connection.execute` would: for an INSERT or
    UPDATE, with the parameters' column keys (sorted) and whether it is an executemany."""
    cache_key = (id(statement), dialect, keys, many)
    found = _compiled.get(cache_key)
    if found is not None and found[0] is statement:
        return found[1]
    compiled = Compiled(
        cast(
            SQLCompiler,
            cast(ClauseElement, statement).compile(
                dialect=dialect,
                column_keys=list(keys) if keys is not None else None,
                for_executemany=many,
            ),
        ),
        dialect,
    )
    if len(_compiled) >= _MAX_ENTRIES:
        _compiled.clear()
    _compiled[cache_key] = (statement, compiled)
    return compiled


# --- execution --------------------------------------------------------------------------


class FastResult:
    """A statement's fetched rows, with the Result methods call sites use."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def all(self) -> list[Any]:
        return self.rows

    def first(self) -> Any | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any | None:
        return self.rows[0][0] if self.rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self.rows]

    def one(self) -> Any:
        if len(self.rows) != 1:
            raise InvalidRequestError(f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def one_or_none(self) -> Any | None:
        if len(self.rows) > 1:
            raise InvalidRequestError(f"expected at most one row, got {len(self.rows)}")
        return self.first()


def execute(
    on: Session | Connection,
    statement: Executable,
    params: Mapping[str, Any] | None = None,
    *,
    sorted_keys: tuple[str, ...] | None = None,
) -> FastResult:
    """`on.execute(statement, params)` for a statement built once: the same SQL and
    rows, in the session's current transaction (a session begins one as it would).
    `sorted_keys`: `tuple(sorted(params))`, when the caller keeps it (a statement whose
    parameters always have the same names: sorting a commit's ~100 names each time is
    what it saves)."""
    connection = on.connection() if isinstance(on, Session) else on
    given = params if params is not None else {}
    keys = None
    if isinstance(statement, UpdateBase):
        keys = sorted_keys if sorted_keys is not None else tuple(sorted(given))
    compiled = compiled_for(statement, connection.dialect, keys, False)
    return _run(connection, compiled, compiled.parameters(given), False)


def read(
    session: Session,
    statement: Executable,
    params: Mapping[str, Any] | None = None,
    *,
    connection: Connection | None = None,
) -> FastResult:
    """`execute` for a read that `session.execute` ran before: first the flush the ORM
    does ahead of a query when autoflush is on (so the rows are what the ORM would see),
    then the statement. `connection`: `session.connection()`, when the caller holds it
    already in this transaction (asking the session again walks its machinery)."""
    if session.autoflush:
        session.flush()
    return execute(session if connection is None else connection, statement, params)


def execute_many(
    on: Session | Connection, statement: Executable, rows: Sequence[Mapping[str, Any]]
) -> FastResult:
    """`on.execute(statement, rows)`: one executemany (a single row is one execute, as in
    SQLAlchemy). Every row names the same columns."""
    if len(rows) == 1:
        return execute(on, statement, rows[0])
    if not rows:
        raise InvalidRequestError("no rows to execute")
    connection = on.connection() if isinstance(on, Session) else on
    keys = tuple(sorted(rows[0])) if isinstance(statement, UpdateBase) else None
    compiled = compiled_for(statement, connection.dialect, keys, True)
    return _run(connection, compiled, [compiled.parameters(row) for row in rows], True)


class ExecutionContext:
    """What cursor and error event listeners get as the execution context: they keep
    their own state on it between before and after (OpenTelemetry's span does), and
    SQLAlchemy's error handling reads whether it was an executemany."""

    def __init__(
        self, connection: Connection, cursor: Any, compiled: Compiled, parameters: Any, many: bool
    ) -> None:
        self.root_connection = connection
        self.dialect = connection.dialect
        self.cursor = cursor
        self.compiled = compiled.compiled
        self.statement = compiled.sql
        self.parameters = parameters
        self.executemany = many

    def handle_dbapi_exception(self, error: BaseException) -> None:
        """As DefaultExecutionContext's: nothing to undo."""


def _send(
    dialect: Dialect, cursor: Any, sql: str, parameters: Any, context: Any, many: bool
) -> None:
    """As the dialect's do_execute(many), after its listeners (one may send it itself)."""
    if dialect._has_events:
        listeners = dialect.dispatch.do_executemany if many else dialect.dispatch.do_execute
        for listener in listeners:
            if listener(cursor, sql, parameters, context):
                return
    if many:
        dialect.do_executemany(cursor, sql, parameters, context)
    else:
        dialect.do_execute(cursor, sql, parameters, context)


# psycopg keeps a cursor's adaptation state (the dumper of each parameter's type, the
# loader of each result column's type) only while that cursor runs the same query again:
# a new cursor per statement, as SQLAlchemy makes, looks every dumper and loader up
# anew. So on PostgreSQL each connection keeps one cursor per compiled statement, used
# again by its next execution. `_run` reads all of a result before it returns, and a
# connection serves one thread at a time, so a kept cursor is idle between its uses; it
# lives and dies with its DBAPI connection (the map is keyed by that very object).
_KEPT = "sql_fast_cursors"
_KEEPS_CURSORS = frozenset({"postgresql"})
_MAX_KEPT = 64


def _cursor_for(connection: Connection, compiled: Compiled, many: bool) -> tuple[Any, bool]:
    """The cursor to run `compiled` on, and whether it is kept (not to be closed)."""
    fairy = connection.connection
    if many or connection.dialect.name not in _KEEPS_CURSORS:
        return fairy.cursor(), False
    dbapi_connection = fairy.dbapi_connection
    kept = fairy.info.get(_KEPT)
    if kept is None or kept[0] is not dbapi_connection:
        kept = fairy.info[_KEPT] = (dbapi_connection, {})
    cursors: dict[Compiled, Any] = kept[1]
    cursor = cursors.get(compiled)
    if cursor is None or cursor.closed:
        if len(cursors) >= _MAX_KEPT:  # statements built per use: start again
            for old in cursors.values():
                old.close()
            cursors.clear()
        cursor = cursors[compiled] = fairy.cursor()
    return cursor, True


def _run(connection: Connection, compiled: Compiled, parameters: Any, many: bool) -> FastResult:
    cursor, kept = _cursor_for(connection, compiled, many)
    sql = compiled.sql
    context = ExecutionContext(connection, cursor, compiled, parameters, many)
    try:
        has_events = connection._has_events or connection.engine._has_events
        if has_events:
            for listener in connection.dispatch.before_cursor_execute:
                sql, parameters = listener(connection, cursor, sql, parameters, context, many)
        _send(connection.dialect, cursor, sql, parameters, context, many)
        if has_events:
            connection.dispatch.after_cursor_execute(
                connection, cursor, sql, parameters, context, many
            )
        rows = compiled.rows(cursor)
        rowcount = cursor.rowcount
        if not kept:
            cursor.close()
    except BaseException as error:
        connection._handle_dbapi_exception(error, sql, parameters, cursor, context)  # type: ignore[arg-type]
        raise  # it raises; this is for the type checker
    return FastResult(rows, rowcount)
