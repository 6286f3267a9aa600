"""What an engine reported about its turn (Reply.meta), kept where people look:
the conversation's details (admin conversation view), the audit log for fallbacks,
and the process metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app import metrics
from app.security import audit
from app.turn_rows import ConversationLike

RECENT_TURNS = 10


def record_engine_turn(
    session: Session, conversation: ConversationLike, meta: dict[str, Any], now: datetime
) -> None:
    summary = dict((conversation.details or {}).get("llm") or {})
    usage = dict(summary.get("usage") or {"prompt": 0, "completion": 0})
    turn_usage = meta.get("usage") or {}
    usage["prompt"] = int(usage.get("prompt", 0)) + int(turn_usage.get("prompt", 0))
    usage["completion"] = int(usage.get("completion", 0)) + int(turn_usage.get("completion", 0))
    fallback = meta.get("fallback")
    recent = list(summary.get("recent") or [])[-(RECENT_TURNS - 1) :]
    recent.append({"at": now.isoformat(), **meta})
    summary.update(
        turns=int(summary.get("turns", 0)) + 1,
        fallbacks=int(summary.get("fallbacks", 0)) + (1 if fallback else 0),
        model_ms=round(float(summary.get("model_ms", 0.0)) + float(meta.get("model_ms", 0.0)), 1),
        usage=usage,
        recent=recent,
    )
    # A new dict, so the JSON column is seen as changed.
    conversation.details = {**(conversation.details or {}), "llm": summary}
    if fallback:
        audit.record(
            session,
            "llm.fallback",
            actor=f"engine:{meta.get('engine', 'llm')}",
            subject=conversation.id,
            details={
                "reason": fallback,
                "channel": meta.get("channel"),
                "model": meta.get("model"),
            },
        )
    metrics.observe_engine_turn(meta)
