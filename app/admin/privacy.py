"""Privacy: export everything held about a user, and erase a user (what is erased and what
is kept on purpose is told in app/admin/privacy_service.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from app.admin import privacy_service
from app.admin.auth import Admin
from app.admin.users import get_user
from app.deps import SessionDep

router = APIRouter()
EXPORT_EXAMPLE = {"user": {"id": "usr_0123456789abcdef", "name": "Sam Rivera"}, "agents": []}


@router.get(
    "/users/{user_id}/export",
    summary="Everything held about a user, as JSON (full numbers included: it is theirs)",
    responses={200: {"content": {"application/json": {"example": EXPORT_EXAMPLE}}}},
)
def export(user_id: str, principal: Admin, session: SessionDep) -> dict[str, Any]:
    user = get_user(session, principal, user_id)
    return privacy_service.export_and_record(session, principal.actor, user)


@router.delete(
    "/users/{user_id}",
    status_code=204,
    summary="Erase a user: numbers, agents, conversations, tokens, local appointments",
)
def erase(user_id: str, principal: Admin, session: SessionDep) -> Response:
    user = get_user(session, principal, user_id)
    privacy_service.erase_and_record(session, principal.actor, user)
    return Response(status_code=204)
