"""Speech synthesis: a pooled connection that was closed under us is retried once before
any audio; anything else is Deepgram being unavailable. The listener's audio chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest
from pydantic import SecretStr

from app.config import Settings
from app.voice.aura import Aura
from app.voice.deepgram import Deepgram, DeepgramUnavailable, Listener
from tests.voice.scripted_http import (
    AUDIO,
    CUT_OFF,
    NO_ANSWER,
    UNAUTHORISED,
    ScriptedServer,
    scripted_server,
)


def speak(settings: Settings, script: list[str], text: str = "Hello.") -> ScriptedServer:
    """`text` spoken through a server answering as scripted; the audio must be whole."""

    async def main() -> ScriptedServer:
        async with scripted_server(*script) as server:
            deepgram = Deepgram(
                settings.model_copy(
                    update={
                        "deepgram_api_key": SecretStr("dg-test"),
                        "deepgram_api_url": server.url,
                    }
                )
            )
            try:
                audio = b"".join([chunk async for chunk in deepgram.speak(text)])
            finally:
                await deepgram.aclose()
            assert audio == server.audio
            return server

    return asyncio.run(main())


def test_a_connection_closed_before_any_audio_is_retried_once(settings: Settings) -> None:
    server = speak(settings, [NO_ANSWER, AUDIO])
    assert [r.connection for r in server.received] == [1, 2]
    sent = server.received[-1]
    assert "encoding=mulaw" in sent.target and "sample_rate=8000" in sent.target
    assert sent.headers["authorization"] == "Token dg-test"


def test_a_second_failure_is_deepgram_unavailable(settings: Settings) -> None:
    with pytest.raises(DeepgramUnavailable, match="speech synthesis failed"):
        speak(settings, [NO_ANSWER, NO_ANSWER, AUDIO])


def test_a_failure_after_audio_began_is_not_retried(settings: Settings) -> None:
    with pytest.raises(DeepgramUnavailable, match="speech synthesis failed"):
        speak(settings, [CUT_OFF, AUDIO])


def test_an_error_answer_is_not_retried(settings: Settings) -> None:
    with pytest.raises(DeepgramUnavailable, match="refused: HTTP 401"):
        speak(settings, [UNAUTHORISED, AUDIO])


def test_any_other_failure_is_deepgram_unavailable(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Aura, text: str) -> AsyncGenerator[bytes]:
        raise ValueError("a fault of ours")
        yield b""  # an async generator, as Aura.speak is

    monkeypatch.setattr(Aura, "speak", broken)
    # Not left to end the speaking task silently: the call goes on with <Gather>.
    with pytest.raises(DeepgramUnavailable, match="ValueError"):
        speak(settings, [AUDIO])


def test_unreachable_is_deepgram_unavailable(settings: Settings) -> None:
    async def main() -> str:
        async with scripted_server(AUDIO) as server:
            return server.url

    url = asyncio.run(main())  # closed: nothing listens there any more
    deepgram = Deepgram(
        settings.model_copy(
            update={"deepgram_api_key": SecretStr("dg-test"), "deepgram_api_url": url}
        )
    )

    async def collect() -> None:
        try:
            async for _ in deepgram.speak("Hello."):
                pass
        finally:
            await deepgram.aclose()

    with pytest.raises(DeepgramUnavailable, match="ConnectionRefusedError"):
        asyncio.run(collect())


class Socket:
    """What Listener needs of the SDK's socket: the chunks it was sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    async def send_media(self, audio: bytes) -> None:
        self.sent.append(audio)

    async def send_close_stream(self) -> None:
        self.closed = True


def test_audio_goes_out_in_chunks_and_the_rest_before_close() -> None:
    socket = Socket()
    listener = Listener(socket, chunk_bytes=320)  # 40 ms

    async def call() -> None:
        for frame in range(5):
            await listener.send(bytes([frame]) * 160)
        assert [len(chunk) for chunk in socket.sent] == [320, 320]
        await listener.close()

    asyncio.run(call())
    assert [len(chunk) for chunk in socket.sent] == [320, 320, 160] and socket.closed
    assert b"".join(socket.sent) == b"".join(bytes([f]) * 160 for f in range(5))
