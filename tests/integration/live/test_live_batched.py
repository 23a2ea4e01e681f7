"""Batched frames (`batch_ms`): a client that asks for them gets the changes of each tick
together in one `changes` frame — every change exactly once, in order, each element the
`change` message an unbatched client gets — and resumes after a reconnect with no gap and no
duplicate; a client that does not ask keeps getting one `change` per frame."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import RegisterCase

from .conftest import DISPATCHER, LiveServer, open_session, report_case

pytestmark = pytest.mark.anyio

REPORTS = 40


def report_many(server: LiveServer, count: int, start: int = 0) -> list[str]:
    """Report `count` cases one after the other (each its own command); their ids."""
    return [str(report_case(server.system, GeoPoint(118.78 + (start + i) % 40 / 1000,
                                                    32.04 + (start + i) // 40 / 1000)))
            for i in range(count)]


def frames(received: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in received if m["type"] == "changes"]


async def test_a_batched_client_gets_every_change_once_in_order_in_fewer_frames(
        live_server: LiveServer) -> None:
    token = live_server.token("dispatcher")
    batched = await open_session(live_server.url, token, layers=["grid-cases"], batch_ms=200)
    single = await open_session(live_server.url, token, layers=["grid-cases"])
    welcome = batched.received[0]
    assert welcome["batch_ms"] == 200
    for session in (batched, single):
        await session.next_of("snapshot")

    ids = await asyncio.to_thread(report_many, live_server, REPORTS)
    for session in (batched, single):
        await session.until(lambda _, s=session: ids[-1] in {c["id"] for c in s.changes()})

    # The same changes, message for message, whether batched or not.
    assert batched.changes() == single.changes()
    assert [c["id"] for c in batched.changes()] == ids
    assert all(c["type"] == "change" for c in batched.changes())
    positions = [c["position"] for c in batched.changes()]
    assert positions == sorted(set(positions))
    assert not [m for m in batched.received if m["type"] == "change"]
    assert not frames(single.received)
    # Each frame says the position of its last change; a tick holds several changes.
    sent = frames(batched.received)
    assert all(f["changes"] and f["position"] == f["changes"][-1]["position"]
               and f["generation"] == f["changes"][-1]["generation"] for f in sent)
    assert len(sent) < REPORTS
    for session in (batched, single):
        await session.close()


async def test_subscribe_can_turn_batching_on_and_off(live_server: LiveServer) -> None:
    system = live_server.system
    session = await open_session(live_server.url, live_server.token("dispatcher"),
                                 layers=["grid-cases"])
    await session.next_of("snapshot")
    await session.send({"type": "subscribe", "subscribe": {"layers": ["grid-cases"]},
                        "batch_ms": 50})
    await session.next_of("snapshot")
    batched = await asyncio.to_thread(report_case, system)
    frame = await session.until(lambda m: m["type"] in ("change", "changes"))
    assert frame["type"] == "changes" and frame["changes"][0]["id"] == str(batched)
    # A subscribe without batch_ms keeps it as it is.
    await session.send({"type": "subscribe", "subscribe": {"layers": ["grid-cases"]}})
    await session.next_of("snapshot")
    still = await asyncio.to_thread(report_case, system)
    frame = await session.until(lambda m: m["type"] in ("change", "changes"))
    assert frame["type"] == "changes" and frame["changes"][0]["id"] == str(still)
    await session.send({"type": "subscribe", "subscribe": {"layers": ["grid-cases"]},
                        "batch_ms": 0})
    await session.next_of("snapshot")
    single = await asyncio.to_thread(report_case, system)
    change = await session.until(lambda m: m["type"] in ("change", "changes"))
    assert change["type"] == "change" and change["id"] == str(single)
    await session.close()


async def test_a_batched_client_resumes_with_no_gap_and_no_duplicate(
        live_server: LiveServer) -> None:
    system = live_server.system
    token = live_server.token("dispatcher")
    session = await open_session(live_server.url, token, batch_ms=50)
    snapshot = await session.next_of("snapshot")
    early = await asyncio.to_thread(report_case, system)
    await session.until(lambda m: m["type"] == "changes"
                        and str(early) in {c["id"] for c in m["changes"]})
    last = session.changes()[-1]
    await session.close()

    missed = await asyncio.to_thread(report_many, live_server, 5, 1)
    await asyncio.to_thread(system.commands.handle, RegisterCase(case_id=early),
                            CommandContext(actor=DISPATCHER))
    await asyncio.to_thread(system.catch_up)

    back = await open_session(live_server.url, token, batch_ms=50, resume={
        "generation": snapshot["generation"], "position": last["position"]})
    caught_up = await back.next_of("position")
    replayed = back.changes()
    later = await asyncio.to_thread(report_case, system, GeoPoint(118.81, 32.06))
    await back.until(lambda m: m["type"] == "changes"
                     and str(later) in {c["id"] for c in m["changes"]})
    changes = back.changes()
    assert all(m["type"] not in ("snapshot", "change") for m in back.received)
    assert [c["id"] for c in replayed] == [*missed, str(early)]
    assert [c["id"] for c in changes] == [*missed, str(early), str(later)]
    assert replayed[-1]["events"] == ["Registered"]
    assert caught_up["position"] == replayed[-1]["position"]
    positions = [c["position"] for c in changes]
    assert positions == sorted(set(positions)) and positions[0] > last["position"]
    await back.close()


@pytest.mark.parametrize(("batch_ms", "says"), [
    (1001, "less than or equal to 1000"),
    (-1, "greater than or equal to 0"),
    ("50", "valid integer"),
])
async def test_a_batch_ms_out_of_range_is_refused_with_4400(
        shared_server: LiveServer, batch_ms: Any, says: str) -> None:
    async with websockets.connect(shared_server.url) as ws:
        await ws.send(json.dumps({"type": "hello", "token": shared_server.token("dispatcher"),
                                  "subscribe": {"layers": ["grid-cases"]},
                                  "batch_ms": batch_ms}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        with pytest.raises(ConnectionClosed) as hung_up:
            await asyncio.wait_for(ws.recv(), 10)
    assert reply["type"] == "error"
    assert reply["message"].startswith("bad hello message: batch_ms") \
        and says in reply["message"]
    assert hung_up.value.rcvd is not None and hung_up.value.rcvd.code == 4400

    session = await open_session(shared_server.url, shared_server.token("dispatcher"))
    await session.next_of("snapshot")
    await session.send({"type": "subscribe", "subscribe": {"layers": ["grid-cases"]},
                        "batch_ms": batch_ms})
    error = await session.next_of("error")
    assert error["message"].startswith("bad subscribe message: batch_ms") \
        and says in error["message"]
    with pytest.raises(ConnectionClosed) as closed:
        await session.next(10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
