"""Every request body has a size limit, per route, enforced while it streams in: a body
announced or found larger is answered 413 with the app's error body before anything parses
it (a 100 MB JSON body used to be read, parsed, and only then refused with 422).

Commands are small JSON documents: `DEFAULT_MAX_BODY`. Routes that carry polygons
(affected areas, impact zones, subscriptions' areas, spatial queries) or many items (bulk
actions, contingency plans) get more. A photo upload reads its own body as it streams and
refuses it past its own limit (`photo_max_bytes`, command-center/photos.py): the middleware
leaves it alone. Within its limit a body is read here in full and handed to the app as it
came; so the app never holds more than the limit of any one request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KIB = 1024
DEFAULT_MAX_BODY = 64 * KIB
"""A command's JSON body at most (the largest text field of a command is a few KiB)."""
GEOMETRY_MAX_BODY = 1024 * KIB
"""Bodies with a polygon (a district boundary has thousands of vertices)."""
LIST_MAX_BODY = 256 * KIB
"""Bodies with many items (a bulk action's 200 items, a plan's tasks)."""


@dataclass(frozen=True)
class BodyLimit:
    """The limit of the bodies of the routes whose path matches `path` (None: the route
    enforces its own while it reads)."""

    path: re.Pattern[str]
    max_bytes: int | None
    why: str


ROUTE_LIMITS: Sequence[BodyLimit] = (
    BodyLimit(re.compile(r"^/photos/?$"), None, "a photo upload, limited by the route"),
    BodyLimit(re.compile(r"^/spatial/"), GEOMETRY_MAX_BODY, "a spatial query's polygon"),
    BodyLimit(re.compile(r"^/(incidents|hazard-sources|subscriptions)(/|$)"),
              GEOMETRY_MAX_BODY, "areas and impact zones"),
    BodyLimit(re.compile(r"^/(grid-cases|hotline-tickets)/bulk/"), LIST_MAX_BODY,
              "a bulk action's items"),
    BodyLimit(re.compile(r"^/plans(/|$)"), LIST_MAX_BODY, "a contingency plan's tasks"),
)


def limit_for(path: str) -> int | None:
    """The body limit of the route at `path` (None: the route enforces its own)."""
    for limit in ROUTE_LIMITS:
        if limit.path.match(path):
            return limit.max_bytes
    return DEFAULT_MAX_BODY


def _size(limit: int) -> str:
    return f"{limit // KIB} KiB" if limit % KIB == 0 else f"{limit} bytes"


class RequestBodyLimit:
    """ASGI middleware: refuses a body over its route's limit (413) before the app reads
    any of it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        announced = dict(scope["headers"]).get(b"content-length")
        if announced is not None:
            try:
                length = int(announced)
            except ValueError:
                await _refuse(scope, receive, send, 400, "bad-request",
                              "Content-Length is not a number")
                return
            if length > limit:
                await _too_large(scope, receive, send, limit)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client has gone: nothing to answer
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await _too_large(scope, receive, send, limit)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole: Message | None = {"type": "http.request", "body": b"".join(chunks),
                                 "more_body": False}

        async def replay() -> Message:
            nonlocal whole
            if whole is not None:
                message, whole = whole, None
                return message
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    await _refuse(scope, receive, send, 413, "request-too-large",
                  f"the request body is larger than {_size(limit)}, the limit of "
                  f"{scope['method']} {scope['path']}")


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str,
                  detail: str) -> None:
    # The rest of the body is never read: the connection is closed after the answer.
    response = JSONResponse(status_code=status, content={"error": code, "detail": detail},
                            headers={"Connection": "close"})
    await response(scope, receive, send)
