"""The transient assistant we hand VAPI for one caller (answer to `assistant-request`).

Built from the routed agent: its instructions, time zone and today's date there, its
appointment types and policies as the system prompt; its greeting (with the caller's
name when known) as the first message; our scheduling tools as function tools whose
server URL points back to us with the credential VAPI authenticates with.
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from typing import Any

from app.agent.prompt import system_prompt as build_system_prompt
from app.config import Settings
from app.security.caller_id import STRICT
from app.tools.registry import function_definitions
from app.turn_rows import AgentLike
from app.webhooks.twilio_voice import greeting_for

VAPI_PATH = "/webhooks/vapi"
VERIFY_PIN = "verify_pin"
END_CALL_PHRASES = ["goodbye", "bye for now", "have a great day", "talk to you later"]
SERVER_MESSAGES = ["tool-calls", "status-update", "end-of-call-report", "hang"]
# VAPI waits this long for a tool result; our own budget is shorter.
TOOL_TIMEOUT_SECONDS = 10

VERIFY_PIN_DEFINITION: dict[str, Any] = {
    "name": VERIFY_PIN,
    "description": (
        "Check the PIN the caller says. Required before list_appointments, "
        "reschedule_appointment or cancel_appointment on this line; not needed to book."
    ),
    "parameters": {
        "type": "object",
        "properties": {"pin": {"type": "string", "description": "The digits the caller said"}},
        "required": ["pin"],
    },
}


def server_for(settings: Settings) -> dict[str, Any]:
    """Where VAPI sends tool calls and reports, and how it proves it is VAPI."""
    server: dict[str, Any] = {
        "url": f"{settings.public_base_url}{VAPI_PATH}",
        "timeoutSeconds": TOOL_TIMEOUT_SECONDS,
    }
    if settings.vapi_credential_id:
        server["credentialId"] = settings.vapi_credential_id
    elif settings.vapi_secret is not None:
        secret = settings.vapi_secret.get_secret_value()
        header = settings.vapi_secret_header
        value = f"Bearer {secret}" if header.lower() == "authorization" else secret
        server["headers"] = {header: value}
    return server


def needs_pin_tool(agent: AgentLike) -> bool:
    return agent.caller_id_policy == STRICT and bool(agent.pin_hash)


@cache
def _definitions() -> tuple[str, ...]:
    # JSON schema generation costs milliseconds; the tool set is fixed for the process.
    return tuple(json.dumps(definition) for definition in function_definitions())


def tools_for(settings: Settings, agent: AgentLike) -> list[dict[str, Any]]:
    definitions = [json.loads(definition) for definition in _definitions()]
    if needs_pin_tool(agent):
        definitions.append(VERIFY_PIN_DEFINITION)
    server = server_for(settings)
    functions = [
        {"type": "function", "async": False, "function": definition, "server": server}
        for definition in definitions
    ]
    # VAPI's Assistant has no endCallFunctionEnabled any more: hanging up is a tool.
    return [*functions, {"type": "endCall"}]


def system_prompt(agent: AgentLike, now: datetime) -> str:
    # The one prompt builder every model speaking for an agent uses.
    return build_system_prompt(agent, now, "vapi")


def build_assistant(
    settings: Settings, agent: AgentLike, caller_name: str | None, now: datetime
) -> dict[str, Any]:
    language = (agent.language or "en-US").split("-")[0]
    return {
        "name": agent.name[:40],
        "firstMessage": greeting_for(agent, caller_name),
        "firstMessageMode": "assistant-speaks-first",
        "model": {
            "provider": "openai",
            "model": settings.openai_model,
            "temperature": 0.2,
            "messages": [{"role": "system", "content": system_prompt(agent, now)}],
            "tools": tools_for(settings, agent),
        },
        "voice": {"provider": settings.vapi_voice_provider, "voiceId": settings.vapi_voice_id},
        "transcriber": {"provider": "deepgram", "model": "nova-2", "language": language},
        "endCallPhrases": END_CALL_PHRASES,
        "endCallMessage": "Thanks for calling. Goodbye!",
        "serverMessages": SERVER_MESSAGES,
        "server": server_for(settings),
        "metadata": {"agentId": agent.id},
    }
