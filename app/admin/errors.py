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


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": code.replace("_", " ")}
    for status, code in CODES.items()
    if status not in (405,)
}
