"""Global operator resources: SMS opt-outs, the audit log and its chain, API keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy import select

from app.admin import schemas as s
from app.admin.auth import Admin, ReadOnly
from app.admin.errors import ApiError, not_found
from app.admin.pagination import DEFAULT_LIMIT, Order, Page, paginate
from app.admin.params import Moment
from app.admin.users import Cursor, Limit
from app.deps import ServicesDep, SessionDep
from app.models import AuditEntry, SmsOptOut, User
from app.phone import mask
from app.security import api_keys, audit
from app.security.api_keys import Role
from app.services import services_of

router = APIRouter()


# --- opt-outs ------------------------------------------------------------------------------


def opt_out_id(secret: str, e164: str) -> str:
    """An opaque, stable handle: the API never shows the full number, not even in an id."""
    return hmac.new(secret.encode(), e164.encode(), hashlib.sha256).hexdigest()[:24]


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
    rows = list(
        session.scalars(
            select(SmsOptOut)
            .order_by(SmsOptOut.opted_out_at.desc(), SmsOptOut.e164)
            .offset(offset)
            .limit(limit + 1)
        )
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode().rstrip("=")
    items = [
        s.OptOutOut(id=opt_out_id(secret, r.e164), number=mask(r.e164), opted_out_at=r.opted_out_at)
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
    # Opt-out tables stay small (people who texted STOP); a scan beats storing the handle.
    for row in session.scalars(select(SmsOptOut)):
        if hmac.compare_digest(opt_out_id(secret, row.e164), opt_out_id_):
            session.delete(row)
            audit.record(session, "admin.optout.removed", actor=principal.actor, subject=row.e164)
            session.commit()
            return Response(status_code=204)
    raise not_found("opt-out")


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
    query = select(AuditEntry)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        if action.endswith("*"):
            query = query.where(AuditEntry.action.startswith(action[:-1], autoescape=True))
        else:
            query = query.where(AuditEntry.action == action)
    if subject:
        query = query.where(AuditEntry.subject == subject)
    if since:
        query = query.where(AuditEntry.at >= since)
    if until:
        query = query.where(AuditEntry.at < until)
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
    if body.user_id is not None and session.get(User, body.user_id) is None:
        raise ApiError(422, "user_id: no such user")
    new = api_keys.create_key(session, name=body.name, role=Role(body.role), user_id=body.user_id)
    audit.record(
        session,
        "admin.apikey.created",
        actor=principal.actor,
        subject=new.key.prefix,
        details={"role": body.role, "scoped_to": body.user_id},
    )
    session.commit()
    created = s.ApiKeyOut.model_validate(new.key).model_dump()
    return s.ApiKeyCreated.model_validate({**created, "key": new.plaintext})


@router.delete(
    "/api-keys/{key_id}", response_model=s.ApiKeyOut, summary="Revoke an API key (by id or prefix)"
)
def revoke_api_key(
    key_id: str, services: ServicesDep, principal: Admin, session: SessionDep
) -> s.ApiKeyOut:
    principal.require_unscoped()
    key = api_keys.revoke(session, key_id, services.clock())
    if key is None:
        raise not_found("API key")
    audit.record(session, "admin.apikey.revoked", actor=principal.actor, subject=key.prefix)
    session.commit()
    return s.ApiKeyOut.model_validate(key)
