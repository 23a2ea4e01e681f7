"""The incidents and contingency-plans API over a real system, step by step as the domain brief
tells an emergency: reported, verified, responding with a plan, level raised and lowered,
situation reports, tasks for departments, resources, contained, closed, reviewed."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

SQUARE = {"type": "Polygon", "coordinates": [[
    [118.795, 32.045], [118.805, 32.045], [118.805, 32.055], [118.795, 32.055],
    [118.795, 32.045],
]]}
FIRE_PLAN = {
    "code": "urban-fire",
    "name": "Urban fire response",
    "category": "accident-disaster",
    "incident_types": ["fire"],
    "levels": [
        {"level": "IV",
         "tasks": [{"department": "fire", "description": "Send the nearest station",
                    "allowance_minutes": 15}],
         "resources": [{"kind": "fire-engine", "count": 2}]},
        {"level": "III",
         "tasks": [{"department": "health", "description": "Stand by ambulances",
                    "allowance_minutes": 30}],
         "resources": [{"kind": "fire-engine", "count": 4}, {"kind": "ambulance", "count": 1}]},
    ],
}


HAZMAT_PLAN = {
    "code": "hazmat-support",
    "name": "Hazardous materials support",
    "category": "accident-disaster",
    "levels": [
        {"level": "IV", "resources": [{"kind": "hazmat-team", "count": 1}]},
        {"level": "II", "tasks": [{"department": "police", "description": "Close the roads",
                                   "allowance_minutes": 20}]},
    ],
}


def fire_report(**changes: Any) -> dict[str, Any]:
    return {"category": "accident-disaster", "incident_type": "fire",
            "title": "Smoke from a warehouse", "location": {"type": "Point",
                                                            "coordinates": [118.80, 32.05]},
            "source": "inspector", **changes}


def test_an_incident_goes_from_report_to_review(api: Any) -> None:
    plan = api.post("/plans", FIRE_PLAN, role="planner", expect=201)
    assert plan["status"] == "active"
    assert plan["revision"] == 1

    incident = api.post("/incidents", fire_report(affected_area=SQUARE), role="inspector",
                        expect=201)
    path = f"/incidents/{incident['id']}"
    assert incident["status"] == "reported"
    assert incident["level"] == "IV"
    assert incident["affected_area"]["type"] == "Polygon"

    assert api.post(f"{path}/verify", {"level": "IV", "note": "confirmed on the phone"})[
        "status"] == "verified"
    responding = api.post(f"{path}/respond", {"level": "IV", "plan_id": plan["id"],
                                              "reason": "a working fire"})
    assert responding["status"] == "responding"
    assert [t["department"] for t in responding["tasks"]] == ["fire"]
    assert responding["required_resources"] == {"fire-engine": 2}
    hazmat = api.post("/plans", HAZMAT_PLAN, role="planner", expect=201)
    activated = api.post(f"{path}/activate-plan", {"plan_id": hazmat["id"]})
    assert [p["code"] for p in activated["plans"]] == ["urban-fire", "hazmat-support"]
    assert activated["required_resources"] == {"fire-engine": 2, "hazmat-team": 1}
    assert "already activated" in api.post(f"{path}/activate-plan", {"plan_id": hazmat["id"]},
                                           expect=409)["detail"]

    report = api.post(f"{path}/situation-reports",
                      {"text": "Roof on fire, two people out",
                       "casualties": {"injured": 2, "evacuated": 40}, "affected_area": SQUARE},
                      role="department-user", dept="fire")
    assert report["casualties"] == {"evacuated": 40, "injured": 2}
    assert report["situation_reports"][0]["author_department"] == "fire"

    case_id = str(uuid4())
    linked = api.post(f"{path}/links", {"kind": "grid-case", "target_id": case_id})
    assert [link["id"] for link in linked["links"]] == [case_id]
    unlinked = api.post(f"{path}/unlink", {"kind": "grid-case", "target_id": case_id,
                                           "reason": "another street"})
    assert unlinked["links"] == []
    assert api.post(f"{path}/commander", {"commander": "chief-wang"})["commander"] == (
        "chief-wang")

    raised = api.post(f"{path}/escalate", {"reason": "spreading to the next building"})
    assert raised["level"] == "III"
    assert sorted(t["department"] for t in raised["tasks"]) == ["fire", "health"]
    assert api.post(f"{path}/de-escalate", {"reason": "under control"})["level"] == "IV"
    at_two = api.post(f"{path}/level", {"level": "II", "reason": "chemicals stored inside"})
    assert at_two["level"] == "II"
    assert "police" in {t["department"] for t in at_two["tasks"]}

    with_task = api.post(f"{path}/tasks", {"department": "environment",
                                           "description": "Measure the air downwind",
                                           "allowance_minutes": 60})
    task = next(t for t in with_task["tasks"] if t["department"] == "environment")
    task_path = f"{path}/tasks/{task['id']}"
    api.post(f"{task_path}/acknowledge", role="department-user", dept="environment")
    done = api.post(f"{task_path}/complete", {"result": "no toxic gas"},
                    role="department-user", dept="environment")
    assert next(t for t in done["tasks"] if t["id"] == task["id"])["status"] == "done"
    health_task = next(t for t in done["tasks"] if t["department"] == "health")
    cancelled = api.post(f"{path}/tasks/{health_task['id']}/cancel", {"reason": "no casualties"})
    assert next(t for t in cancelled["tasks"] if t["department"] == "health")[
        "status"] == "cancelled"

    engine = api.post("/resources", {
        "kind": "fire-engine", "name": "Engine 7", "call_sign": "FIRE 7", "department": "fire",
        "home_base": {"type": "Point", "coordinates": [118.79, 32.04]},
    }, role="planner", expect=201)["id"]
    assigned = api.post(f"{path}/resources", {"resource_id": engine})
    assert (assigned["resources"][0]["resource_id"], assigned["resources"][0]["kind"]) == (
        engine, "fire-engine")
    resource = api.get(f"/resources/{engine}")
    assert (resource["status"], resource["incident_id"]) == ("dispatched", incident["id"])
    released = api.post(f"{path}/resources/{engine}/release")
    assert released["resources"][0]["released_at"] is not None
    assert api.get(f"/resources/{engine}")["status"] == "available"

    contained = api.post(f"{path}/contain", {"note": "fire out"})
    assert contained["status"] == "contained"
    # Closing waits for every task: the ones still open are waived, with the reason.
    still_open = [t for t in contained["tasks"] if t["status"] in ("assigned", "acknowledged")]
    assert still_open and api.post(f"{path}/close", {}, expect=409)["error"] == "open-tasks"
    for task in still_open:
        api.post(f"{path}/tasks/{task['id']}/waive", {"reason": "fire out before it was needed"})
    assert api.post(f"{path}/close", {})["status"] == "closed"
    reviewed = api.post(f"{path}/review", {
        "summary": "Fast response, slow ambulance stand-by",
        "findings": [{"aspect": "response-time", "text": "Health took 40 minutes",
                      "department": "health"}],
    }, role="planner")
    assert reviewed["status"] == "reviewed"
    assert reviewed["review"]["findings"][0]["aspect"] == "response-time"

    # The planner sees the review but not the casualty figures (the sharing catalogue).
    assert api.get(path, role="planner") == reviewed
    assert "casualties" not in reviewed["situation_reports"][0]
    assert api.get(path)["situation_reports"][0]["casualties"] == {"evacuated": 40,
                                                                   "injured": 2}
    history = api.history(path)
    assert history[0]["event"] == "Reported"
    assert history[0]["actor"] == {"user_id": "inspector-1", "role": "inspector",
                                   "department": None}
    assert history[0]["facts"]["location"] == {"type": "Point", "coordinates": [118.8, 32.05]}
    assert history[-1]["event"] == "Reviewed"
    assert [e["version"] for e in history] == list(range(1, len(history) + 1))
    assert all(e["at"] for e in history)


def test_repeating_a_command_with_the_same_key_changes_nothing(api: Any) -> None:
    first = api.post("/incidents", fire_report(), role="inspector", key="report-1", expect=201)
    again = api.post("/incidents", fire_report(), role="inspector", key="report-1", expect=201)
    assert again == first
    path = f"/incidents/{first['id']}"

    verified = api.post(f"{path}/verify", {"note": "seen"}, key="verify-1")
    assert api.post(f"{path}/verify", {"note": "seen"}, key="verify-1") == verified
    assert [e["event"] for e in api.history(path)] == ["Reported", "Verified"]

    reused = api.post(f"{path}/verify", {"note": "other"}, key="verify-1", expect=409)
    assert reused["error"] == "command-id-reused"


def test_unknown_ids_are_not_found(api: Any) -> None:
    missing = f"/incidents/{uuid4()}"
    assert "does not exist" in api.get(missing, expect=404)["detail"]
    api.get(f"{missing}/history", expect=404)
    api.post(f"{missing}/verify", {}, expect=404)
    api.get(f"/plans/{uuid4()}", expect=404)
    incident = api.post("/incidents", fire_report(), role="inspector", expect=201)
    api.post(f"/incidents/{incident['id']}/verify", {})
    api.post(f"/incidents/{incident['id']}/respond", {"level": "IV"})
    api.post(f"/incidents/{incident['id']}/activate-plan", {"plan_id": str(uuid4())},
             expect=404)
    api.post(f"/incidents/{incident['id']}/tasks/{uuid4()}/acknowledge", expect=404)


def test_an_illegal_transition_is_a_conflict_that_names_the_state(api: Any) -> None:
    incident = api.post("/incidents", fire_report(), role="inspector", expect=201)
    path = f"/incidents/{incident['id']}"
    refused = api.post(f"{path}/contain", {}, expect=409)
    assert refused["error"] == "illegal-transition"
    assert "it is reported" in refused["detail"]
    api.post(f"{path}/dismiss", {"reason": "a barbecue"})
    assert "it is dismissed" in api.post(f"{path}/verify", {}, expect=409)["detail"]
    assert [e["event"] for e in api.history(path)] == ["Reported", "Dismissed"]

    plan = api.post("/plans", FIRE_PLAN, role="planner", expect=201)
    api.post(f"/plans/{plan['id']}/retire", {"reason": "replaced"}, role="planner")
    assert "it is retired" in api.post(f"/plans/{plan['id']}/retire", {"reason": "again"},
                                       role="planner", expect=409)["detail"]


@pytest.mark.parametrize(("body", "expected"), [
    (fire_report(colour="red"), "colour: Extra inputs are not permitted"),
    (fire_report(location={"type": "Point", "coordinates": [200, 32]}), "longitude 200"),
    (fire_report(location={"type": "Polygon", "coordinates": [118.8, 32.05]}), "location"),
    (fire_report(affected_area={"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}),
     "affected_area"),
    (fire_report(category="alien-invasion"), "unknown incident category 'alien-invasion'"),
    (fire_report(incident_type="earthquake"), "'earthquake' is not in category"),
    (fire_report(level="V"), "unknown incident level 'V'"),
    (fire_report(source="pigeon"), "source"),
    ({"title": "no place"}, "location: Field required"),
])
def test_invalid_reports_are_refused_with_a_clear_detail(api: Any, body: dict[str, Any],
                                                         expected: str) -> None:
    refused = api.post("/incidents", body, role="inspector", expect=422)
    assert expected in refused["detail"]
    api.settle()
    assert api.get("/incidents")["count"] == 0


def test_invalid_plans_and_commands_are_refused(api: Any) -> None:
    bad_task = {**FIRE_PLAN, "levels": [{"level": "IV", "tasks": [
        {"department": "ghostbusters", "description": "x", "allowance_minutes": 5}]}]}
    assert "unknown department 'ghostbusters'" in api.post(
        "/plans", bad_task, role="planner", expect=422)["detail"]
    empty_level = {**FIRE_PLAN, "levels": [{"level": "IV"}]}
    assert "neither tasks nor resources" in api.post(
        "/plans", empty_level, role="planner", expect=422)["detail"]
    assert "code" in api.post("/plans", {**FIRE_PLAN, "code": "Urban Fire!"}, role="planner",
                              expect=422)["detail"]
    incident = api.post("/incidents", fire_report(), role="inspector", expect=201)
    path = f"/incidents/{incident['id']}"
    api.post(f"{path}/verify", {})
    api.post(f"{path}/respond", {"level": "IV"})
    assert "casualties.abducted" in api.post(
        f"{path}/situation-reports", {"text": "x", "casualties": {"abducted": 1}},
        expect=422)["detail"]
    assert "kind: Input should be" in api.post(
        f"{path}/links", {"kind": "rumour", "target_id": str(uuid4())}, expect=422)["detail"]
    assert "does not exist" in api.post(
        f"{path}/resources", {"resource_id": str(uuid4())}, expect=404)["detail"]
    assert "kind: Extra inputs" in api.post(
        f"{path}/resources", {"resource_id": str(uuid4()), "kind": "tank"}, expect=422)["detail"]
    api.get("/plans/applicable", category="accident-disaster", level="V", expect=422)


def test_roles_and_identity_are_checked(api: Any) -> None:
    assert "log in first" in api.post("/incidents", fire_report(), role=None,
                                      expect=401)["detail"]
    forged = api.client.post("/incidents", json=fire_report(),
                             headers={"Authorization": f"Bearer {api.token('inspector')}x"})
    assert forged.status_code == 401
    assert forged.headers["WWW-Authenticate"].startswith("Bearer")
    refused = api.post("/incidents", fire_report(), role="leader", expect=403)
    assert refused["error"] == "not-permitted"
    incident = api.post("/incidents", fire_report(), role="inspector", expect=201)
    path = f"/incidents/{incident['id']}"
    api.post(f"{path}/verify", {}, role="hotline-operator", expect=403)
    api.post("/plans", FIRE_PLAN, role="inspector", expect=403)

    api.post(f"{path}/verify", {})
    api.post(f"{path}/respond", {"level": "IV"})
    with_task = api.post(f"{path}/tasks", {"department": "fire", "description": "Go",
                                           "allowance_minutes": 10})
    task_path = f"{path}/tasks/{with_task['tasks'][0]['id']}/acknowledge"
    # Water has no task on the incident: it is out of water's scope, as if it did not exist.
    refused = api.post(task_path, role="department-user", dept="water", expect=404)
    assert "does not exist" in refused["detail"]
    api.post(task_path, role="department-user", dept="fire")


def test_incidents_are_listed_with_filters_and_pages(api: Any) -> None:
    fire = api.post("/incidents", fire_report(), role="inspector", expect=201)
    flood = api.post("/incidents", fire_report(
        category="natural-disaster", incident_type="waterlogging", title="Underpass flooded",
        level="III", location={"type": "Point", "coordinates": [118.83, 32.07]}),
        role="inspector", expect=201)
    false_alarm = api.post("/incidents", fire_report(title="Steam, not smoke"),
                           role="inspector", expect=201)
    api.post(f"/incidents/{false_alarm['id']}/dismiss", {"reason": "steam"})
    api.settle()

    def ids(**params: Any) -> list[str]:
        return [doc["id"] for doc in api.get("/incidents", **params)["data"]]

    assert ids() == [false_alarm["id"], flood["id"], fire["id"]]
    assert ids(category="natural-disaster") == [flood["id"]]
    assert ids(level="III") == [flood["id"]]
    assert ids(status=["reported"]) == [flood["id"], fire["id"]]
    assert ids(status=["dismissed", "verified"]) == [false_alarm["id"]]
    assert ids(open_only=True) == [flood["id"], fire["id"]]
    assert ids(bbox="118.82,32.06,118.84,32.08") == [flood["id"]]
    page = api.get("/incidents", limit=1, offset=1)
    assert (page["count"], page["limit"], page["offset"]) == (3, 1, 1)
    assert [doc["id"] for doc in page["data"]] == [flood["id"]]
    assert "bbox" in api.get("/incidents", bbox="1,2,3", expect=422)["detail"]
    api.get("/incidents", status="smouldering", expect=422)
    api.get("/incidents", limit=0, expect=422)


def test_plans_are_revised_listed_and_found_for_an_incident(api: Any) -> None:
    fire = api.post("/plans", FIRE_PLAN, role="planner", key="define-fire", expect=201)
    assert api.post("/plans", FIRE_PLAN, role="planner", key="define-fire",
                    expect=201) == fire
    assert "already defined" in api.post("/plans", FIRE_PLAN, role="planner",
                                         expect=409)["detail"]
    flood = api.post("/plans", {
        "code": "city-flood", "name": "City flood", "category": "natural-disaster",
        "levels": [{"level": "II", "resources": [{"kind": "drainage-pump-truck", "count": 6}]}],
    }, role="planner", expect=201)
    revised = api.post(f"/plans/{fire['id']}/revise", {
        "levels": [{"level": "IV", "tasks": [{"department": "fire",
                                              "description": "Send two stations",
                                              "allowance_minutes": 10}]}],
        "note": "two stations from now on",
    }, role="planner")
    assert revised["revision"] == 2
    assert revised["name"] == FIRE_PLAN["name"]
    assert api.get(f"/plans/{fire['id']}") == revised

    found = api.get("/plans/applicable", category="accident-disaster", level="IV",
                    incident_type="fire")
    assert [p["code"] for p in found] == ["urban-fire"]
    assert api.get("/plans/applicable", category="accident-disaster", level="III") == []
    api.post(f"/plans/{fire['id']}/retire", {"reason": "merged into a new plan"},
             role="planner")
    assert api.get("/plans/applicable", category="accident-disaster", level="IV") == []

    api.settle()
    listed = api.get("/plans")
    assert listed["count"] == 2
    assert [p["code"] for p in api.get("/plans", category="natural-disaster")["data"]] == [
        "city-flood"]
    assert [p["id"] for p in api.get("/plans", status="retired")["data"]] == [fire["id"]]
    assert [p["id"] for p in api.get("/plans", code="city-flood")["data"]] == [flood["id"]]
