"""HTTP side of connecting Google Calendar: the shared connect pages and callback
(app/calendar/connect_routes.py) under Google's paths and names."""

from __future__ import annotations

from fastapi import Request

from app.calendar.connect import ConnectFlow
from app.calendar.connect_routes import ProviderPages, provider_router
from app.calendar.oauth import CALLBACK_PATH, START_PATH, STATE_COOKIE
from app.services import services_of


def _flow(request: Request) -> ConnectFlow | None:
    return services_of(request).google_oauth


router = provider_router(
    ProviderPages(
        calendar="Google Calendar",
        company="Google",
        start_path=START_PATH,
        callback_path=CALLBACK_PATH,
        state_cookie=STATE_COOKIE,
        flow_of=_flow,
    )
)
