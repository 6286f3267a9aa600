"""The conversation engine interface: one turn in, one reply out.

An engine is handed the tools already bound to the routed agent and caller, and the
dialogue state it returned last time; it must not touch the database, HTTP or the clock
by itself, so the offline rules engine and an LLM engine are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from app.tools.service import SchedulingTools
from app.turn_rows import AgentLike

Channel = Literal["sms", "voice"]


@dataclass
class Turn:
    text: str
    channel: Channel
    now: datetime
    agent: AgentLike
    tools: SchedulingTools
    # Engine-owned, JSON-serialisable; persisted between turns by the caller.
    state: dict[str, Any]
    caller_name: str | None = None
    # The transcript before this turn, oldest first: ("in" | "out", text). Engines that
    # need context (the LLM engine) read it; the offline engine keeps its own state.
    history: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Reply:
    text: str
    state: dict[str, Any]
    # Voice: hang up after saying this.
    end_conversation: bool = False
    # What the engine ran, for the transcript: [{"name", "arguments", "ok", "result"}].
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    # How the turn was made (model, tokens, latency, fallback reason), for the
    # conversation's details, the audit log and metrics; empty for the offline engine.
    meta: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    def respond(self, turn: Turn) -> Reply: ...
