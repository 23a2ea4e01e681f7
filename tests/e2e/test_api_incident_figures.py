"""Figures a city can trust, over HTTP: a resource is active on one incident at a time (its
leaving an incident is recorded there too), and an incident closes only when every task is
done, cancelled or explicitly waived with a reason by the centre."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

FLOOD_PLAN = {
    "code": "underpass-flood",
    "name": "Underpass flooding",
    "category": "natural-disaster",
    "levels": [
        {"level": "IV",
         "tasks": [{"department": "water", "description": "Open the pumping station",
                    "allowance_minutes": 30},
                   {"department": "traffic-police", "description": "Close the underpass",
                    "allowance_minutes": 20},
                   {"department": "emergency-management",
                    "description": "Warn the residents", "allowance_minutes": 60}],
         "resources": [{"kind": "drainage-pump-truck", "count": 1}]},
    ],
}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def responding_flood(api: Any, title: str, plan_id: str) -> str:
    """A waterlogging incident, verified and responding at level IV with the flood plan."""
    incident = api.post("/incidents", {
        "category": "natural-disaster", "incident_type": "waterlogging", "title": title,
        "location": point(118.80, 32.05), "source": "hotline"}, role="hotline-operator",
        expect=201)
    path = f"/incidents/{incident['id']}"
    api.post(f"{path}/verify", {})
    api.post(f"{path}/respond", {"level": "IV", "plan_id": plan_id})
    return str(incident["id"])


def active(incident: dict[str, Any]) -> list[str]:
    return [a["resource_id"] for a in incident["resources"] if a["released_at"] is None]


def test_a_pump_truck_cleared_from_incident_a_and_sent_to_b_is_active_only_on_b(
        api: Any) -> None:
    plan = api.post("/plans", FLOOD_PLAN, role="planner", expect=201)
    first = responding_flood(api, "Underpass A under water", plan["id"])
    second = responding_flood(api, "Underpass B under water", plan["id"])
    truck = api.post("/resources", {
        "kind": "drainage-pump-truck", "name": "Pump truck 3", "call_sign": "PUMP 3",
        "department": "water", "home_base": point(118.79, 32.04)}, role="planner",
        expect=201)["id"]
    truck_path = f"/resources/{truck}"

    api.post(f"/incidents/{first}/resources", {"resource_id": truck})
    assert api.get(f"/incidents/{first}")["resource_shortfall"] == {}
    api.post(f"{truck_path}/en-route", {}, role="department-user", dept="water")
    api.post(f"{truck_path}/on-scene", {}, role="department-user", dept="water")
    cleared = api.post(f"{truck_path}/clear-scene", {}, role="department-user", dept="water")
    api.post(f"{truck_path}/available", {}, role="department-user", dept="water")

    # Leaving the scene released it on incident A, at the time it left, by the crew.
    on_a = api.get(f"/incidents/{first}")
    assert active(on_a) == []
    released = on_a["resources"][0]
    assert released["released_at"] == cleared["status_since"]
    assert (released["released_by"], released["release_reason"]) == (
        "department-user-1", "cleared the scene")
    assert on_a["resource_shortfall"] == {"drainage-pump-truck": 1}

    on_b = api.post(f"/incidents/{second}/resources", {"resource_id": truck})
    assert active(on_b) == [truck]
    assert on_b["resource_shortfall"] == {}
    on_a = api.get(f"/incidents/{first}")
    assert active(on_a) == [] and on_a["resource_shortfall"] == {"drainage-pump-truck": 1}
    # Both streams tell it: the resource's history and the incident's own.
    assert [e["event"] for e in api.history(f"/incidents/{first}")][-1] == "ResourceReleased"
    statuses = [(h["status"], h["incident_id"]) for h in api.get(truck_path)["history"]]
    assert statuses[-2:] == [("available", None), ("dispatched", second)]

    # The read model agrees with the write side.
    api.settle()
    rows = {d["id"]: d for d in api.get("/incidents", open_only="true")["data"]}
    assert active(rows[first]) == [] and active(rows[second]) == [truck]
    assert rows[first]["resource_shortfall"] == {"drainage-pump-truck": 1}


def test_a_resource_taken_out_of_service_or_reassigned_is_released_on_its_incident(
        api: Any) -> None:
    plan = api.post("/plans", FLOOD_PLAN, role="planner", expect=201)
    first = responding_flood(api, "Underpass A under water", plan["id"])
    second = responding_flood(api, "Underpass B under water", plan["id"])
    trucks = [api.post("/resources", {
        "kind": "drainage-pump-truck", "name": f"Pump truck {n}", "call_sign": f"PUMP {n}",
        "department": "water", "home_base": point(118.79, 32.04)}, role="planner",
        expect=201)["id"] for n in (4, 5)]
    for truck in trucks:
        api.post(f"/incidents/{first}/resources", {"resource_id": truck})

    # One breaks down on the way: stood down (returning), then out of service.
    api.post(f"/resources/{trucks[0]}/en-route", {})
    api.post(f"/resources/{trucks[0]}/stand-down", {})
    api.post(f"/resources/{trucks[0]}/out-of-service", {"reason": "pump failure"})
    # The other is sent straight on to incident B.
    api.post(f"/resources/{trucks[1]}/reassign", {"incident_id": second})

    reasons = {a["resource_id"]: a["release_reason"]
               for a in api.get(f"/incidents/{first}")["resources"]}
    assert reasons == {trucks[0]: "stood down on the way",
                       trucks[1]: f"reassigned to incident {second}"}


def test_releasing_a_resource_on_scene_from_the_incident_sends_it_back(api: Any) -> None:
    plan = api.post("/plans", FLOOD_PLAN, role="planner", expect=201)
    incident = responding_flood(api, "Underpass A under water", plan["id"])
    truck = api.post("/resources", {
        "kind": "drainage-pump-truck", "name": "Pump truck 6", "call_sign": "PUMP 6",
        "department": "water", "home_base": point(118.79, 32.04)}, role="planner",
        expect=201)["id"]
    api.post(f"/incidents/{incident}/resources", {"resource_id": truck})
    api.post(f"/resources/{truck}/on-scene", {})

    released = api.post(f"/incidents/{incident}/resources/{truck}/release")
    assert active(released) == []
    resource = api.get(f"/resources/{truck}")
    assert (resource["status"], resource["incident_id"]) == ("returning", incident)
    # A returning resource cannot be assigned again until it reports available.
    refused = api.post(f"/incidents/{incident}/resources", {"resource_id": truck}, expect=409)
    assert "it is returning" in refused["detail"]
    assert active(api.get(f"/incidents/{incident}")) == []


def test_an_incident_with_open_tasks_cannot_be_closed_until_each_is_settled(api: Any) -> None:
    plan = api.post("/plans", FLOOD_PLAN, role="planner", expect=201)
    incident = responding_flood(api, "Underpass A under water", plan["id"])
    path = f"/incidents/{incident}"
    contained = api.post(f"{path}/contain", {"note": "water receding"})
    tasks = {t["department"]: t["id"] for t in contained["tasks"]}
    assert contained["open_tasks"] == 3

    refused = api.post(f"{path}/close", {}, expect=409)
    assert refused["error"] == "open-tasks"
    assert sorted(refused["open_tasks"]) == sorted(tasks.values())
    assert "3 tasks are still open" in refused["detail"]
    assert "Open the pumping station" in refused["detail"]
    assert api.get(path)["status"] == "contained"

    api.post(f"{path}/tasks/{tasks['water']}/complete", {"result": "pumps running"},
             role="department-user", dept="water")
    api.post(f"{path}/tasks/{tasks['traffic-police']}/cancel",
             {"reason": "the underpass drained by itself"})
    # A waiver needs a reason, and a department may not waive its own task.
    api.post(f"{path}/tasks/{tasks['emergency-management']}/waive", {"reason": ""},
             expect=422)
    api.post(f"{path}/tasks/{tasks['emergency-management']}/waive", {"reason": "no"},
             role="department-user", dept="emergency-management", expect=403)
    still = api.post(f"{path}/close", {}, expect=409)
    assert "1 task is still open" in still["detail"]

    body = {"reason": "residents already warned by the district radio"}
    waived = api.post(f"{path}/tasks/{tasks['emergency-management']}/waive", body,
                      key="waive-warning")
    assert api.post(f"{path}/tasks/{tasks['emergency-management']}/waive", body,
                    key="waive-warning") == waived
    task = next(t for t in waived["tasks"] if t["id"] == tasks["emergency-management"])
    assert (task["status"], task["waive_reason"], task["waived_by"]) == (
        "waived", "residents already warned by the district radio", "dispatcher-1")
    assert waived["open_tasks"] == 0
    assert api.post(f"{path}/close", {})["status"] == "closed"
    assert [e["event"] for e in api.history(path)][-2:] == ["TaskWaived", "Closed"]


def pump_truck(api: Any, number: int) -> str:
    return str(api.post("/resources", {
        "kind": "drainage-pump-truck", "name": f"Pump truck {number}",
        "call_sign": f"PUMP {number}", "department": "water",
        "home_base": point(118.79, 32.04)}, role="planner", expect=201)["id"])


def test_a_pump_truck_dispatched_to_b_from_its_own_route_is_active_on_b(api: Any) -> None:
    """Issue 9 item 1, the arrival side: a resource sent to an incident from the resource's
    own routes (/resources/{id}/dispatch, /reassign) is recorded on the incident too."""
    plan = api.post("/plans", FLOOD_PLAN, role="planner", expect=201)
    first = responding_flood(api, "Underpass A under water", plan["id"])
    second = responding_flood(api, "Underpass B under water", plan["id"])
    truck = pump_truck(api, 7)
    truck_path = f"/resources/{truck}"

    api.post(f"{truck_path}/dispatch", {"incident_id": first})
    on_a = api.get(f"/incidents/{first}")
    assert active(on_a) == [truck] and on_a["resource_shortfall"] == {}
    api.post(f"{truck_path}/en-route", {}, role="department-user", dept="water")
    api.post(f"{truck_path}/on-scene", {}, role="department-user", dept="water")
    api.post(f"{truck_path}/clear-scene", {}, role="department-user", dept="water")
    api.post(f"{truck_path}/available", {}, role="department-user", dept="water")

    dispatched = api.post(f"{truck_path}/dispatch", {"incident_id": second})
    on_b = api.get(f"/incidents/{second}")
    assert active(on_b) == [truck]
    assert on_b["resource_shortfall"] == {}
    assignment = on_b["resources"][0]
    assert (assignment["assigned_at"], assignment["assigned_by"]) == (
        dispatched["status_since"], "dispatcher-1")
    on_a = api.get(f"/incidents/{first}")
    assert active(on_a) == [] and on_a["resource_shortfall"] == {"drainage-pump-truck": 1}
    assert [e["event"] for e in api.history(f"/incidents/{second}")][-1] == "ResourceAssigned"

    # Sent straight back to A: released on B, active on A, each recorded on both streams.
    api.post(f"{truck_path}/reassign", {"incident_id": first})
    on_a, on_b = api.get(f"/incidents/{first}"), api.get(f"/incidents/{second}")
    assert active(on_a) == [truck] and on_a["resource_shortfall"] == {}
    assert active(on_b) == [] and on_b["resource_shortfall"] == {"drainage-pump-truck": 1}
    assert on_b["resources"][0]["release_reason"] == f"reassigned to incident {first}"

    api.settle()
    rows = {d["id"]: d for d in api.get("/incidents", open_only="true")["data"]}
    assert active(rows[first]) == [truck] and active(rows[second]) == []
    assert rows[first]["resource_shortfall"] == {}
    assert rows[second]["resource_shortfall"] == {"drainage-pump-truck": 1}


def test_a_dispatch_to_an_incident_not_open_for_resources_records_nothing(api: Any) -> None:
    plan = api.post("/plans", FLOOD_PLAN, role="planner", expect=201)
    serving = responding_flood(api, "Underpass A under water", plan["id"])
    closed = responding_flood(api, "Underpass B, drained", plan["id"])
    path = f"/incidents/{closed}"
    for task in api.post(f"{path}/contain", {})["tasks"]:
        api.post(f"{path}/tasks/{task['id']}/cancel", {"reason": "drained by itself"})
    api.post(f"{path}/close", {})
    dismissed = api.post("/incidents", {
        "category": "natural-disaster", "incident_type": "waterlogging",
        "title": "A puddle", "location": point(118.80, 32.05), "source": "hotline"},
        role="hotline-operator", expect=201)["id"]
    api.post(f"/incidents/{dismissed}/dismiss", {"reason": "only a puddle"})
    reported = api.post("/incidents", {
        "category": "natural-disaster", "incident_type": "waterlogging",
        "title": "Not verified yet", "location": point(118.80, 32.05), "source": "hotline"},
        role="hotline-operator", expect=201)["id"]
    idle, busy = pump_truck(api, 8), pump_truck(api, 9)
    api.post(f"/resources/{busy}/dispatch", {"incident_id": serving})
    before = {r: api.get(f"/resources/{r}")["version"] for r in (idle, busy)}
    incidents = (serving, closed, dismissed, reported)
    versions = {i: api.get(f"/incidents/{i}")["version"] for i in incidents}

    missing = str(uuid4())
    for resource, route in ((idle, "dispatch"), (busy, "reassign")):
        refused = api.post(f"/resources/{resource}/{route}", {"incident_id": missing},
                           expect=404)
        assert refused["error"] == "not-found"
        assert f"incident {missing} does not exist" in refused["detail"]
        for incident, state in ((closed, "closed"), (dismissed, "dismissed"),
                                (reported, "reported")):
            refused = api.post(f"/resources/{resource}/{route}", {"incident_id": incident},
                               expect=409)
            assert refused["error"] == "illegal-transition"
            assert (f"cannot assign a resource to incident {incident}: it is {state}"
                    in refused["detail"])
        refused = api.post(f"/incidents/{closed}/resources", {"resource_id": resource},
                           expect=409)
        assert "it is closed" in refused["detail"]

    # Nothing was recorded on either stream.
    assert {r: api.get(f"/resources/{r}")["version"] for r in (idle, busy)} == before
    assert {i: api.get(f"/incidents/{i}")["version"] for i in incidents} == versions
    assert active(api.get(f"/incidents/{serving}")) == [busy]


def test_repeating_a_dispatch_records_one_assignment_on_each_stream(api: Any) -> None:
    plan = api.post("/plans", FLOOD_PLAN, role="planner", expect=201)
    incident = responding_flood(api, "Underpass A under water", plan["id"])
    truck = pump_truck(api, 10)
    body = {"incident_id": incident}
    dispatched = api.post(f"/resources/{truck}/dispatch", body, key="send-pump-10")
    assert api.post(f"/resources/{truck}/dispatch", body, key="send-pump-10") == dispatched
    assert api.post(f"/incidents/{incident}/resources", {"resource_id": truck})[
        "resource_shortfall"] == {}
    events = [e["event"] for e in api.history(f"/incidents/{incident}")]
    assert events.count("ResourceAssigned") == 1
    assert [h["status"] for h in api.get(f"/resources/{truck}")["history"]] == [
        "available", "dispatched"]

    # Back home, then the same key again: still the one dispatch, no new assignment.
    api.post(f"/resources/{truck}/stand-down", {})
    assert api.post(f"/resources/{truck}/dispatch", body, key="send-pump-10")[
        "status"] == "available"
    incident_now = api.get(f"/incidents/{incident}")
    assert active(incident_now) == []
    assert [e["event"] for e in api.history(f"/incidents/{incident}")].count(
        "ResourceAssigned") == 1
