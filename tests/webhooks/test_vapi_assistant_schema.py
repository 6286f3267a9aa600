"""Every assistant this server hands VAPI validates against VAPI's published schema.

The schema is vendored (tests/webhooks/vapi_schema/README.md says where from and when).
VAPI's API refuses properties a DTO does not list, so the test does too.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings
from app.demo import DemoData
from app.models import Agent
from app.security.pins import hash_pin
from app.tools.registry import function_definitions
from tests.webhooks.test_vapi import Vapi, fixture

SCHEMA = Path(__file__).parent / "vapi_schema" / "assistant.openapi.json"


def _as_vapi_reads_it(node: Any) -> Any:
    """class-validator's whitelist (unknown properties refused), `/regex/` patterns,
    per-item enums on arrays and TypeScript's open string unions, as VAPI applies them."""
    if isinstance(node, list):
        return [_as_vapi_reads_it(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _as_vapi_reads_it(value) for key, value in node.items()}
    if "properties" in out and out.get("type") == "object" and "additionalProperties" not in out:
        out["additionalProperties"] = False
    # `oneOf: [{enum…, type: string}, {type: string}]` is TypeScript's "known value or any
    # string": every known value matches both branches, so it reads as anyOf.
    if any(branch == {"type": "string"} for branch in out.get("oneOf", [])):
        out["anyOf"] = out.pop("oneOf")
    # `type: array` with `enum` is class-validator's `@IsIn(…, {each: true})`: per item.
    if out.get("type") == "array" and "enum" in out:
        out.setdefault("items", {"type": "string", "enum": out["enum"]})
        del out["enum"]
    pattern = out.get("pattern")
    if isinstance(pattern, str) and len(pattern) > 1 and pattern[0] == pattern[-1] == "/":
        out["pattern"] = pattern[1:-1]
    return out


@cache
def _validator(root: str) -> Any:
    document = json.loads(SCHEMA.read_text())
    components = document["components"]
    schemas = components["schemas"]
    # Only the DTO definitions get the whitelist rule (not the `properties` map inside
    # JsonSchema, whose own keys are free).
    for name, schema in schemas.items():
        schemas[name] = _as_vapi_reads_it(schema)
    schemas["JsonSchema"]["properties"]["properties"].pop("additionalProperties", None)
    schemas["JsonSchema"]["properties"]["properties"]["additionalProperties"] = {
        "$ref": "#/components/schemas/JsonSchema"
    }
    schemas["OpenAIFunctionParameters"]["properties"]["properties"]["additionalProperties"] = {
        "$ref": "#/components/schemas/JsonSchema"
    }
    return jsonschema_rs.Draft4Validator(
        {"$ref": f"#/components/schemas/{root}", "components": components},
        validate_formats=False,
    )


def errors(root: str, instance: Any) -> list[str]:
    return [f"{e.instance_path}: {e.message}"[:300] for e in _validator(root).iter_errors(instance)]


def assistant_for(vapi: Vapi, auth: str) -> dict[str, Any]:
    response = vapi.post(fixture("assistant-request.json"), auth=auth)
    assert response.status_code == 200, response.text
    return response.json()["assistant"]


def _set_agent(session: Session, demo: DemoData, **values: Any) -> None:
    agent = session.get(Agent, demo.agent_id)
    assert agent is not None
    for key, value in values.items():
        setattr(agent, key, value)
    session.commit()


AGENT_VARIANTS = {
    "strict with a PIN": {"caller_id_policy": "strict", "pin_hash": hash_pin("4321")},
    "strict without a PIN": {"caller_id_policy": "strict", "pin_hash": None},
    "open": {"caller_id_policy": "open", "pin_hash": None},
}
CREDENTIALS = {
    "secret header": {},
    "authorization header": {"vapi_secret_header": "Authorization"},
    "stored credential": {"vapi_credential_id": "cred_123"},
}


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("variant", AGENT_VARIANTS)
def test_every_assistant_validates_against_vapis_schema(
    vapi: Vapi,
    vapi_client: TestClient,
    settings: Settings,
    session: Session,
    demo: DemoData,
    variant: str,
    credential: str,
):
    _set_agent(session, demo, **AGENT_VARIANTS[variant])
    vapi_client.app.state.services.settings = settings.model_copy(update=CREDENTIALS[credential])
    auth = "authorization" if credential == "authorization header" else "bearer"
    assistant = assistant_for(vapi, auth)
    assert errors("CreateAssistantDTO", assistant) == []


def test_each_function_tool_validates_on_its_own():
    for definition in function_definitions():
        tool = {"type": "function", "function": definition}
        assert errors("CreateFunctionToolDTO", tool) == [], definition["name"]


def test_every_parameter_has_a_type_and_enums_are_kept():
    for definition in function_definitions():
        for name, prop in definition["parameters"]["properties"].items():
            assert prop.get("type") in {"string", "integer", "number", "boolean"}, name
            assert "anyOf" not in prop and "default" not in prop, name
    check = {d["name"]: d for d in function_definitions()}["check_availability"]
    part = check["parameters"]["properties"]["part_of_day"]
    assert part == {
        "type": "string",
        "enum": ["morning", "afternoon", "evening"],
        "description": "Only times in this part of the day",
    }


def test_optional_parameters_are_left_out_of_required():
    book = {d["name"]: d for d in function_definitions()}["book_appointment"]
    assert book["parameters"]["required"] == ["start"]
    assert "idempotency_key" not in json.dumps(function_definitions())


def test_the_vendored_schema_refuses_what_vapi_refuses():
    """The check can fail: the shapes of the issue are rejected."""
    nullable = {
        "type": "function",
        "function": {
            "name": "book_appointment",
            "parameters": {
                "type": "object",
                "properties": {"name": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
            },
        },
    }
    assert errors("CreateFunctionToolDTO", nullable)
    assistant = {"name": "x", "endCallFunctionEnabled": True}
    assert errors("CreateAssistantDTO", assistant)
    bad_name = copy.deepcopy(nullable)
    bad_name["function"]["name"] = "book appointment!"
    assert errors("CreateFunctionToolDTO", bad_name)
