"""Aura synthesis requests on kept connections: the request Deepgram expects, one
connection for a call's phrases, and a connection never reused unless its last response
was read to the end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import pytest

from app.voice.aura import Aura, ConnectionLost, SynthesisRefused
from tests.voice.scripted_http import (
    AUDIO,
    AUDIO_THEN_CLOSE,
    CUT_OFF,
    NO_ANSWER,
    SILENT,
    UNAUTHORISED,
    ScriptedServer,
    scripted_server,
)

AUDIO_BYTES = b"\xff" * 320


def aura(url: str, read_timeout: float = 5.0) -> Aura:
    return Aura(
        url,
        "dg-test",
        "aura-2-thalia-en",
        connect_timeout=2.0,
        read_timeout=read_timeout,
        keepalive_seconds=3.0,
        max_idle=10,
    )


async def spoken(client: Aura, text: str) -> bytes:
    return b"".join([chunk async for chunk in client.speak(text)])


def run(script: list[str], scenario: Callable[[ScriptedServer], Awaitable[None]]) -> None:
    async def main() -> None:
        async with scripted_server(*script) as server:
            await scenario(server)

    asyncio.run(main())


def test_the_request_is_deepgrams_and_one_connection_serves_every_phrase() -> None:
    async def scenario(server: ScriptedServer) -> None:
        client = aura(server.url)
        for text in ("Sure.", "I have 3 PM on Tuesday.", 'Say "yes"?'):
            assert await spoken(client, text) == AUDIO_BYTES
        await client.aclose()
        assert server.connections == 1
        assert [json.loads(r.body) for r in server.received] == [
            {"text": "Sure."},
            {"text": "I have 3 PM on Tuesday."},
            {"text": 'Say "yes"?'},
        ]
        sent = server.received[0]
        target = urlsplit(sent.target)
        assert target.path == "/v1/speak"
        assert parse_qs(target.query) == {
            "model": ["aura-2-thalia-en"],
            "encoding": ["mulaw"],
            "sample_rate": ["8000"],
            "container": ["none"],
        }
        assert sent.headers["authorization"] == "Token dg-test"
        assert sent.headers["content-type"] == "application/json"

    run([AUDIO], scenario)


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async def scenario(server: ScriptedServer) -> None:
        client = aura(server.url)
        assert await spoken(client, "One.") == AUDIO_BYTES
        await asyncio.sleep(0.05)  # the server's close reaches the idle connection
        assert await spoken(client, "Two.") == AUDIO_BYTES
        assert [r.connection for r in server.received] == [1, 2]
        await client.aclose()

    run([AUDIO_THEN_CLOSE], scenario)


def test_a_synthesis_stopped_midway_does_not_leave_its_connection_in_the_pool() -> None:
    async def scenario(server: ScriptedServer) -> None:
        client = aura(server.url)
        speech = client.speak("A long phrase cut off by the caller.")
        assert await anext(speech) == AUDIO_BYTES[:160]
        await speech.aclose()  # a barge-in: the rest of its audio is never read
        assert await spoken(client, "Next.") == AUDIO_BYTES
        assert [r.connection for r in server.received] == [1, 2]
        await client.aclose()

    run([AUDIO], scenario)


def test_a_connection_cut_off_midway_is_lost_after_the_audio_that_came() -> None:
    async def scenario(server: ScriptedServer) -> None:
        client = aura(server.url)
        chunks: list[bytes] = []
        with pytest.raises(ConnectionLost):
            async for chunk in client.speak("Cut."):
                chunks.append(chunk)
        assert chunks == [AUDIO_BYTES[:160]]
        await client.aclose()

    run([CUT_OFF], scenario)


def test_no_answer_is_a_lost_connection_and_an_error_status_is_refused() -> None:
    async def scenario(server: ScriptedServer) -> None:
        client = aura(server.url)
        with pytest.raises(ConnectionLost):
            await spoken(client, "Hello.")
        with pytest.raises(SynthesisRefused) as refused:
            await spoken(client, "Hello.")
        assert refused.value.status == 401
        assert await spoken(client, "Hello.") == AUDIO_BYTES
        # Neither connection went back to the pool.
        assert [r.connection for r in server.received] == [1, 2, 3]
        await client.aclose()

    run([NO_ANSWER, UNAUTHORISED, AUDIO], scenario)


def test_a_server_that_never_answers_times_out() -> None:
    async def scenario(server: ScriptedServer) -> None:
        client = aura(server.url, read_timeout=0.2)
        with pytest.raises(ConnectionLost, match="TimeoutError"):
            await spoken(client, "Hello.")
        await client.aclose()

    run([SILENT], scenario)


def test_a_refused_connection_is_lost() -> None:
    async def scenario() -> None:
        async with scripted_server(AUDIO) as server:
            url = server.url
        client = aura(url)  # nothing listens there any more
        with pytest.raises(ConnectionLost, match="ConnectionRefusedError"):
            await spoken(client, "Hello.")

    asyncio.run(scenario())
