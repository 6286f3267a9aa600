"""Streamed calls end to end: the app under uvicorn on a loopback port, Deepgram as a
local fake (app/voice/fake_deepgram.py) reached through the real deepgram-sdk, and Twilio
played by app/stream_sim.StreamedCall over a real WebSocket with real signatures."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from app.clock import FixedClock
from app.config import Settings
from app.demo import DemoData
from app.main import create_app
from app.models import Agent
from app.stream_sim import StreamedCall
from app.voice.fake_deepgram import FAKE_KEY, FakeDeepgram, serving

T = TypeVar("T")


@pytest.fixture
def fake() -> FakeDeepgram:
    return FakeDeepgram()


@pytest.fixture
def fake_url(fake: FakeDeepgram) -> Iterator[str]:
    with serving(fake.app()) as url:
        yield url


@pytest.fixture
def stream_settings(settings: Settings, fake_url: str) -> Settings:
    return settings.model_copy(
        update={
            "deepgram_api_key": SecretStr(FAKE_KEY),
            "deepgram_api_url": fake_url,
            "deepgram_ws_url": fake_url.replace("http://", "ws://"),
            "stream_silence_seconds": 30.0,
        }
    )


@pytest.fixture
def streaming_agent(demo: DemoData, session_factory: sessionmaker[Session]) -> DemoData:
    with session_factory() as session:
        agent = session.get(Agent, demo.agent_id)
        assert agent is not None
        agent.voice_mode = "stream"
        agent.caller_id_policy = "open"
        session.commit()
    return demo


@pytest.fixture
def make_server(
    session_factory: sessionmaker[Session], clock: FixedClock
) -> Iterator[Callable[..., str]]:
    """Starts the app (built by create_app with the given settings) on a loopback port."""
    stack: list[Any] = []

    def start(settings: Settings, **kwargs: Any) -> str:
        app = create_app(settings, session_factory=session_factory, clock=clock, **kwargs)
        context = serving(app)
        url = context.__enter__()
        stack.append((context, app))
        return url

    yield start
    for context, _ in reversed(stack):
        context.__exit__(None, None, None)


@pytest.fixture
def server(
    make_server: Callable[..., str], stream_settings: Settings, streaming_agent: DemoData
) -> str:
    return make_server(stream_settings)


@pytest.fixture
def new_call(
    server: str, stream_settings: Settings, streaming_agent: DemoData
) -> Callable[..., StreamedCall]:
    def make(**kwargs: Any) -> StreamedCall:
        options = {"caller": streaming_agent.caller, "to": stream_settings.agent_number}
        return StreamedCall(stream_settings, server, **{**options, **kwargs})

    return make


def run(scenario: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with httpx.AsyncClient(timeout=20) as http:
            return await scenario(http)

    return asyncio.run(main())
