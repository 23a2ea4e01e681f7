"""The command centre's part of operations: the request middleware (latency histogram by
route template, request ids, one log line per request), `/metrics` and `/health`.

The histogram is labelled with the matched route's path template (`/grid-cases/{case_id}`),
never the raw URL, and with a method from a fixed list, so a client cannot grow the number
of series by sending made-up paths or verbs.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import Histogram
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cityops.bootstrap import Operations
from cityops.logs import REQUEST_ID
from cityops.metrics import CountsCollector

log = logging.getLogger("cityops.http")

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
"""The route label of a request no route matched (404s of made-up paths)."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def request_latency(operations: Operations) -> Histogram:
    """The HTTP latency histogram, in the process's own registry."""
    return Histogram("cityops_http_request_duration_seconds",
                     "Time to answer an HTTP request, by method, route template and status "
                     "class.", ["method", "route", "status"], buckets=LATENCY_BUCKETS,
                     registry=operations.metrics.registry)


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request (its mount's for static
    files), or `unmatched`."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path or "/"
    return UNMATCHED


class RequestObserver:
    """ASGI middleware: times every HTTP request into the histogram, gives it an id (the
    client's `X-Request-ID` if it is a sane token, else a new one) that is echoed in the
    answer and carried by every log record of the request, and logs one line when it ends."""

    def __init__(self, app: ASGIApp, *, latency: Histogram) -> None:
        self.app = app
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        status = 500  # what the client gets if the app fails before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope.get("method", "")
            method = method if method in METHODS else "other"
            route = route_template(scope)
            self.latency.labels(method, route, f"{status // 100}xx").observe(elapsed)
            log.info("%s %s %d %.1f ms", method, scope.get("path", ""), status,
                     elapsed * 1000, extra={"method": method, "route": route,
                                            "path": scope.get("path", ""), "status": status,
                                            "duration_ms": round(elapsed * 1000, 3)})
            REQUEST_ID.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _SAFE_REQUEST_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


def install_observability(app: FastAPI, operations: Operations) -> None:
    """The middleware, the command centre's own counts (logins, WebSocket clients) and the
    `/metrics` and `/health` routes."""
    app.state.operations = operations
    app.add_middleware(RequestObserver, latency=request_latency(operations))
    metrics = operations.metrics
    auth = app.state.auth
    metrics.register(CountsCollector(
        "logins", "Login attempts by outcome (succeeded, failed, throttled).", "outcome",
        lambda: {o: auth.logins.get(o, 0) for o in ("succeeded", "failed", "throttled")}))
    live = app.state.live
    metrics.register(CountsCollector("websocket_clients", "WebSocket clients connected now.",
                                     None, lambda: {"": len(live.clients)}, gauge=True))
    metrics.register(CountsCollector("websocket_connections", "WebSocket clients that "
                                     "connected.", None, lambda: {"": live.connections}))
    metrics.register(CountsCollector("websocket_resyncs", "WebSocket clients told to "
                                     "resync (too far behind, a gap, a rebuild).", None,
                                     lambda: {"": live.resyncs}))
    app.include_router(router)


router = APIRouter(tags=["operations"])


class HealthCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    status: Literal["ok", "degraded"]
    reason: str


class HealthReport(BaseModel):
    # Besides these: `<process>_lag` for each tracked process (its notifications not yet
    # processed, per event store), e.g. `ticket_follow_up_lag`.
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, int]] = Field(init=False)
    status: Literal["ok", "degraded"]
    projection_lag: dict[str, int] | None = Field(
        default=None, description="Notifications not yet projected, per event store.")
    projection_lag_seconds: dict[str, float] | None = Field(
        default=None, description="How long each projection's position has stood still "
        "while behind.")
    failing_aggregates: list[dict[str, Any]] | None = Field(
        default=None, description="Aggregates a projection has set aside.")
    checks: list[HealthCheck]


@router.get("/health", response_model=HealthReport,
            responses={503: {"model": HealthReport,
                             "description": "Degraded, when asked with strict=true."}})
def health(request: Request, strict: bool = Query(
        default=False, description="Answer 503 instead of 200 while degraded (for probes "
        "that only read the status code).")) -> JSONResponse:
    """`ok`, or `degraded` with each failing check and its reason: projections behind or
    failing aggregates, ingest dead letters growing, feeds behind (docs/operations.md)."""
    operations: Operations = request.app.state.operations
    report: dict[str, Any] = operations.health.report()
    degraded = report["status"] != "ok"
    return JSONResponse(report, status_code=503 if strict and degraded else 200)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "The Prometheus text format."}})
def metrics(request: Request) -> Response:
    """This process's Prometheus metrics (docs/operations.md lists them); with
    `CITYOPS_METRICS_TOKEN` set, only for `Authorization: Bearer <that token>`."""
    operations: Operations = request.app.state.operations
    if not operations.may_scrape(request.headers.get("Authorization")):
        return Response("metrics need the metrics token (Authorization: Bearer ...)\n",
                        status_code=401, media_type="text/plain",
                        headers={"WWW-Authenticate": 'Bearer realm="cityops-metrics"'})
    return Response(operations.metrics.exposition(),
                    media_type=operations.metrics.content_type)
