"""Push notifications from the owners' calendars: Google channels and Graph subscriptions.

This room knows HTTP and the providers' formats; what a change does lives in
app/calendar/two_way.py. Every notification must carry the secret of its channel
(Google: X-Goog-Channel-Token; Graph: clientState), is rate limited per channel and
claimed once (Google: channel + message number; Graph: the notification's content),
and is answered at once: the sync itself runs after the answer (providers allow a few
seconds), and anything it misses the poll catches. Never a 5xx: a provider retrying
into a failing endpoint only makes more load.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request
from fastapi.responses import PlainTextResponse, Response

from app.calendar.two_way import (
    GOOGLE_PUSH_PATH,
    GRAPH_LIFECYCLE_PATH,
    GRAPH_PUSH_PATH,
    TwoWaySync,
    find_watch,
    token_matches,
)
from app.deps import SessionDep
from app.security import audit
from app.security.idempotency import claim
from app.security.ratelimit import CallerLimit
from app.services import services_of
from app.webhooks.vapi_payload import PayloadRejected, parse_body

log = logging.getLogger(__name__)
router = APIRouter(tags=["calendar"], include_in_schema=False)
MAX_BODY = 64 * 1024


def _sync(request: Request) -> TwoWaySync:
    services = services_of(request)
    return TwoWaySync(
        services.settings, services.session_factory, services.calendar_factory, services.clock
    )


def _allowed(request: Request, channel_id: str) -> bool:
    settings = services_of(request).settings
    limit = CallerLimit(services_of(request).limiter, settings.rate_limit_calendar_push, "calpush")
    return limit.allow(channel_id)


def _refuse(session: SessionDep, provider: str, reason: str) -> Response:
    audit.record(
        session, "calendar.push_refused", actor=provider, subject=None, details={"reason": reason}
    )
    session.commit()
    return Response(status_code=403)


@router.post(GOOGLE_PUSH_PATH)
def google_push(
    request: Request,
    session: SessionDep,
    background: BackgroundTasks,
    channel_id: Annotated[str | None, Header(alias="X-Goog-Channel-ID", max_length=128)] = None,
    token: Annotated[str | None, Header(alias="X-Goog-Channel-Token", max_length=256)] = None,
    resource_id: Annotated[str | None, Header(alias="X-Goog-Resource-ID", max_length=256)] = None,
    state: Annotated[str | None, Header(alias="X-Goog-Resource-State", max_length=32)] = None,
    number: Annotated[str | None, Header(alias="X-Goog-Message-Number", max_length=32)] = None,
) -> Response:
    try:
        watch = find_watch(session, channel_id)
        if watch is None or not token_matches(watch, token):
            return _refuse(session, "google", "unknown channel or wrong token")
        if watch.resource_id and resource_id != watch.resource_id:
            return _refuse(session, "google", "resource does not match the channel")
        if not _allowed(request, watch.channel_id or ""):
            return Response(status_code=429, headers={"Retry-After": "60"})
        if not claim(session, "google-push", f"{channel_id}:{number}", "calendar_push").is_new:
            return Response(status_code=200)  # a retried notification: nothing again
        session.commit()
        if state != "sync":  # "sync" only opens the channel
            sync = _sync(request)
            sync.changed(watch.connection_id)
            background.add_task(sync.sync, watch.connection_id)
    except Exception:
        log.exception("Google push notification failed; the poll will catch up")
        session.rollback()
    return Response(status_code=200)


@router.post(GRAPH_PUSH_PATH)
async def graph_push(
    request: Request,
    session: SessionDep,
    background: BackgroundTasks,
    validation_token: Annotated[str | None, Query(alias="validationToken", max_length=1024)] = None,
) -> Response:
    return await _graph_intake(request, session, background, validation_token, lifecycle=False)


@router.post(GRAPH_LIFECYCLE_PATH)
async def graph_lifecycle(
    request: Request,
    session: SessionDep,
    background: BackgroundTasks,
    validation_token: Annotated[str | None, Query(alias="validationToken", max_length=1024)] = None,
) -> Response:
    return await _graph_intake(request, session, background, validation_token, lifecycle=True)


async def _graph_intake(
    request: Request,
    session: SessionDep,
    background: BackgroundTasks,
    validation_token: str | None,
    *,
    lifecycle: bool,
) -> Response:
    if validation_token is not None:
        # Graph's handshake when the subscription is made: echo the token, as text.
        return PlainTextResponse(validation_token)
    notes = await _notifications(request)
    if notes is None:
        return Response(status_code=400)
    return _graph(request, session, background, notes, lifecycle=lifecycle)


async def _notifications(request: Request) -> list[dict[str, Any]] | None:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return None
    try:
        # The bounded reader VAPI bodies use: a deeply nested body is refused, not a 500.
        data = parse_body(raw)
    except PayloadRejected:
        return None
    value = data.get("value") if isinstance(data, dict) else None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        return None
    return value


def _graph(
    request: Request,
    session: SessionDep,
    background: BackgroundTasks,
    notes: list[dict[str, Any]],
    *,
    lifecycle: bool,
) -> Response:
    sync = _sync(request)
    try:
        todo: dict[str, str] = {}
        for note in notes:
            watch = find_watch(session, str(note.get("subscriptionId") or ""))
            if watch is None or not token_matches(watch, note.get("clientState")):
                return _refuse(session, "microsoft", "unknown subscription or wrong clientState")
            if not _allowed(request, watch.channel_id or ""):
                return Response(status_code=429, headers={"Retry-After": "60"})
            digest = hashlib.sha256(json.dumps(note, sort_keys=True).encode()).hexdigest()
            if not claim(session, "graph-push", digest, "calendar_push").is_new:
                continue  # delivered before
            event = str(note.get("lifecycleEvent") or "") if lifecycle else "changed"
            todo[watch.connection_id] = event
        session.commit()
        for connection_id, event in todo.items():
            sync.changed(connection_id)
            if event in ("reauthorizationRequired", "subscriptionRemoved"):
                background.add_task(sync.watch, connection_id)
            background.add_task(sync.sync, connection_id)
    except Exception:
        log.exception("Graph notification failed; the poll will catch up")
        session.rollback()
    return Response(status_code=202)
