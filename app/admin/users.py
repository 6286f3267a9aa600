"""Users and their phone numbers (register → SMS code → verify; remove)."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from sqlalchemy.orm import Session

from app.admin import agent_service, user_service
from app.admin import schemas as s
from app.admin.auth import Operator, Principal, ReadOnly
from app.admin.errors import ApiError, not_found
from app.admin.pagination import DEFAULT_LIMIT, MAX_LIMIT, Order, Page, paginate
from app.deps import SessionDep
from app.models import PhoneNumber, User
from app.notify import send_sms
from app.security import verification
from app.security.verification import Outcome, SendRefused
from app.services import services_of

router = APIRouter()
CANNOT_TEXT_CODE: dict[int | str, dict[str, Any]] = {
    409: {"description": "an agent line, already verified, or no code can be sent"}
}
CODE_CHECKED: dict[int | str, dict[str, Any]] = {
    200: {"description": "status says whether the code was right"}
}
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the last page")]


def get_user(session: Session, principal: Principal, user_id: str) -> User:
    row = user_service.user_by_id(session, user_id)
    if row is None:
        raise not_found("user")
    principal.check_user(row.id, "user")
    return row


def policy(request: Request) -> verification.Policy:
    settings = services_of(request).settings
    return verification.Policy(
        secret=settings.app_secret_key.get_secret_value(),
        ttl=timedelta(minutes=settings.verification_code_ttl_minutes),
        max_attempts=settings.verification_max_attempts,
    )


@router.get("/users", response_model=Page[s.UserOut], summary="List users (oldest first)")
def list_users(
    principal: ReadOnly,
    session: SessionDep,
    q: Annotated[str | None, Query(max_length=200, description="name contains")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[s.UserOut]:
    query = user_service.users_query(principal, q)
    rows, next_cursor = paginate(session, query, Order(User.created_at, User.id), cursor, limit)
    return Page(
        items=[s.UserOut.model_validate(r) for r in rows], next_cursor=next_cursor, limit=limit
    )


@router.post("/users", status_code=201, response_model=s.UserOut, summary="Create a user")
def create_user(body: s.UserCreate, principal: Operator, session: SessionDep) -> s.UserOut:
    principal.require_unscoped()
    row = user_service.create_user(session, principal.actor, body.name, body.email)
    return s.UserOut.model_validate(row)


@router.get("/users/{user_id}", response_model=s.UserOut, summary="Get a user")
def read_user(user_id: str, principal: ReadOnly, session: SessionDep) -> s.UserOut:
    return s.UserOut.model_validate(get_user(session, principal, user_id))


@router.patch("/users/{user_id}", response_model=s.UserOut, summary="Update a user")
def update_user(
    user_id: str, body: s.UserUpdate, principal: Operator, session: SessionDep
) -> s.UserOut:
    row = get_user(session, principal, user_id)
    changes = body.model_dump(exclude_unset=True)
    row = user_service.update_user(session, principal.actor, row, changes)
    return s.UserOut.model_validate(row)


# --- phone numbers -----------------------------------------------------------------------


def get_number(session: Session, principal: Principal, number_id: str) -> PhoneNumber:
    row = user_service.number_by_id(session, number_id)
    if row is None:
        raise not_found("phone number")
    if principal.user_id is not None and row.user_id != principal.user_id:
        # A scoped key may still finish moving a number to its own user.
        pending = verification.pending(session, row)
        if pending is None or pending.user_id != principal.user_id:
            raise not_found("phone number")
    return row


def _number_out(session: Session, row: PhoneNumber, principal: Principal) -> s.PhoneNumberOut:
    pending = verification.pending(session, row)
    if principal.user_id is not None and row.user_id != principal.user_id:
        # A scoped key moving someone else's number in sees only its own side of it: the
        # number as pending for its user, never the current owner, agent or dates.
        created = pending.created_at if pending is not None else row.created_at
        return s.PhoneNumberOut.model_validate(row).model_copy(
            update={
                "user_id": principal.user_id,
                "agent_id": None,
                "verified": False,
                "verified_at": None,
                "created_at": created,
                "pending_verification": pending is not None,
            }
        )
    out = s.PhoneNumberOut.model_validate(row)
    return out.model_copy(update={"pending_verification": pending is not None})


@router.get("/phone-numbers", response_model=Page[s.PhoneNumberOut], summary="List phone numbers")
def list_numbers(
    principal: ReadOnly,
    session: SessionDep,
    user_id: Annotated[str | None, Query(max_length=32)] = None,
    verified: bool | None = None,
    purpose: Annotated[str | None, Query(pattern="^(caller|agent_line)$")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[s.PhoneNumberOut]:
    query = user_service.numbers_query(principal, user_id, verified, purpose)
    order = Order(PhoneNumber.created_at, PhoneNumber.id)
    rows, next_cursor = paginate(session, query, order, cursor, limit)
    items = [_number_out(session, r, principal) for r in rows]
    return Page(items=items, next_cursor=next_cursor, limit=limit)


@router.post(
    "/users/{user_id}/phone-numbers",
    status_code=202,
    response_model=s.VerificationOut,
    summary="Register a number: a 6-digit code is texted to it",
    description="A caller number routes only once verified. A number that belongs to "
    "another user stays theirs until the code sent to it is entered here. Agent lines "
    "(our own numbers, admin role) are verified at once and need agent_id.",
    responses=CANNOT_TEXT_CODE,
)
def register_number(
    user_id: str,
    body: s.PhoneNumberCreate,
    request: Request,
    principal: Operator,
    session: SessionDep,
) -> s.VerificationOut:
    owner = get_user(session, principal, user_id)
    now = services_of(request).clock()
    if body.agent_id is not None:
        agent = agent_service.agent_by_id(session, body.agent_id)
        if agent is None or agent.user_id != owner.id:
            raise ApiError(422, "agent_id must be one of this user's agents")
    if body.purpose == "agent_line":
        return _register_line(session, principal, owner, body, now)
    row = user_service.number_by_e164(session, body.number)
    if row is not None and row.purpose != "caller":
        raise ApiError(409, "this number is an agent line")
    if row is None:
        row = user_service.add_caller_number(session, body.number, owner.id, body.agent_id)
    elif row.user_id == owner.id and row.verified_at is not None:
        raise ApiError(409, "this number is already verified for this user")
    elif row.user_id == owner.id:
        row.agent_id = body.agent_id or row.agent_id
    moving = row.user_id != owner.id
    try:
        pending = verification.send_code(
            session,
            partial(send_sms, session, services_of(request).sms_sender),
            row,
            for_user_id=owner.id,
            policy=policy(request),
            now=now,
        )
    except SendRefused as exc:
        session.rollback()
        raise ApiError(409, exc.reason, "cannot_send_code") from None
    user_service.record_number_event(
        session,
        "admin.phone.code_sent",
        principal.actor,
        row.id,
        {"user_id": owner.id, "number": body.number, "moving": moving},
    )
    # Same answer whether or not the number was someone else's: a scoped key learns
    # nothing of other users (the move still needs the code texted to the number).
    return s.VerificationOut(
        phone_number=_number_out(session, row, principal),
        status="code_sent",
        expires_at=pending.expires_at,
    )


def _register_line(
    session: Session, principal: Principal, owner: User, body: s.PhoneNumberCreate, now: datetime
) -> s.VerificationOut:
    if principal.role.value != "admin" or principal.user_id is not None:
        raise ApiError(403, "only an unscoped admin key registers agent lines")
    if body.agent_id is None:
        raise ApiError(422, "an agent line needs agent_id")
    if user_service.number_by_e164(session, body.number) is not None:
        raise ApiError(409, "this number is already registered")
    row = user_service.add_agent_line(
        session, principal.actor, body.number, owner.id, body.agent_id, now
    )
    return s.VerificationOut(phone_number=_number_out(session, row, principal), status="verified")


@router.get("/phone-numbers/{number_id}", response_model=s.PhoneNumberOut, summary="Get a number")
def read_number(number_id: str, principal: ReadOnly, session: SessionDep) -> s.PhoneNumberOut:
    return _number_out(session, get_number(session, principal, number_id), principal)


@router.post(
    "/phone-numbers/{number_id}/verify",
    response_model=s.VerificationOut,
    summary="Enter the code texted to the number",
    responses=CODE_CHECKED,
)
def verify_number(
    number_id: str,
    body: s.VerifyCode,
    request: Request,
    principal: Operator,
    session: SessionDep,
) -> s.VerificationOut:
    row = get_number(session, principal, number_id)
    pol = policy(request)
    previous_owner = row.user_id
    outcome = verification.check_code(
        session, row, body.code, policy=pol, now=services_of(request).clock()
    )
    pending = verification.pending(session, row)
    details: dict[str, object] = {"outcome": outcome.value}
    if outcome is Outcome.VERIFIED and previous_owner != row.user_id:
        details.update(moved_from=previous_owner, moved_to=row.user_id)
    user_service.record_number_event(
        session, "admin.phone.verify", principal.actor, row.id, details
    )
    attempts_left = None
    if pending is not None and outcome is Outcome.WRONG_CODE:
        attempts_left = max(pol.max_attempts - pending.attempts, 0)
    return s.VerificationOut(
        phone_number=_number_out(session, row, principal),
        status=outcome.value,
        expires_at=pending.expires_at if pending else None,
        attempts_left=attempts_left,
    )


@router.post(
    "/phone-numbers/{number_id}/resend",
    status_code=202,
    response_model=s.VerificationOut,
    summary="Text a fresh code (the old one stops working)",
    responses=CANNOT_TEXT_CODE,
)
def resend_code(
    number_id: str, request: Request, principal: Operator, session: SessionDep
) -> s.VerificationOut:
    row = get_number(session, principal, number_id)
    if row.purpose != "caller":
        raise ApiError(409, "agent lines are not verified by SMS")
    current = verification.pending(session, row)
    target = current.user_id if current is not None and current.user_id else row.user_id
    if principal.user_id is not None:
        target = principal.user_id
    if target == row.user_id and row.verified_at is not None:
        raise ApiError(409, "this number is already verified")
    try:
        pending = verification.send_code(
            session,
            partial(send_sms, session, services_of(request).sms_sender),
            row,
            for_user_id=target,
            policy=policy(request),
            now=services_of(request).clock(),
        )
    except SendRefused as exc:
        session.rollback()
        raise ApiError(409, exc.reason, "cannot_send_code") from None
    user_service.record_number_event(session, "admin.phone.code_sent", principal.actor, row.id)
    return s.VerificationOut(
        phone_number=_number_out(session, row, principal),
        status="code_sent",
        expires_at=pending.expires_at,
    )


@router.delete(
    "/phone-numbers/{number_id}", status_code=204, summary="Remove a number (stops routing)"
)
def remove_number(number_id: str, principal: Operator, session: SessionDep) -> Response:
    row = get_number(session, principal, number_id)
    principal.check_user(row.user_id, "phone number")
    user_service.remove_number(session, principal.actor, row)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
