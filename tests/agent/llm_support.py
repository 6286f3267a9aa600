"""Helpers for the LLM engine tests: Chat Completions answers as an OpenAI-compatible
server sends them, and a caller driving the engine the way the webhooks do (a fresh
engine and session per message, so nothing survives in memory between turns)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from openai import OpenAI

from app.agent.engine import Engine
from app.agent.llm import LlmEngine, Options
from tests.agent.test_offline import Phone

BASE_URL = "http://llm.test/v1"
COMPLETIONS = "/chat/completions"


def options(**overrides: Any) -> Options:
    values: dict[str, Any] = {
        "model": "test-model",
        "temperature": 0.0,
        "timeout": 2.0,
        "budgets": {"sms": 5.0, "voice": 4.0},
        "max_rounds": 4,
        "max_output_tokens": 200,
        "history_tokens": 1500,
    }
    values.update(overrides)
    return Options(**values)


def make_engine(**overrides: Any) -> LlmEngine:
    client = OpenAI(api_key="sk-test", base_url=BASE_URL, max_retries=0, http_client=httpx.Client())
    return LlmEngine(client, options(**overrides))


def completion(
    content: str | None = None,
    calls: list[tuple[str, dict[str, Any] | str]] | None = None,
    *,
    refusal: str | None = None,
    finish: str | None = None,
    usage: tuple[int, int] = (120, 30),
) -> httpx.Response:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal}
    if calls:
        message["tool_calls"] = [
            {
                "id": f"call_{i}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for i, (name, args) in enumerate(calls)
        ]
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_790_000_000,
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": sum(usage),
        },
    }
    return httpx.Response(200, json=body)


def sent(route: Any, index: int = -1) -> list[dict[str, Any]]:
    """The messages of one request the engine sent."""
    return json.loads(route.calls[index].request.content)["messages"]


def tool_results(route: Any, index: int = -1) -> list[dict[str, Any]]:
    return [json.loads(m["content"]) for m in sent(route, index) if m["role"] == "tool"]


def slot_ids(route: Any, index: int = -1) -> list[str]:
    ids: list[str] = []
    for result in tool_results(route, index):
        ids += [s["slot_id"] for s in result.get("slots", [])]
    return ids


@dataclass
class Caller(Phone):
    """A Phone (tests/agent/test_offline.py) whose turns the LLM engine holds."""

    external_id: str = "conv-llm"
    engine_options: dict[str, Any] = field(default_factory=dict)

    def engine_for_turn(self) -> Engine:
        # A new engine each message: the dialogue lives in the database, not in memory.
        return make_engine(**self.engine_options)
