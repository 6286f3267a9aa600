"""The long-lived objects every request may use, built once by create_app() and typed.

Endpoints take them through `ServicesDep` (app/deps.py); code holding only the request
or websocket uses `services_of(connection)`. Tests build an app with their own clock,
database, engine or sender, or swap a field (`services.settings = ...`) on a built one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    from slowapi import Limiter

    from app.agent.engine import Engine
    from app.bench_stats import RoundTrips
    from app.calendar.backend import CalendarFactory
    from app.calendar.ms_oauth import MicrosoftOAuth
    from app.calendar.oauth import GoogleOAuth
    from app.clock import Clock
    from app.config import Settings
    from app.notify import SmsSender
    from app.security.vault import TokenVault
    from app.voice.deepgram import Deepgram


@dataclass
class Services:
    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Clock
    engine: Engine
    calendar_factory: CalendarFactory
    vault: TokenVault | None
    sms_sender: SmsSender
    google_oauth: GoogleOAuth | None
    microsoft_oauth: MicrosoftOAuth | None
    limiter: Limiter
    deepgram: Deepgram | None
    # Only with BENCH_ENDPOINTS: database round trips per request, for the benchmarks.
    round_trips: RoundTrips | None = None


def services_of(connection: HTTPConnection) -> Services:
    """The app's services, for an HTTP request or a websocket alike."""
    services: Services = connection.app.state.services
    return services
