"""The inspector's endpoints through HTTP: the cells they patrol, from the city's map, and
the handled cases in those cells waiting for their verification on site."""

from __future__ import annotations

from typing import Any

import shapely

from cityops.projections.views import case_light

ZHANG = "insp-D01-01"
"""Zhang Wei patrols communities D01-S01-C01 and D01-S01-C02 of the demo city."""
WANG = "insp-D01-02"


def cells_of(api: Any, inspector: str) -> list[str]:
    cells = api.system.city.map.cells
    return sorted(cells.loc[cells["inspector"] == inspector, "code"])


def report_in(api: Any, cell: str, description: str) -> str:
    centre = api.system.city.map.cell(cell).centre
    case = api.post("/grid-cases", {
        "category": "E0101", "description": description,
        "location": {"type": "Point", "coordinates": [centre.lon, centre.lat]},
    }, role="inspector", user=ZHANG, expect=201)
    assert case["grid_cell"] == cell
    case_id: str = case["id"]
    return case_id


def handled(api: Any, case_id: str) -> None:
    path = f"/grid-cases/{case_id}"
    api.post(f"{path}/register")
    api.post(f"{path}/dispatch")
    api.post(f"{path}/handle", {"result": "Cleared"}, role="department-user",
             dept="sanitation")


def tasks(api: Any, user: str = ZHANG, **params: Any) -> dict[str, Any]:
    api.settle()
    body: dict[str, Any] = api.get("/field/me/tasks", role="inspector", user=user, **params)
    return body


