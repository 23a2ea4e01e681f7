"""Drills through HTTP and /ws: a planner starts a drill over a window of real history,
participants switch into it on the normal API, every answer from the drill is marked,
what they do stays in the drill, and bad input or the wrong role is refused saying why."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from cityops.command_center.drill_switch import room_of
from cityops.domain.geometry import GeoPoint
from cityops.drills import DRILL_HEADER, drill_settings

REPORT = {"category": "E0101", "description": "Garbage heap next to the bus stop",
          "location": {"type": "Point", "coordinates": [118.80, 32.05]}}


def reported(api: Any) -> dict[str, Any]:
    lon, lat = REPORT["location"]["coordinates"]  # type: ignore[index]
    inspector = api.system.city.map.locate(GeoPoint(lon=lon, lat=lat)).inspector_id
    body: dict[str, Any] = api.post("/grid-cases", REPORT, role="inspector", user=inspector,
                                    expect=201)
    return body


def window(minutes: float = 60) -> dict[str, str]:
    now = datetime.now(UTC)
    return {"window_from": (now - timedelta(minutes=minutes)).isoformat(),
            "window_to": now.isoformat()}


def replayed(api: Any, drill_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        drill: dict[str, Any] = api.get(f"/drills/{drill_id}", role="planner")
        if drill["window_replayed"]:
            return drill
        assert drill["failure"] is None
        assert time.monotonic() < deadline, drill
        time.sleep(0.1)


def in_drill(api: Any, drill_id: str, method: str, path: str, *, role: str = "planner",
             user: str | None = None, expect: int = 200, body: Any = None,
             dept: str | None = None) -> Any:
    headers = {**api.headers(role, dept, user=user), DRILL_HEADER: drill_id}
    response = api.client.request(method, path, headers=headers,
                                  json=body if method == "POST" else None)
    assert response.status_code == expect, response.text
    if expect < 300:
        assert response.headers[DRILL_HEADER] == drill_id
    return response.json()


@pytest.fixture
def drill(api: Any) -> dict[str, Any]:
    """A drill replaying the last hour, as fast as possible, with one case in its history."""
    api.case = reported(api)
    started: dict[str, Any] = api.post("/drills", {"title": "Morning drill", **window(),
                                                   "speed": "max"},
                                       role="planner", expect=201)
    assert started["status"] == "running" and started["speed"] == "max"
    return replayed(api, started["id"])


def test_a_drill_replays_the_window_and_its_participants_act_in_it_alone(
        api: Any, drill: dict[str, Any]) -> None:
    case = api.case
    assert drill["events_replayed"] >= 1 and drill["events_skipped"] == 0
    # The planner sees the drill's city: the case as live had it, marked as the drill's.
    seen = in_drill(api, drill["id"], "GET", f"/grid-cases/{case['id']}")
    assert (seen["id"], seen["status"]) == (case["id"], "reported")
    # A dispatcher not invited is refused; once invited, they act in the drill.
    in_drill(api, drill["id"], "GET", "/grid-cases", role="dispatcher", expect=403)
    api.post(f"/drills/{drill['id']}/participants", {"users": ["dispatcher-1"]},
             role="planner")
    registered = in_drill(api, drill["id"], "POST", f"/grid-cases/{case['id']}/register",
                          role="dispatcher", body={})
    assert registered["status"] == "registered"
    # Recorded in the drill's own store, with who did it; live is untouched.
    history = in_drill(api, drill["id"], "GET", f"/grid-cases/{case['id']}/history",
                       role="dispatcher")
    assert history[-1]["actor"]["user_id"] == "dispatcher-1"
    assert api.get(f"/grid-cases/{case['id']}")["status"] == "reported"
    assert len(api.history(f"/grid-cases/{case['id']}")) == 1
    # The live API's answers carry no drill mark.
    response = api.client.get(f"/grid-cases/{case['id']}", headers=api.headers())
    assert DRILL_HEADER not in response.headers


def projected(api: Any, drill_id: str, case_id: str, timeout: float = 10) -> None:
    """Wait until the drill's read models show the case: its events are replayed into the
    drill's stores (`window_replayed`) a moment before its projections have them."""
    deadline = time.monotonic() + timeout
    while case_id not in {c["id"] for c in in_drill(api, drill_id, "GET", "/grid-cases")["data"]}:
        assert time.monotonic() < deadline, "the drill's read models never showed the case"
        time.sleep(0.05)


