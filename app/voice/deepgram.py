"""Deepgram: live transcription through the official SDK (deepgram-sdk 7), and Aura
speech through app/voice/aura.py (a lighter request than the SDK's, made for every phrase
on the event loop).

Both base URLs are settings (DEEPGRAM_API_URL for REST, DEEPGRAM_WS_URL for the
WebSocket), so tests, the simulator and benchmarks talk to a local fake. The rest of the
room sees only `Listener` events and `speak()` bytes, never SDK types.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from deepgram import AsyncDeepgramClient
from deepgram.environment import DeepgramClientEnvironment
from deepgram.listen.v1 import client as sdk_listen

from app.config import Settings
from app.voice.aura import Aura, ConnectionLost, SynthesisRefused

log = logging.getLogger(__name__)

SAMPLE_RATE = 8000  # Twilio Media Streams: 8 kHz μ-law, one channel
FRAME_BYTES = 160  # 20 ms of it
ENCODING = "mulaw"
SYNTHESIS_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 3.0
KEEPALIVE = 200  # idle connections kept for speech synthesis
KEEPALIVE_SECONDS = 3.0


def _uncompressed_listen_sockets() -> None:
    """The SDK opens its listen socket with websockets' default permessage-deflate, which
    compresses every 20 ms frame of μ-law audio (hardly compressible) on the event loop:
    a few percent of a streamed call's CPU for nothing. Its connect() takes no option,
    so the module's connect function is given compression=None."""
    connect = getattr(sdk_listen, "websockets_client_connect", None)
    if connect is not None and not isinstance(connect, functools.partial):
        # A module-level name of the SDK's, not an export, typed as the class it wraps.
        sdk_listen.websockets_client_connect = functools.partial(  # type: ignore[attr-defined,assignment]
            connect, compression=None
        )


_uncompressed_listen_sockets()


class DeepgramUnavailable(Exception):
    """Deepgram could not be reached, refused us, or dropped the connection."""


@dataclass(frozen=True)
class Transcript:
    text: str
    is_final: bool
    speech_final: bool


@dataclass(frozen=True)
class UtteranceEnd:
    pass


@dataclass(frozen=True)
class SpeechStarted:
    pass


Event = Transcript | UtteranceEnd | SpeechStarted


@dataclass(frozen=True)
class ListenOptions:
    language: str
    keyterms: tuple[str, ...] = ()


