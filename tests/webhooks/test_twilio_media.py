"""Reading Twilio's media-stream messages off the WebSocket (the calls themselves:
tests/voice/test_streamed_calls.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from app.webhooks.twilio_media import twilio_messages


def accepted(events: list[dict[str, Any]]) -> WebSocket:
    """A WebSocket past `accept`, whose ASGI receive plays `events` in order."""
    queue = list(events)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(_: dict[str, Any]) -> None:
        raise AssertionError("nothing is sent while reading")

    websocket = WebSocket({"type": "websocket", "path": "/", "headers": []}, receive, send)
    websocket.client_state = WebSocketState.CONNECTED
    websocket.application_state = WebSocketState.CONNECTED
    return websocket


def read(websocket: WebSocket) -> list[dict[str, Any]]:
    async def all_of() -> list[dict[str, Any]]:
        return [message async for message in twilio_messages(websocket)]

    return asyncio.run(all_of())


def text(body: str) -> dict[str, Any]:
    return {"type": "websocket.receive", "text": body}


def test_messages_are_read_until_twilio_hangs_up() -> None:
    websocket = accepted(
        [
            text('{"event":"connected"}'),
            text('{"event":"media","media":{"payload":"//8="}}'),
            {"type": "websocket.disconnect", "code": 1000},
            text('{"event":"never read"}'),
        ]
    )
    assert read(websocket) == [
        {"event": "connected"},
        {"event": "media", "media": {"payload": "//8="}},
    ]
    assert websocket.client_state is WebSocketState.DISCONNECTED


def test_what_is_not_a_json_object_in_text_is_ignored() -> None:
    websocket = accepted(
        [
            text("not json"),
            {"type": "websocket.receive", "bytes": b'{"event":"binary"}'},
            text('["a", "list"]'),
            text('{"event":"stop"}'),
            {"type": "websocket.disconnect", "code": 1000},
        ]
    )
    assert read(websocket) == [{"event": "stop"}]


def test_a_stream_already_over_yields_nothing() -> None:
    websocket = accepted([])
    websocket.client_state = WebSocketState.DISCONNECTED
    assert read(websocket) == []