def test_a_drills_live_push_marks_every_frame(api: Any, drill: dict[str, Any]) -> None:
    projected(api, drill["id"], api.case["id"])
    with api.client.websocket_connect("/ws") as socket:
        socket.send_json({"type": "hello", "token": api.token("planner"),
                          "subscribe": {"layers": ["grid-cases"]}, "drill": drill["id"]})
        welcome = socket.receive_json()
        assert (welcome["type"], welcome["drill"]) == ("welcome", drill["id"])
        while True:
            frame = socket.receive_json()
            assert frame["drill"] == drill["id"]
            if frame["type"] == "snapshot":
                break
        ids = {f["id"] for f in frame["layers"]["grid-cases"]}
        assert api.case["id"] in ids


def test_a_drills_live_push_is_refused_to_whom_is_not_invited(
        api: Any, drill: dict[str, Any]) -> None:
    with api.client.websocket_connect("/ws") as socket:
        socket.send_json({"type": "hello", "token": api.token("dispatcher"),
                          "subscribe": {"layers": ["grid-cases"]}, "drill": drill["id"]})
        refusal = socket.receive_json()
        assert refusal["type"] == "error" and "not a participant" in refusal["message"]


def test_pause_resume_speed_and_finish(api: Any, drill: dict[str, Any]) -> None:
    path = f"/drills/{drill['id']}"
    paused = api.post(f"{path}/pause", role="planner")
    assert (paused["status"], paused["clock_rate"]) == ("paused", 0)
    time.sleep(0.3)
    assert api.get(path, role="planner")["drill_time"] == paused["drill_time"]
    api.post(f"{path}/pause", role="planner", expect=409)
    assert api.post(f"{path}/speed", {"speed": 20}, role="planner")["speed"] == "20x"
    resumed = api.post(f"{path}/resume", role="planner")
    assert resumed["status"] == "running" and resumed["clock_rate"] == 20
    time.sleep(0.2)
    assert api.get(path, role="planner")["drill_time"] > paused["drill_time"]
    assert api.post(f"{path}/finish", role="planner")["status"] == "finished"


def test_deleting_a_drill_removes_all_of_it(api: Any, drill: dict[str, Any]) -> None:
    from uuid import UUID

    folder = drill_settings(api.system.settings, UUID(drill["id"])).data_dir
    assert folder.is_dir() and any(folder.iterdir())
    deleted = api.client.delete(f"/drills/{drill['id']}", headers=api.headers("planner"))
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert not folder.exists()
    api.get(f"/drills/{drill['id']}", role="planner", expect=404)
    refused = in_drill(api, drill["id"], "GET", "/grid-cases", expect=422)
    assert "names no drill" in refused["detail"]
    assert all(d["id"] != drill["id"] for d in api.get("/drills", role="planner")["data"])


def test_a_participant_lists_only_their_drills(api: Any, drill: dict[str, Any]) -> None:
    assert api.get("/drills", role="dispatcher")["count"] == 0
    api.post(f"/drills/{drill['id']}/participants", {"users": ["dispatcher-1"]},
             role="planner")
    listed = api.get("/drills", role="dispatcher")
    assert [d["id"] for d in listed["data"]] == [drill["id"]]
    api.get(f"/drills/{drill['id']}", role="leader", expect=404)


@pytest.mark.parametrize("role", ["dispatcher", "leader", "inspector"])
def test_only_planners_start_and_steer_drills(api: Any, role: str) -> None:
    refused = api.post("/drills", {**window(), "speed": 10}, role=role, expect=403)
    assert refused["error"] == "not-permitted"


@pytest.mark.parametrize(("change", "expected"), [
    (lambda w: {"window_from": w["window_to"], "window_to": w["window_from"]},
     "the window is inverted or empty"),
    (lambda w: {"window_to": (datetime.now(UTC) + timedelta(hours=2)).isoformat()},
     "is in the future"),
    (lambda w: {"speed": 500}, "speed 500 is out of range: from 1x to 100x"),
    (lambda w: {"speed": 0.5}, "speed 0.5 is out of range"),
    (lambda w: {"speed": "fast"}, "speed must be a number from 1 to 100 or \"max\""),
    (lambda w: {"window_from": "2026-11-24T08:00:00"}, "has no time zone"),
])
def test_bad_drill_input_is_refused_saying_what_is_wrong(
        api: Any, change: Any, expected: str) -> None:
    w = window()
    refused = api.post("/drills", {**w, "speed": 10, **change(w)}, role="planner",
                       expect=422)
    assert expected in refused["detail"], refused


