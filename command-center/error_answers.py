"""The error answers of every operation, in the published OpenAPI document: the document
used to declare FastAPI's default 422 body (`HTTPValidationError`) while the app answers
`{"error", "detail", "problems"}`, and left 401/403/404/409 undeclared on most operations.

Declared once, by kind of operation, when the document is built (not route by route):
every operation that needs a login may answer 401 and 403 (a role, or a department user's
scope, may not do it); one with an id in its path 404; a command 409; every operation 422
(an unknown query parameter is refused on every route) and a login or a password change
429. `/ogc` answers its errors in OGC API's exception form (400/404) and Open311 in
GeoReport v2's error list (JSON or XML).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from cityops.command_center.command_gate import ROUTE_COMMANDS, ROUTE_ROLES
from cityops.command_center.query_checks import PAGES


class Problem(BaseModel):
    """One thing wrong with a request: where, and what."""

    field: str = Field(description="Where: the parameter, header or body field, dotted "
                       "(`location.coordinates`, `limit`), or `line N` of a scenario file")
    message: str
    line: int | None = Field(default=None, description="The line of a scenario file "
                             "(`invalid-scenario`), 1 the first")


class ErrorPublic(BaseModel):
    """The body of every refused request (OGC API and Open311 have their own forms)."""

    model_config = ConfigDict(title="ErrorPublic")

    error: str = Field(description="What kind of refusal, as a code: `invalid-request`, "
                       "`invalid-value`, `not-authenticated`, `not-permitted`, `not-found`, "
                       "`stale-version`, `open-tasks`, `illegal-transition`, `conflict`, "
                       "`command-id-reused`, `too-many-failed-logins`, `invalid-scenario`, ...",
                       examples=["stale-version"])
    detail: str = Field(description="What is wrong, in words")
    problems: list[Problem] | None = Field(
        default=None, description="A refused request's fields, each with what is wrong "
        "(`invalid-request`); every problem of a scenario file by line (`invalid-scenario`)")
    seen_version: int | None = Field(
        default=None, description="The version the user saw (`stale-version`)")
    current_version: int | None = Field(
        default=None, description="The document's version now (`stale-version`)")
    open_tasks: list[str] | None = Field(
        default=None, description="The ids of the tasks still open (`open-tasks`)")


class OgcException(BaseModel):
    """OGC API - Features' exception body (/req/core/query-param-invalid)."""

    code: str = Field(examples=["InvalidParameterValue"])
    description: str


class GeoReportError(BaseModel):
    """One `<error>` of GeoReport v2's error list: the HTTP status and what is wrong."""

    code: int
    description: str


JSON = "application/json"

_ERROR_TEXT: dict[int, str] = {
    400: "The body cannot be read (not in its declared encoding)",
    401: "Not logged in: no valid bearer token (WWW-Authenticate says how)",
    403: "Your role may not do this (a department user: not outside its department)",
    404: "No such document, or not within your department's scope",
    409: "Refused by the document's state: a stale `If-Match` version, an illegal "
         "transition, open tasks, a concurrent change or a reused command id",
    413: "The body is larger than the configured limit",
    422: "Invalid request: what is wrong, field by field",
    429: "Too many failed logins: try again after Retry-After seconds",
    503: "Busy, or the stores unreachable just now: try again after Retry-After",
}

EXTRA_ERRORS: dict[tuple[str, str], dict[int, str]] = {
    # A wrong password; throttled; every password check busy (or the store unreachable).
    ("POST", "/auth/login"): {401: "app", 429: "app", 503: "app"},
    ("POST", "/auth/password"): {429: "app"},
    ("GET", "/metrics"): {401: "text"},  # with CITYOPS_METRICS_TOKEN set
    # A user whose name is not an inspector of the city's map has no cells.
    ("GET", "/field/me/cells"): {404: "app"},
    ("GET", "/field/me/tasks"): {404: "app"},
    # An incident's review is opened on an incident that must exist.
    ("POST", "/reviews"): {404: "app"},
}
"""Statuses some operations answer besides those of their kind, and in which form (a
throttled login, a busy password hasher)."""

STORED_OPEN311 = ("/open311/v2/requests", "/open311/v2/tokens")
"""Open311's operations that read or write the stores (the service list is the catalogue)."""

