"""One error body for the whole admin API: {"error": <code>, "detail": <reason>}.

Validation failures add "fields" (where and what, never the rejected value: it may be
a PIN or a phone number). Other routes keep FastAPI's default bodies.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

ADMIN_PREFIX = "/admin/v1"

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class FieldError(BaseModel):
    loc: list[str | int]
    message: str


class ErrorBody(BaseModel):
    error: str
    detail: str
    fields: list[FieldError] | None = None


class ApiError(HTTPException):
    def __init__(
        self, status_code: int, detail: str, code: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(status_code=status_code, detail=detail, **kwargs)
        self.code = code or CODES.get(status_code, "error")


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def error_response(
    status: int, detail: str, code: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=code or CODES.get(status, "error"), detail=detail)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _is_admin(request: Request) -> bool:
    return request.url.path.startswith(ADMIN_PREFIX)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not _is_admin(request):
        return await http_exception_handler(request, exc)
    code = getattr(exc, "code", None)
    return error_response(exc.status_code, str(exc.detail), code, dict(exc.headers or {}))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not _is_admin(request):
        return await request_validation_exception_handler(request, exc)
    fields = [
        FieldError(loc=list(err.get("loc", ())), message=str(err.get("msg", "invalid")))
        for err in exc.errors()
    ]
    first = fields[0] if fields else None
    detail = f"{'.'.join(map(str, first.loc))}: {first.message}" if first else "invalid request"
    body = ErrorBody(error="validation_error", detail=detail, fields=fields)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the given error statuses, each with the one error body."""
    return {
        status: {"model": ErrorBody, "description": CODES[status].replace("_", " ")}
        for status in sorted(statuses)
    }


# What an operation's shape alone tells: every one needs a key (401), a role (403) and
# is rate limited (429); a path id may not exist or be malformed (404, 422); a body may be
# too large (413), not JSON (415) or invalid (422); query parameters may be invalid (422);
# a cursor may not decode (400). Anything else an endpoint refuses (409, or its own 400
# or 422) it declares in its decorator's `responses=`, next to the code that raises it.
ALWAYS = (401, 403, 429)


def implied_errors(path_params: int, body: bool, query_params: set[str]) -> set[int]:
    statuses = set(ALWAYS)
    if path_params:
        statuses.update((404, 422))  # no such id; an id longer than any we issue
    if body:
        statuses.update((413, 415, 422))
    if query_params:
        statuses.add(422)
    if "cursor" in query_params:
        statuses.add(400)
    return statuses