def test_an_inspector_sees_the_cells_of_their_communities(api: Any) -> None:
    response = api.client.get("/field/me/cells",
                              headers=api.headers(role="inspector", user=ZHANG))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/geo+json"
    body = response.json()
    assert body["type"] == "FeatureCollection"
    assert body["inspector"] == {"id": ZHANG, "name": "Zhang Wei", "district": "D01",
                                 "communities": ["D01-S01-C01", "D01-S01-C02"]}
    codes = [f["properties"]["code"] for f in body["features"]]
    assert codes == cells_of(api, ZHANG)
    assert body["numberMatched"] == len(codes) > 0
    assert {f["properties"]["community"] for f in body["features"]} == {
        "D01-S01-C01", "D01-S01-C02"}
    city_map = api.system.city.map
    for feature in body["features"][:: max(1, len(codes) // 20)]:
        shape = shapely.geometry.shape(feature["geometry"])
        cell = city_map.cell(feature["id"])
        assert shape.equals_exact(cell.shape.shape, 1e-9)
        assert city_map.locate_cell(cell.centre) == feature["id"]
    together = shapely.union_all([shapely.geometry.shape(f["geometry"])
                                  for f in body["features"]])
    assert body["bbox"] == [round(v, 7) for v in together.bounds]


def test_cells_are_only_for_inspectors_of_the_map(api: Any) -> None:
    refused = api.get("/field/me/cells", role="dispatcher", expect=403)
    assert "only grid inspectors patrol cells" in refused["detail"]
    unknown = api.get("/field/me/cells", role="inspector", user="inspector-new", expect=404)
    assert "inspector-new is not one of the inspectors" in unknown["detail"]
    assert api.client.get("/field/me/cells").status_code == 401
    assert api.client.get("/field/me/tasks").status_code == 401
    api.get("/field/me/tasks", role="leader", expect=403)
    api.get("/field/me/tasks", role="department-user", dept="sanitation", expect=403)


def test_tasks_are_the_handled_cases_in_the_inspectors_cells(api: Any) -> None:
    mine = cells_of(api, ZHANG)
    theirs = cells_of(api, WANG)
    first = report_in(api, mine[0], "Bin overflowing at the school gate")
    second = report_in(api, mine[-1], "Rubbish bags by the lamp post")
    elsewhere = report_in(api, theirs[0], "Garbage in another community")
    waiting = report_in(api, mine[5], "Reported, not handled yet")
    for case_id in (first, second, elsewhere):
        handled(api, case_id)

    body = tasks(api)
    ids = [t["id"] for t in body["data"]]
    assert sorted(ids) == sorted([first, second]) and body["count"] == 2
    assert waiting not in ids and elsewhere not in ids
    now = api.system.grid_cases.clock()
    for task in body["data"]:
        assert task["status"] == "handled" and task["grid_cell"] in mine
        assert task["verify_by"] == task["stage_deadline"] is not None
        assert task["light"] == case_light(task, now).value  # type: ignore[union-attr]
    deadlines = [t["verify_by"] for t in body["data"]]
    assert deadlines == sorted(deadlines)

    assert [t["id"] for t in tasks(api, user=WANG)["data"]] == [elsewhere]

    api.post(f"/grid-cases/{first}/verify", {"fixed": True}, role="inspector", user=ZHANG)
    api.post(f"/grid-cases/{second}/verify", {"fixed": False, "note": "Still there"},
             role="inspector", user=ZHANG)
    assert tasks(api)["data"] == []


def test_tasks_are_paged(api: Any) -> None:
    mine = cells_of(api, ZHANG)
    created = [report_in(api, mine[k * 7], f"Heap number {k}") for k in range(3)]
    for case_id in created:
        handled(api, case_id)
    page = tasks(api, limit=2, offset=0)
    rest = tasks(api, limit=2, offset=2)
    assert (page["count"], len(page["data"]), len(rest["data"])) == (3, 2, 1)
    assert sorted(t["id"] for t in page["data"] + rest["data"]) == sorted(created)


# --- issue 9, item 6: inspectors verify in their own cells, report anywhere but marked ----------


def test_an_inspector_cannot_verify_a_case_in_another_inspectors_cells(api: Any) -> None:
    theirs = cells_of(api, WANG)
    case_id = report_in(api, theirs[0], "Garbage in Wang's community")
    handled(api, case_id)
    path = f"/grid-cases/{case_id}"
    for fixed in (True, False):
        refused = api.post(f"{path}/verify", {"fixed": fixed, "note": "looked"},
                           role="inspector", user=ZHANG, expect=403)
        assert refused["error"] == "not-permitted"
        assert f"it is in cell {theirs[0]}, patrolled by {WANG}" in refused["detail"]
    assert api.get(path)["status"] == "handled"
    assert api.post(f"{path}/verify", {"fixed": True}, role="inspector",
                    user=WANG)["status"] == "verified"


def test_the_centre_assigns_the_inspector_who_verifies(api: Any) -> None:
    theirs = cells_of(api, WANG)
    case_id = report_in(api, theirs[3], "Bags left by the kiosk")
    handled(api, case_id)
    path = f"/grid-cases/{case_id}"
    assert [t["id"] for t in tasks(api, user=WANG)["data"]] == [case_id]
    assert tasks(api)["data"] == []

    assert api.post(f"{path}/assign-verifier", {"inspector": ZHANG}, role="inspector",
                    user=WANG, expect=403)["error"] == "not-permitted"
    unknown = api.post(f"{path}/assign-verifier", {"inspector": "insp-nobody"}, expect=422)
    assert "unknown inspector 'insp-nobody'" in unknown["detail"]
    assigned = api.post(f"{path}/assign-verifier",
                        {"inspector": ZHANG, "reason": "Wang is on leave"})
    assert assigned["assigned_verifier"] == ZHANG
    # The task moves to the assigned inspector, marked as assigned to them.
    [task] = tasks(api)["data"]
    assert (task["id"], task["assigned_to_me"]) == (case_id, True)
    assert tasks(api, user=WANG)["data"] == []
    assert "the centre assigned insp-D01-01 to verify it" in api.post(
        f"{path}/verify", {"fixed": True}, role="inspector", user=WANG, expect=403)["detail"]
    assert api.post(f"{path}/verify", {"fixed": True}, role="inspector",
                    user=ZHANG)["status"] == "verified"
    assert [e["event"] for e in api.history(path)][-2:] == ["VerifierAssigned", "Verified"]


def test_a_report_outside_ones_cells_is_accepted_and_marked(api: Any) -> None:
    outside = report_in(api, cells_of(api, WANG)[0], "Seen on my way home")
    inside = report_in(api, cells_of(api, ZHANG)[0], "Seen on my round")
    assert api.get(f"/grid-cases/{outside}")["outside_assigned_cells"] is True
    assert api.get(f"/grid-cases/{inside}")["outside_assigned_cells"] is False
    api.settle()
    listed = {c["id"]: c["outside_assigned_cells"] for c in api.get("/grid-cases")["data"]}
    assert listed == {outside: True, inside: False}
    assert [e["event"] for e in api.history(f"/grid-cases/{outside}")] == [
        "Reported", "ReportedOutsideAssignedCells"]
