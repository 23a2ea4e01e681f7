"""The emergency-resources API over a real system: a fire engine dispatched, on its way, on
scene and back; a shelter activated; positions recorded, cached or ignored; the nearest
available resources of a kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def engine(call_sign: str = "FIRE 11", lon: float = 118.79, lat: float = 32.04,
           **changes: Any) -> dict[str, Any]:
    return {"kind": "fire-engine", "name": f"Engine {call_sign}", "call_sign": call_sign,
            "department": "fire", "home_base": point(lon, lat), "capacity": 6, **changes}


def now() -> str:
    return datetime.now(UTC).isoformat()


def verified_incident(api: Any, title: str = "Warehouse fire") -> str:
    """A real incident open for resources: a resource is only sent to one of those."""
    incident = api.post("/incidents", {
        "category": "accident-disaster", "incident_type": "fire", "title": title,
        "location": point(118.80, 32.05), "source": "hotline"}, role="hotline-operator",
        expect=201)
    api.post(f"/incidents/{incident['id']}/verify", {})
    return str(incident["id"])


def test_a_fire_engine_goes_out_and_comes_back(api: Any) -> None:
    registered = api.post("/resources", engine(call_sign="fire  11"),
                          role="department-user", dept="fire", expect=201)
    path = f"/resources/{registered['id']}"
    assert (registered["status"], registered["call_sign"]) == ("available", "FIRE 11")
    assert registered["latest_position"] is None

    revised = api.post(f"{path}/revise", {"speciality": "high-rise", "capacity": None},
                       role="department-user", dept="fire")
    assert (revised["speciality"], revised["capacity"], revised["name"]) == (
        "high-rise", None, "Engine fire  11")

    incident_id = verified_incident(api)
    dispatched = api.post(f"{path}/dispatch", {"incident_id": incident_id})
    assert (dispatched["status"], dispatched["incident_id"]) == ("dispatched", incident_id)
    en_route = api.post(f"{path}/en-route", {"position": point(118.79, 32.04), "at": now()},
                        role="system")
    assert en_route["position"]["point"] == point(118.79, 32.04)

    moved = api.post(f"{path}/positions", {"position": point(118.795, 32.045), "at": now()},
                     role="system")
    assert moved["outcome"] == "recorded"
    jitter = api.post(f"{path}/positions", {"position": point(118.79501, 32.045),
                                            "at": now()}, role="system")
    assert jitter["outcome"] == "cached"
    assert jitter["latest_position"]["point"] == point(118.79501, 32.045)
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    stale = api.post(f"{path}/positions", {"position": point(118.7, 32.0), "at": old},
                     role="system")
    assert stale["outcome"] == "ignored"
    seen = api.get(path)
    assert seen["position"]["point"] == point(118.795, 32.045)
    assert seen["latest_position"]["point"] == point(118.79501, 32.045)

    assert api.post(f"{path}/on-scene", {}, role="department-user", dept="fire")[
        "status"] == "on-scene"
    assert api.post(f"{path}/clear-scene", {})["status"] == "returning"
    assert api.post(f"{path}/available", {})["status"] == "available"
    out = api.post(f"{path}/out-of-service", {"reason": "pump repair"},
                   role="department-user", dept="fire")
    assert (out["status"], out["out_of_service_reason"]) == ("out-of-service", "pump repair")
    back = api.post(f"{path}/return-to-service", {})
    assert back["status"] == "available"
    assert [h["status"] for h in back["history"]] == [
        "available", "dispatched", "en-route", "on-scene", "returning", "available",
        "out-of-service", "available"]
    assert api.get(path) == back


def test_a_shelter_is_activated_and_a_dispatch_stood_down_or_reassigned(api: Any) -> None:
    shelter = api.post("/resources", {
        "kind": "shelter", "name": "North school gym", "call_sign": "SHELTER 3",
        "department": "emergency-management", "home_base": point(118.80, 32.06),
        "capacity": 400}, role="planner", expect=201)
    path = f"/resources/{shelter['id']}"
    api.post(f"{path}/dispatch", {"incident_id": verified_incident(api, "Flooded homes")})
    assert api.post(f"{path}/activate", {})["status"] == "on-scene"
    refused = api.post(f"{path}/clear-scene", {}, expect=409)
    assert "shelter is not a mobile kind" in refused["detail"]
    assert api.post(f"{path}/deactivate", {})["status"] == "available"
    fixed = api.post(f"{path}/positions", {"position": point(118.8, 32.06), "at": now()},
                     expect=409)
    assert "not a mobile kind" in fixed["detail"]

    truck = api.post("/resources", engine("FIRE 12"), role="planner", expect=201)
    truck_path = f"/resources/{truck['id']}"
    first, second = verified_incident(api, "Fire A"), verified_incident(api, "Fire B")
    api.post(f"{truck_path}/dispatch", {"incident_id": first})
    assert api.post(f"{truck_path}/reassign", {"incident_id": second})["incident_id"] == second
    assert api.post(f"{truck_path}/stand-down", {})["status"] == "available"


def test_repeating_a_command_with_the_same_key_changes_nothing(api: Any) -> None:
    first = api.post("/resources", engine(), role="planner", key="reg-1", expect=201)
    assert api.post("/resources", engine(), role="planner", key="reg-1", expect=201) == first
    path = f"/resources/{first['id']}"
    body = {"incident_id": verified_incident(api)}
    dispatched = api.post(f"{path}/dispatch", body, key="dispatch-1")
    assert api.post(f"{path}/dispatch", body, key="dispatch-1") == dispatched
    assert api.get(path)["version"] == dispatched["version"] == 2
    other = {"incident_id": verified_incident(api, "Another fire")}
    assert api.post(f"{path}/dispatch", other, key="dispatch-1",
                    expect=409)["error"] == "command-id-reused"


def test_unknown_resources_are_not_found(api: Any) -> None:
    missing_id = uuid4()
    missing = f"/resources/{missing_id}"
    api.get(missing, expect=404)
    assert f"resource {missing_id} does not exist" in api.post(
        f"{missing}/dispatch", {"incident_id": verified_incident(api)}, expect=404)["detail"]
    api.post(f"{missing}/positions", {"position": point(118.8, 32.05), "at": now()},
             role="system", expect=404)
    api.get("/resources/not-a-uuid", expect=422)


def test_an_illegal_status_change_is_a_conflict_that_names_the_state(api: Any) -> None:
    registered = api.post("/resources", engine(), role="planner", expect=201)
    path = f"/resources/{registered['id']}"
    refused = api.post(f"{path}/en-route", {}, expect=409)
    assert refused["error"] == "illegal-transition"
    assert "it is available" in refused["detail"]
    api.post(f"{path}/dispatch", {"incident_id": verified_incident(api)})
    again = api.post(f"{path}/dispatch", {"incident_id": verified_incident(api, "Fire B")},
                     expect=409)
    assert "it is dispatched" in again["detail"]
    assert "out of service" in api.post(f"{path}/out-of-service", {"reason": "tired"},
                                        expect=409)["detail"]
    assert api.get(path)["version"] == 2


@pytest.mark.parametrize(("body", "expected"), [
    (engine(kind="tank"), "unknown resource kind 'tank'"),
    (engine(department="ghostbusters"), "unknown department 'ghostbusters'"),
    (engine(home_base=point(32.05, 118.8)), "latitude 118.8 is outside -90..90"),
    (engine(home_base={"type": "Point", "coordinates": [118.8]}), "home_base.coordinates"),
    (engine(wheels=6), "wheels: Extra inputs are not permitted"),
    (engine(capacity=-1), "capacity"),
    (engine(call_sign=""), "call_sign"),
])
def test_invalid_registrations_are_refused_with_a_clear_detail(
        api: Any, body: dict[str, Any], expected: str) -> None:
    assert expected in api.post("/resources", body, role="planner", expect=422)["detail"]


def test_roles_departments_and_identity_are_checked(api: Any) -> None:
    api.post("/resources", engine(), role=None, expect=401)
    assert api.post("/resources", engine(), role="leader", expect=403)["error"] == (
        "not-permitted")
    refused = api.post("/resources", engine(), role="department-user", dept="water",
                       expect=403)
    assert "of water may not register a resource of fire" in refused["detail"]
    registered = api.post("/resources", engine(), role="planner", expect=201)
    path = f"/resources/{registered['id']}"
    incident_id = verified_incident(api)
    api.post(f"{path}/dispatch", {"incident_id": incident_id}, role="department-user",
             dept="fire", expect=403)
    api.post(f"{path}/dispatch", {"incident_id": incident_id})
    # Fire's resource is out of water's scope: as if it did not exist.
    api.post(f"{path}/en-route", {}, role="department-user", dept="water", expect=404)
    api.post(f"{path}/positions", {"position": point(118.8, 32.05), "at": now()},
             role="inspector", expect=403)


def test_resources_are_listed_with_filters_and_pages(api: Any) -> None:
    east = api.post("/resources", engine("FIRE 1", lon=118.83, lat=32.05), role="planner",
                    expect=201)
    west = api.post("/resources", engine("FIRE 2", lon=118.77, lat=32.05), role="planner",
                    expect=201)
    ambulance = api.post("/resources", {
        "kind": "ambulance", "name": "Ambulance 7", "call_sign": "AMB 7",
        "department": "health", "home_base": point(118.80, 32.05)}, role="planner",
        expect=201)
    incident_id = verified_incident(api)
    api.post(f"/resources/{west['id']}/dispatch", {"incident_id": incident_id})
    api.settle()

    def ids(**params: Any) -> list[str]:
        return [doc["id"] for doc in api.get("/resources", **params)["data"]]

    assert ids() == [ambulance["id"], west["id"], east["id"]]
    assert ids(kind="fire-engine") == [west["id"], east["id"]]
    assert ids(status="available") == [ambulance["id"], east["id"]]
    assert ids(status=["dispatched", "en-route"]) == [west["id"]]
    assert ids(department="health") == [ambulance["id"]]
    assert ids(incident_id=incident_id) == [west["id"]]
    assert ids(bbox="118.82,32.0,118.84,32.1") == [east["id"]]
    page = api.get("/resources", limit=2, offset=2)
    assert (page["count"], [d["id"] for d in page["data"]]) == (3, [east["id"]])
    api.get("/resources", status="lost", expect=422)


def test_the_nearest_available_resources_of_a_kind(api: Any) -> None:
    near = api.post("/resources", engine("FIRE 1", lon=118.801, lat=32.05), role="planner",
                    expect=201)
    far = api.post("/resources", engine("FIRE 2", lon=118.83, lat=32.05), role="planner",
                   expect=201)
    busy = api.post("/resources", engine("FIRE 3", lon=118.8, lat=32.05), role="planner",
                    expect=201)
    api.post("/resources", {"kind": "ambulance", "name": "A", "call_sign": "AMB 1",
                            "department": "health", "home_base": point(118.8, 32.05)},
             role="planner", expect=201)
    api.post(f"/resources/{busy['id']}/dispatch", {"incident_id": verified_incident(api)})
    api.settle()

    found = api.get("/resources/nearest", kind="fire-engine", lon=118.80, lat=32.05)
    assert [c["call_sign"] for c in found] == ["FIRE 1", "FIRE 2"]
    assert found[0]["resource_id"] == near["id"]
    assert 90 < found[0]["distance_m"] < 100
    assert found[0]["resource"]["status"] == "available"
    assert len(api.get("/resources/nearest", kind="fire-engine", lon=118.8, lat=32.05,
                       n=1)) == 1

    # FIRE 2 drives past the point: where it is now counts, not its home base.
    api.post(f"/resources/{far['id']}/positions",
             {"position": point(118.8001, 32.05), "at": now()}, role="system")
    found = api.get("/resources/nearest", kind="fire-engine", lon=118.80, lat=32.05)
    assert [c["call_sign"] for c in found] == ["FIRE 2", "FIRE 1"]

    assert "unknown resource kind 'tank'" in api.get(
        "/resources/nearest", kind="tank", lon=118.8, lat=32.05, expect=422)["detail"]
    api.get("/resources/nearest", kind="fire-engine", lon=118.8, lat=95, expect=422)
    api.get("/resources/nearest", kind="fire-engine", lon=118.8, lat=32.05, n=0, expect=422)
