"""The grid-case workflow through HTTP, as the inspector, the dispatcher and the department
see it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from cityops.domain.geometry import GeoPoint
from cityops.projections.views import case_light

REPORT = {"category": "E0101", "description": "Garbage heap next to the bus stop",
          "location": {"type": "Point", "coordinates": [118.80, 32.05]}}


def reported(api: Any, key: str | None = None, **changes: Any) -> dict[str, Any]:
    """A case reported by the inspector who patrols the place."""
    report = {**REPORT, **changes}
    lon, lat = report["location"]["coordinates"]
    inspector = api.system.city.map.locate(GeoPoint(lon=lon, lat=lat)).inspector_id
    body: dict[str, Any] = api.post("/grid-cases", report, role="inspector", user=inspector,
                                    key=key, expect=201)
    return body


def test_a_case_goes_from_report_to_closing_with_rework(api: Any) -> None:
    case = reported(api)
    path = f"/grid-cases/{case['id']}"
    assert (case["status"], case["light"]) == ("reported", "green")
    assert case["grid_cell"] == api.system.city.map.locate_cell(
        api.system.grid_cases.case(UUID(case["id"])).location)
    registered = api.post(f"{path}/register", {"urgency": "urgent"})
    assert (registered["status"], registered["proposed_department"]) == ("registered",
                                                                         "sanitation")
    dispatched = api.post(f"{path}/dispatch", {"instructions": "Clear it today"})
    assert dispatched["department"] == "sanitation" and dispatched["handling_deadline"]
    sanitation = {"role": "department-user", "dept": "sanitation"}
    api.post(f"{path}/handle", {"result": "Cleared", "evidence": ["after.jpg"]}, **sanitation)
    inspector = api.cell_inspector(case)  # verifies the cases of their cells
    rework = api.post(f"{path}/verify", {"fixed": False, "note": "Still there"},
                      role="inspector", user=inspector)
    assert (rework["status"], rework["rework_count"]) == ("dispatched", 1)
    api.post(f"{path}/handle", {"result": "Cleared again"}, **sanitation)
    assert api.post(f"{path}/verify", {"fixed": True}, role="inspector",
                    user=inspector)["status"] == "verified"
    closed = api.post(f"{path}/close", {"note": "Done"})
    assert (closed["status"], closed["light"]) == ("closed", None)
    history = api.history(path)
    assert [e["event"] for e in history] == [
        "Reported", "Registered", "Dispatched", "Handled", "ReworkOrdered", "Handled",
        "Verified", "Closed"]
    assert history[3]["actor"] == {"user_id": "department-user-1", "role": "department-user",
                                   "department": "sanitation"}


def test_side_paths_return_extension_and_suspension(api: Any) -> None:
    path = f"/grid-cases/{reported(api)['id']}"
    api.post(f"{path}/register")
    api.post(f"{path}/dispatch", {"department": "urban-management"})
    back = api.post(f"{path}/return", {"reason": "Not ours", "suggested_department": "sanitation"},
                    role="department-user", dept="urban-management")
    assert (back["status"], back["proposed_department"]) == ("returned", "sanitation")
    again = api.post(f"{path}/dispatch", {})
    assert again["department"] == "sanitation"
    deadline = datetime.fromisoformat(again["handling_deadline"])
    asked = api.post(f"{path}/extension-requests",
                     {"requested_deadline": (deadline + timedelta(days=2)).isoformat(),
                      "reason": "Waiting for a truck"},
                     role="department-user", dept="sanitation")
    assert asked["pending_extension"]["reason"] == "Waiting for a truck"
    granted = api.post(f"{path}/extension-decision", {"approve": True})
    assert datetime.fromisoformat(granted["handling_deadline"]) > deadline
    suspended = api.post(f"{path}/suspend", {"reason": "Needs a permit"})
    assert suspended["status"] == "suspended"
    assert api.post(f"{path}/resume", {})["status"] == "dispatched"


def test_a_duplicate_report_is_proposed_then_merged(api: Any) -> None:
    first = reported(api)
    api.settle()
    second = reported(api, description="Same garbage heap")
    # The suggestion is not shared: the centre sees it, the reporting inspector does not.
    assert "possible_duplicates" not in second
    assert api.get(f"/grid-cases/{second['id']}")["possible_duplicates"] == [first["id"]]
    merged = api.post(f"/grid-cases/{second['id']}/reject",
                      {"reason": "duplicate", "duplicate_of": first["id"]})
    assert (merged["status"], merged["duplicate_of"]) == ("rejected", first["id"])


def test_repeating_a_report_with_the_same_key_changes_nothing(api: Any) -> None:
    first = reported(api, key="app-1")
    again = reported(api, key="app-1")
    assert again == first
    assert len(api.history(f"/grid-cases/{first['id']}")) == 1
    lon, lat = REPORT["location"]["coordinates"]
    inspector = api.system.city.map.locate(GeoPoint(lon=lon, lat=lat)).inspector_id
    reused = api.post("/grid-cases", {**REPORT, "category": "E0102"}, role="inspector",
                      user=inspector, key="app-1", expect=409)
    assert reused["error"] == "command-id-reused"
    # The key is the user's own: another inspector's "app-1" is another command.
    api.post("/grid-cases", {**REPORT, "category": "E0102"}, role="inspector", key="app-1",
             expect=201)


@pytest.mark.parametrize(("body", "expected"), [
    ({**REPORT, "category": "E9999"}, "unknown grid-case category 'E9999'"),
    ({**REPORT, "location": {"type": "Point", "coordinates": [32.05, 118.80]}},
     "are longitude and latitude swapped?"),
    ({**REPORT, "location": {"type": "Point", "coordinates": [100.0, 30.0]}},
     "outside the city"),
    ({**REPORT, "colour": "red"}, "colour: Extra inputs are not permitted"),
    ({**REPORT, "description": ""}, "description"),
    ({**REPORT, "urgency": "tomorrow"}, "urgency"),
])
def test_bad_reports_get_a_clear_422(api: Any, body: dict[str, Any], expected: str) -> None:
    refused = api.post("/grid-cases", body, role="inspector", expect=422)
    assert expected in refused["detail"]


def test_errors_name_the_state_the_role_and_the_missing_case(api: Any) -> None:
    path = f"/grid-cases/{reported(api)['id']}"
    conflict = api.post(f"{path}/close", {}, expect=409)
    assert "it is reported" in conflict["detail"]
    assert api.post("/grid-cases", REPORT, role="leader", expect=403)["error"] == "not-permitted"
    api.post("/grid-cases", REPORT, role=None, expect=401)
    assert "does not exist" in api.get(f"/grid-cases/{uuid4()}", expect=404)["detail"]
    api.post(f"{path}/register")
    api.post(f"{path}/dispatch")
    # Another department's case is out of its scope: answered as if it did not exist.
    other = api.post(f"{path}/handle", {"result": "x"}, role="department-user", dept="water",
                     expect=404)
    assert "does not exist" in other["detail"]


def test_lists_filter_by_status_area_bbox_and_light(api: Any) -> None:
    first, second = reported(api), reported(api, category="E0401", location={
        "type": "Point", "coordinates": [118.77, 32.06]})
    api.post(f"/grid-cases/{first['id']}/register")
    api.settle()
    registered = api.get("/grid-cases", status="registered")
    assert [c["id"] for c in registered["data"]] == [first["id"]]
    district = second["grid_cell"].split("-")[0]
    in_area = api.get("/grid-cases", area=district)
    assert second["id"] in {c["id"] for c in in_area["data"]}
    boxed = api.get("/grid-cases", bbox="118.769,32.059,118.771,32.061")
    assert [c["id"] for c in boxed["data"]] == [second["id"]]
    assert api.get("/grid-cases", light="green")["count"] == 2
    assert api.get("/grid-cases", light="red")["count"] == 0
    page = api.get("/grid-cases", limit=1, offset=1)
    assert (page["count"], len(page["data"]), page["offset"]) == (2, 1, 1)
    assert "bbox" in api.get("/grid-cases", bbox="1,2,3", expect=422)["detail"]
    assert api.get("/grid-cases", bbox="5,5,1,1", expect=422)["detail"].startswith("bbox")


def test_the_light_turns_red_when_the_deadline_passes(api: Any, system: Any) -> None:
    case = reported(api)
    api.post(f"/grid-cases/{case['id']}/register")
    api.settle()
    later = datetime.now(UTC) + timedelta(days=10)
    doc = system.read_models.get("rm_grid_cases", case["id"])
    assert case_light(doc, later).value == "red"
