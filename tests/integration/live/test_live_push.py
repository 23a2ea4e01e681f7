"""The live push as a dashboard sees it, over a real uvicorn server and real WebSocket
clients: a snapshot, then every change in order; a reconnect resumes with no gap and no
duplicate; filters and the department scope; refusals of bad tokens and bad messages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from cityops.command_center.live import LiveClient, LiveHub, Subscription
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import DispatchCase, RegisterCase, ReturnCaseToCentre
from cityops.domain.hotline.commands import ReceiveTicket
from cityops.projections.live_changes import LiveChangeLog

from .conftest import DISPATCHER, IN_TOWN, LiveServer, open_session, report_case

pytestmark = pytest.mark.anyio


def positions(messages: list[dict[str, Any]]) -> list[int]:
    return [m["position"] for m in messages if "position" in m]


async def test_a_snapshot_then_every_change_with_increasing_positions(
        live_server: LiveServer) -> None:
    system = live_server.system
    before = report_case(system, description="Reported before the client connected")
    system.catch_up()
    session = await open_session(live_server.url, live_server.token("dispatcher"))
    snapshot = await session.next_of("snapshot")
    ids = [f["id"] for f in snapshot["layers"]["grid-cases"]]
    assert ids == [str(before)]
    case = snapshot["layers"]["grid-cases"][0]
    assert case["type"] == "Feature"
    assert case["geometry"] == {"type": "Point", "coordinates": [IN_TOWN.lon, IN_TOWN.lat]}
    assert case["properties"]["status"] == "reported"
    assert case["properties"]["light"] == "green"
    assert snapshot["limits"]["grid-cases"] == {"limit": 2000, "matched": 1, "complete": True}
    start = snapshot["position"]

    await asyncio.to_thread(system.commands.handle, RegisterCase(case_id=before),
                            CommandContext(actor=DISPATCHER))
    created = await asyncio.to_thread(report_case, system)
    first = await session.until(lambda m: m["type"] == "change" and m["id"] == str(before))
    assert first["events"] == ["Registered"]
    assert first["feature"]["properties"]["status"] == "registered"
    second = await session.until(lambda m: m["type"] == "change" and m["id"] == str(created))
    assert second["layer"] == "grid-cases" and second["events"] == ["Reported"]
    seen = positions(session.received[session.received.index(snapshot):])
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert start < first["position"] < second["position"]
    await session.close()


async def test_a_client_that_reconnects_resumes_with_no_gap_and_no_duplicate(
        live_server: LiveServer) -> None:
    system = live_server.system
    token = live_server.token("dispatcher")
    session = await open_session(live_server.url, token)
    snapshot = await session.next_of("snapshot")
    early = await asyncio.to_thread(report_case, system)
    change = await session.until(lambda m: m["type"] == "change" and m["id"] == str(early))
    await session.close()

    # Commands while the client is away: each must arrive exactly once.
    missed = [await asyncio.to_thread(report_case, system, GeoPoint(118.80 + i / 1000, 32.05))
              for i in range(5)]
    await asyncio.to_thread(system.commands.handle, RegisterCase(case_id=early),
                            CommandContext(actor=DISPATCHER))
    await asyncio.to_thread(system.catch_up)

    back = await open_session(live_server.url, token, resume={
        "generation": snapshot["generation"], "position": change["position"]})
    caught_up = await back.next_of("position")
    later = await asyncio.to_thread(report_case, system, GeoPoint(118.81, 32.06))
    await back.until(lambda m: m["type"] == "change" and m["id"] == str(later))
    changes = back.changes()
    assert all(m["type"] != "snapshot" for m in back.received)
    assert [c["id"] for c in changes] == [*map(str, missed), str(early), str(later)]
    assert changes[-2]["events"] == ["Registered"]
    assert all(c["position"] > change["position"] for c in changes)
    assert caught_up["position"] == changes[-2]["position"]
    assert positions(changes) == sorted(set(positions(changes)))
    await back.close()


async def test_a_resume_from_another_generation_or_pruned_history_gets_a_snapshot(
        live_server: LiveServer) -> None:
    token = live_server.token("dispatcher")
    report_case(live_server.system)
    live_server.system.catch_up()
    stale = await open_session(live_server.url, token, resume={"generation": 99,
                                                               "position": 1})
    resync = await stale.next()
    assert resync["type"] == "resync" and "generation 99" in resync["reason"]
    assert (await stale.next())["type"] == "snapshot"
    await stale.close()

    future = await open_session(live_server.url, token, resume={"generation": 1,
                                                                "position": 10_000})
    resync = await future.next()
    assert resync["type"] == "resync" and "beyond the last change" in resync["reason"]
    await future.close()


async def test_filters_bbox_category_light_and_department_scope(
        live_server: LiveServer) -> None:
    system = live_server.system
    url = live_server.url
    west, east = GeoPoint(118.785, 32.05), GeoPoint(118.815, 32.05)
    boxed = await open_session(url, live_server.token("dispatcher"), layers=["grid-cases"],
                               bbox=[118.70, 32.00, 118.795, 32.10])
    categorised = await open_session(url, live_server.token("leader"), layers=["grid-cases"],
                                     categories=["E0102"])
    sanitation = await open_session(url, live_server.token("department-user", "sanitation"),
                                    layers=["grid-cases", "incidents"], department="roads")
    reds = await open_session(url, live_server.token("planner"), layers=["grid-cases"],
                              lights=["red"])
    for session in (boxed, categorised, sanitation, reds):
        snapshot = await session.next_of("snapshot")
        assert snapshot["layers"]["grid-cases"] == []

    in_west = await asyncio.to_thread(report_case, system, west, "E0101")
    in_east = await asyncio.to_thread(report_case, system, east, "E0102")
    for case in (in_west, in_east):
        await asyncio.to_thread(system.commands.handle, RegisterCase(case_id=case),
                                CommandContext(actor=DISPATCHER))
    await asyncio.to_thread(system.commands.handle,
                            DispatchCase(case_id=in_west, department="sanitation"),
                            CommandContext(actor=DISPATCHER))
    await asyncio.to_thread(system.commands.handle,
                            DispatchCase(case_id=in_east, department="roads"),
                            CommandContext(actor=DISPATCHER))
    marker = await asyncio.to_thread(report_case, system, GeoPoint(118.79, 32.052), "E0102")

    await boxed.until(lambda m: m.get("id") == str(marker))
    assert {c["id"] for c in boxed.changes()} == {str(in_west), str(marker)}
    await categorised.until(lambda m: m.get("id") == str(marker))
    assert {c["id"] for c in categorised.changes()} == {str(in_east), str(marker)}
    # The department user asked for "roads": they only ever get sanitation's cases.
    dispatched = await sanitation.until(lambda m: m["type"] == "change")
    assert dispatched["id"] == str(in_west)
    assert dispatched["feature"]["properties"]["department"] == "sanitation"
    await asyncio.sleep(0.5)
    assert all(c["id"] == str(in_west) for c in sanitation.changes())
    assert not reds.changes()
    for session in (boxed, categorised, sanitation, reds):
        await session.close()


async def test_an_item_that_leaves_a_subscription_is_removed(live_server: LiveServer) -> None:
    system = live_server.system
    case = report_case(system)
    system.grid_cases.handle(RegisterCase(case_id=case), CommandContext(actor=DISPATCHER))
    system.grid_cases.handle(
        DispatchCase(case_id=case, department="sanitation"),
        CommandContext(actor=DISPATCHER))
    system.catch_up()
    session = await open_session(live_server.url,
                                 live_server.token("department-user", "sanitation"),
                                 layers=["grid-cases"])
    snapshot = await session.next_of("snapshot")
    assert [f["id"] for f in snapshot["layers"]["grid-cases"]] == [str(case)]
    await asyncio.to_thread(system.commands.handle,
                            ReturnCaseToCentre(case_id=case, reason="not ours"),
                            CommandContext(actor=_department_actor("sanitation")))
    await asyncio.to_thread(system.commands.handle, DispatchCase(case_id=case, department="roads"),
                            CommandContext(actor=DISPATCHER))
    removal = await session.until(lambda m: m["type"] == "change" and m["feature"] is None)
    assert removal["id"] == str(case)
    await session.close()


def _department_actor(department: str) -> Any:
    from cityops.domain.actors import Actor, Role

    return Actor(f"department-user-{department}", Role.DEPARTMENT_USER, department)


async def test_caller_data_is_masked_for_roles_not_entitled(live_server: LiveServer) -> None:
    system = live_server.system
    operator = await open_session(live_server.url, live_server.token("hotline-operator"),
                                  layers=["hotline-tickets"])
    leader = await open_session(live_server.url, live_server.token("leader"),
                                layers=["hotline-tickets"])
    for session in (operator, leader):
        await session.next_of("snapshot")
    await asyncio.to_thread(
        system.commands.handle,
        ReceiveTicket(channel="phone", ticket_type="complaint", topic="garbage",
                      description="Bins overflowing on Zhongshan Road", caller_name="Zhang Wei",
                      caller_phone="13812345678", location=IN_TOWN),
        CommandContext(actor=_hotline_actor()))
    clear = (await operator.next_of("change"))["feature"]["properties"]
    masked = (await leader.next_of("change"))["feature"]["properties"]
    assert json.dumps(clear).count("13812345678") >= 1
    assert "13812345678" not in json.dumps(masked)
    assert "Zhang Wei" not in json.dumps(masked)
    for session in (operator, leader):
        await session.close()


def _hotline_actor() -> Any:
    from cityops.domain.actors import Actor, Role

    return Actor("operator-live", Role.HOTLINE_OPERATOR)


@pytest.mark.parametrize("token", [None, "", "not-a-token", "eyJ2IjoxfQ.c2lnbmF0dXJl"])
async def test_a_bad_or_missing_token_is_refused_with_4401(shared_server: LiveServer,
                                                           token: str | None) -> None:
    async with websockets.connect(shared_server.url) as ws:
        hello: dict[str, Any] = {"type": "hello", "subscribe": {"layers": ["grid-cases"]}}
        if token is not None:
            hello["token"] = token
        await ws.send(json.dumps(hello))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    if token is None or token == "":
        # A hello without a token is a malformed hello.
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
        assert "token" in reply["message"]
    else:
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        assert reply["type"] == "error" and "token" in reply["message"]


async def test_a_first_message_that_is_not_hello_is_unauthenticated(
        shared_server: LiveServer) -> None:
    async with websockets.connect(shared_server.url) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert "hello" in reply["message"]


@pytest.mark.parametrize(("message", "says"), [
    ("this is not json", "JSON"),
    ('["hello"]', "JSON objects"),
    ('{"type": "dance"}', "unknown message type 'dance'"),
    ('{"type": "subscribe", "subscribe": {"layers": ["rivers"]}}', "unknown layer 'rivers'"),
    ('{"type": "subscribe", "subscribe": {"layers": ["grid-cases"], "bbox": [1, 2, 0, 3]}}',
     "bbox minimum is greater than its maximum"),
    ('{"type": "subscribe", "subscribe": {"layers": ["grid-cases"], "lights": ["blue"]}}',
     "subscribe.lights.0"),
    ('{"type": "viewing", "layer": "rivers", "id": "x"}', "layer must be one of"),
    ('{"type": "ping", "extra": 1}', "bad ping message: extra: Extra inputs are not permitted"),
])
async def test_a_malformed_message_closes_with_4400_and_says_why(
        shared_server: LiveServer, message: str, says: str) -> None:
    session = await open_session(shared_server.url, shared_server.token("dispatcher"))
    await session.next_of("snapshot")
    await session.ws.send(message)
    error = await session.next_of("error")
    assert says in error["message"]
    with pytest.raises(ConnectionClosed) as closed:
        await session.next(10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400


async def test_ping_pong_and_heartbeat_positions(live_server: LiveServer) -> None:
    session = await open_session(live_server.url, live_server.token("dispatcher"))
    snapshot = await session.next_of("snapshot")
    await session.send({"type": "ping"})
    assert (await session.next_of("pong"))["type"] == "pong"
    live_server.app.state.live.heartbeat_s = 0.2
    heartbeat = await session.next_of("position")
    assert heartbeat["generation"] == snapshot["generation"]
    assert heartbeat["position"] >= snapshot["position"]
    assert LiveChangeLog.head(live_server.system.store) >= heartbeat["position"]
    await session.close()


async def test_people_viewing_the_same_case_see_each_other(live_server: LiveServer) -> None:
    system = live_server.system
    case = report_case(system)
    system.catch_up()
    zhao = await open_session(live_server.url, live_server.token("dispatcher", user="zhao"),
                              layers=["grid-cases", "presence"])
    qian = await open_session(live_server.url, live_server.token("dispatcher", user="qian"),
                              layers=["grid-cases", "presence"])
    for session in (zhao, qian):
        await session.next_of("snapshot")
    await zhao.send({"type": "viewing", "layer": "grid-cases", "id": str(case)})
    seen = await qian.until(lambda m: m["type"] == "presence" and m["viewers"])
    assert (seen["layer"], seen["id"]) == ("grid-cases", str(case))
    assert [v["user_id"] for v in seen["viewers"]] == ["zhao"]
    await qian.send({"type": "viewing", "layer": "grid-cases", "id": str(case)})
    both = await zhao.until(lambda m: m["type"] == "presence" and len(m["viewers"]) == 2)
    assert {v["user_id"] for v in both["viewers"]} == {"zhao", "qian"}
    # A newcomer learns who is on the case with its snapshot.
    sun = await open_session(live_server.url, live_server.token("leader", user="sun"),
                             layers=["presence"])
    await sun.next_of("snapshot")
    told = await sun.next_of("presence")
    assert {v["user_id"] for v in told["viewers"]} == {"zhao", "qian"}
    # A disconnect ends the presence at once.
    await zhao.close()
    left = await qian.until(lambda m: m["type"] == "presence" and len(m["viewers"]) == 1)
    assert [v["user_id"] for v in left["viewers"]] == ["qian"]
    await qian.send({"type": "viewing", "id": None})
    gone = await sun.until(lambda m: m["type"] == "presence" and not m["viewers"])
    assert gone["id"] == str(case)
    for session in (qian, sun):
        await session.close()


async def test_a_department_user_sees_presence_only_on_their_departments_items(
        live_server: LiveServer) -> None:
    system = live_server.system
    ours, theirs = report_case(system), report_case(system, GeoPoint(118.81, 32.06))
    for case, department in ((ours, "sanitation"), (theirs, "roads")):
        system.grid_cases.handle(RegisterCase(case_id=case), CommandContext(actor=DISPATCHER))
        system.grid_cases.handle(
            DispatchCase(case_id=case, department=department),
            CommandContext(actor=DISPATCHER))
    system.catch_up()
    watcher = await open_session(live_server.url,
                                 live_server.token("department-user", "sanitation"),
                                 layers=["presence"])
    await watcher.next_of("snapshot")
    dispatcher = await open_session(live_server.url, live_server.token("dispatcher"),
                                    layers=["presence"])
    await dispatcher.next_of("snapshot")
    await dispatcher.send({"type": "viewing", "layer": "grid-cases", "id": str(theirs)})
    await dispatcher.send({"type": "viewing", "layer": "grid-cases", "id": str(ours)})
    told = await watcher.next_of("presence")
    assert told["id"] == str(ours)
    await dispatcher.close()
    await watcher.close()


async def test_a_rebuild_of_the_read_models_sends_every_client_a_resync(
        live_server: LiveServer) -> None:
    from cityops.projections.generations import rebuild

    system = live_server.system
    case = report_case(system)
    system.catch_up()
    session = await open_session(live_server.url, live_server.token("dispatcher"),
                                 layers=["grid-cases"])
    first = await session.next_of("snapshot")
    assert first["generation"] == 1
    result = await asyncio.to_thread(rebuild, system.generations)
    assert result.generation == 2
    resync = await session.next_of("resync")
    assert "rebuilt" in resync["reason"]
    snapshot = await session.next_of("snapshot")
    assert snapshot["generation"] == 2
    assert [f["id"] for f in snapshot["layers"]["grid-cases"]] == [str(case)]
    # Changes go on from the new generation's log.
    await asyncio.to_thread(system.commands.handle, RegisterCase(case_id=case),
                            CommandContext(actor=DISPATCHER))
    change = await session.next_of("change")
    assert (change["generation"], change["id"]) == (2, str(case))
    assert change["position"] > snapshot["position"]
    await session.close()


class RefusingClient(LiveClient):
    """A client whose queue refuses every message, as a bug in it would."""

    def offer(self, seq: int | None, text: str, *, heartbeat: bool = False) -> None:
        raise RuntimeError("this client's queue is broken")


class Unsent:
    async def send_text(self, data: str) -> None:  # no sender runs in this test
        raise AssertionError(data)


async def test_a_client_whose_message_cannot_be_queued_starts_over_and_the_others_get_it(
        live_server: LiveServer) -> None:
    """An exception in one client's offer ended the hub's round: the clients after it, and
    every later change of the read, never got them (the hub had moved past them)."""
    system = live_server.system
    cases = {str(report_case(system, GeoPoint(118.80 + k / 1000, 32.05))) for k in range(3)}
    store = system.generations.active().store
    rows: list[Any] = []
    for _ in range(200):
        rows = [r for r in LiveChangeLog.read(store, 0) if r.item_id in cases]
        if len(rows) == len(cases):
            break
        await asyncio.sleep(0.05)
    assert {r.item_id for r in rows} == cases
    hub = LiveHub(system)
    layers = Subscription(frozenset({"grid-cases"}))
    broken = RefusingClient(actor=DISPATCHER, subscription=layers, outbox=Unsent(),
                            queue_size=100)
    healthy = [LiveClient(actor=DISPATCHER, subscription=layers, outbox=Unsent(),
                          queue_size=100) for _ in range(3)]
    hub.clients.update([broken, *healthy])
    await hub.dispatch(rows)
    for each in healthy:
        assert [seq for seq, _, _ in each.queue] == [r.seq for r in rows]
    assert broken.pending is not None and broken.pending[0] == "resync"
