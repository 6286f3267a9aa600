"""Who is calling the admin API: an API key (Bearer), its role, its user scope, its limit.

Every refusal (no key, bad key, revoked key, wrong role, rate limit) is audit-logged in a
session of its own, because the request's work is not going to commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from app.admin.errors import ApiError
from app.metrics import RATE_LIMIT_REFUSALS
from app.security import api_keys, audit
from app.security.api_keys import Role
from app.security.ratelimit import KeyLimit, client_key
from app.services import services_of

log = logging.getLogger(__name__)
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An admin API key: `Authorization: Bearer sk_<prefix>_<secret>`.",
)


@dataclass(frozen=True)
class Principal:
    key_id: str
    prefix: str
    role: Role
    user_id: str | None  # set: the key sees only this user's data

    @property
    def actor(self) -> str:
        return f"apikey:{self.prefix}"

    def check_user(self, owner_id: str | None, what: str) -> None:
        """Not found (rather than forbidden) so a scoped key learns nothing of others."""
        if self.user_id is not None and owner_id != self.user_id:
            raise ApiError(404, f"{what} not found")

    def scoped(self, query: Select[Any], column: InstrumentedAttribute[Any]) -> Select[Any]:
        return query if self.user_id is None else query.where(column == self.user_id)

    def require_unscoped(self) -> None:
        if self.user_id is not None:
            raise ApiError(403, "this key is scoped to one user; the resource is global")


def _refuse(
    request: Request, status: int, reason: str, actor: str, headers: dict[str, str] | None = None
) -> ApiError:
    with services_of(request).session_factory() as session:
        audit.record(
            session,
            "admin.refused",
            actor=actor,
            subject=f"{request.method} {request.url.path}",
            details={"reason": reason, "status": status, "client": client_key(request)},
        )
        session.commit()
    log.info("admin request refused (%s): %s %s", reason, request.method, request.url.path)
    messages = {
        "missing_key": "an API key is required (Authorization: Bearer <key>)",
        "invalid_key": "the API key is invalid or revoked",
        "role": "this key's role may not do this",
        "rate_limited": "too many requests for this API key",
    }
    return ApiError(status, messages[reason], headers=headers)


def _authenticate(request: Request, presented: str | None) -> Principal:
    if not presented:
        raise _refuse(request, 401, "missing_key", "anonymous")
    now = services_of(request).clock()
    with services_of(request).session_factory() as session:
        key = api_keys.authenticate(session, presented, now)
        if key is None:
            session.rollback()
            raise _refuse(request, 401, "invalid_key", "anonymous")
        principal = Principal(key.id, key.prefix, Role(key.role), key.user_id)
        if session.dirty:  # last_used_at moved
            session.commit()
    return principal


def requires(needed: Role) -> Callable[..., Principal]:
    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        principal = _authenticate(request, credentials.credentials if credentials else None)
        limit = KeyLimit(
            services_of(request).limiter, services_of(request).settings.rate_limit_admin, "admin"
        )
        decision = limit.check(principal.key_id)
        if not decision.allowed:
            RATE_LIMIT_REFUSALS.labels(scope="admin").inc()
            headers = {"Retry-After": str(decision.retry_after)}
            raise _refuse(request, 429, "rate_limited", principal.actor, headers)
        if not principal.role.allows(needed):
            raise _refuse(request, 403, "role", principal.actor)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"requires_{needed.value}"
    # Read by app/admin/__init__.py to publish each operation's role in the OpenAPI.
    dependency.required_role = needed  # type: ignore[attr-defined]
    return dependency


def required_role(dependant: Dependant) -> Role | None:
    """The role an endpoint's dependencies demand (None: the endpoint is open)."""
    for sub in dependant.dependencies:
        role = getattr(sub.call, "required_role", None) or required_role(sub)
        if role is not None:
            return role
    return None


ReadOnly = Annotated[Principal, Depends(requires(Role.READONLY))]
Operator = Annotated[Principal, Depends(requires(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(requires(Role.ADMIN))]
