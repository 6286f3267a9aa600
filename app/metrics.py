"""Prometheus metrics: requests and latency (by route template, never by raw path),
webhook outcomes, bookings, rate-limit refusals, calendar errors; served on /metrics.

The collectors live in the process-wide default registry, created once at import, so
every app built in one process (tests build many) counts into the same series.
"""

from __future__ import annotations

import os
from typing import Any, cast

from fastapi import APIRouter
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.responses import Response
from starlette.types import Scope

from app import commit_writes
from app.models import Appointment, AuditEntry

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
CALENDAR_ERRORS = Counter("sched_calendar_errors_total", "External calendar failures", ["kind"])
LLM_TURNS = Counter(
    "sched_llm_turns_total", "LLM engine turns by who answered", ["channel", "answered_by"]
)
LLM_FALLBACKS = Counter(
    "sched_llm_fallbacks_total", "LLM turns answered by the offline engine", ["reason"]
)
LLM_TOKENS = Counter("sched_llm_tokens_total", "Model tokens used", ["kind"])
LLM_MODEL_LATENCY = Histogram(
    "sched_llm_model_seconds",
    "Model time within one turn (all requests of its tool loop)",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0),
)


# Set (by `serve --workers N`, or by the deployment) before prometheus_client is imported:
# each process then writes its samples to files there, and any process serves the sum.
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _registry() -> CollectorRegistry:
    if not os.environ.get(MULTIPROCESS_DIR_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped __init__ upstream
    return registry


@router.get(PATH, include_in_schema=False)
def metrics() -> Response:
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


# Each series' child, found by its label values: `labels()` checks and joins the values
# under the metric's lock on every call, for a handful of series that never go away.
_request_series: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    """One HTTP request, by method, route template (after routing) and status."""
    key = (scope.get("method", ""), getattr(scope.get("route"), "path", "unmatched"), status)
    series = _request_series.get(key)
    if series is None:
        method, route, _ = key
        series = REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)
        _request_series[key] = series
    count, latency = series
    count.inc()
    latency.observe(seconds)


def observe_engine_turn(meta: dict[str, Any]) -> None:
    """One LLM engine turn (app/agent/turn_log.py): tokens and model time were spent
    whether or not the turn's transaction commits, so they count at once."""
    channel = str(meta.get("channel", "unknown"))
    fallback = meta.get("fallback")
    LLM_TURNS.labels(channel, str(meta.get("answered_by", "model"))).inc()
    if fallback:
        LLM_FALLBACKS.labels(str(fallback)).inc()
    usage = meta.get("usage") or {}
    for kind in ("prompt", "completion"):
        if usage.get(kind):
            LLM_TOKENS.labels(kind).inc(int(usage[kind]))
    if meta.get("model_ms") is not None:
        LLM_MODEL_LATENCY.labels(channel).observe(float(meta["model_ms"]) / 1000)


# --- domain counters, read off what the rooms already record --------------------------
# Every booking, webhook outcome and webhook rate-limit refusal is audit-logged by the
# room that handles it; counting committed audit entries keeps metrics out of those
# rooms and counts only work that really happened (a rolled-back booking is not one).
_SEEN_KEY = "metrics_audit_entries"


def _count(action: str, actor: str, details: dict[str, Any] | None) -> None:
    details = details or {}
    if action.startswith("appointment."):
        _series(BOOKINGS, str(details.get("channel", "unknown")), action.split(".", 1)[1]).inc()
    elif action in ("webhook.accepted", "webhook.rejected"):
        _series(WEBHOOK_OUTCOMES, actor.split(":")[0], action.split(".", 1)[1]).inc()
    elif action == "routing.failed":
        _series(WEBHOOK_OUTCOMES, actor.split(":")[0], "unrouted").inc()
    elif action == "ratelimit.refused":
        _series(RATE_LIMIT_REFUSALS, f"webhook_{details.get('channel', 'unknown')}").inc()
    elif action == "calendar.needs_reconsent":
        _series(CALENDAR_ERRORS, "needs_reconsent").inc()


# The domain counters' children by label values, as `_request_series` keeps the request
# metrics': the metric keeps every child it made anyway, so this holds no more series.
_domain_series: dict[tuple[Any, tuple[str, ...]], Any] = {}


def _series(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, looked up once per metric and label values."""
    key = (metric, values)
    found = _domain_series.get(key)
    if found is None:
        found = _domain_series[key] = metric.labels(*values)
    return found


def _seen(session: Session) -> list[tuple[str, str, dict[str, Any] | None]]:
    return cast(
        list[tuple[str, str, dict[str, Any] | None]], session.info.setdefault(_SEEN_KEY, [])
    )


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context: Any) -> None:
    new = [obj for obj in session.new if isinstance(obj, AuditEntry)]
    if new:
        _seen(session).extend((entry.action, entry.actor, entry.details) for entry in new)


# Most entries are not ORM objects: audit.record queues them as rows written with the
# transaction's last writes (app/commit_writes.py), which the commit sends in its own
# before_commit listener. This one is inserted ahead of it, so the rows are still queued.
@event.listens_for(Session, "before_commit", insert=True)
def _collect_queued(session: Session) -> None:
    queued = commit_writes.rows_waiting(session, AuditEntry.__table__)
    if queued:
        _seen(session).extend((row["action"], row["actor"], row["details"]) for row in queued)


@event.listens_for(Session, "after_commit")
def _publish(session: Session) -> None:
    for action, actor, details in session.info.pop(_SEEN_KEY, ()):
        _count(action, actor, details)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_SEEN_KEY, None)


# A write-through that failed leaves the appointment "pending"; a failed sync retry
# records its error. Both are the calendar failing, whichever backend it was.
@event.listens_for(Appointment.sync_status, "set")
def _sync_status_set(_target: Any, value: str, old: Any, _initiator: Any) -> None:
    if value == "pending" and old != "pending":
        CALENDAR_ERRORS.labels("write_failed").inc()


@event.listens_for(Appointment.last_sync_error, "set")
def _sync_error_set(_target: Any, value: str | None, _old: Any, _initiator: Any) -> None:
    if value:
        CALENDAR_ERRORS.labels("sync_retry_failed").inc()
