"""Keyset pagination: stable at any depth, unlike OFFSET, which rescans skipped rows.

Every list is ordered by a sort column plus the primary key as a tie-breaker. The
opaque `cursor` of a page names the last row returned; the next page starts strictly
after it, so rows inserted meanwhile neither repeat nor vanish between pages.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import DateTime, Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.admin.errors import ApiError
from app.admin.params import in_utc
from app.db import UTCDateTime

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    # Pass as ?cursor= to get the next page; null on the last page.
    next_cursor: str | None
    limit: int


@dataclass(frozen=True)
class Order:
    column: InstrumentedAttribute[Any]
    tiebreak: InstrumentedAttribute[Any]
    descending: bool = False


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> tuple[Any, Any]:
    """The (sort value, tie-breaker) a cursor names, each of its column's exact type.

    A cursor comes back from the client, so it is checked as input: a list, a huge
    integer or a string where the column holds integers would otherwise reach the
    database (PostgreSQL refuses to compare text with integer: a 500)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(decoded, list) or len(decoded) != 2:
            raise ValueError("a cursor holds two values")
        return _typed(decoded[0], order.column), _typed(decoded[1], order.tiebreak)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ApiError(400, "invalid cursor", "invalid_cursor") from exc


# The range of the BIGINT/INTEGER ids both databases store.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1


def _typed(value: Any, column: InstrumentedAttribute[Any]) -> Any:
    if _is_datetime(column):
        if not isinstance(value, str):
            raise ValueError("not a timestamp")
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("naive datetime in cursor")
        return in_utc(moment)
    if column.type.python_type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("not an integer")
        if not MIN_INT <= value <= MAX_INT:
            raise ValueError("integer out of range")
        return value
    if not isinstance(value, str) or len(value) > 256:
        raise ValueError("not a short string")
    return value


def _is_datetime(column: InstrumentedAttribute[Any]) -> bool:
    kind = column.type
    return isinstance(kind, DateTime | UTCDateTime)


def paginate(
    session: Session, query: Select[Any], order: Order, cursor: str | None, limit: int
) -> tuple[list[Any], str | None]:
    """One page of `query` (a select of one entity) and the cursor of the next page."""
    if cursor:
        value, tiebreak = decode_cursor(cursor, order)
        # A row-value comparison, not (a > x OR a = x AND b > y): PostgreSQL turns it
        # into one index range scan; SQLite understands it too.
        key = tuple_(order.column, order.tiebreak)
        query = query.where(
            key < (value, tiebreak) if order.descending else key > (value, tiebreak)
        )
    if order.descending:
        query = query.order_by(order.column.desc(), order.tiebreak.desc())
    else:
        query = query.order_by(order.column, order.tiebreak)
    rows = list(session.scalars(query.limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    values = (getattr(last, order.column.key), getattr(last, order.tiebreak.key))
    return rows, encode_cursor(values)
