"""Bulk actions: a dispatcher registers, rejects or dispatches a selection of grid cases (or
assigns, merges, returns hotline tickets) in one request.

Each item is its own command, and it goes through the app exactly as the single action
`POST /grid-cases/{id}/{action}` would: an in-process request to that route, with the
caller's own credentials, the item's body, its `If-Match` and its idempotency key. So every
check the single route makes (login, role, department scope, body validation, the version
seen) applies per item, through the same code, and the item's result is what the single
route answers; a bulk action can never mean anything the single action does not. One failing
item does not undo the others.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any
from uuid import UUID

import anyio
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.types import Message

from cityops.command_center.dependencies import IdempotencyKey, current_actor, get_system
from cityops.command_center.models.grid_cases import GridCaseBulkResults
from cityops.command_center.models.hotline import TicketBulkResults
from cityops.domain.application import MAX_COMMAND_ID_LENGTH

# `get_system`: a bulk request switched into a drill is checked against the drill (and its
# answer marked) before its items, which go to the same drill, run.
router = APIRouter(dependencies=[Depends(current_actor), Depends(get_system)])

MAX_BULK_ITEMS = 200
"""Most items one bulk request may carry: a screenful of selection, and a request that
still answers in seconds."""

PER_ITEM_HEADERS = frozenset({b"content-length", b"content-type", b"transfer-encoding",
                              b"expect", b"idempotency-key", b"if-match"})
"""Request headers that belong to the bulk request, not to its items (each item gets its
own); every other header (the caller's credentials first) is passed on to each item."""


class GridCaseBulkAction(StrEnum):
    """Grid-case commands a dispatcher applies to a selection (named as the single routes)."""

    REGISTER = "register"
    REJECT = "reject"
    DISPATCH = "dispatch"
    RETURN_REVIEW = "return-review"
    SUSPENSION_DECISION = "suspension-decision"
    SUSPEND = "suspend"
    CLOSE = "close"


class TicketBulkAction(StrEnum):
    """Hotline-ticket commands applied to a selection (named as the single routes; routing a
    ticket to a department is `assign`)."""

    ASSIGN = "assign"
    ACCEPT = "accept"
    RETURN = "return"
    RETURN_REVIEW = "return-review"
    MERGE = "merge"
    CLOSE = "close"


class BulkItem(BaseModel):
    """One item: its id, the version its user saw (optional), and arguments of the single
    action that apply to this item only."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "examples": [{"id": "7d5c1f9e-4f7a-4a47-9d8c-2d3f6b1a0c11", "version": 1}]})
    id: UUID
    version: int | None = Field(
        default=None, ge=1,
        description="The version the user saw: the item is refused (409) if it changed since")


class BulkRequest(BaseModel):
    """The items, and arguments of the single action common to all of them (an item's own
    arguments win)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "examples": [{"items": [{"id": "7d5c1f9e-4f7a-4a47-9d8c-2d3f6b1a0c11", "version": 1}],
                      "note": "Checked on the map"}]})
    items: list[BulkItem]

    @field_validator("items")
    @classmethod
    def _a_selection(cls, items: list[BulkItem]) -> list[BulkItem]:
        if not items:
            raise ValueError("give at least one item")
        if len(items) > MAX_BULK_ITEMS:
            raise ValueError(f"a bulk action takes at most {MAX_BULK_ITEMS} items, not "
                             f"{len(items)}: send the selection in several requests")
        seen: set[UUID] = set()
        for item in items:
            if item.id in seen:
                raise ValueError(f"item {item.id} appears twice: each item is one command on "
                                 "one document")
            seen.add(item.id)
        return items


class BulkResult(BaseModel):
    """What one item came to: what the single action answered for it."""

    id: UUID
    ok: bool
    status: int = Field(description="The HTTP status the single action answered")
    error: str | None = Field(description="Why the item was refused (null when ok)")
    code: str | None = Field(
        description="The error's code, e.g. stale-version, illegal-transition (null when ok)")
    document: dict[str, Any] | None = Field(description="The item after the command (when ok)")


class BulkResults(BaseModel):
    """Every item's result, in the order of the request."""

    results: list[BulkResult]
    succeeded: int
    failed: int


