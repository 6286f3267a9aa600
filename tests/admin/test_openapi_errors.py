"""Each admin operation lists the error statuses it can really answer with."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def operations(client: TestClient) -> dict[tuple[str, str], dict[str, Any]]:
    paths = client.get("/openapi.json").json()["paths"]
    return {
        (method.upper(), path): op
        for path, item in paths.items()
        if path.startswith("/admin/v1")
        for method, op in item.items()
    }


def codes(op: dict[str, Any]) -> set[int]:
    return {int(c) for c in op["responses"] if int(c) >= 400}


def test_a_list_documents_its_cursor_error_but_no_conflict_or_missing_id(operations):
    listed = codes(operations["GET", "/admin/v1/users"])
    assert listed == {400, 401, 403, 422, 429}


def test_a_read_by_id_documents_404_but_no_body_errors(operations):
    assert codes(operations["GET", "/admin/v1/users/{user_id}"]) == {401, 403, 404, 422, 429}


def test_a_write_documents_body_errors_and_its_own_conflicts(operations):
    register = operations["POST", "/admin/v1/users/{user_id}/phone-numbers"]
    assert codes(register) == {401, 403, 404, 409, 413, 415, 422, 429}
    assert "no code can be sent" in register["responses"]["409"]["description"]
    body = register["responses"]["409"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ErrorBody"}


def test_no_operation_documents_a_conflict_it_never_raises(operations):
    conflicts = {key for key, op in operations.items() if 409 in codes(op)}
    assert conflicts == {
        ("POST", "/admin/v1/users/{user_id}/phone-numbers"),
        ("POST", "/admin/v1/phone-numbers/{number_id}/resend"),
        ("POST", "/admin/v1/agents/{agent_id}/calendar/connect-link"),
        ("PUT", "/admin/v1/appointments/{appointment_id}/attendance"),
    }
