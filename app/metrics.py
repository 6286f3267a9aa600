"""Prometheus metrics: requests and latency (by route template, never by raw path),
webhook outcomes, bookings, rate-limit refusals, calendar errors; served on /metrics.

The collectors live in the process-wide default registry, created once at import, so
every app built in one process (tests build many) counts into the same series.
"""

from __future__ import annotations

import time

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PATH = "/metrics"
router = APIRouter(tags=["health"])

REQUESTS = Counter(
    "sched_http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
LATENCY = Histogram(
    "sched_http_request_duration_seconds",
    "Time to the end of the response",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
WEBHOOK_OUTCOMES = Counter(
    "sched_webhook_outcomes_total", "Webhook deliveries by outcome", ["provider", "outcome"]
)
BOOKINGS = Counter(
    "sched_bookings_total", "Appointment changes by the tools", ["channel", "action"]
)
RATE_LIMIT_REFUSALS = Counter(
    "sched_rate_limit_refusals_total", "Requests refused by a rate limit", ["scope"]
)
CALENDAR_ERRORS = Counter(
    "sched_calendar_errors_total", "Calendar backend calls that failed", ["backend"]
)


@router.get(PATH, include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Counts every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("method", "")
            REQUESTS.labels(method, route, str(status)).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - started)
