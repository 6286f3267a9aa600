"""A loopback HTTP/1.1 server for synthesis tests, scripted request by request: it answers
with audio (chunked, as Deepgram streams it), an error status, a response cut off, or a
connection closed without an answer, and records what it was sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11

AUDIO = "audio"  # 200, the audio in two chunks, the connection kept open
AUDIO_THEN_CLOSE = "audio then close"  # the same, then the server closes the connection
CUT_OFF = "cut off"  # 200 and the first chunk, then the connection closes
NO_ANSWER = "no answer"  # the request read, the connection closed
SILENT = "silent"  # the request read, nothing ever answered
UNAUTHORISED = "401"


@dataclass
class Received:
    connection: int  # 1 for the server's first connection
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    script: list[str]  # one answer per request, in order; the last one repeats
    audio: bytes = b"\xff" * 320
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    url: str = ""

    def _next_answer(self) -> str:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        protocol = h11.Connection(h11.SERVER)
        try:
            while await self._answer(number, protocol, reader, writer):
                protocol.start_next_cycle()
        finally:
            writer.close()

    async def _answer(
        self,
        number: int,
        protocol: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """One request and its scripted answer; False once the connection is to close."""
        request: h11.Request | None = None
        body = b""
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data:
                    return False
                protocol.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return False
        assert request is not None
        headers = {name.decode(): value.decode() for name, value in request.headers}
        self.received.append(Received(number, request.target.decode(), headers, body))
        answer = self._next_answer()
        if answer == NO_ANSWER:
            return False
        if answer == SILENT:
            await asyncio.sleep(3600)
        if answer == UNAUTHORISED:
            error = b'{"err_code":"INVALID_AUTH"}'
            response = h11.Response(status_code=401, headers=[("Content-Length", "27")])
            writer.write(
                b"".join(
                    protocol.send(e) or b""
                    for e in (response, h11.Data(data=error), h11.EndOfMessage())
                )
            )
            return True
        head = h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")])
        half = len(self.audio) // 2
        writer.write(
            (protocol.send(head) or b"") + (protocol.send(h11.Data(data=self.audio[:half])) or b"")
        )
        await writer.drain()
        if answer == CUT_OFF:
            return False
        writer.write(
            (protocol.send(h11.Data(data=self.audio[half:])) or b"")
            + (protocol.send(h11.EndOfMessage()) or b"")
        )
        await writer.drain()
        return answer == AUDIO


@asynccontextmanager
async def scripted_server(*script: str) -> AsyncIterator[ScriptedServer]:
    server = ScriptedServer(list(script))
    listening = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        listening.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(listening.wait_closed(), 1)
