"""The conversation engine interface: one turn in, one reply out.

An engine is handed the tools already bound to the routed agent and caller, and the
dialogue state it returned last time; it must not touch the database, HTTP or the clock
by itself, so the offline rules engine and an LLM engine are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from app.models import Agent
from app.tools.service import SchedulingTools

Channel = Literal["sms", "voice"]


@dataclass
class Turn:
    text: str
    channel: Channel
    now: datetime
    agent: Agent
    tools: SchedulingTools
    # Engine-owned, JSON-serialisable; persisted between turns by the caller.
    state: dict[str, Any]
    caller_name: str | None = None


@dataclass
class Reply:
    text: str
    state: dict[str, Any]
    # Voice: hang up after saying this.
    end_conversation: bool = False
    # What the engine ran, for the transcript: [{"name", "arguments", "ok", "result"}].
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class Engine(Protocol):
    def respond(self, turn: Turn) -> Reply: ...
