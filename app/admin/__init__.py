"""Admin REST API under /admin/v1: API-key auth with roles, one error shape, keyset pages."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from app.admin import (
    agents,
    analytics,
    appointments,
    notifications,
    operations,
    privacy,
    users,
)
from app.admin.errors import ADMIN_PREFIX, ERROR_RESPONSES, install_error_handlers
from app.notify import build_sender


def build_router() -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX, responses=ERROR_RESPONSES)
    router.include_router(users.router, tags=["admin: users and numbers"])
    router.include_router(privacy.router, tags=["admin: privacy"])
    router.include_router(agents.router, tags=["admin: agents and calendars"])
    router.include_router(appointments.router, tags=["admin: appointments and conversations"])
    router.include_router(analytics.router, tags=["admin: analytics"])
    router.include_router(operations.router, tags=["admin: operations"])
    router.include_router(notifications.router, tags=["admin: notifications and reminders"])
    return router


def install(app: FastAPI) -> None:
    if getattr(app.state, "sms_sender", None) is None:
        # Verification codes go out through it; tests put a recording sender here.
        app.state.sms_sender = build_sender(app.state.settings)
    app.include_router(build_router())
    install_error_handlers(app)
