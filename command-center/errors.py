"""One table maps every domain error to its HTTP status; bodies say what is wrong."""

from __future__ import annotations

import logging
import sqlite3
from http import HTTPStatus
from typing import Any

import psycopg
import psycopg.errors
from eventsourcing import persistence as es_persistence
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
from cityops.domain.exercises.scenario import ScenarioInvalid

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[DomainError], tuple[int, str]] = {
    StaleVersion: (409, "stale-version"),
    OpenTasksRemain: (409, "open-tasks"),
    ScenarioInvalid: (422, "invalid-scenario"),
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
    if isinstance(error, ScenarioInvalid):
        # Every problem of the scenario file, each at its line.
        body.update(problems=[{"field": f"line {p.line}", "line": p.line,
                               "message": p.message} for p in error.problems])
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


STORAGE_RETRY_AFTER_S = 5

STORAGE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    es_persistence.OperationalError,
    es_persistence.InterfaceError,
    es_persistence.ConnectionUnavailableError,
    psycopg.OperationalError,
    psycopg.errors.InsufficientPrivilege,
    psycopg.errors.DiskFull,
)
SQLITE_UNAVAILABLE = ("database is locked", "disk i/o error", "database or disk is full",
                      "unable to open database file", "attempt to write a readonly database")
"""SQLite's words for the same (its OperationalError also covers mistakes in SQL)."""
"""What a store that cannot take a request right now raises (down, restarting, out of
space, refusing writes): a 503 to retry, not a 500. A programming error stays a 500."""


def storage_unavailable(error: BaseException) -> bool:
    """Whether `error` (or what it wraps: the library re-raises the driver's errors) says
    the store is unavailable rather than that the code is wrong."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, STORAGE_UNAVAILABLE):
            return True
        if isinstance(seen, sqlite3.OperationalError) and str(seen).lower().startswith(
                SQLITE_UNAVAILABLE):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def parameter_problems(error: RequestValidationError) -> list[str]:
    """Each refused parameter as `name: why` (its place, query or path, left out), for the
    protocols that answer refusals in a form of their own (OGC API, Open311)."""
    return [f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in error.errors()]


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors and validation errors become clear JSON bodies, never a stack trace."""

    @app.exception_handler(es_persistence.PersistenceError)
    @app.exception_handler(psycopg.Error)
    @app.exception_handler(sqlite3.Error)
    async def storage_error(request: Request, error: Exception) -> JSONResponse:
        if not storage_unavailable(error):
            raise error  # a bug: the server's own 500, logged with its stack trace
        log.warning("%s %s: the store is unavailable: %s", request.method, request.url.path,
                    error)
        return JSONResponse(
            status_code=503,
            content={"error": "storage-unavailable",
                     "detail": "the event store or the read models cannot be reached or "
                               "written just now; nothing was recorded by this request that "
                               "a retry with the same Idempotency-Key would repeat"},
            headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)})

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
