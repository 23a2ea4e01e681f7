"""WebSocket message fuzzing (issue 10, item 2): random client frames to `/ws` of a real
server, before and after a valid hello: text that is not JSON, binary frames, JSON of every
shape, protocol messages with nasty values, a non-ASCII token, huge frames. The server only
ever answers with protocol frames (an `error` frame before it closes), closes with one of its
codes (4400 bad message, 4401 not authenticated) and never with a server error or without a
close frame; afterwards the hub still serves a new client, with its snapshot and changes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from .conftest import LiveServer, open_session, report_case

SCALE = int(os.environ.get("CITYOPS_FUZZ_SCALE", "1"))
SERVER_FRAMES = {"welcome", "snapshot", "change", "changes", "error", "pong", "presence",
                 "resync", "position"}
CLOSE_CODES = {1000, 4400, 4401}
"""A normal close (the client's), a bad message, no valid login: what the protocol allows."""
IDLE_S = 0.25
LAYERS = ["grid-cases", "incidents", "hazard-sources", "resources", "hotline-tickets",
          "presence"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=10,
)
NASTY = st.one_of(JSON, st.sampled_from([
    "0001-01-01T00:00:00+23:59", 1e300, -1e300, 2**63, 2**64, -(2**63) - 1, 10**30,
    float("nan"), float("inf"), "", "é", "x" * 1000, [], {}, None, True]))


def _subscription(draw: st.DrawFn) -> Any:
    if draw(st.booleans()):
        return draw(NASTY)
    return {
        "layers": draw(st.lists(st.one_of(st.sampled_from(LAYERS), st.text(max_size=8)),
                                max_size=4)),
        **draw(st.dictionaries(st.sampled_from(["bbox", "categories", "levels", "lights",
                                                "department", "extra"]), NASTY,
                               max_size=3)),
    }


@st.composite
def protocol_messages(draw: st.DrawFn, token: str, kind: str | None = None) -> str:
    """A message shaped like the protocol's, with some of its values made nasty."""
    kind = kind or draw(st.sampled_from(["hello", "subscribe", "viewing", "ping", "unknown"]))
    message: dict[str, Any] = {"type": kind if kind != "unknown" else draw(NASTY)}
    if kind == "hello":
        dotted = st.tuples(st.text(max_size=20), st.text(max_size=20)).map(
            lambda parts: f"{parts[0].replace('.', '')}.{parts[1].replace('.', '')}")
        message["token"] = draw(st.one_of(st.just(token), dotted, st.text(max_size=30),
                                          NASTY))
        message["subscribe"] = _subscription(draw)
        if draw(st.booleans()):
            message["resume"] = draw(st.one_of(
                NASTY, st.fixed_dictionaries({"generation": NASTY, "position": NASTY})))
        if draw(st.booleans()):
            message["batch_ms"] = draw(NASTY)
    elif kind == "subscribe":
        message["subscribe"] = _subscription(draw)
        if draw(st.booleans()):
            message["batch_ms"] = draw(st.one_of(st.integers(-5, 2000), NASTY))
    elif kind == "viewing":
        message["layer"] = draw(st.one_of(st.sampled_from(LAYERS), NASTY))
        message["id"] = draw(st.one_of(st.uuids().map(str), NASTY))
    if draw(st.booleans()):
        message.update(draw(st.dictionaries(st.text(max_size=6), NASTY, max_size=2)))
    return json.dumps(message)


def frames(token: str) -> st.SearchStrategy[str | bytes]:
    return st.one_of(
        protocol_messages(token),
        protocol_messages(token),
        st.text(max_size=60),
        st.binary(max_size=60),
        JSON.map(json.dumps),
        st.just("x" * 70_000),
    )


async def _converse(url: str, hello: str | None, sent: list[str | bytes]) -> tuple[
        list[dict[str, Any]], int | None]:
    """Send the frames; read what comes back until the server closes or stays quiet."""
    received: list[dict[str, Any]] = []
    async with websockets.connect(url, open_timeout=10, close_timeout=2,
                                  max_size=2**24) as ws:
        try:
            for frame in ([hello] if hello is not None else []) + sent:
                await ws.send(frame)
                await asyncio.sleep(0)
        except ConnectionClosed:
            pass  # the server has closed: what it said before is still to be read
        try:
            while True:
                text = await asyncio.wait_for(ws.recv(), IDLE_S)
                received.append(json.loads(text))
        except TimeoutError:
            await ws.close()
            return received, None
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            return received, code if code is not None else -1


def test_random_frames_never_break_the_live_push(
        shared_server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    token = shared_server.token("dispatcher")
    valid_hello = json.dumps({"type": "hello", "token": token,
                              "subscribe": {"layers": ["grid-cases"]}})

    non_ascii_hello = json.dumps({"type": "hello", "token": "abc.d\u00e9f",
                                  "subscribe": {"layers": ["grid-cases"]}})

    @settings(max_examples=40 * SCALE, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    # The first frame: nothing special, a valid hello, or a hello with nasty values (its
    # token checked: a forged, non-ASCII or missing one).
    @given(hello=st.one_of(st.none(), st.just(valid_hello),
                           protocol_messages(token, kind="hello")),
           sent=st.lists(frames(token), min_size=1, max_size=4))
    @example(hello=non_ascii_hello, sent=['{"type": "ping"}'])  # the token
    def conversation(hello: str | None, sent: list[str | bytes]) -> None:
        received, code = asyncio.run(_converse(shared_server.url, hello, sent))
        for frame in received:
            assert isinstance(frame, dict) and frame.get("type") in SERVER_FRAMES, frame
        if code is not None:
            assert code in CLOSE_CODES, (code, received)
            if code in (4400, 4401):
                assert received and received[-1]["type"] == "error", received
                assert received[-1]["message"]

    with caplog.at_level(logging.ERROR):
        conversation()
    assert not [r for r in caplog.records if r.name.startswith("cityops")
                and r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]

    async def still_serving() -> None:
        session = await open_session(shared_server.url, token, layers=["grid-cases"])
        await session.next_of("snapshot")
        case = await asyncio.to_thread(report_case, shared_server.system)
        await session.until(lambda m: m["type"] == "change" and m["id"] == str(case))
        await session.close()

    asyncio.run(still_serving())