def item_command_id(command_id: str | None, item_id: UUID) -> str | None:
    """The idempotency key of one item's command: the request's key and the item's id, so
    that a retried bulk request repeats nothing that was done (and does what was not)."""
    if command_id is None:
        return None
    derived = f"{command_id}:{item_id}"
    if len(derived) > MAX_COMMAND_ID_LENGTH:
        # Still unique per (key, item), and short enough for a command id.
        derived = f"{hashlib.sha256(command_id.encode()).hexdigest()}:{item_id}"
    return derived


async def single_action(request: Request, path: str, body: dict[str, Any],
                        headers: list[tuple[bytes, bytes]]) -> tuple[int, Any]:
    """`POST path` with `body` through the whole app (middleware, routing, dependencies,
    error handlers), in process: its status and JSON answer."""
    payload = json.dumps(body).encode()
    scope = {
        **{k: v for k, v in request.scope.items()
           if k in {"type", "asgi", "http_version", "scheme", "server", "client", "root_path",
                    "state"}},
        "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": [*headers, (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode())],
    }
    answered = anyio.Event()
    body_sent = False
    status = 500
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await answered.wait()  # the caller stays connected until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                answered.set()

    try:
        await request.app(scope, receive, send)
    finally:
        answered.set()
    raw = b"".join(chunks)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


async def run_bulk(request: Request, collection: str, action: str, body: BulkRequest,
                   command_id: str | None) -> BulkResults:
    """Every item in turn, each its own single action: a refused item stops nothing."""
    common = dict(body.model_extra or {})
    passed_on = [(k, v) for k, v in request.scope["headers"] if k.lower() not in PER_ITEM_HEADERS]
    results = []
    for item in body.items:
        headers = list(passed_on)
        key = item_command_id(command_id, item.id)
        if key is not None:
            headers.append((b"idempotency-key", key.encode()))
        if item.version is not None:
            headers.append((b"if-match", f'"{item.version}"'.encode()))
        status, answer = await single_action(
            request, f"{collection}/{item.id}/{action}",
            {**common, **(item.model_extra or {})}, headers)
        ok = 200 <= status < 300
        refusal = answer if isinstance(answer, dict) and not ok else {}
        results.append(BulkResult(
            id=item.id, ok=ok, status=status,
            error=None if ok else str(refusal.get("detail", answer)),
            code=None if ok else refusal.get("error"),
            document=answer if ok and isinstance(answer, dict) else None,
        ))
    succeeded = sum(r.ok for r in results)
    return BulkResults(results=results, succeeded=succeeded, failed=len(results) - succeeded)


BULK_DOC = (
    "Each item is the single action `POST {collection}/{{id}}/{{action}}`, run as its own "
    "request with the caller's credentials, the common arguments of the body and the item's "
    "own (which win): same checks, and `status`, `error` and `document` are what the single "
    "action answered. Give an item's `version` to have it refused (409, code "
    "`stale-version`) if it changed since the user saw it. With an `Idempotency-Key`, each "
    "item's key is the request's key and the item's id: a retried request repeats nothing "
    f"already done. At most {MAX_BULK_ITEMS} items, each id once; the answer is 200 with a "
    "result per item, in order, whatever each came to."
)


@router.post("/grid-cases/bulk/{action}", tags=["grid cases"],
             response_model=GridCaseBulkResults, response_model_exclude_unset=True,
             description=BULK_DOC.format(collection="/grid-cases"))
async def bulk_grid_cases(action: GridCaseBulkAction, body: BulkRequest, request: Request,
                          command_id: IdempotencyKey) -> BulkResults:
    """Register, reject, dispatch, review the returns of, decide the suspension requests of,
    suspend or close a selection of cases, item by item."""
    return await run_bulk(request, "/grid-cases", action.value, body, command_id)


@router.post("/hotline-tickets/bulk/{action}", tags=["hotline tickets"],
             response_model=TicketBulkResults, response_model_exclude_unset=True,
             description=BULK_DOC.format(collection="/hotline-tickets"))
async def bulk_hotline_tickets(action: TicketBulkAction, body: BulkRequest, request: Request,
                               command_id: IdempotencyKey) -> BulkResults:
    """Assign (route), accept, return, review the returns of, merge or close a selection of
    tickets, item by item."""
    return await run_bulk(request, "/hotline-tickets", action.value, body, command_id)
