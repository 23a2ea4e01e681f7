"""Conflicts, not silent overwrites, over HTTP: a command says which version of its document
the user saw (`If-Match`), and every document answered carries its version as `ETag`.

The check itself is the domain's (`CommandContext.seen_versions`, checked when a command's
handler loads the aggregate). A command route takes the version seen as a parameter,
`seen: SeenVersion` (the document named by the route's first path parameter, at the version in
`If-Match`: `/grid-cases/{case_id}/register`, `/incidents/{incident_id}/tasks/{task_id}/
complete`), and puts it into the command's context. Every route checks the header app-wide:
a malformed one, or one on a request for no single document, is refused (422).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping
from types import MappingProxyType
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, HTTPException
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""Methods that change something: only they are checked against the version seen."""

MAX_TAGGED_BODY = 1 << 20
"""Largest JSON answer searched for a document version (bigger ones are pages or exports)."""

_VERSION_TAG = re.compile(r'^(?:"(?P<quoted>[0-9]+)"|(?P<bare>[0-9]+))$')

IF_MATCH_DOC = (
    "The version of the document you saw (its `version`, as sent in the `ETag` of its GET): "
    "if the document has changed since, the command is refused with 409 and a message "
    "saying what changed, by whom and when. `*` or no header: no check."
)


def version_from_if_match(value: str) -> int | None:
    """The version an `If-Match` header names (None for `*`: any version will do).

    Accepted: the entity tag as sent in `ETag` (`"4"`), or the bare number (`4`)."""
    text = value.strip()
    if text == "*":
        return None
    match = _VERSION_TAG.match(text)
    if match is None:
        raise HTTPException(
            status_code=422,
            detail=f"If-Match must be the version of the document you saw, as its ETag "
                   f'("4") or a number (4), or *; not {value!r}')
    version = int(match.group("quoted") or match.group("bare"))
    if version < 1:
        raise HTTPException(status_code=422,
                            detail=f"If-Match version must be 1 or more, not {version}")
    return version


def document_parameter(route: object) -> str | None:
    """The path parameter naming the document a route acts on: its first, if declared as
    an id (None for routes on no single document: lists, bulk actions, spatial queries)."""
    if not isinstance(route, APIRoute) or not route.param_convertors:
        return None
    first = next(iter(route.param_convertors))
    declared = {f.name: f.field_info.annotation for f in route.dependant.path_params}
    return first if declared.get(first) is UUID else None


def subject_of(connection: HTTPConnection) -> UUID | None:
    """The document a command acts on (None: its id is malformed, which the route's own
    validation of the path reports)."""
    name = document_parameter(connection.scope.get("route"))
    if name is None:
        raise HTTPException(
            status_code=422,
            detail=f"If-Match applies to a command on one document named by its id in the "
                   f"path, and {connection.url.path} names none (a bulk action takes the "
                   f"version of each item in its body)")
    try:
        return UUID(str(connection.path_params[name]))
    except ValueError:
        return None


NOTHING_SEEN: Mapping[UUID, int] = MappingProxyType({})


async def seen_version(connection: HTTPConnection) -> Mapping[UUID, int]:
    """The version of the route's document that its user saw (`If-Match`), as
    `{document id: version}`; empty when they said nothing, or `*`. (Asynchronous: a
    `def` dependency costs a hop to a worker thread on every request.)"""
    header = connection.headers.get("if-match")
    if (connection.scope["type"] != "http" or header is None
            or connection.scope["method"] not in UNSAFE_METHODS):
        return NOTHING_SEEN
    version = version_from_if_match(header)
    subject = subject_of(connection)
    if version is None or subject is None:
        return NOTHING_SEEN
    return MappingProxyType({subject: version})


SeenVersion = Annotated[Mapping[UUID, int], Depends(seen_version)]
"""A command route's parameter: the version of its document its user saw, for its
`CommandContext(seen_versions=...)`."""



class VersionETags:
    """ASGI middleware: an answer that is one document (a JSON object with `id` and an
    integer `version`) gets `ETag: "<version>"`, the tag its commands send back as
    `If-Match`. Other answers pass through untouched and unbuffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: MutableMapping[str, Any] | None = None
        chunks: list[bytes] = []

        async def tagging_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if _may_be_a_document(message):
                    start = message  # held back until the body shows its version
                    return
                await send(message)
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                await send(_with_etag(start, body))
                await send({"type": "http.response.body", "body": body, "more_body": False})
            else:
                await send(message)

        await self.app(scope, receive, tagging_send)


def _may_be_a_document(start: Message) -> bool:
    if not 200 <= start["status"] < 300:
        return False
    headers = {k.lower(): v for k, v in start.get("headers", [])}
    length = headers.get(b"content-length")
    return (headers.get(b"content-type", b"").startswith(b"application/json")
            and length is not None and length.isdigit() and int(length) <= MAX_TAGGED_BODY)


def _with_etag(start: MutableMapping[str, Any], body: bytes) -> MutableMapping[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return start
    if not isinstance(document, dict) or "id" not in document:
        return start
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        return start
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"etag"]
    return {**start, "headers": [*headers, (b"etag", f'"{version}"'.encode())]}


def _names_a_document(path: str, operation: dict[str, Any]) -> bool:
    """The OpenAPI twin of `document_parameter`: the operation's first path parameter is
    an id (read from the schema, as the app's routes may be nested routers)."""
    first = re.search(r"{([^}]+)}", path)
    if first is None:
        return False
    for parameter in operation.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("name") == first.group(1):
            return bool(parameter.get("schema", {}).get("format") == "uuid")
    return False


def install_version_checks(app: FastAPI) -> None:
    """`If-Match` on every command route and `ETag` on every document; call it before the
    routers are included (FastAPI copies app-wide dependencies into each route as it is
    added)."""
    # App-wide too, so that a malformed If-Match, or one on a request for no single
    # document, is refused (422) on every route, whether it takes the version or not.
    app.router.dependencies.append(Depends(seen_version))
    app.add_middleware(VersionETags)
    _document_if_match(app)


def _document_if_match(app: FastAPI) -> None:
    """List `If-Match` and its 409 on every command operation of the OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if (method.upper() not in UNSAFE_METHODS or not isinstance(operation, dict)
                        or not _names_a_document(path, operation)):
                    continue
                operation.setdefault("parameters", []).append({
                    "name": "If-Match", "in": "header", "required": False,
                    "description": IF_MATCH_DOC, "schema": {"type": "string"},
                    "examples": {"etag": {"value": '"4"'}},
                })
                operation.setdefault("responses", {}).setdefault("409", {
                    "description": "Refused: not allowed in the document's state, or the "
                                   "document changed since the version in If-Match"})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
