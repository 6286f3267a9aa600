"""Speech synthesis through the SDK: a pooled connection that was closed under us is
retried once before any audio; anything else is Deepgram being unavailable."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx
from pydantic import SecretStr

from app.config import Settings
from app.voice.deepgram import Deepgram, DeepgramUnavailable, Listener

API = "http://deepgram.test"


def speak(settings: Settings, text: str) -> bytes:
    deepgram = Deepgram(
        settings.model_copy(
            update={"deepgram_api_key": SecretStr("dg-test"), "deepgram_api_url": API}
        )
    )

    async def collect() -> bytes:
        try:
            return b"".join([chunk async for chunk in deepgram.speak(text)])
        finally:
            await deepgram.aclose()

    return asyncio.run(collect())


def test_a_connection_closed_before_any_audio_is_retried_once(settings: Settings) -> None:
    with respx.mock(base_url=API) as mock:
        route = mock.post("/v1/speak").mock(
            side_effect=[httpx.ReadError("closed"), httpx.Response(200, content=b"\xff" * 320)]
        )
        assert speak(settings, "Hello.") == b"\xff" * 320
    assert route.call_count == 2
    sent = route.calls[-1].request
    assert sent.url.params["encoding"] == "mulaw" and sent.url.params["sample_rate"] == "8000"
    assert sent.headers["authorization"] == "Token dg-test"


def test_a_second_failure_is_deepgram_unavailable(settings: Settings) -> None:
    with respx.mock(base_url=API) as mock:
        mock.post("/v1/speak").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(DeepgramUnavailable, match="ConnectError"):
            speak(settings, "Hello.")


def test_an_error_answer_is_not_retried(settings: Settings) -> None:
    with respx.mock(base_url=API) as mock:
        route = mock.post("/v1/speak").mock(
            return_value=httpx.Response(401, json={"err_code": "INVALID_AUTH"})
        )
        with pytest.raises(DeepgramUnavailable):
            speak(settings, "Hello.")
    assert route.call_count == 1


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
