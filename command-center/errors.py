"""One table maps every domain error to its HTTP status; bodies say what is wrong."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from cityops.command_center.auth import NotAuthenticated
from cityops.command_center.login_guard import LoginThrottled, PasswordChecksBusy
from cityops.domain.errors import (
    CatalogueError,
    CommandIdReused,
    ConcurrencyConflict,
    DomainError,
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
    OpenTasksRemain,
    StaleVersion,
)

STATUS_BY_ERROR: dict[type[DomainError], tuple[int, str]] = {
    StaleVersion: (409, "stale-version"),
    OpenTasksRemain: (409, "open-tasks"),
    InvalidValue: (422, "invalid-value"),
    IllegalTransition: (409, "illegal-transition"),
    ConcurrencyConflict: (409, "conflict"),
    CommandIdReused: (409, "command-id-reused"),
    NotFound: (404, "not-found"),
    NotPermitted: (403, "not-permitted"),
    NotAuthenticated: (401, "not-authenticated"),
    LoginThrottled: (429, "too-many-failed-logins"),
    PasswordChecksBusy: (503, "busy"),
    CatalogueError: (500, "catalogue-error"),
}


def status_for(error: DomainError) -> tuple[int, str]:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]  # type: ignore[index]
    return 400, "domain-error"


def _auth_headers(error: DomainError) -> dict[str, str] | None:
    """RFC 6750: a 401 says how to authenticate; a throttled login or a busy server says
    when to retry."""
    if isinstance(error, NotAuthenticated):
        return {"WWW-Authenticate": 'Bearer realm="cityops"'}
    if isinstance(error, LoginThrottled | PasswordChecksBusy):
        return {"Retry-After": str(error.retry_after_s)}
    return None


def error_body(error: DomainError) -> dict[str, Any]:
    """The JSON body of a refused command: its code, what is wrong, and for a stale version
    the version the user saw and the current one (so a client can reload and show both)."""
    _, code = status_for(error)
    body: dict[str, Any] = {"error": code, "detail": str(error)}
    if isinstance(error, StaleVersion):
        body.update(seen_version=error.seen, current_version=error.current)
    if isinstance(error, OpenTasksRemain):
        body.update(open_tasks=[task_id for task_id, *_ in error.open_tasks])
    return body


def error_response(error: DomainError) -> JSONResponse:
    """The answer to a refused request: its status, the error body and the headers."""
    return JSONResponse(status_code=status_for(error)[0], content=error_body(error),
                        headers=_auth_headers(error))


HTTP_ERROR_CODES: dict[int, str] = {
    404: "not-found",
    405: "method-not-allowed",
    422: "invalid-request",
}
"""The `error` of a refusal raised as an `HTTPException` (a malformed `If-Match` or bbox, an
unknown route), by its status."""


def http_error_body(error: HTTPException) -> dict[str, Any]:
    """The error body of an `HTTPException`: its `detail` with an `error` code, as every
    other refusal (FastAPI's own body is `{"detail"}` alone)."""
    code = HTTP_ERROR_CODES.get(error.status_code)
    if code is None:
        try:
            code = HTTPStatus(error.status_code).phrase.lower().replace(" ", "-")
        except ValueError:
            code = "http-error"
    return {"error": code, "detail": str(error.detail)}


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors and validation errors become clear JSON bodies, never a stack trace."""

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, error: DomainError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
            for e in error.errors()
        ]
        detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse(
            status_code=422,
            content=jsonable_encoder(
                {"error": "invalid-request", "detail": detail, "problems": problems}
            ),
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> Response:
        if error.status_code in (204, 304):  # no body allowed
            return Response(status_code=error.status_code, headers=error.headers)
        return JSONResponse(status_code=error.status_code, content=http_error_body(error),
                            headers=error.headers)
