"""psycopg's cursor with a description made only when read.

psycopg builds `cursor.description` anew at each access: a Column object per result
column, each decoding its name and looking up its type. SQLAlchemy asks for it after
every statement but, for a statement it compiled before (all of a turn's), only checks
that there is one: its result metadata is cached with the compiled statement. A turn's
reads return some sixty columns (the conversation, its appointments, the routing row's
agent), so that was a visible share of a PostgreSQL turn's CPU. Here the description is
a sequence that makes its columns the first time one is read, from the result it was
taken from.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import psycopg
from psycopg import Column, _queries, pq

_HAS_TUPLES = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.SINGLE_TUPLE, pq.ExecStatus.TUPLES_CHUNK)

# psycopg turns a statement's text into PostgreSQL's ($1, $2, ...) by a regex scan that
# it memoises (a pure function of the text and encoding, in an LRU of 128) only for a
# statement under 4 kB with at most 50 parameters, a guard against ORM multi-row INSERTs
# of ever new shapes. The last writes' combined statement (app/commit_writes.py) is built
# once per shape but has more: a VAPI booking's, with its notifications, is ~4.8 kB with
# 79, and was scanned again at every commit (~1.5M instructions). Larger bounds keep
# such statements in the cache; the LRU's size still bounds what it holds.
_queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, 16 * 1024)
_queries.MAX_CACHED_STATEMENT_PARAMS = max(_queries.MAX_CACHED_STATEMENT_PARAMS, 400)


class LazyDescription(Sequence[Column]):
    """The columns of one result, made when first read."""

    __slots__ = ("_columns", "_count", "_cursor", "_result")

    def __init__(self, cursor: psycopg.Cursor[Any], result: pq.abc.PGresult) -> None:
        self._cursor = cursor
        self._result = result
        self._count = result.nfields
        self._columns: list[Column] | None = None

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Column: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Column]: ...

    def __getitem__(self, index: int | slice) -> Column | Sequence[Column]:
        return self._made()[index]

    def __iter__(self) -> Iterator[Column]:
        return iter(self._made())

    def __repr__(self) -> str:
        return repr(self._made())

    def _made(self) -> list[Column]:
        if self._columns is None:
            # A Column reads the cursor's current result: it must still be this one.
            if self._cursor.pgresult is not self._result:
                raise psycopg.InterfaceError("the cursor has moved on to another result")
            self._columns = [Column(self._cursor, index) for index in range(self._count)]
        return self._columns


class LazyDescriptionCursor(psycopg.Cursor[Any]):
    """psycopg's Cursor whose `description` makes its columns when read."""

    @property
    def description(self) -> LazyDescription | None:  # type: ignore[override]
        result = self.pgresult
        # As psycopg's: columns when the result has fields or says it returned tuples.
        if result is not None and (result.nfields or result.status in _HAS_TUPLES):
            return LazyDescription(self, result)
        return None
