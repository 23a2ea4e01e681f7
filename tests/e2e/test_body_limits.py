"""Request bodies are limited per route and refused while they stream in, with the app's
error body, before anything parses them (issue 10, item 6)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from cityops.command_center.body_limits import (
    DEFAULT_MAX_BODY,
    GEOMETRY_MAX_BODY,
    RequestBodyLimit,
    limit_for,
)


def test_a_huge_command_body_is_refused_413_before_it_is_parsed(api: Any) -> None:
    """Reproduction: a 100 MB body was read and parsed, then refused with 422. A body over
    the limit is refused 413 whatever it holds (here not even JSON: nothing parsed it)."""
    body = b"x" * (DEFAULT_MAX_BODY + 1)
    answer = api.client.post("/grid-cases", content=body, headers={
        **api.headers("inspector"), "Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert answer.json() == {
        "error": "request-too-large",
        "detail": "the request body is larger than 64 KiB, the limit of POST /grid-cases"}


def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit(api: Any) -> None:
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(1000):  # 16 MB if it were all read
            sent.append(1)
            yield b"[" * 16384

    answer = api.client.post("/incidents", content=chunks(), headers={
        **api.headers("dispatcher"), "Content-Type": "application/json"})
    assert answer.status_code == 413, answer.text
    assert "1024 KiB" in answer.json()["detail"]


def test_bodies_within_their_routes_limit_go_through(api: Any) -> None:
    # A polygon of 3,000 vertices: over the default limit, within the spatial routes' one.
    ring = [[118.7 + 0.1 * i / 3000, 32.0 + (0.01 if i % 2 else 0)] for i in range(3000)]
    ring.append(ring[0])
    polygon = {"type": "Polygon", "coordinates": [ring]}
    answer = api.client.post("/spatial/grid-cases/within", json=polygon,
                             headers=api.headers("dispatcher"))
    assert answer.status_code != 413, answer.text
    report = api.client.post("/grid-cases", headers=api.headers("inspector"), json={
        "category": "E0101", "description": "Bins", "location": api.IN_TOWN})
    assert report.status_code == 201, report.text


def test_each_route_has_its_limit() -> None:
    assert limit_for("/grid-cases") == DEFAULT_MAX_BODY
    assert limit_for("/auth/login") == DEFAULT_MAX_BODY
    assert limit_for("/spatial/incidents/within") == GEOMETRY_MAX_BODY
    assert limit_for("/incidents/abc/area") == GEOMETRY_MAX_BODY
    assert limit_for("/photos") is None  # the upload limits itself while it streams


def test_the_middleware_stops_reading_at_the_limit() -> None:
    """However long a client goes on sending, no more than the limit is read."""
    read = []
    reached_app = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached_app.append(scope["path"])

    async def receive() -> dict[str, Any]:
        read.append(4096)
        return {"type": "http.request", "body": b"{" * 4096, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/grid-cases", "headers": [],
             "query_string": b""}
    asyncio.run(RequestBodyLimit(app)(scope, receive, send))
    assert not reached_app
    assert sum(read) <= DEFAULT_MAX_BODY + 4096
    assert sent[0]["status"] == 413