class Listener:
    """One live-transcription socket: audio in (in chunks of `chunk_bytes`), events out."""

    def __init__(self, socket: Any, chunk_bytes: int = FRAME_BYTES) -> None:
        self._socket = socket
        self._chunk_bytes = max(FRAME_BYTES, chunk_bytes)
        self._pending = bytearray()

    async def send(self, audio: bytes) -> None:
        self._pending += audio
        if len(self._pending) >= self._chunk_bytes:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        audio = bytes(self._pending)
        self._pending.clear()
        try:
            await self._socket.send_media(audio)
        except Exception as exc:
            raise DeepgramUnavailable(f"sending audio failed: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """The audio still held, then CloseStream: Deepgram hears every frame."""
        try:
            await self._flush()
            await self._socket.send_close_stream()
        except Exception:
            log.debug("deepgram close-stream not sent (socket already gone)")

    async def events(self) -> AsyncIterator[Event]:
        """Events until the socket closes; a close without CloseStream from us is a drop,
        so it raises DeepgramUnavailable."""
        try:
            async for message in self._socket:
                event = _event(message)
                if event is not None:
                    yield event
        except Exception as exc:
            raise DeepgramUnavailable(f"transcription dropped: {type(exc).__name__}") from exc


def _event(message: Any) -> Event | None:
    kind = getattr(message, "type", None)
    if kind == "Results":
        alternatives = message.channel.alternatives or []
        text = (alternatives[0].transcript or "").strip() if alternatives else ""
        return Transcript(text, bool(message.is_final), bool(message.speech_final))
    if kind == "UtteranceEnd":
        return UtteranceEnd()
    if kind == "SpeechStarted":
        return SpeechStarted()
    return None


class Deepgram:
    """The SDK client for one app; each call opens its own listen socket."""

    def __init__(self, settings: Settings) -> None:
        assert settings.deepgram_api_key is not None
        self.settings = settings
        key = settings.deepgram_api_key.get_secret_value()
        # A pool sized for every call's phrases at once, so under load a phrase does not
        # pay a new TCP (and, to the real Deepgram, TLS) connection on the event loop.
        self._aura = Aura(
            settings.deepgram_api_url,
            key,
            settings.deepgram_tts_model,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=SYNTHESIS_TIMEOUT_SECONDS,
            # Below common server idle timeouts (uvicorn's is 5 s), so a connection is
            # rarely reused just as the server closes it.
            keepalive_seconds=KEEPALIVE_SECONDS,
            max_idle=KEEPALIVE,
        )
        self._client = AsyncDeepgramClient(
            api_key=key,
            environment=DeepgramClientEnvironment(
                base=settings.deepgram_api_url.rstrip("/"),
                production=settings.deepgram_ws_url.rstrip("/"),
                agent=settings.deepgram_ws_url.rstrip("/"),
                agent_rest=settings.deepgram_api_url.rstrip("/"),
            ),
        )
        # The SDK rebuilds its headers for every request, looking its own version up in
        # the installed packages' metadata (a scan of sys.path, milliseconds on the event
        # loop as each call opens its socket). They never change: build them once.
        wrapper = self._client._client_wrapper
        headers = wrapper.get_headers()
        wrapper.get_headers = lambda: dict(headers)  # type: ignore[method-assign]

    async def aclose(self) -> None:
        await self._aura.aclose()

    @asynccontextmanager
    async def listen(self, options: ListenOptions) -> AsyncIterator[Listener]:
        """A connected Listener, or DeepgramUnavailable within the connect timeout."""
        settings = self.settings
        terms = list(options.keyterms)
        # Nova-3 takes plain key terms; older models take (unweighted) keywords.
        boost = {"keyterm": terms} if settings.deepgram_stt_model.startswith("nova-3") else {}
        if terms and not boost:
            boost = {"keywords": terms}
        async with AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(settings.deepgram_connect_timeout_seconds):
                    socket = await stack.enter_async_context(
                        self._client.listen.v1.connect(
                            model=settings.deepgram_stt_model,
                            encoding=ENCODING,
                            sample_rate=SAMPLE_RATE,
                            channels=1,
                            language=options.language,
                            interim_results="true",
                            punctuate="true",
                            smart_format="true",
                            vad_events="true",
                            endpointing=settings.deepgram_endpointing_ms,
                            utterance_end_ms=settings.deepgram_utterance_end_ms,
                            **boost,
                        )
                    )
            except Exception as exc:
                raise DeepgramUnavailable(f"cannot connect: {type(exc).__name__}") from exc
            listener = Listener(socket, settings.deepgram_audio_chunk_ms * SAMPLE_RATE // 1000)
            try:
                yield listener
            finally:
                await listener.close()

    async def speak(self, text: str) -> AsyncIterator[bytes]:
        """μ-law 8 kHz audio for `text`, chunk by chunk as Deepgram streams it.

        A pooled connection the server closed while idle fails before any audio: that
        request is sent once more, on a fresh connection. A failure after audio began is
        not retried (the caller would hear the start twice)."""
        for attempt in range(2):
            started = False
            try:
                # Closed here even if our reader stops midway: its connection with it.
                async with aclosing(self._aura.speak(text)) as chunks:
                    async for chunk in chunks:
                        started = True
                        yield chunk
                return
            except ConnectionLost as exc:
                if started or attempt:
                    raise DeepgramUnavailable(f"speech synthesis failed: {exc}") from exc
                log.info("speech synthesis: %s on a pooled connection, sent again", exc)
            except SynthesisRefused as exc:
                raise DeepgramUnavailable(f"speech synthesis refused: {exc}") from exc
            except Exception as exc:  # anything else: the call goes on with <Gather>
                raise DeepgramUnavailable(f"speech synthesis failed: {type(exc).__name__}") from exc


def build_deepgram(settings: Settings) -> Deepgram | None:
    """None without DEEPGRAM_API_KEY: every call then uses <Gather>."""
    key = settings.deepgram_api_key
    return Deepgram(settings) if key is not None and key.get_secret_value() else None