def test_a_planner_starts_a_drill_with_their_own_scenario_file(api: Any) -> None:
    """Not only the shipped examples: the planner's own file, checked against the city
    before anything starts (every problem by line), kept in the drill's own events."""
    from cityops.exercises import shipped_scenarios

    own = shipped_scenarios()["chemical-leak.yaml"].replace(
        "Chlorine leak at the Jinhe Fine Chemicals Plant", "Our own chlorine leak")
    broken = own.replace("category: C0106", "category: E9999")
    refused = api.post("/drills", {**window(), "speed": "max", "scenario": "our-leak",
                                   "scenario_text": broken}, role="planner", expect=422)
    assert refused["error"] == "invalid-scenario"
    [problem] = refused["problems"]
    assert problem["line"] == broken.splitlines().index("    category: E9999") + 1
    assert api.get("/drills", role="planner")["count"] == 0  # nothing started half-way
    unnamed = api.post("/drills", {**window(), "speed": "max", "scenario_text": own},
                       role="planner", expect=422)
    assert "needs a name (scenario)" in unnamed["detail"]

    started = api.post("/drills", {"title": "Own scenario", **window(), "speed": "max",
                                   "scenario": "our-leak", "scenario_text": own},
                       role="planner", expect=201)
    assert (started["scenario"], started["own_scenario"]) == ("our-leak", True)
    replayed(api, started["id"])
    deadline = time.monotonic() + 30
    while not (drill := api.get(f"/drills/{started['id']}", role="planner"))["objectives"]:
        assert time.monotonic() < deadline, drill
        time.sleep(0.1)
    assert [o["id"] for o in drill["objectives"]][:2] == ["verify-leak", "activate-plan"]
    kept = room_of(api.client.app).registry.drill(UUID(started["id"]))
    assert "Our own chlorine leak" in (kept.scenario_text or "")
    shipped = api.post("/drills", {**window(), "speed": "max", "scenario": "typhoon"},
                       role="planner", expect=201)
    assert (shipped["scenario"], shipped["own_scenario"]) == ("typhoon", False)


def test_an_unknown_or_malformed_drill_switch_is_refused(api: Any) -> None:
    response = api.client.get("/grid-cases", headers={**api.headers("planner"),
                                                      DRILL_HEADER: "not-a-drill"})
    assert response.status_code == 422 and "is not a drill id" in response.json()["detail"]
    response = api.client.get("/grid-cases", headers={
        **api.headers("planner"), DRILL_HEADER: "00000000-0000-0000-0000-000000000001"})
    assert response.status_code == 422 and "names no drill" in response.json()["detail"]


def test_jumping_forward_is_checked_against_the_drill_clock_and_window(
        api: Any, tmp_path: Path) -> None:
    reported(api)
    w = window(120)
    started = api.post("/drills", {**w, "speed": 1}, role="planner", expect=201)
    path = f"/drills/{started['id']}"
    back = api.post(f"{path}/jump", {"to": w["window_from"]}, role="planner", expect=422)
    assert "a drill only jumps forward" in back["detail"]
    beyond = (datetime.fromisoformat(w["window_to"]) + timedelta(minutes=5)).isoformat()
    assert "after the window's end" in api.post(f"{path}/jump", {"to": beyond},
                                                role="planner", expect=422)["detail"]
    jumped = api.post(f"{path}/jump", {"to": w["window_to"]}, role="planner")
    assert jumped["drill_time"] >= w["window_to"]
    replayed(api, started["id"])


def test_the_demo_offers_planners_its_own_morning_at_ten_times(
        tmp_path: Path, demo_city: Any) -> None:
    from datetime import date

    from fastapi.testclient import TestClient

    from cityops.command_center.app import create_app
    from cityops.drills import DrillRoom
    from cityops.settings import Settings
    from cityops.simulator import build_demo, demo_drill_offer

    from .conftest import TEST_HASHER, Api

    system, demo = build_demo(Settings(data_dir=tmp_path), seed=7, speed=0.0,
                              today=date(2026, 11, 24))
    system.accounts.hasher = TEST_HASHER
    demo.run_until(demo.start + timedelta(minutes=90))
    room = DrillRoom(system)
    room.offers.append(demo_drill_offer(demo))
    with TestClient(create_app(system, drill_room=room)) as client:
        api = Api(client, system)
        offers = api.get("/drills/ready", role="planner")
        assert len(offers) == 1 and offers[0]["speed"] == 10
        assert offers[0]["window_from"] == demo.start.isoformat()
        # As much of the morning as has happened: the demo's clock, not the wall clock.
        assert offers[0]["window_to"] == system.clock().isoformat()
        body = {k: v for k, v in offers[0].items() if k != "note"}
        drill = api.post("/drills", body, role="planner", expect=201)
        assert (drill["speed"], drill["status"]) == ("10x", "running")
        assert "dispatcher" in drill["participants"]
