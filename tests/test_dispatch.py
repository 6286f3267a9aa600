from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Receive, Scope, Send

from app.clock import FixedClock
from app.config import Settings
from app.dispatch import ExactRoutes
from app.main import create_app
from tests.conftest import PUBLIC_BASE_URL

TURN_PATHS = (
    "/webhooks/twilio/sms/inbound",
    "/webhooks/twilio/voice/gather",
    "/webhooks/vapi",
    "/_bench/twiml",
)


def _never_called() -> None:
    raise AssertionError("no route depends on this")


class Recorder:
    """The app, remembering each request's scope as the app left it (the router writes
    the route it selected into the scope it was given) and whether the router ran."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        exact = app.router.middleware_stack
        assert isinstance(exact, ExactRoutes)
        self.exact = exact
        self.scopes: list[Scope] = []
        self.routed = 0
        router = exact.fallback

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                self.routed += 1
            await router(scope, receive, send)

        exact.fallback = counted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.scopes.append(scope)


@pytest.fixture
def recorder(
    settings: Settings, session_factory: sessionmaker[Session], clock: FixedClock
) -> Recorder:
    bench = settings.model_copy(update={"bench_endpoints": True})
    return Recorder(create_app(bench, session_factory=session_factory, clock=clock))


@pytest.fixture
def client(recorder: Recorder) -> Iterator[TestClient]:
    with TestClient(recorder, base_url=PUBLIC_BASE_URL) as test_client:
        yield test_client


def _answer(client: TestClient, recorder: Recorder, method: str, path: str) -> dict[str, Any]:
    response = client.request(method, path, content=b"", headers={"X-Request-ID": "fixed"})
    scope = recorder.scopes[-1]
    return {
        "status": response.status_code,
        "body": response.content,
        "allow": response.headers.get("allow"),
        "route": scope.get("route"),
        "endpoint": scope.get("endpoint"),
        "router": scope.get("router"),
    }


def test_the_turn_paths_are_found_without_the_router(
    client: TestClient, recorder: Recorder
) -> None:
    assert set(TURN_PATHS) <= set(recorder.exact.routes)
    for path in TURN_PATHS:
        client.post(path, content=b"")
    assert recorder.routed == 0
    client.get("/healthz")
    assert recorder.routed == 1


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_every_exact_path_answers_as_the_router_would(
    client: TestClient, recorder: Recorder, method: str
) -> None:
    paths = sorted(recorder.exact.routes)
    assert len(paths) >= len(TURN_PATHS)
    exact = {path: _answer(client, recorder, method, path) for path in paths}
    # With a dependency override the lookup steps aside: FastAPI's router decides alone.
    recorder.app.dependency_overrides[_never_called] = _never_called
    routed_before = recorder.routed
    routed = {path: _answer(client, recorder, method, path) for path in paths}
    assert recorder.routed - routed_before == len(paths)
    assert exact == routed
    if method == "GET":  # the router's 405, with the methods allowed
        assert {answer["status"] for answer in exact.values()} == {405}
        assert all(answer["allow"] == "POST" for answer in exact.values())
    else:
        assert all(answer["route"].path == path for path, answer in exact.items())
