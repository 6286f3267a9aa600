"""A phone call over Twilio Media Streams, played the way Twilio plays it, for tests,
benchmarks and `python -m app call --stream`.

It answers the inbound-call webhook (signed), opens the <Stream> WebSocket with Twilio's
signature on the upgrade and the token from the TwiML in `start`, then every 20 ms sends
one inbound μ-law frame (silence, or "speech" from app/voice/simulated_audio.py) and plays
20 ms of what the server sent, echoing each `mark` once the audio before it has played and
dropping the buffer on `clear` (echoing its marks, as Twilio does). What was actually played
is decoded into `heard`. When the server closes the stream, Twilio follows the TwiML's
<Redirect>; so does `follow_redirect()`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.config import Settings
from app.voice import simulated_audio

FRAME_SECONDS = 0.02
HANG_UP_SECONDS = 5.0  # how long the server may take to close after `stop`
INBOUND_PATH = "/webhooks/twilio/voice/inbound"


class StreamRefused(Exception):
    pass


@dataclass
class StreamedCall:
    settings: Settings
    server_url: str  # where the server really listens (http://127.0.0.1:port)
    caller: str
    to: str
    stir_verstat: str | None = "TN-Validation-Passed-A"
    sid: str = field(default_factory=lambda: "CA" + secrets.token_hex(16))
    stream_sid: str = field(default_factory=lambda: "MZ" + secrets.token_hex(16))
    twiml: str = ""
    heard: list[str] = field(default_factory=list)
    # How many of `heard` were played to their end (the mark after them came back).
    heard_whole: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    audio_received: int = 0  # bytes of the agent's audio
    marks_echoed: int = 0
    clears: int = 0
    late_ticks: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    _outgoing: deque[bytes] = field(default_factory=deque)
    _playback: deque[bytes | str] = field(default_factory=deque)
    _decoder: simulated_audio.Decoder = field(default_factory=simulated_audio.Decoder)
    _socket: ClientConnection | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _sequence: int = 0
    _heard_changed: asyncio.Event = field(default_factory=asyncio.Event)

    # --- HTTP: the webhooks Twilio calls ---------------------------------------------------

    def _sign(self, public_url: str, params: dict[str, str]) -> str:
        token = self.settings.twilio_auth_token.get_secret_value()
        signature: str = RequestValidator(token).compute_signature(public_url, params)
        return signature

    def form(self, **extra: str) -> dict[str, str]:
        params = {
            "CallSid": self.sid,
            "AccountSid": self.settings.twilio_account_sid or "AC" + "0" * 32,
            "From": self.caller,
            "To": self.to,
            "Direction": "inbound",
            "CallStatus": "in-progress",
            "ApiVersion": "2010-04-01",
            **extra,
        }
        return params

    async def post(self, http: httpx.AsyncClient, public_url: str, params: dict[str, str]) -> str:
        parts = urlsplit(public_url)
        target = self.server_url + parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"X-Twilio-Signature": self._sign(public_url, params)}
        response = await http.post(target, data=params, headers=headers)
        response.raise_for_status()
        return response.text

    async def dial(self, http: httpx.AsyncClient) -> str:
        extra = {"StirVerstat": self.stir_verstat} if self.stir_verstat else {}
        public = self.settings.public_base_url + INBOUND_PATH
        self.twiml = await self.post(http, public, self.form(CallStatus="ringing", **extra))
        return self.twiml

    def stream_target(self) -> tuple[str, dict[str, str]] | None:
        """The <Stream> url and its <Parameter>s in the call's TwiML, if it streams."""
        stream = ET.fromstring(self.twiml).find("Connect/Stream")
        if stream is None:
            return None
        params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        return stream.get("url", ""), params

    async def follow_redirect(self, http: httpx.AsyncClient) -> str:
        """What Twilio does when the stream ends: POST to the <Redirect> after <Connect>."""
        redirect = ET.fromstring(self.twiml).find("Redirect")
        assert redirect is not None and redirect.text
        return await self.post(http, redirect.text.strip(), self.form())

    # --- the stream ------------------------------------------------------------------------

    async def open_stream(
        self, *, sign: bool = True, parameters: dict[str, str] | None = None
    ) -> None:
        target = self.stream_target()
        if target is None:
            raise StreamRefused("the call was not answered with <Connect><Stream>")
        url, given = target
        path = urlsplit(url).path
        local = self.server_url.replace("http://", "ws://", 1) + path
        headers = {"X-Twilio-Signature": self._sign(url, {})} if sign else {}
        try:
            self._socket = await connect(local, additional_headers=headers, max_size=None)
        except Exception as exc:
            raise StreamRefused(f"upgrade refused: {exc}") from exc
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send(self._start(parameters if parameters is not None else given))
        self._tasks = [
            asyncio.create_task(self._receive()),
            asyncio.create_task(self._clock()),
        ]

    def _start(self, parameters: dict[str, str]) -> dict[str, Any]:
        return {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": self.stream_sid,
            "start": {
                "accountSid": "AC" + "0" * 32,
                "streamSid": self.stream_sid,
                "callSid": self.sid,
                "tracks": ["inbound"],
                "customParameters": parameters,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._socket is not None
        self._sequence += 1
        message.setdefault("sequenceNumber", str(self._sequence))
        await self._socket.send(json.dumps(message))

    async def _receive(self) -> None:
        assert self._socket is not None
        try:
            async for raw in self._socket:
                message = json.loads(raw)
                event = message.get("event")
                if event == "media":
                    self.frames_received += 1
                    audio = base64.b64decode(message["media"]["payload"])
                    self.audio_received += len(audio)
                    self._playback.append(audio)
                elif event == "mark":
                    self._playback.append(str(message["mark"]["name"]))
                elif event == "clear":
                    self.clears += 1
                    marks = [item for item in self._playback if isinstance(item, str)]
                    self._playback.clear()
                    self._decoder = simulated_audio.Decoder()  # a phrase cut short
                    for name in marks:
                        await self._echo(name, played=False)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self._heard_changed.set()

    async def _clock(self) -> None:
        """Every 20 ms: one inbound frame out, 20 ms of the agent's audio played."""
        loop = asyncio.get_running_loop()
        tick = loop.time()
        chunk = 1
        while not self.closed.is_set():
            frame = self._outgoing.popleft() if self._outgoing else simulated_audio.silence()
            payload = base64.b64encode(frame).decode()
            timestamp = str(chunk * 20)
            media = {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": timestamp,
                "payload": payload,
            }
            try:
                await self._send({"event": "media", "streamSid": self.stream_sid, "media": media})
            except ConnectionClosed:
                return
            self.frames_sent += 1
            chunk += 1
            await self._play(simulated_audio.FRAME_BYTES)
            tick += FRAME_SECONDS
            delay = tick - loop.time()
            if delay < 0:
                self.late_ticks += 1
            await asyncio.sleep(max(0.0, delay))

    async def _play(self, budget: int) -> None:
        while self._playback:
            item = self._playback[0]
            if isinstance(item, str):
                self._playback.popleft()
                await self._echo(item)
                continue
            if budget <= 0:
                return
            played, rest = item[:budget], item[budget:]
            budget -= len(played)
            if rest:
                self._playback[0] = rest
            else:
                self._playback.popleft()
            texts = self._decoder.feed(played)
            if texts:
                self.heard.extend(texts)
                self._heard_changed.set()

    async def _echo(self, name: str, *, played: bool = True) -> None:
        if played:
            self.heard_whole = len(self.heard)
            self._heard_changed.set()
        self.marks_echoed += 1
        with contextlib.suppress(ConnectionClosed):
            await self._send(
                {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
            )

    # --- what the caller does ---------------------------------------------------------------

    def say(self, text: str) -> None:
        """Speak `text` (a few frames of "speech") after what is already queued."""
        self._outgoing.extend(simulated_audio.encode(text))

    async def press(self, keys: str) -> None:
        for key in keys:
            await self._send(
                {
                    "event": "dtmf",
                    "streamSid": self.stream_sid,
                    "dtmf": {"track": "inbound_track", "digit": key},
                }
            )

    async def hear(self, fragment: str, timeout: float = 10.0) -> str:
        """Wait until the caller has heard a phrase containing `fragment` to its end."""
        try:
            return await self._hear(fragment, timeout)
        except TimeoutError:
            raise TimeoutError(f"never heard {fragment!r}; heard {self.heard}") from None

    async def _hear(self, fragment: str, timeout: float) -> str:
        async with asyncio.timeout(timeout):
            while True:
                for text in self.heard[: self.heard_whole]:
                    if fragment.lower() in text.lower():
                        return text
                if self.closed.is_set():
                    raise StreamRefused(f"stream closed before hearing {fragment!r}: {self.heard}")
                self._heard_changed.clear()
                await self._heard_changed.wait()

    async def wait_closed(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self.closed.wait()

    async def hang_up(self) -> None:
        # Twilio sends nothing after `stop`: the 20 ms clock stops first.
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        if self._socket is not None and not self.closed.is_set():
            stop = {"accountSid": "AC" + "0" * 32, "callSid": self.sid}
            with contextlib.suppress(ConnectionClosed):
                await self._send({"event": "stop", "streamSid": self.stream_sid, "stop": stop})
            # Read on until the server closes: audio it sent before it read `stop` is
            # received, so frames lost count only what went missing on a live call.
            with contextlib.suppress(TimeoutError):
                await self.wait_closed(HANG_UP_SECONDS)
            await self._socket.close()
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._socket is not None:
            await self._socket.close()


# --- the command line: `python -m app call --stream` ------------------------------------------


async def wait_for_reply(call: StreamedCall, before: int, timeout: float = 20.0) -> None:
    """Until the agent has said something new and gone quiet (or the stream ended)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not call.closed.is_set():
                idle = call.heard_whole > before and not call._playback
                if idle:
                    await asyncio.sleep(0.4)
                    if not call._playback and call.heard_whole == len(call.heard):
                        return
                await asyncio.sleep(0.05)


async def converse(
    call: StreamedCall, lines: Iterator[str], echo: Callable[[str], None]
) -> str | None:
    """Plays the call: each line is said (digits then # are keyed); returns the TwiML
    Twilio would follow if the stream ended with the call still up, else None."""
    async with httpx.AsyncClient(timeout=20) as http:
        await call.dial(http)
        if call.stream_target() is None:
            echo(
                "(the agent answered without a stream: is the agent in voice_mode 'stream' "
                "and DEEPGRAM_API_KEY set on the server?)"
            )
            return call.twiml
        await call.open_stream()
        printed = 0

        def show() -> None:
            nonlocal printed
            for text in call.heard[printed:]:
                echo(f"agent> {text}")
            printed = len(call.heard)

        await wait_for_reply(call, 0)
        show()
        while not call.closed.is_set():
            line = await asyncio.to_thread(next, lines, None)
            if line is None:
                await call.hang_up()
                echo("(you hung up)")
                return None
            before = call.heard_whole
            keyed = line.strip()
            if keyed.endswith("#") and keyed[:-1].isdigit():
                await call.press(keyed)
            elif keyed:
                call.say(keyed)
            await wait_for_reply(call, before)
            show()
        show()
        echo("(the stream ended)")
        return await call.follow_redirect(http)


def stream_call(simulator: Any, lines: Iterator[str], echo: Callable[[str], None]) -> Any:
    """The CLI's streamed call for phone_sim.CallSimulator's caller: None when the call
    ended on the stream, else the parsed TwiML to go on with (<Gather> after a fallback)."""
    from app.phone_sim import parse_twiml

    call = StreamedCall(
        simulator.settings,
        simulator.url.rstrip("/"),
        simulator.caller,
        simulator.to,
        simulator.stir_verstat,
        sid=simulator.sid,
    )
    twiml = asyncio.run(converse(call, lines, echo))
    return None if twiml is None else parse_twiml(twiml)
