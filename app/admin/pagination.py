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
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        sort_value, tiebreak = json.loads(base64.urlsafe_b64decode(padded))
        if _is_datetime(order.column):
            sort_value = datetime.fromisoformat(sort_value)
            if sort_value.tzinfo is None:
                raise ValueError("naive datetime in cursor")
        if not isinstance(tiebreak, int | str):
            raise ValueError("bad tie-breaker")
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid cursor", "invalid_cursor") from exc
    return sort_value, tiebreak


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
