"""Admin REST API under /admin/v1: API-key auth with roles, one error shape, keyset pages."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.admin import (
    agents,
    analytics,
    appointments,
    notifications,
    operations,
    privacy,
    users,
)
from app.admin.auth import required_role
from app.admin.errors import ADMIN_PREFIX, error_responses, implied_errors, install_error_handlers


def build_router() -> APIRouter:
    router = APIRouter(prefix=ADMIN_PREFIX)
    for module in (users, privacy, agents, appointments, analytics, operations, notifications):
        publish_roles(module.router)
        publish_errors(module.router)
    router.include_router(users.router, tags=["admin: users and numbers"])
    router.include_router(privacy.router, tags=["admin: privacy"])
    router.include_router(agents.router, tags=["admin: agents and calendars"])
    router.include_router(appointments.router, tags=["admin: appointments and conversations"])
    router.include_router(analytics.router, tags=["admin: analytics"])
    router.include_router(operations.router, tags=["admin: operations"])
    router.include_router(notifications.router, tags=["admin: notifications and reminders"])
    return router


def publish_errors(router: APIRouter) -> None:
    """Each operation lists the error statuses it can answer with: those its shape
    implies (app/admin/errors.py) plus those it declares itself."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        dependant = route.dependant
        query = {p.name for p in _all_params(dependant, "query_params")}
        implied = implied_errors(
            len(_all_params(dependant, "path_params")),
            bool(_all_params(dependant, "body_params")),
            query,
        )
        declared = {int(code): spec for code, spec in route.responses.items() if int(code) >= 400}
        listed = error_responses(*(implied | set(declared)))
        for code, spec in declared.items():  # the endpoint's own words for its refusals
            listed[code] = {**listed[code], **spec}
        route.responses = {**route.responses, **listed}


def _all_params(dependant: Dependant, kind: str) -> list[ModelField]:
    found: list[ModelField] = list(getattr(dependant, kind))
    for sub in dependant.dependencies:
        found += _all_params(sub, kind)
    return found


def publish_roles(router: APIRouter) -> None:
    """Each operation states the least role it needs, so the OpenAPI and the code
    cannot disagree (the README's role summary is checked against it in tests)."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        role = required_role(route.dependant)
        if role is None or "x-required-role" in (route.openapi_extra or {}):
            continue  # open, or published by an earlier app in this process
        route.openapi_extra = {**(route.openapi_extra or {}), "x-required-role": role.value}
        note = f"Role: `{role.value}` or higher."
        route.description = f"{route.description}\n\n{note}" if route.description else note


def install(app: FastAPI) -> None:
    app.include_router(build_router())
    install_error_handlers(app)
