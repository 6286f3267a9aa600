"""Aura speech synthesis (`POST /v1/speak`) over HTTP/1.1 connections kept between
phrases, spoken with h11.

Every phrase of a streamed reply is one synthesis request, made on the event loop that
moves every call's audio, and the reply's first phrase is requested while its turn
commits in a worker thread, which then waits for the GIL behind it. Through the SDK and
httpx one such request cost the loop ~1.6 ms of CPU (the SDK's request building,
httpx's client and anyio-based pool, headers and body written in two system calls);
here it is one write of bytes h11 prepared, and reads until the response ends: ~0.4 ms.

A connection goes back to the pool only after a whole response; one cut off (a barge-in
cancels its synthesis, a read failed, the caller stopped reading) is closed.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections import deque
from collections.abc import AsyncGenerator
from urllib.parse import urlencode, urlsplit

import h11

READ_BYTES = 64 * 1024
USER_AGENT = "scheduling-agent"


class ConnectionLost(Exception):
    """The connection could not be made, or broke before the response ended."""


class SynthesisRefused(Exception):
    """Deepgram answered with an error status."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0

    def send(self, request: h11.Request, body: bytes) -> None:
        """The request in one write: one system call, one segment on the wire."""
        protocol = self.protocol
        head = protocol.send(request) or b""
        data = protocol.send(h11.Data(data=body)) or b""
        end = protocol.send(h11.EndOfMessage()) or b""
        self.writer.write(head + data + end)

    async def next_event(self, read_timeout: float) -> h11.Event:
        while True:
            event = self.protocol.next_event()
            if event is h11.NEED_DATA:
                async with asyncio.timeout(read_timeout):
                    data = await self.reader.read(READ_BYTES)
                self.protocol.receive_data(data)  # b"": the server closed the connection
                continue
            if event is h11.PAUSED:  # a client never pipelines, so never paused
                raise h11.RemoteProtocolError("paused between responses")
            assert isinstance(event, h11.Event)
            return event

    def reusable(self) -> bool:
        protocol = self.protocol
        return protocol.our_state is h11.DONE and protocol.their_state is h11.DONE

    def alive(self, now: float, keepalive_seconds: float) -> bool:
        """Not expired, and not closed by the server while it was idle (the transport
        reads in the background, so a close is seen as end of file)."""
        return (
            now - self.idle_since < keepalive_seconds
            and not self.writer.is_closing()
            and not self.reader.at_eof()
        )

    def close(self) -> None:
        self.writer.close()


class Aura:
    """Synthesis requests to one Deepgram base URL, on pooled connections."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        keepalive_seconds: float,
        max_idle: int,
    ) -> None:
        url = urlsplit(base_url)
        secure = url.scheme == "https"
        self._host = url.hostname or "localhost"
        self._port = url.port or (443 if secure else 80)
        self._tls = ssl.create_default_context() if secure else None
        query = {"model": model, "encoding": "mulaw", "sample_rate": 8000, "container": "none"}
        self._target = f"{url.path.rstrip('/')}/v1/speak?{urlencode(query)}"
        self._headers = [
            ("Host", url.netloc.rpartition("@")[2]),
            ("Authorization", f"Token {api_key}"),
            ("Content-Type", "application/json"),
            ("User-Agent", USER_AGENT),
        ]
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keepalive_seconds = keepalive_seconds
        self._max_idle = max_idle
        self._idle: deque[_Connection] = deque()  # the most recently used on the right
        self._closed = False

    async def speak(self, text: str) -> AsyncGenerator[bytes]:
        """μ-law 8 kHz audio for `text` as it arrives. ConnectionLost if the connection
        failed (perhaps after some audio), SynthesisRefused for an error answer."""
        body = json.dumps({"text": text}).encode()
        request = h11.Request(
            method="POST",
            target=self._target,
            headers=[*self._headers, ("Content-Length", str(len(body)))],
        )
        connection = await self._connection()
        pooled = False
        try:
            connection.send(request, body)
            response = await connection.next_event(self._read_timeout)
            if not isinstance(response, h11.Response):
                raise ConnectionLost(f"no response: {type(response).__name__}")
            if not 200 <= response.status_code < 300:
                raise SynthesisRefused(response.status_code)
            while isinstance(event := await connection.next_event(self._read_timeout), h11.Data):
                yield bytes(event.data)
            if not isinstance(event, h11.EndOfMessage):
                raise ConnectionLost(f"response cut off: {type(event).__name__}")
            pooled = self._release(connection)
        except (OSError, h11.ProtocolError) as exc:  # TimeoutError is an OSError
            raise ConnectionLost(type(exc).__name__) from exc
        finally:
            if not pooled:
                connection.close()

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.alive(now, self._keepalive_seconds):
                return connection
            connection.close()
        try:
            async with asyncio.timeout(self._connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._tls
                )
        except OSError as exc:
            raise ConnectionLost(type(exc).__name__) from exc
        return _Connection(reader, writer)

    def _release(self, connection: _Connection) -> bool:
        """Back to the pool after a whole response, if the server keeps it open."""
        if self._closed or len(self._idle) >= self._max_idle or not connection.reusable():
            return False
        connection.protocol.start_next_cycle()
        connection.idle_since = time.monotonic()
        self._idle.append(connection)
        return True
