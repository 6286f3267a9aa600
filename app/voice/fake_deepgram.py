"""A local fake of Deepgram's two endpoints this service uses, speaking their formats:

- `WS /v1/listen`: live transcription. "Speech" is text carried in the audio
  (app/voice/simulated_audio.py). On hearing it the fake sends SpeechStarted and an
  interim Results; after `endpoint_frames` silent frames a final Results with
  speech_final, then UtteranceEnd, as Deepgram does after endpointing.
- `POST /v1/speak`: Aura synthesis, streamed μ-law bytes carrying the text (so the
  simulated caller can tell what it heard), `bytes_per_char` long.

Scripted behaviour for tests and benchmarks: refuse connections, delay results, drop the
socket after N utterances, fail synthesis. Run it for the simulator with
`python -m app voice fake-deepgram`.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.loopback import listening_socket
from app.voice import simulated_audio

FAKE_KEY = "fake-deepgram-key"


@dataclass
class FakeDeepgram:
    api_key: str = FAKE_KEY
    refuse: bool = False  # reject every listen connection (as with a bad key or outage)
    result_delay: float = 0.0  # seconds before each final result
    drop_after_utterances: int | None = None  # close the socket abruptly after N
    tts_fail: bool = False
    bytes_per_char: int = 16  # synthesised audio per character (8000 bytes = 1 s)
    tts_chunk_bytes: int = 800
    endpoint_frames: int = 5  # silent 20 ms frames that end a phrase
    # What the fake saw, for assertions.
    connections: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0  # caller audio received on listen sockets
    spoken_bytes: int = 0  # synthesised audio served
    closed_streams: int = 0
    heard: list[str] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                WebSocketRoute("/v1/listen", self.listen),
                Route("/v1/speak", self.speak, methods=["POST"]),
                Route("/_stats", self.stats, methods=["GET"]),
            ]
        )

    async def stats(self, _: Request) -> Response:
        """What the fake received, for benchmarks that run it in another process."""
        return JSONResponse(
            {
                "audio_bytes": self.audio_bytes,
                "connections": len(self.connections),
                "closed_streams": self.closed_streams,
            }
        )

    def _authorised(self, authorization: str | None) -> bool:
        return authorization in {f"Token {self.api_key}", f"token {self.api_key}"}

    # --- live transcription --------------------------------------------------------------

    async def listen(self, websocket: WebSocket) -> None:
        if self.refuse or not self._authorised(websocket.headers.get("authorization")):
            await websocket.close(code=1008)  # before accept: the handshake fails
            return
        self.connections.append(dict(websocket.query_params.multi_items()))
        keyterms = websocket.query_params.getlist("keyterm") + websocket.query_params.getlist(
            "keywords"
        )
        self.connections[-1]["terms"] = keyterms
        await websocket.accept()
        try:
            await _Transcriber(self, websocket).run()
        finally:
            self.closed_streams += 1

    # --- speech synthesis ----------------------------------------------------------------

    async def speak(self, request: Request) -> Response:
        if not self._authorised(request.headers.get("authorization")):
            return JSONResponse({"err_code": "INVALID_AUTH"}, status_code=401)
        if self.tts_fail:
            return JSONResponse({"err_code": "INTERNAL", "err_msg": "fake failure"}, 500)
        if request.query_params.get("encoding") != "mulaw":
            return JSONResponse({"err_code": "UNSUPPORTED_ENCODING"}, status_code=400)
        try:
            text = str((await request.json()).get("text") or "")
        except ClientDisconnect:
            return Response(status_code=499)
        self.spoken.append(text)
        audio = b"".join(simulated_audio.encode(text))
        audio = audio.ljust(max(len(audio), len(text) * self.bytes_per_char), b"\xff")
        self.spoken_bytes += len(audio)

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(audio), self.tts_chunk_bytes):
                yield audio[start : start + self.tts_chunk_bytes]

        return StreamingResponse(chunks(), media_type="audio/basic")


class _Transcriber:
    """One listen socket: decodes speech in the audio, answers as Deepgram does."""

    def __init__(self, fake: FakeDeepgram, websocket: WebSocket) -> None:
        self.fake = fake
        self.websocket = websocket
        self.decoder = simulated_audio.Decoder()
        self.pending: list[str] = []
        self.silent_frames = 0
        self.utterances = 0
        self.seconds = 0.0
        self.request_id = str(uuid.uuid4())

    async def run(self) -> None:
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    if not await self.audio(message["bytes"]):
                        return
                elif message.get("text") and await self.control(message["text"]):
                    return
        except WebSocketDisconnect:
            return

    async def control(self, text: str) -> bool:
        kind = json.loads(text).get("type")
        if kind == "CloseStream":
            await self.websocket.send_json(
                {"type": "Metadata", "request_id": self.request_id, "duration": self.seconds}
            )
            await self.websocket.close()
            return True
        if kind == "Finalize" and self.pending:
            await self.final()
        return False

    async def audio(self, data: bytes) -> bool:
        self.fake.audio_bytes += len(data)
        self.seconds += len(data) / 8000
        for text in self.decoder.feed(data):
            self.fake.heard.append(text)
            self.pending.append(text)
            self.silent_frames = 0
            await self.websocket.send_json(
                {"type": "SpeechStarted", "channel": [0], "timestamp": self.seconds}
            )
            await self.websocket.send_json(
                self.results(text.split()[0] if text.split() else text, final=False)
            )
        if self.pending and simulated_audio.is_silence(data):
            # Counted in 20 ms frames, whatever the size of the chunks sent.
            self.silent_frames += max(1, len(data) // simulated_audio.FRAME_BYTES)
            if self.silent_frames >= self.fake.endpoint_frames:
                return await self.final()
        return True

    async def final(self) -> bool:
        text = " ".join(self.pending)
        self.pending = []
        if self.fake.result_delay:
            await asyncio.sleep(self.fake.result_delay)
        await self.websocket.send_json(self.results(text, final=True))
        await self.websocket.send_json(
            {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": self.seconds}
        )
        self.utterances += 1
        if (
            self.fake.drop_after_utterances is not None
            and self.utterances >= self.fake.drop_after_utterances
        ):
            # An abrupt close, as when Deepgram's side fails: no Metadata, error code.
            await self.websocket.close(code=1011)
            return False
        return True

    def results(self, text: str, *, final: bool) -> dict[str, Any]:
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": 0.5,
            "start": max(0.0, self.seconds - 0.5),
            "is_final": final,
            "speech_final": final,
            "from_finalize": False,
            "channel": {
                "alternatives": [
                    {"transcript": text, "confidence": 0.98, "words": []},
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": {"name": "fake", "version": "0", "arch": "fake"},
                "model_uuid": "00000000-0000-0000-0000-000000000000",
            },
        }


PORTS = range(18700, 18800)  # the loopback ports set aside for local servers here


def loopback_socket(port: int = 0) -> socket.socket:
    """A listening socket on 127.0.0.1: `port`, or the first free one in PORTS."""
    sock = listening_socket([port] if port else random.sample(PORTS, len(PORTS)))
    if sock is None:
        raise RuntimeError("no free port in 18700-18799")
    return sock


@contextmanager
def serving(app: Any, port: int = 0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a thread; yields its http:// URL."""
    sock = loopback_socket(port)
    config = uvicorn.Config(app, log_level="warning", ws="websockets-sansio", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("server did not start")
            threading.Event().wait(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
