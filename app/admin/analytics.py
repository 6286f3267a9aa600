"""Analytics: traffic, bookings per agent and conversion per channel over a range of UTC
days (computed in SQL by app/admin/analytics_service.py)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from app.admin import analytics_service
from app.admin import schemas as s
from app.admin.analytics_service import Granularity
from app.admin.auth import ReadOnly
from app.admin.errors import ApiError
from app.admin.params import Day
from app.deps import ServicesDep, SessionDep

router = APIRouter()
MAX_DAYS = {"day": 366, "hour": 31}


@router.get(
    "/analytics",
    response_model=s.Analytics,
    summary="Traffic, bookings per agent and conversion per channel",
    description="`since`/`until` are UTC days, both included (default: the last 30 days). "
    "Calls are voice and VAPI conversations by start; messages are SMS in both directions. "
    "Conversion: share of conversations that led to at least one booking.",
)
def analytics(
    services: ServicesDep,
    principal: ReadOnly,
    session: SessionDep,
    since: Day | None = None,
    until: Day | None = None,
    granularity: Granularity = "day",
    agent_id: Annotated[str | None, Query(max_length=32)] = None,
) -> s.Analytics:
    today = services.clock().astimezone(UTC).date()
    until = until or today
    since = since or until - timedelta(days=29)
    if since > until:
        raise ApiError(422, "since is after until")
    if (until - since).days + 1 > MAX_DAYS[granularity]:
        raise ApiError(422, f"at most {MAX_DAYS[granularity]} days by {granularity}")
    start = datetime.combine(since, time(0), UTC)
    end = datetime.combine(until + timedelta(days=1), time(0), UTC)
    agent_ids = analytics_service.agent_scope(principal.user_id, agent_id)
    return s.Analytics(
        since=since,
        until=until,
        granularity=granularity,
        traffic=analytics_service.traffic(session, start, end, granularity, agent_ids),
        bookings_per_agent=analytics_service.bookings_per_agent(session, start, end, agent_ids),
        conversion_per_channel=analytics_service.conversion_per_channel(
            session, start, end, agent_ids
        ),
    )
