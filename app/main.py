"""create_app(): the FastAPI factory. Everything a request needs is one typed `Services`
(app/services.py) on app.state, so tests and benchmarks build apps with their own
database, clock and engine."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from app import admin, bench_stats, dashboard, dispatch, health, metrics
from app.agent.engine import Engine
from app.agent.factory import build_engine
from app.calendar import ms_oauth_routes, oauth_routes
from app.calendar.after_commit import BackgroundWrites, run_now
from app.calendar.backend import CalendarFactory
from app.calendar.factory import build_calendar_factory, vault_for
from app.calendar.ms_oauth import MicrosoftIdentity, MicrosoftOAuth
from app.calendar.ms_oauth import configured as microsoft_configured
from app.calendar.oauth import GoogleOAuth, client_config
from app.clock import Clock, system_clock
from app.config import Settings, get_settings
from app.db import make_engine, make_session_factory, read_only
from app.dispatch import Direct
from app.edge import EdgeMiddleware
from app.jobs.runtime import build_env, start_embedded
from app.logs import configure_logging
from app.notify import SmsSender, build_sender
from app.security import middleware as hardening
from app.security.ratelimit import build_limiter
from app.security.vapi_auth import verified_vapi_body
from app.security.vault import check_readable
from app.services import Services
from app.telemetry import install_tracing
from app.voice.call import loop_ready_for_streams
from app.voice.deepgram import build_deepgram
from app.webhooks import (
    calendar_push,
    twilio_media,
    twilio_notifications,
    twilio_sms,
    twilio_voice,
    vapi,
)
from app.webhooks import vapi_tools as tool_endpoints
from app.webhooks.forms import document_forms
from app.webhooks.turns import limit_turns
from app.webhooks.twilio_common import verified_twilio_form

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    clock: Clock = system_clock,
    engine: Engine | None = None,
    calendar_factory: CalendarFactory | None = None,
    sms_sender: SmsSender | None = None,
    background_jobs: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    db_engine = None
    if session_factory is None:
        db_engine = make_engine(settings)
        session_factory = make_session_factory(db_engine)
    limit_turns(session_factory, settings.turn_concurrency)

    # Token vault and Google client: a malformed or missing key fails here, at start-up.
    google_config = client_config(settings)
    microsoft = MicrosoftIdentity(settings) if microsoft_configured(settings) else None
    vault = vault_for(settings)
    sms_sender = sms_sender or build_sender(settings)
    writes = None
    if calendar_factory is None:
        # Bookings answer without waiting for the calendar's round trip.
        writes = BackgroundWrites() if settings.calendar_writes_in_background else None
        # Microsoft 365 for agents connected to it, else Google's (else built-in).
        calendar_factory = build_calendar_factory(
            settings, vault, sms_sender, clock=clock, identity=microsoft, writes=writes or run_now
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        assert session_factory is not None and calendar_factory is not None
        with session_factory() as session, read_only(session):
            # Stored tokens the configured keys cannot read: refuse to start.
            check_readable(session, vault)
        # Background jobs (notifications, reminders, calendar sync) run in-process only
        # when asked (`serve` with JOB_ENGINE=embedded); otherwise in `app worker`.
        jobs = None
        if background_jobs and settings.job_engine == "embedded":
            jobs = start_embedded(
                build_env(
                    settings,
                    session_factory=session_factory,
                    clock=clock,
                    calendar_factory=calendar_factory,
                )
            )
        with ExitStack() as stack:
            if services.deepgram is not None:  # streamed calls: frames on time
                stack.enter_context(loop_ready_for_streams())
            yield
        if jobs is not None:
            await asyncio.to_thread(jobs.stop)
        if writes is not None:
            await asyncio.to_thread(writes.close)  # let calendar writes in flight land
        if services.deepgram is not None:
            await services.deepgram.aclose()
        if db_engine is not None:
            db_engine.dispose()

    app = FastAPI(
        title="Scheduling agent",
        version="0.1.0",
        lifespan=lifespan,
        description="Telephony-first scheduling agent: SMS, voice and VAPI on one number.",
        # Traces are ours (app/telemetry.py, when configured), metrics are Prometheus's
        # (app/metrics.py): FastAPI's own would ask OpenTelemetry for its providers on
        # every request only to find none.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    services = Services(
        settings=settings,
        session_factory=session_factory,
        clock=clock,
        engine=engine or build_engine(settings),
        calendar_factory=calendar_factory,
        vault=vault,
        sms_sender=sms_sender,
        google_oauth=(
            GoogleOAuth(settings, google_config, vault) if google_config and vault else None
        ),
        microsoft_oauth=(
            MicrosoftOAuth(settings, microsoft, vault) if microsoft and vault else None
        ),
        limiter=build_limiter(settings),
        deepgram=build_deepgram(settings),
    )
    app.state.services = services

    document_forms(twilio_sms.router, twilio_voice.router, twilio_notifications.router)
    # The webhook turns' routes are found by their exact path (app/dispatch.py); the
    # rest are matched against the included routers in this order, each walked route by
    # route, so the turns' routers still come first (the tools' path has a parameter).
    # No path of one router can match another's, so the order changes no answer.
    exact = dispatch.install(app)
    # The turns themselves skip FastAPI's request handler (`Direct`: the same dependency,
    # the same endpoint, checked against the route's signature).
    exact.add(twilio_sms.router, Direct(twilio_sms.inbound_sms, verified_twilio_form))
    exact.add(
        twilio_voice.router,
        Direct(twilio_voice.inbound_call, verified_twilio_form),
        Direct(twilio_voice.gather_result, verified_twilio_form, {"turn": "1"}),
    )
    exact.add(vapi.router, Direct(vapi.vapi_server_message, verified_vapi_body))
    app.include_router(tool_endpoints.router)
    exact.add(twilio_notifications.router)
    app.include_router(twilio_media.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    admin.install(app)
    if settings.bench_endpoints:
        services.round_trips = bench_stats.count_round_trips(session_factory.kw["bind"])
        app.include_router(bench_stats.router)
        exact.add(vapi.bench_router)
        exact.add(twilio_sms.bench_router)
    app.include_router(oauth_routes.router)
    app.include_router(ms_oauth_routes.router)
    app.include_router(calendar_push.router)
    dashboard.install(app)

    # Guards and request id, CORS when configured, then outermost the security headers,
    # metrics and access line, so every refusal by the guards gets all three.
    hardening.install(app, settings, services.limiter, json_prefixes=("/admin/",))
    app.add_middleware(EdgeMiddleware, hsts=settings.public_base_url.startswith("https://"))
    install_tracing(app, session_factory.kw.get("bind"), settings)
    return app


def create_default_app() -> FastAPI:
    """Entry point for `uvicorn --factory app.main:create_default_app`."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    app = create_app(settings, background_jobs=True)
    settle_heap()
    return app


def settle_heap() -> None:
    """Move what start-up built (modules, schemas, compiled SQL and regexes, ~200k
    objects that live as long as the process) out of the garbage collector's sight.

    Otherwise every full collection walks all of them again: ~75 ms of CPU each, several
    a minute under load, 5-9% of a webhook turn's CPU. Start-up's own garbage is
    collected first, so nothing collectable is frozen. A server process calls this once;
    tests, which build many apps in one process, do not."""
    gc.collect()
    gc.freeze()
