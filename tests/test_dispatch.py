from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Receive, Scope, Send

from app.clock import FixedClock
from app.config import Settings
from app.dispatch import Direct, ExactRoutes, install
from app.main import create_app
from tests.conftest import PUBLIC_BASE_URL, TwilioClient

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


def test_the_turns_are_answered_without_fastapis_request_handler(recorder: Recorder) -> None:
    assert set(recorder.exact.direct) == {
        "/webhooks/twilio/sms/inbound",
        "/webhooks/twilio/voice/inbound",
        "/webhooks/twilio/voice/gather",
        "/webhooks/vapi",
    }


def test_a_signed_turn_is_answered_directly_as_the_router_answers_it(
    client: TestClient, recorder: Recorder
) -> None:
    twilio = TwilioClient(client)
    form = {
        "AccountSid": "AC" + "0" * 32,
        "From": "+14155550999",  # nobody's: the turn answers that the line is not theirs
        "To": "+15005550006",
        "Body": "hi",
    }
    path = "/webhooks/twilio/sms/inbound"
    direct = twilio.post(path, {**form, "MessageSid": "SMdirect"})
    assert recorder.routed == 0
    recorder.app.dependency_overrides[_never_called] = _never_called
    routed = twilio.post(path, {**form, "MessageSid": "SMrouted"})
    assert recorder.routed == 1
    assert (direct.status_code, direct.headers["content-type"], direct.content) == (
        routed.status_code,
        routed.headers["content-type"],
        routed.content,
    )
    assert b"<Message>" in direct.content


async def _verified(request: Request) -> str:
    return request.headers.get("x-who", "nobody")


async def _endpoint(
    request: Request, who: Annotated[str, Depends(_verified)], turn: str = "1"
) -> Response:
    return PlainTextResponse(f"{request.url.path} {who} {turn}")


def _app_with(*direct: Direct, endpoint: Any = _endpoint) -> FastAPI:
    app = FastAPI()
    router = APIRouter()
    router.post("/turn")(endpoint)
    install(app).add(router, *direct)
    return app


@pytest.mark.parametrize("query", ["", "turn=5", "turn=5&turn=7", "turn=", "other=2"])
def test_a_direct_endpoint_gets_its_dependency_and_query_as_from_fastapi(query: str) -> None:
    app = _app_with(Direct(_endpoint, _verified, {"turn": "1"}))
    assert set(app.router.middleware_stack.direct) == {"/turn"}  # type: ignore[union-attr]
    with TestClient(app) as client:
        direct = client.post(f"/turn?{query}", headers={"x-who": "twilio"})
        app.dependency_overrides[_never_called] = _never_called  # FastAPI's handler
        routed = client.post(f"/turn?{query}", headers={"x-who": "twilio"})
    assert direct.text == routed.text
    assert direct.status_code == routed.status_code == 200


async def _two_queries(
    request: Request, who: Annotated[str, Depends(_verified)], turn: str = "1", step: str = ""
) -> Response:
    return PlainTextResponse(who)


async def _int_query(
    request: Request, who: Annotated[str, Depends(_verified)], turn: int = 1
) -> Response:
    return PlainTextResponse(who)


async def _other_dependency(
    request: Request, who: Annotated[str, Depends(_never_called)], turn: str = "1"
) -> Response:
    return PlainTextResponse(who)


@pytest.mark.parametrize(
    ("endpoint", "direct"),
    [
        (_endpoint, Direct(_endpoint, _verified, {"turn": "2"})),  # another default
        (_endpoint, Direct(_endpoint, _verified)),  # a query parameter it would not pass
        (_two_queries, Direct(_two_queries, _verified, {"turn": "1"})),
        (_int_query, Direct(_int_query, _verified, {"turn": "1"})),  # FastAPI converts
        (_other_dependency, Direct(_other_dependency, _verified, {"turn": "1"})),
        (_endpoint, Direct(_two_queries, _verified, {"turn": "1"})),  # not this router's
    ],
)
def test_a_direct_call_that_fastapi_would_make_differently_is_refused(
    endpoint: Any, direct: Direct
) -> None:
    with pytest.raises(ValueError):
        _app_with(direct, endpoint=endpoint)
