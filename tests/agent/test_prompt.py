"""The one system prompt: built from the agent's profile, per channel, shared with VAPI."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from app.agent.prompt import system_prompt
from app.demo import DemoData
from app.models import Agent
from app.webhooks import vapi_assistant
from tests.conftest import PINNED_NOW


def agent_for(session_factory: sessionmaker[Session], demo: DemoData, **values: object) -> Agent:
    with session_factory() as session:
        agent = session.get(Agent, demo.agent_id)
        assert agent is not None
        for key, value in values.items():
            setattr(agent, key, value)
        session.commit()
        return agent


def test_profile_goes_into_the_prompt(session_factory, demo: DemoData) -> None:
    agent = agent_for(
        session_factory,
        demo,
        language="es-MX",
        address="12 Main St, Springfield",
        services_description="Cuts and colour.",
        faq=[{"question": "Walk-ins?", "answer": "By appointment only."}],
        daily_cap=8,
    )
    prompt = system_prompt(agent, PINNED_NOW, "sms")
    assert "You are Sam's scheduling line" in prompt
    assert "Speak Spanish" in prompt
    assert "Today is Monday, November 23, 2026 (local time 08:00)" in prompt
    assert "America/Los_Angeles" in prompt
    assert "Mon 09:00-12:00, 13:00-17:00" in prompt and "Sun" not in prompt
    assert "consultation (30 minutes); haircut (45 minutes)" in prompt
    assert "60 minutes' notice" in prompt and "At most 8 appointments a day" in prompt
    assert "12 Main St" in prompt and "Cuts and colour." in prompt
    assert "Q: Walk-ins? A: By appointment only." in prompt
    assert "Owner's instructions: Be brief and friendly." in prompt
    assert "at most 320 characters" in prompt


def test_channels_differ(session_factory, demo: DemoData) -> None:
    agent = agent_for(session_factory, demo)
    voice = system_prompt(agent, PINNED_NOW, "voice")
    assert "for the ear" in voice and "never read ids" in voice and "320" not in voice
    assert "slot_id" in voice and "next message" in voice  # the engine's confirmation rule
    vapi = system_prompt(agent, PINNED_NOW, "vapi")
    assert "ISO 8601" in vapi and "slot_id" not in vapi


def test_vapi_assistant_uses_the_shared_builder(session_factory, demo: DemoData, settings) -> None:
    agent = agent_for(session_factory, demo, address="12 Main St")
    assistant = vapi_assistant.build_assistant(settings, agent, None, PINNED_NOW)
    content = assistant["model"]["messages"][0]["content"]
    assert content == system_prompt(agent, PINNED_NOW, "vapi") and "12 Main St" in content
