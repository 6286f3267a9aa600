"""Schemathesis over the admin OpenAPI: generated requests (valid and not) with an admin
key never get a 5xx, and every answer matches the documented status codes and bodies.

Bounded for the normal run (fixed seed, few examples per operation); set
FUZZ_EXAMPLES=500 for a longer run by hand.
"""

from __future__ import annotations

import os
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session, sessionmaker

from app.demo import DemoData
from app.security.api_keys import Role
from tests.admin.conftest import RecordingSender, make_key

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_admin_api_survives_generated_requests(
    app: Any,
    sender: RecordingSender,
    demo: DemoData,
    session_factory: sessionmaker[Session],
) -> None:
    app.state.services.settings = app.state.services.settings.model_copy(
        update={"rate_limit_admin": "100000/minute"}
    )
    headers = {"Authorization": f"Bearer {make_key(session_factory, Role.ADMIN)}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().path.startswith("/admin/v1")
    ]
    assert len(operations) >= 30
    for operation in operations:
        # Erasing the demo user early would leave the rest fuzzing an empty database.
        if operation.method.upper() == "DELETE" and operation.path == "/admin/v1/users/{user_id}":
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
