"""The webhook turns' routes found by their exact path, in front of FastAPI's router.

FastAPI 0.165 matches a request against the included routers one after the other, each
candidate route through its inclusion's context (scope bookkeeping per candidate, then a
second walk of the matching router to handle it): ~10-30 µs for a turn's route, ~150 µs
for a route included late (the static benchmark endpoint), on every request. A route
registered here is looked up by its path in a dict instead, then matched and handled by
the same APIRoute object the router would pick; everything outside the router (guards,
exception handlers, FastAPI's own layers) runs as before.

A turn's endpoint can also be answered without FastAPI's request handler (`Direct`):
its one dependency (the verified Twilio form, the verified VAPI body) is called as a
plain function and the endpoint with it, skipping the handler's per-request machinery
(two exit stacks, dependency solving, parameter validation, endpoint context) that was
a fifth of the event loop's share of a turn. The route's signature is checked against
what the direct call passes when it is added, so the two ways cannot drift apart.

Only what the router would do the same way is taken: routes without path parameters, from
routers included with no options of their own (prefix, dependencies, limits), on an app
without dependency overrides or router-level form limits. Anything else (another method,
FastAPI's native telemetry, which records the route as the router selects it, a path
under a root_path) falls through to the router.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

TELEMETRY = "fastapi.telemetry"
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Direct:
    """`endpoint` answered as FastAPI would, for a route whose only dependency is
    `dependency(request)` and whose other parameters are the request and `query`
    (query parameters declared `str` with these defaults)."""

    endpoint: Callable[..., Awaitable[Response]]
    dependency: Callable[[Request], Awaitable[Any]]
    query: Mapping[str, str] = field(default_factory=dict)

    def handler(self, route: APIRoute) -> Handler:
        """The request handler for `route`; ValueError if its signature is not the one
        this direct call passes (FastAPI's handler would then differ)."""
        dependant = route.dependant
        (solved,) = dependant.dependencies or (None,)
        declared = {f.alias: f.field_info.default for f in dependant.query_params}
        if (
            route.endpoint is not self.endpoint
            or not inspect.iscoroutinefunction(self.endpoint)
            or solved is None
            or solved.call is not self.dependency
            or solved.dependencies
            or not solved.name
            or not dependant.request_param_name
            or any(f.field_info.annotation is not str for f in dependant.query_params)
            or declared != dict(self.query)
            or dependant.path_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
            or dependant.websocket_param_name
            or dependant.http_connection_param_name
            or dependant.response_param_name
            or dependant.background_tasks_param_name
            or dependant.security_scopes_param_name
        ):
            raise ValueError(f"{route.path}: not an endpoint Direct can call as FastAPI does")
        endpoint, dependency = self.endpoint, self.dependency
        request_name, solved_name = dependant.request_param_name, solved.name
        query = dict(self.query)

        async def handle(request: Request) -> Response:
            arguments = {request_name: request, solved_name: await dependency(request)}
            if query:  # a scalar query parameter: its last value, as FastAPI reads it
                params = request.query_params
                arguments.update({name: params.get(name, v) for name, v in query.items()})
            return await endpoint(**arguments)

        return handle


class ExactRoutes:
    """The app router's innermost layer (its `middleware_stack`): the router itself is
    the fallback."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.router = app.router
        self.fallback: ASGIApp = app.router.middleware_stack
        self.routes: dict[str, APIRoute] = {}
        self.direct: dict[str, Handler] = {}

    def add(self, router: APIRouter, *direct: Direct) -> None:
        """Include `router` in the app and take its exact paths. The router must come
        before any route that could also match one of them (earlier routes win).
        `direct`: endpoints of this router answered without FastAPI's handler."""
        self.app.include_router(router)
        wanted = {d.endpoint: d for d in direct}
        for route in router.routes:
            if isinstance(route, APIRoute) and not route.param_convertors:
                if route.path in self.routes:
                    continue
                self.routes[route.path] = route
                found = wanted.pop(route.endpoint, None)
                if found is not None:
                    self.direct[route.path] = found.handler(route)
        if wanted:
            raise ValueError(f"not exact routes of this router: {list(wanted)}")

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
        handler = self.direct.get(route.path)
        if handler is None:
            await route.handle(scope, receive, send)
            return
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)


def install(app: FastAPI) -> ExactRoutes:
    """Put the exact-path lookup in front of the app's router; add routers through it."""
    exact = ExactRoutes(app)
    app.router.middleware_stack = exact
    return exact
