"""The hazard-sources API over a real system: an LPG depot registered, its gas sensor under
watch, readings that raise, change and clear an alarm (and readings that change nothing), the
alarm acknowledged and escalated, a hidden danger found and rectified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def depot(**changes: Any) -> dict[str, Any]:
    return {"hazard_type": "lpg-depot", "name": "Riverside LPG depot",
            "owner_name": "Riverside Gas Co.", "owner_contact": "+86 25 8888 0000", "grade": 2,
            "location": point(118.80, 32.05), **changes}


GAS_SENSOR = {"sensor_id": "gas-1", "kind": "gas-concentration", "unit": "%LEL",
              "direction": "high", "warning": 20, "alarm": 50, "label": "Tank A"}


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def registered_with_sensor(api: Any, **changes: Any) -> str:
    source = api.post("/hazard-sources", depot(**changes), role="planner", expect=201)
    path = f"/hazard-sources/{source['id']}"
    api.post(f"{path}/sensors", GAS_SENSOR, role="planner")
    return path


def test_a_hazard_source_is_watched_alarmed_inspected_and_decommissioned(api: Any) -> None:
    source = api.post("/hazard-sources", depot(), role="planner", expect=201)
    path = f"/hazard-sources/{source['id']}"
    assert (source["status"], source["grade"], source["impact_radius_m"]) == ("active", 2, 500)
    updated = api.post(f"{path}/update", {"grade": 1, "reason": "tank capacity doubled"},
                       role="department-user", dept="emergency-management")
    assert (updated["grade"], updated["name"]) == (1, "Riverside LPG depot")
    zone = {"type": "Polygon", "coordinates": [[[118.79, 32.04], [118.81, 32.04],
                                                [118.81, 32.06], [118.79, 32.04]]]}
    zoned = api.post(f"{path}/update", {"impact_zone": zone}, role="planner")
    assert (zoned["impact_radius_m"], zoned["impact_zone"]["type"]) == (None, "Polygon")

    with_sensor = api.post(f"{path}/sensors", GAS_SENSOR, role="planner")
    assert with_sensor["sensors"][0]["level"] == "normal"
    readings = f"{path}/sensors/gas-1/readings"

    def read(value: float) -> dict[str, Any]:
        outcome: dict[str, Any] = api.post(readings, {"value": value}, role="system")
        return outcome

    assert read(10)["effect"] == "unchanged"
    raised = read(25)
    assert (raised["effect"], raised["level"]) == ("raised", "warning")
    alarm_id = raised["alarm"]["alarm_id"]
    assert read(60)["effect"] == "level-changed"
    held = read(49.5)
    assert (held["effect"], held["level"]) == ("unchanged", "alarm")
    late = api.post(readings, {"value": 0, "at": (datetime.now(UTC) - timedelta(minutes=3))
                               .isoformat()}, role="system")
    assert late["effect"] == "out-of-order"
    seen = api.get(path)
    assert seen["open_alarms"] == [alarm_id]
    assert seen["latest_readings"]["gas-1"]["value"] == 49.5

    acknowledged = api.post(f"{path}/alarms/{alarm_id}/acknowledge", {"note": "calling site"})
    assert acknowledged["alarms"][0]["acknowledged_by"] == "dispatcher-1"
    leak = {"category": "accident-disaster", "incident_type": "gas-leak",
            "title": "Gas leak at the depot", "level": "IV"}
    escalated = api.post(f"{path}/alarms/{alarm_id}/escalation", leak)
    incident_id = escalated["incident_id"]
    assert escalated["alarms"][0]["incident_id"] == incident_id
    incident = api.get(f"/incidents/{incident_id}")
    assert (incident["source"], incident["incident_type"]) == ("alarm", "gas-leak")
    assert alarm_id in {link["id"] for link in incident["links"]}
    again = api.post(f"{path}/alarms/{alarm_id}/escalation", leak)
    assert (again["incident_id"], again["version"]) == (incident_id, escalated["version"])
    assert api.get(f"/incidents/{incident_id}")["version"] == incident["version"]
    cleared = read(5)
    assert (cleared["effect"], cleared["alarm"]["end"]) == ("cleared", "back-to-normal")

    found = api.post(f"{path}/findings", {"description": "Corroded valve on tank A",
                                          "severity": "major",
                                          "rectification_deadline": in_days(10)},
                     role="inspector", expect=201)
    finding_id = found["findings"][0]["finding_id"]
    rectified = api.post(f"{path}/findings/{finding_id}/rectify",
                         {"evidence": ["photo-778.jpg"], "note": "valve replaced"},
                         role="department-user", dept="emergency-management")
    assert rectified["findings"][0]["rectified_at"] is not None

    removed = api.post(f"{path}/sensors/gas-1/remove", {"reason": "replaced by gas-2"},
                       role="planner")
    assert removed["sensors"] == []
    gone = api.post(f"{path}/decommission", {"reason": "depot moved out of town"},
                    role="planner")
    assert gone["status"] == "decommissioned"
    assert api.get(path, role="planner") == {**gone, "latest_readings": {}}
    # The owner's contact is shared on condition: not with planners, with dispatchers.
    assert gone["owner"] == {"name": "Riverside Gas Co."}
    assert api.get(path)["owner"]["contact"] == "+86 25 8888 0000"

    history = api.history(path)
    assert [e["event"] for e in history] == [
        "Registered", "DetailsUpdated", "DetailsUpdated", "SensorAdded", "AlarmRaised",
        "AlarmLevelChanged", "AlarmAcknowledged", "AlarmEscalated", "AlarmCleared",
        "FindingRecorded", "FindingRectified", "SensorRemoved", "Decommissioned"]
    assert history[4]["actor"] == {"user_id": "system-1", "role": "system",
                                   "department": None}
    assert history[0]["facts"]["location"] == point(118.8, 32.05)
    assert history[2]["facts"]["impact_zone"]["type"] == "Polygon"


def test_repeating_a_command_with_the_same_key_changes_nothing(api: Any) -> None:
    first = api.post("/hazard-sources", depot(), role="planner", key="reg-1", expect=201)
    assert api.post("/hazard-sources", depot(), role="planner", key="reg-1",
                    expect=201) == first
    path = f"/hazard-sources/{first['id']}"
    finding = {"description": "Blocked exit", "severity": "general",
               "rectification_deadline": in_days(3)}
    recorded = api.post(f"{path}/findings", finding, role="inspector", key="find-1",
                        expect=201)
    assert api.post(f"{path}/findings", finding, role="inspector", key="find-1",
                    expect=201) == recorded
    assert len(recorded["findings"]) == 1
    assert [e["event"] for e in api.history(path)] == ["Registered", "FindingRecorded"]


def test_unknown_ids_are_not_found(api: Any) -> None:
    missing = f"/hazard-sources/{uuid4()}"
    api.get(missing, expect=404)
    api.get(f"{missing}/history", expect=404)
    api.post(f"{missing}/update", {"grade": 3}, role="planner", expect=404)
    path = registered_with_sensor(api)
    assert "sensor" in api.post(f"{path}/sensors/gas-9/readings", {"value": 1},
                                role="system", expect=404)["detail"]
    api.post(f"{path}/alarms/{uuid4()}/acknowledge", {}, expect=404)
    api.post(f"{path}/findings/{uuid4()}/rectify", {"evidence": ["x"]}, role="inspector",
             expect=404)


def test_an_illegal_transition_is_a_conflict_that_names_the_state(api: Any) -> None:
    path = registered_with_sensor(api)
    alarm_id = api.post(f"{path}/sensors/gas-1/readings", {"value": 70},
                        role="system")["alarm"]["alarm_id"]
    api.post(f"{path}/alarms/{alarm_id}/acknowledge", {})
    again = api.post(f"{path}/alarms/{alarm_id}/acknowledge", {}, expect=409)
    assert "already acknowledged" in again["detail"]
    first, second = (api.post("/incidents", {
        "category": "accident-disaster", "incident_type": "gas-leak", "title": title,
        "source": "sensor", "location": {"type": "Point", "coordinates": [118.80, 32.05]},
    }, role="inspector", expect=201)["id"] for title in ("Leak", "Another leak"))
    api.post(f"{path}/alarms/{alarm_id}/escalation", {"incident_id": first})
    assert "already escalated" in api.post(f"{path}/alarms/{alarm_id}/escalation",
                                           {"incident_id": second}, expect=409)["detail"]
    assert "needs category" in api.post(f"{path}/alarms/{alarm_id}/escalation", {},
                                        expect=422)["detail"]
    assert "already has a sensor 'gas-1'" in api.post(f"{path}/sensors", GAS_SENSOR,
                                                      role="planner", expect=409)["detail"]
    api.post(f"{path}/decommission", {"reason": "closed"}, role="planner")
    refused = api.post(f"{path}/update", {"grade": 4}, role="planner", expect=409)
    assert (refused["error"], "it is decommissioned" in refused["detail"]) == (
        "illegal-transition", True)
    assert "it is decommissioned" in api.post(f"{path}/sensors/gas-1/readings",
                                              {"value": 1}, role="system",
                                              expect=409)["detail"]


@pytest.mark.parametrize(("body", "expected"), [
    (depot(hazard_type="volcano"), "unknown hazard type 'volcano'"),
    (depot(grade=5), "grade: Input should be less than or equal to 4"),
    (depot(location={"type": "Point", "coordinates": ["east", 32]}), "location.coordinates"),
    (depot(location=point(118.8, 95)), "latitude 95"),
    (depot(impact_zone={"type": "Polygon", "coordinates": [[[1, 1], [2, 2], [1, 1]]]}),
     "impact_zone"),
    (depot(impact_radius_m=100, impact_zone={"type": "Polygon", "coordinates": [[
        [118.79, 32.04], [118.81, 32.04], [118.81, 32.06], [118.79, 32.04]]]}),
     "not both"),
    (depot(owner="someone"), "owner: Extra inputs are not permitted"),
])
def test_invalid_registrations_are_refused_with_a_clear_detail(
        api: Any, body: dict[str, Any], expected: str) -> None:
    assert expected in api.post("/hazard-sources", body, role="planner", expect=422)["detail"]


def test_invalid_sensors_readings_and_findings_are_refused(api: Any) -> None:
    path = registered_with_sensor(api)
    wrong_unit = {**GAS_SENSOR, "sensor_id": "t-1", "kind": "temperature", "unit": "%LEL"}
    assert "reports in °C, not '%LEL'" in api.post(f"{path}/sensors", wrong_unit,
                                                    role="planner", expect=422)["detail"]
    upside_down = {**GAS_SENSOR, "sensor_id": "gas-2", "warning": 60}
    assert "must be below the alarm" in api.post(f"{path}/sensors", upside_down,
                                                 role="planner", expect=422)["detail"]
    assert "direction" in api.post(f"{path}/sensors", {**GAS_SENSOR, "direction": "up"},
                                   role="planner", expect=422)["detail"]
    api.post(f"{path}/sensors/gas-1/readings", {"value": "lots"}, role="system", expect=422)
    past = {"description": "x", "severity": "major", "rectification_deadline": in_days(-1)}
    assert "is not after the finding" in api.post(f"{path}/findings", past,
                                                  role="inspector", expect=422)["detail"]
    assert "severity" in api.post(f"{path}/findings", {**past, "severity": "dire"},
                                  role="inspector", expect=422)["detail"]


def test_roles_and_identity_are_checked(api: Any) -> None:
    api.post("/hazard-sources", depot(), role=None, expect=401)
    assert api.post("/hazard-sources", depot(), role="leader", expect=403)["error"] == (
        "not-permitted")
    path = registered_with_sensor(api)
    refused = api.post(f"{path}/sensors/gas-1/readings", {"value": 1}, role="inspector",
                       expect=403)
    assert "may not hazard.reading" in refused["detail"]
    alarm_id = api.post(f"{path}/sensors/gas-1/readings", {"value": 70},
                        role="system")["alarm"]["alarm_id"]
    api.post(f"{path}/alarms/{alarm_id}/acknowledge", {}, role="hotline-operator",
             expect=403)


def test_hazard_sources_are_listed_with_filters_and_pages(api: Any) -> None:
    lpg = registered_with_sensor(api)
    dam = api.post("/hazard-sources", depot(hazard_type="reservoir-dam", name="Jade dam",
                                            grade=1, location=point(118.83, 32.07)),
                   role="planner", expect=201)
    slope = api.post("/hazard-sources", depot(hazard_type="landslide-slope", name="Pine hill",
                                              grade=3, location=point(118.82, 32.03)),
                     role="planner", expect=201)
    api.post(f"{lpg}/sensors/gas-1/readings", {"value": 30}, role="system")
    api.settle()
    lpg_id = lpg.rsplit("/", 1)[1]

    def ids(**params: Any) -> list[str]:
        return [doc["id"] for doc in api.get("/hazard-sources", **params)["data"]]

    assert ids() == [slope["id"], dam["id"], lpg_id]
    assert ids(type="reservoir-dam") == [dam["id"]]
    assert ids(grade=[1, 2]) == [dam["id"], lpg_id]
    assert ids(with_open_alarms=True) == [lpg_id]
    assert ids(bbox="118.81,32.02,118.84,32.08") == [slope["id"], dam["id"]]
    assert ids(status="decommissioned") == []
    page = api.get("/hazard-sources", limit=1, offset=2)
    assert (page["count"], [d["id"] for d in page["data"]]) == (3, [lpg_id])
    assert "bbox minimum" in api.get("/hazard-sources", bbox="119,32,118,33",
                                     expect=422)["detail"]
