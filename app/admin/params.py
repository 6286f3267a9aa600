"""Query parameters with bounds, checked at the edge.

Dates and moments far from anything the service stores (year 1, year 9999, offsets that
push a moment past the calendar's ends) used to reach arithmetic and the database and
come back as 500s. Here they are refused with the admin API's validation envelope.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

# Wide enough for any booking, report or audit query; far from datetime's own ends, so a
# day plus one, or a moment moved into UTC, never overflows.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2199, 12, 31)


def in_utc(moment: datetime) -> datetime:
    """The moment in UTC (naive means UTC), refused outside FIRST_DAY..LAST_DAY."""
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("the moment is out of range") from None
    if not FIRST_DAY <= utc.date() <= LAST_DAY:
        raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
    return utc


Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
Moment = Annotated[datetime, AfterValidator(in_utc)]
