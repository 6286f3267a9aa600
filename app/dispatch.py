"""The webhook turns' routes found by their exact path, in front of FastAPI's router.

FastAPI 0.165 matches a request against the included routers one after the other, each
candidate route through its inclusion's context (scope bookkeeping per candidate, then a
second walk of the matching router to handle it): ~10-30 µs for a turn's route, ~150 µs
for a route included late (the static benchmark endpoint), on every request. A route
registered here is looked up by its path in a dict instead, then matched and handled by
the same APIRoute object the router would pick; everything outside the router (guards,
exception handlers, FastAPI's own layers) runs as before.

Only what the router would do the same way is taken: routes without path parameters, from
routers included with no options of their own (prefix, dependencies, limits), on an app
without dependency overrides or router-level form limits. Anything else (another method,
FastAPI's native telemetry, which records the route as the router selects it, a path
under a root_path) falls through to the router.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

TELEMETRY = "fastapi.telemetry"


class ExactRoutes:
    """The app router's innermost layer (its `middleware_stack`): the router itself is
    the fallback."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.router = app.router
        self.fallback: ASGIApp = app.router.middleware_stack
        self.routes: dict[str, APIRoute] = {}

    def add(self, router: APIRouter) -> None:
        """Include `router` in the app and take its exact paths. The router must come
        before any route that could also match one of them (earlier routes win)."""
        self.app.include_router(router)
        for route in router.routes:
            if isinstance(route, APIRoute) and not route.param_convertors:
                self.routes.setdefault(route.path, route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope.get("path", ""))
        if (
            route is None
            or scope["type"] != "http"
            or TELEMETRY in scope
            or self.app.dependency_overrides
            or self.router.form_limits
        ):
            await self.fallback(scope, receive, send)
            return
        match, child_scope = route.matches(scope)
        if match is not Match.FULL:  # another method: the router answers 405
            await self.fallback(scope, receive, send)
            return
        # As the router does on a full match: it names itself, then the route, endpoint
        # and path parameters join the scope.
        scope.setdefault("router", self.router)
        scope.update(child_scope)
        await route.handle(scope, receive, send)


def install(app: FastAPI) -> ExactRoutes:
    """Put the exact-path lookup in front of the app's router; add routers through it."""
    exact = ExactRoutes(app)
    app.router.middleware_stack = exact
    return exact
