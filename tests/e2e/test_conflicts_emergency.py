"""Conflicts, not silent overwrites, on the emergency streams: a command on an incident, a
plan, a hazard source or a resource that names a version its user saw (`If-Match`) is
refused with 409 when the document has changed since, and nothing is recorded; also when the
command spans two streams (a resource sent to an incident, an alarm escalated), where no
step is taken on a stale view. The version seen travels in the command's context, from the
route to the handler."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from cityops.domain.hazards.source import incident_id_for_alarm

PLAN = {
    "code": "underpass-flood", "name": "Underpass flooding", "category": "natural-disaster",
    "levels": [{"level": "IV", "tasks": [{"department": "water",
                                          "description": "Open the pumping station",
                                          "allowance_minutes": 30}],
                "resources": [{"kind": "drainage-pump-truck", "count": 1}]}],
}
TANK = {"hazard_type": "lpg-depot", "name": "East LPG depot", "owner_name": "East Gas Co.",
        "owner_contact": "+86 25 5555 0101", "grade": 2,
        "location": {"type": "Point", "coordinates": [118.81, 32.06]}}
SENSOR = {"sensor_id": "GT-1", "kind": "gas-concentration", "unit": "%LEL",
          "direction": "high", "warning": 20, "alarm": 40}


def command(api: Any, path: str, body: dict[str, Any], *, if_match: str,
            role: str = "dispatcher") -> Any:
    headers = api.headers(role, None, None, f"{role}-1")
    headers["If-Match"] = if_match
    return api.client.post(path, json=body, headers=headers)


def assert_stale(response: Any) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "stale-version"


def responding_flood(api: Any) -> dict[str, Any]:
    plan = api.post("/plans", PLAN, role="planner", expect=201)
    incident = api.post("/incidents", {
        "category": "natural-disaster", "incident_type": "waterlogging",
        "title": "Underpass under water", "source": "hotline",
        "location": {"type": "Point", "coordinates": [118.80, 32.05]}},
        role="hotline-operator", expect=201)
    path = f"/incidents/{incident['id']}"
    api.post(f"{path}/verify", {})
    responding: dict[str, Any] = api.post(f"{path}/respond",
                                          {"level": "IV", "plan_id": plan["id"]})
    return responding


def pump_truck(api: Any) -> dict[str, Any]:
    truck: dict[str, Any] = api.post("/resources", {
        "kind": "drainage-pump-truck", "name": "Pump truck 3", "call_sign": "PUMP 3",
        "department": "water", "home_base": {"type": "Point", "coordinates": [118.79, 32.04]}},
        role="planner", expect=201)
    return truck


def test_a_level_change_on_a_stale_view_of_the_incident_is_refused(api: Any) -> None:
    incident = responding_flood(api)
    path = f"/incidents/{incident['id']}"
    seen = f'"{incident["version"]}"'
    api.post(f"{path}/commander", {"commander": "chief-li"})
    assert_stale(command(api, f"{path}/level", {"level": "III", "reason": "rain"},
                         if_match=seen))
    assert api.get(path)["level"] == "IV"
    # On the version as it is now, it goes through.
    now = f'"{api.get(path)["version"]}"'
    raised = command(api, f"{path}/escalate", {"reason": "rain"}, if_match=now)
    assert raised.status_code == 200, raised.text
    assert raised.json()["level"] == "III"


def test_a_plan_revised_since_it_was_read_is_not_retired_blindly(api: Any) -> None:
    plan = api.post("/plans", PLAN, role="planner", expect=201)
    path = f"/plans/{plan['id']}"
    api.post(f"{path}/revise", {"levels": PLAN["levels"], "note": "new pumps"}, role="planner")
    assert_stale(command(api, f"{path}/retire", {"reason": "obsolete"},
                         if_match=f'"{plan["version"]}"', role="planner"))
    assert api.get(path)["status"] == "active"


def test_a_resource_sent_on_a_stale_view_records_nothing_on_either_stream(api: Any) -> None:
    incident = responding_flood(api)
    truck = pump_truck(api)
    path = f"/resources/{truck['id']}"
    api.post(f"{path}/revise", {"notes": "new hose"}, role="planner")
    assert_stale(command(api, f"{path}/dispatch", {"incident_id": incident["id"]},
                         if_match=f'"{truck["version"]}"'))
    assert api.get(path)["status"] == "available"
    assert api.get(f"/incidents/{incident['id']}")["resources"] == []


def test_a_release_on_a_stale_view_of_the_incident_leaves_the_resource_where_it_is(
        api: Any) -> None:
    incident = responding_flood(api)
    truck = pump_truck(api)
    path = f"/incidents/{incident['id']}"
    assigned = api.post(f"{path}/resources", {"resource_id": truck["id"]})
    api.post(f"{path}/situation-reports", {"text": "water rising"})
    assert_stale(command(api, f"{path}/resources/{truck['id']}/release", {},
                         if_match=f'"{assigned["version"]}"'))
    assert api.get(f"/resources/{truck['id']}")["status"] == "dispatched"


def test_an_alarm_escalated_on_a_stale_view_of_its_source_reports_no_incident(
        api: Any) -> None:
    source = api.post("/hazard-sources", TANK, role="planner", expect=201)
    path = f"/hazard-sources/{source['id']}"
    api.post(f"{path}/sensors", SENSOR, role="planner")
    crossed = api.post(f"{path}/sensors/GT-1/readings", {"value": 45}, role="system")
    alarm_id = crossed["alarm"]["alarm_id"]
    seen = api.get(path)["version"]
    api.post(f"{path}/alarms/{alarm_id}/acknowledge", {"note": "seen"})
    assert_stale(command(api, f"{path}/alarms/{alarm_id}/escalation", {
        "category": "accident-disaster", "incident_type": "gas-leak", "title": "Gas leak"},
        if_match=f'"{seen}"'))
    api.get(f"/incidents/{incident_id_for_alarm(UUID(alarm_id))}", expect=404)
