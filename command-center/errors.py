"""One table maps every domain error to its HTTP status; bodies say what is wrong."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from cityops.domain.errors import (
    CatalogueError,
    CommandIdReused,
    ConcurrencyConflict,
    DomainError,
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
)

STATUS_BY_ERROR: dict[type[DomainError], tuple[int, str]] = {
    InvalidValue: (422, "invalid-value"),
    IllegalTransition: (409, "illegal-transition"),
    ConcurrencyConflict: (409, "conflict"),
    CommandIdReused: (409, "command-id-reused"),
    NotFound: (404, "not-found"),
    NotPermitted: (403, "not-permitted"),
    CatalogueError: (500, "catalogue-error"),
}


def status_for(error: DomainError) -> tuple[int, str]:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]  # type: ignore[index]
    return 400, "domain-error"


def install_error_handlers(app: FastAPI) -> None:
    """Domain errors and validation errors become clear JSON bodies, never a stack trace."""

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, error: DomainError) -> JSONResponse:
        status, code = status_for(error)
        return JSONResponse(status_code=status, content={"error": code, "detail": str(error)})

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
