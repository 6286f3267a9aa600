"""Keys and roles: 401 without a valid key, 403 for the wrong role, every refusal audited,
scoped keys blind to other users, per-key rate limit with Retry-After."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.models import ApiKey, AuditEntry
from app.security.api_keys import Role
from tests.admin.conftest import API, Api, RecordingSender, create_agent, create_user, make_key

# Every admin endpoint and the least role it needs. A new endpoint fails
# test_matrix_covers_every_endpoint until it is classified here.
MATRIX: dict[tuple[str, str], Role] = {
    ("GET", "/users"): Role.READONLY,
    ("POST", "/users"): Role.OPERATOR,
    ("GET", "/users/{user_id}"): Role.READONLY,
    ("PATCH", "/users/{user_id}"): Role.OPERATOR,
    ("DELETE", "/users/{user_id}"): Role.ADMIN,
    ("GET", "/users/{user_id}/export"): Role.ADMIN,
    ("GET", "/phone-numbers"): Role.READONLY,
    ("POST", "/users/{user_id}/phone-numbers"): Role.OPERATOR,
    ("GET", "/phone-numbers/{number_id}"): Role.READONLY,
    ("POST", "/phone-numbers/{number_id}/verify"): Role.OPERATOR,
    ("POST", "/phone-numbers/{number_id}/resend"): Role.OPERATOR,
    ("DELETE", "/phone-numbers/{number_id}"): Role.OPERATOR,
    ("GET", "/agents"): Role.READONLY,
    ("POST", "/agents"): Role.OPERATOR,
    ("GET", "/agents/{agent_id}"): Role.READONLY,
    ("PATCH", "/agents/{agent_id}"): Role.OPERATOR,
    ("GET", "/agents/{agent_id}/calendar"): Role.READONLY,
    ("DELETE", "/agents/{agent_id}/calendar"): Role.OPERATOR,
    ("POST", "/agents/{agent_id}/calendar/connect-link"): Role.OPERATOR,
    ("GET", "/appointments"): Role.READONLY,
    ("GET", "/appointments/{appointment_id}"): Role.READONLY,
    ("POST", "/appointments/{appointment_id}/cancel"): Role.OPERATOR,
    ("POST", "/appointments/{appointment_id}/reschedule"): Role.OPERATOR,
    ("GET", "/conversations"): Role.READONLY,
    ("GET", "/conversations/{conversation_id}"): Role.READONLY,
    ("GET", "/analytics"): Role.READONLY,
    ("GET", "/notifications"): Role.READONLY,
    ("GET", "/agents/{agent_id}/reminder-settings"): Role.READONLY,
    ("PUT", "/agents/{agent_id}/reminder-settings"): Role.OPERATOR,
    ("PUT", "/appointments/{appointment_id}/attendance"): Role.OPERATOR,
    ("GET", "/analytics/reminders"): Role.READONLY,
    ("GET", "/opt-outs"): Role.READONLY,
    ("DELETE", "/opt-outs/{opt_out_id}"): Role.ADMIN,
    # Audit entries are scrubbed (masked numbers, no secrets): readonly may read and
    # verify them, as README says.
    ("GET", "/audit"): Role.READONLY,
    ("GET", "/audit/verify"): Role.READONLY,
    ("GET", "/api-keys"): Role.ADMIN,
    ("POST", "/api-keys"): Role.ADMIN,
    ("DELETE", "/api-keys/{key_id}"): Role.ADMIN,
}


def admin_routes(app: Any) -> set[tuple[str, str]]:
    return {
        (method.upper(), path.removeprefix(API))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith(API)
        for method in operations
    }


def concrete(path: str) -> str:
    return path.replace("{", "x_").replace("}", "")


def test_matrix_covers_every_endpoint(app: Any) -> None:
    routes = admin_routes(app)
    optional = {("POST", "/agents/{agent_id}/calendar/connect-link")}
    assert routes - set(MATRIX) == set()
    assert set(MATRIX) - routes <= optional


def test_openapi_publishes_the_role_of_every_operation(app: Any) -> None:
    paths = app.openapi()["paths"]
    for (method, path), role in MATRIX.items():
        if API + path not in paths:
            continue  # the optional connect-link endpoint
        operation = paths[API + path][method.lower()]
        assert operation["x-required-role"] == role.value, (method, path)
        assert f"Role: `{role.value}` or higher." in operation["description"]


def test_readme_says_what_readonly_may_do() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "`readonly` reads everything, the audit trail and its verification included" in (
        " ".join(readme.split())
    )


@pytest.mark.parametrize("method_path", sorted(MATRIX), ids=lambda mp: f"{mp[0]} {mp[1]}")
def test_role_matrix(api: Api, app: Any, keys: dict[str, str], method_path: tuple[str, str]):
    method, path = method_path
    if method_path not in admin_routes(app):
        pytest.skip("endpoint not installed (calendar connect flow absent)")
    needed = MATRIX[method_path]
    for role in Role:
        response = api.as_key(keys[role.value]).request(method, concrete(path), json={})
        if role.allows(needed):
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            assert response.json()["error"] == "forbidden"
    anonymous = api.as_key(None).request(method, concrete(path), json={})
    assert anonymous.status_code == 401
    assert anonymous.json() == {
        "error": "unauthorized",
        "detail": "an API key is required (Authorization: Bearer <key>)",
    }


def test_refusals_are_audited_without_the_key(
    api: Api, keys: dict[str, str], session: Session
) -> None:
    api.as_key(None).get("/users")
    forged = keys["readonly"][:-4] + "AAAA"
    api.as_key(forged).get("/users")
    api.as_key(keys["readonly"]).post("/users", json={"name": "x"})
    rows = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "admin.refused").order_by(AuditEntry.id)
    ).all()
    assert [r.details["reason"] for r in rows] == ["missing_key", "invalid_key", "role"]
    assert rows[2].actor.startswith("apikey:")
    assert all(r.subject in ("GET /admin/v1/users", "POST /admin/v1/users") for r in rows)
    assert not any(forged in str(r.details) or keys["readonly"] in r.actor for r in rows)


def test_revoked_key_is_refused_and_last_use_recorded(
    api: Api, keys: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    reader = make_key(session_factory, Role.READONLY)
    assert api.as_key(reader).get("/users").status_code == 200
    with session_factory() as session:
        key = session.scalar(select(ApiKey).where(ApiKey.prefix == reader.split("_")[1]))
        assert key is not None and key.last_used_at is not None
        key_id = key.id
        assert key.key_hash != reader and reader not in key.key_hash
    revoked = api.delete(f"/api-keys/{key_id}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert api.as_key(reader).get("/users").status_code == 401


def test_key_created_by_api_is_shown_once(api: Api) -> None:
    created = api.post("/api-keys", json={"name": "dashboard", "role": "readonly"})
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("sk_" + created.json()["prefix"] + "_")
    listed = api.get("/api-keys").json()
    assert all("key" not in item for item in listed)
    assert created.json()["prefix"] in {item["prefix"] for item in listed}
    assert api.as_key(key).get("/users").status_code == 200


def test_scoped_key_sees_only_its_user(
    api: Api, sender: RecordingSender, session_factory: sessionmaker[Session]
) -> None:
    mine, theirs = create_user(api, "Mine"), create_user(api, "Theirs")
    my_agent = create_agent(api, mine["id"])
    their_agent = create_agent(api, theirs["id"])
    scoped = api.as_key(make_key(session_factory, Role.OPERATOR, user_id=mine["id"]))

    assert [u["id"] for u in scoped.get("/users").json()["items"]] == [mine["id"]]
    assert scoped.get(f"/users/{theirs['id']}").status_code == 404
    assert [a["id"] for a in scoped.get("/agents").json()["items"]] == [my_agent["id"]]
    assert scoped.get(f"/agents/{their_agent['id']}").status_code == 404
    assert scoped.patch(f"/agents/{their_agent['id']}", json={"greeting": "hi"}).status_code == 404
    assert scoped.get("/agents", params={"user_id": theirs["id"]}).json()["items"] == []
    assert (
        scoped.post(
            f"/users/{theirs['id']}/phone-numbers", json={"number": "+14155550111"}
        ).status_code
        == 404
    )
    assert scoped.post("/users", json={"name": "New"}).status_code == 403
    assert scoped.get("/audit").status_code == 403
    assert scoped.get("/opt-outs").status_code == 403
    assert scoped.get(f"/users/{mine['id']}").status_code == 200


def test_per_key_rate_limit_answers_429_with_retry_after(
    app: Any, api: Api, keys: dict[str, str], session: Session
) -> None:
    app.state.services.settings = app.state.services.settings.model_copy(
        update={"rate_limit_admin": "3/minute"}
    )
    statuses = [api.get("/users").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api.get("/users")
    assert refused.json()["error"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another key has its own budget.
    assert api.as_key(keys["readonly"]).get("/users").status_code == 200
    reasons = session.scalars(
        select(AuditEntry.details).where(AuditEntry.action == "admin.refused")
    ).all()
    assert [r["reason"] for r in reasons] == ["rate_limited", "rate_limited"]