BODY_ERRORS: tuple[int, ...] = (400, 413)
"""What every operation that takes a body may answer because of it: 400, unreadable (not
in its declared encoding); 413, over its route's limit (`command-center/body_limits.py`)."""

_COMMANDS = frozenset(ROUTE_COMMANDS) | frozenset(ROUTE_ROLES)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(status: int, content: Mapping[str, Any],
            text: str | None = None) -> dict[str, Any]:
    return {"description": text or _ERROR_TEXT.get(status, "Refused"), "content": content}


def _app_error(status: int) -> dict[str, Any]:
    return _answer(status, {JSON: {"schema": _ref("ErrorPublic")}})


def _ogc_error(status: int) -> dict[str, Any]:
    return _answer(status, {JSON: {"schema": _ref("OgcException")}},
                   "OGC API exception: " + ("an invalid or unknown parameter" if status == 400
                                            else "no such collection or feature"))


def _open311_error(status: int) -> dict[str, Any]:
    return _answer(status, {
        JSON: {"schema": {"type": "array", "items": _ref("GeoReportError")}},
        "text/xml": {"schema": {"type": "string"}},
    }, "GeoReport v2 error list, in the requested format (XML when the format itself is "
       "unknown)")


def error_statuses(method: str, path: str, operation: Mapping[str, Any]) -> dict[int, str]:
    """Which error answers an operation may give, and in which form (`app`, `ogc`,
    `open311`)."""
    if path.startswith("/open311/"):
        statuses = {400: "open311", 404: "open311"}
        if method != "GET":  # an api_key refused; a retry's id reused for another request
            statuses.update({403: "open311", 409: "open311"})
        if path.startswith(STORED_OPEN311):
            statuses[503] = "app"  # the store unreachable: the app's own answer
        return statuses
    logged_in = bool(operation.get("security"))
    statuses = {}
    if logged_in:
        # The login is checked against the accounts' store: unreachable, a 503 to retry.
        statuses.update({401: "app", 403: "app", 503: "app"})
    if path.startswith("/ogc"):
        statuses.update({400: "ogc", 404: "ogc"})
        return statuses
    if "requestBody" in operation:
        statuses.update(dict.fromkeys(BODY_ERRORS, "app"))
    if "{" in path:
        statuses[404] = "app"
    if (method, path) in _COMMANDS and path != "/photos":
        statuses[409] = "app"
    if path not in PAGES or operation.get("parameters"):
        statuses[422] = "app"
    statuses.update(EXTRA_ERRORS.get((method, path), {}))
    return statuses


def _text_error(status: int) -> dict[str, Any]:
    return _answer(status, {"text/plain": {"schema": {"type": "string"}}})


_FORMS: dict[str, Callable[[int], dict[str, Any]]] = {
    "app": _app_error, "ogc": _ogc_error, "open311": _open311_error, "text": _text_error}

ERROR_MODELS: tuple[type[BaseModel], ...] = (ErrorPublic, Problem, OgcException,
                                            GeoReportError)


def _components(models: Iterable[type[BaseModel]]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def document_error_answers(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with every operation's error answers declared (in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(_components(ERROR_MODELS))
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if path.startswith(("/ogc", "/open311/")):
                responses.pop("422", None)  # these answer 400 in their own form
            for status, form in error_statuses(method.upper(), path, operation).items():
                declared = responses.get(str(status), {})
                answer = _FORMS[form](status)
                if declared.get("description") and "content" not in declared:
                    answer["description"] = declared["description"]
                responses[str(status)] = answer
            if not path.startswith(("/ogc", "/open311/")):
                # Statuses a route declared in words only (a photo too large) answer the
                # app's error body too.
                for status, declared in responses.items():
                    if status.startswith("4") and "content" not in declared:
                        declared["content"] = {JSON: {"schema": _ref("ErrorPublic")}}
    return document


def install_error_documentation(app: FastAPI) -> None:
    """Publish the app's OpenAPI document with the error answers it gives (after what
    the app's other checks add to it: `If-Match`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        return document_error_answers(build())

    app.openapi = openapi  # type: ignore[method-assign]
