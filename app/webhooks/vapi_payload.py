"""VAPI's JSON formats: reading a server message safely, and every tool-call shape.

VAPI's formats changed over time, so several tool-call shapes are accepted. The body is
parsed with bounds (size, nesting) before anything walks it: a crafted body must get a
clear 400, never a RecursionError and a 500.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# End-of-call reports carry whole transcripts; nothing VAPI sends comes near these.
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64


class PayloadRejected(ValueError):
    """The body cannot be read as a VAPI message; the text is safe to answer with."""


def parse_body(body: bytes) -> Any:
    """The decoded JSON value of `body`, within MAX_BODY_BYTES and MAX_DEPTH."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadRejected("the body is too large")
    try:
        value = json.loads(body)
    except RecursionError:
        raise PayloadRejected("the body is nested too deeply") from None
    except ValueError:
        raise PayloadRejected("the body is not JSON") from None
    if depth(value) > MAX_DEPTH:
        raise PayloadRejected("the body is nested too deeply")
    return value


def depth(value: Any) -> int:
    """How deeply containers nest in `value`, counted a level at a time without
    recursion. Only containers are visited: a VAPI message is mostly strings and numbers
    (its transcript and assistant), so that is most of the walk saved."""
    deepest = 0
    level = [value] if isinstance(value, (dict, list)) else []
    while level:
        deepest += 1
        if deepest > MAX_DEPTH:
            return deepest
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list))
        ]
    return deepest


def message_of(payload: Any) -> dict[str, Any]:
    """The `message` object of a server message ({} when there is none)."""
    return as_dict(payload.get("message")) if isinstance(payload, dict) else {}


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: Any  # a JSON string, an object, or None


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _from_call(item: Mapping[str, Any], name: str = "") -> ToolCall:
    function = as_dict(item.get("function"))
    return ToolCall(
        id=str(item.get("id") or ""),
        name=str(function.get("name") or item.get("name") or name),
        arguments=first(
            function.get("arguments"),
            function.get("parameters"),
            item.get("arguments"),
            item.get("parameters"),
        ),
    )


def tool_calls_of(message: Mapping[str, Any]) -> list[ToolCall]:
    """Every call in a tool-calls message, whichever of VAPI's shapes it uses."""
    for key in ("toolCallList", "toolCalls"):
        items = message.get(key)
        if isinstance(items, list) and items:
            return [_from_call(item) for item in items if isinstance(item, dict)]
    items = message.get("toolWithToolCallList")
    if isinstance(items, list) and items:
        calls = []
        for item in items:
            if isinstance(item, dict):
                name = str(item.get("name") or as_dict(item.get("function")).get("name") or "")
                calls.append(_from_call(as_dict(item.get("toolCall")), name))
        return calls
    legacy = message.get("functionCall")  # the old "function-call" message
    if isinstance(legacy, dict):
        return [_from_call({**legacy, "id": legacy.get("id") or _legacy_id(message, legacy)})]
    return []


def _legacy_id(message: Mapping[str, Any], legacy: Mapping[str, Any]) -> str:
    """Old function calls carry no id: the same call with the same arguments is one."""
    call_id = str(as_dict(message.get("call")).get("id") or "")
    canonical = json.dumps([call_id, legacy.get("name"), legacy.get("parameters")], sort_keys=True)
    return "fc_" + hashlib.sha256(canonical.encode()).hexdigest()[:32]
