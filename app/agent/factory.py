"""Pick the conversation engine the settings ask for."""

from __future__ import annotations

from app.agent.engine import Engine
from app.config import Settings


def build_engine(settings: Settings) -> Engine:
    if settings.conversation_engine == "offline":
        from app.agent.offline import OfflineEngine

        return OfflineEngine()
    if settings.conversation_engine == "openai":
        from app.agent.llm import LlmEngine

        return LlmEngine.from_settings(settings)
    raise ValueError(f"unknown CONVERSATION_ENGINE {settings.conversation_engine!r}")
