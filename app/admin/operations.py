"""Global operator resources: SMS opt-outs, the audit log and its chain, API keys."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from app.admin import operation_service
from app.admin import schemas as s
from app.admin.auth import Admin, ReadOnly
from app.admin.errors import ApiError, not_found
from app.admin.pagination import DEFAULT_LIMIT, Order, Page, paginate
from app.admin.params import Moment
from app.admin.users import Cursor, Limit
from app.deps import ServicesDep, SessionDep
from app.models import AuditEntry
from app.phone import mask
from app.security import api_keys, audit
from app.security.api_keys import Role
from app.services import services_of

router = APIRouter()


# --- opt-outs ------------------------------------------------------------------------------


MAX_OFFSET = 10_000_000


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid cursor", "invalid_cursor") from None
    # An offset past every row is refused here, before the database sees a number it
    # cannot hold.
    if not 0 <= value <= MAX_OFFSET:
        raise ApiError(400, "invalid cursor", "invalid_cursor")
    return value


@router.get(
    "/opt-outs",
    response_model=Page[s.OptOutOut],
    summary="Numbers that texted STOP (newest first)",
    description="Paged by offset: a keyset cursor would carry the number itself.",
)
def list_opt_outs(
    services: ServicesDep,
    principal: ReadOnly,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[s.OptOutOut]:
    principal.require_unscoped()
    secret = services.settings.app_secret_key.get_secret_value()
    offset = _offset(cursor)
    rows = operation_service.opt_outs_window(session, offset, limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode().rstrip("=")
    items = [
        s.OptOutOut(
            id=operation_service.opt_out_id(secret, r.e164),
            number=mask(r.e164),
            opted_out_at=r.opted_out_at,
        )
        for r in rows
    ]
    return Page(items=items, next_cursor=next_cursor, limit=limit)


@router.delete(
    "/opt-outs/{opt_out_id}",
    status_code=204,
    summary="Remove an opt-out (only when the person asked to receive texts again)",
)
def remove_opt_out(
    opt_out_id_: Annotated[str, Path(alias="opt_out_id", max_length=64)],
    request: Request,
    principal: Admin,
    session: SessionDep,
) -> Response:
    principal.require_unscoped()
    secret = services_of(request).settings.app_secret_key.get_secret_value()
    if not operation_service.remove_opt_out(session, principal.actor, secret, opt_out_id_):
        raise not_found("opt-out")
    return Response(status_code=204)


@router.get("/audit", response_model=Page[s.AuditEntryOut], summary="Query the audit log")
def query_audit(
    principal: ReadOnly,
    session: SessionDep,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[
        str | None, Query(max_length=64, description="exact, or a prefix ending in *")
    ] = None,
    subject: Annotated[str | None, Query(max_length=128)] = None,
    since: Moment | None = None,
    until: Moment | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[s.AuditEntryOut]:
    principal.require_unscoped()
    query = operation_service.audit_query(actor, action, subject, since, until)
    order = Order(AuditEntry.id, AuditEntry.id, descending=True)
    rows, next_cursor = paginate(session, query, order, cursor, limit)
    return Page(
        items=[s.AuditEntryOut.model_validate(r) for r in rows],
        next_cursor=next_cursor,
        limit=limit,
    )


@router.get("/audit/verify", response_model=s.ChainOut, summary="Check the audit log's hash chain")
def verify_audit(principal: ReadOnly, session: SessionDep) -> s.ChainOut:
    principal.require_unscoped()
    report = audit.verify_chain(session)
    return s.ChainOut(
        ok=report.ok,
        entries=report.entries,
        first_bad_id=report.first_bad_id,
        reason=report.reason,
    )


# --- API keys ---------------------------------------------------------------------------------


@router.get("/api-keys", response_model=list[s.ApiKeyOut], summary="List API keys")
def list_api_keys(principal: Admin, session: SessionDep) -> list[s.ApiKeyOut]:
    principal.require_unscoped()
    return [s.ApiKeyOut.model_validate(k) for k in api_keys.list_keys(session)]


@router.post(
    "/api-keys",
    status_code=201,
    response_model=s.ApiKeyCreated,
    summary="Create an API key (the key is shown once)",
)
def create_api_key(body: s.ApiKeyCreate, principal: Admin, session: SessionDep) -> s.ApiKeyCreated:
    principal.require_unscoped()
    if body.user_id is not None and not operation_service.user_exists(session, body.user_id):
        raise ApiError(422, "user_id: no such user")
    new = operation_service.create_api_key(
        session, principal.actor, body.name, Role(body.role), body.user_id
    )
    created = s.ApiKeyOut.model_validate(new.key).model_dump()
    return s.ApiKeyCreated.model_validate({**created, "key": new.plaintext})


@router.delete(
    "/api-keys/{key_id}", response_model=s.ApiKeyOut, summary="Revoke an API key (by id or prefix)"
)
def revoke_api_key(
    key_id: str, services: ServicesDep, principal: Admin, session: SessionDep
) -> s.ApiKeyOut:
    principal.require_unscoped()
    key = operation_service.revoke_api_key(session, principal.actor, key_id, services.clock())
    if key is None:
        raise not_found("API key")
    return s.ApiKeyOut.model_validate(key)
