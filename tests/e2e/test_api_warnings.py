"""The warning desk over HTTP, as the issue tells it: a dispatcher drafts a public warning from
an incident, a second dispatcher approves it, it is issued, updated with a wider area and
cancelled; the two-person rule and each bad input refused with the app's error body and
nothing recorded; departments see only issued warnings; expiry shown; idempotency and
If-Match like every command route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cityops.bootstrap import build_system
from cityops.command_center.app import create_app
from cityops.settings import Settings
from tests.e2e.conftest import TEST_HASHER, Api
from tests.unit.projections.conftest import ManualClock

DEPOT = [118.83165441340427, 32.04413461613862]
"""HS-01 of the demo city (the LPG depot)."""


def square(lon: float, lat: float, half: float = 0.004) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [[[lon - half, lat - half], [lon + half, lat - half],
                                                [lon + half, lat + half], [lon - half, lat + half],
                                                [lon - half, lat - half]]]}


def texts(headline: str = "Gas leak: keep away") -> list[dict[str, str]]:
    return [{"language": "zh-CN", "headline": "燃气泄漏 请远离", "description": "液化气站泄漏",
             "instruction": "关闭门窗 远离该区域"},
            {"language": "en-US", "headline": headline, "description": "Gas leak at the depot",
             "instruction": "Close windows and stay away"}]


def later(api: Api, hours: float) -> str:
    return (api.system.clock() + timedelta(hours=hours)).isoformat()


def report_incident(api: Api, area: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"category": "accident-disaster", "incident_type": "gas-leak",
                            "title": "Gas leak at the LPG depot",
                            "location": {"type": "Point", "coordinates": DEPOT},
                            "source": "hotline", "warning": "orange"}
    if area is not None:
        body["affected_area"] = area
    incident: dict[str, Any] = api.post("/incidents", body, expect=201)
    return incident


def draft_from(api: Api, incident: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {"origin": "incident", "incident_id": incident["id"], "texts": texts(),
            "expires": later(api, 6), "contact": "City hotline 12345", **extra}
    warning: dict[str, Any] = api.post("/warnings", body, user="duty-zhao", expect=201)
    return warning


def test_a_public_warning_from_an_incident_to_its_cancellation(api: Api) -> None:
    incident = report_incident(api, square(*DEPOT))
    warning = draft_from(api, incident)
    assert warning["status"] == "drafted" and warning["content"] is None
    draft = warning["draft"]
    assert draft["level"] == "orange" and draft["event_type"] == "gas-leak"
    assert draft["origin"]["incident_id"] == incident["id"]
    assert draft["area"]["admin_areas"], "the districts/streets/communities it touches"
    assert {a["level"] for a in draft["area"]["admin_areas"]} >= {"district", "community"}
    path = f"/warnings/{warning['id']}"

    # The drafter cannot approve it: 403, with the app's error body, and nothing recorded.
    refused = api.client.post(f"{path}/approve", json={},
                              headers=api.headers(user="duty-zhao"))
    assert refused.status_code == 403, refused.text
    assert "second person" in refused.json()["detail"]
    assert api.get(path)["version"] == 1

    approved = api.post(f"{path}/approve", {"note": "checked with the fire brigade"},
                        user="duty-li")
    assert approved["status"] == "approved" and approved["approved_by"] == "duty-li"
    issued = api.post(f"{path}/issue", {}, user="duty-zhao")
    assert issued["status"] == "issued" and issued["sequence"] == 1
    assert issued["content"]["level"] == "orange"

    wider = api.post(f"{path}/update", {
        "texts": texts("Gas leak spreading: keep away"), "expires": later(api, 8),
        "contact": "City hotline 12345", "reason": "the leak spreads downwind",
        "area": {"polygons": [square(*DEPOT, half=0.012)]}}, user="duty-zhao")
    assert wider["status"] == "update-drafted"
    api.post(f"{path}/approve", {}, user="duty-li")
    updated = api.post(f"{path}/issue", {}, user="duty-li")
    assert updated["sequence"] == 2
    assert (len(updated["content"]["area"]["admin_areas"])
            >= len(issued["content"]["area"]["admin_areas"]))

    cancelled = api.post(f"{path}/cancel", {"reason": "leak stopped"}, user="duty-zhao")
    assert cancelled["status"] == "cancelled" and cancelled["sequence"] == 3

    notices = api.get(f"{path}/notices")
    assert [n["msg_type"] for n in notices] == ["alert", "update", "cancel"]
    assert [len(n["references"]) for n in notices] == [0, 1, 2]
    assert notices[2]["references"][1]["identifier"] == notices[1]["identifier"]
    history = api.history(path)
    assert [e["event"] for e in history] == ["Drafted", "Approved", "Issued", "UpdateDrafted",
                                            "Approved", "Updated", "Cancelled"]
    assert [e["actor"]["user_id"] for e in history] == [
        "duty-zhao", "duty-li", "duty-zhao", "duty-zhao", "duty-li", "duty-li", "duty-zhao"]

    api.settle()
    listed = api.get("/warnings", origin_id=incident["id"])
    assert [w["id"] for w in listed["data"]] == [warning["id"]]
    assert listed["data"][0]["status"] == "cancelled"


def scratch_body(api: Api, **changes: Any) -> dict[str, Any]:
    body = {"category": "accident-disaster", "event_type": "gas-leak", "level": "yellow",
            "texts": texts(), "expires": later(api, 3), "contact": "12345",
            "area": {"circles": [{"centre": {"type": "Point", "coordinates": DEPOT},
                                  "radius_km": 1.5}]}}
    body.update(changes)
    return body


def count_warnings(api: Api) -> int:
    return int(api.system.warnings.recorder.max_notification_id() or 0)


@pytest.mark.parametrize(("changes", "expect", "says"), [
    ({"area": None}, 422, "needs an area"),
    ({"area": {"polygons": [], "circles": []}}, 422, "needs an area"),
    ({"area": {"polygons": [square(121.5, 31.2)]}}, 422, "outside the city"),
    ({"area": {"circles": [{"centre": {"type": "Point", "coordinates": [116.4, 39.9]},
                            "radius_km": 3}]}}, 422, "outside the city"),
    ({"onset": "2026-06-01T10:00:00+08:00", "expires": "2026-06-01T09:00:00+08:00"}, 422,
     "is not after onset"),
    ({"level": "purple"}, 422, "unknown warning level"),
    ({"texts": texts()[1:]}, 422, "zh-CN is missing"),
    ({"scope": "restricted"}, 422, "restriction must not be empty"),
    ({"expires": "2026-06-01T09:00:00"}, 422, "time zone"),
])
def test_bad_input_is_refused_clearly_and_nothing_is_drafted(
        api: Api, changes: dict[str, Any], expect: int, says: str) -> None:
    before = count_warnings(api)
    response = api.client.post("/warnings", json=scratch_body(api, **changes),
                               headers=api.headers())
    assert response.status_code == expect, response.text
    assert says in response.text
    assert count_warnings(api) == before


def issued_warning(api: Api, **changes: Any) -> str:
    warning = api.post("/warnings", scratch_body(api, **changes), user="duty-zhao", expect=201)
    api.post(f"/warnings/{warning['id']}/approve", {}, user="duty-li")
    api.post(f"/warnings/{warning['id']}/issue", {}, user="duty-li")
    return str(warning["id"])


def test_an_update_of_a_cancelled_warning_is_refused(api: Api) -> None:
    warning_id = issued_warning(api)
    api.post(f"/warnings/{warning_id}/cancel", {"reason": "all clear"})
    version = api.get(f"/warnings/{warning_id}")["version"]
    response = api.client.post(f"/warnings/{warning_id}/update", json={
        "texts": texts(), "expires": later(api, 5), "contact": "1", "reason": "again"},
        headers=api.headers())
    assert response.status_code == 409, response.text
    assert "cannot update warning" in response.json()["detail"]
    assert "cancelled" in response.json()["detail"]
    assert api.get(f"/warnings/{warning_id}")["version"] == version


def test_who_may_draft_approve_and_issue(api: Api) -> None:
    body = scratch_body(api)
    for role, dept in (("leader", None), ("department-user", "fire"),
                       ("hotline-operator", None), ("inspector", None)):
        response = api.client.post("/warnings", json=body, headers=api.headers(role, dept))
        assert response.status_code == 403, (role, response.text)
    warning = api.post("/warnings", body, user="duty-zhao", expect=201)
    api.post(f"/warnings/{warning['id']}/approve", {}, role="leader", expect=403)
    api.post(f"/warnings/{warning['id']}/approve", {}, role="admin")


def test_a_department_sees_only_issued_warnings_without_the_drafts(api: Api) -> None:
    draft = api.post("/warnings", scratch_body(api), user="duty-zhao", expect=201)
    issued_id = issued_warning(api)
    api.post(f"/warnings/{issued_id}/update", {
        "texts": texts("Secret draft wording"), "expires": later(api, 5), "contact": "1",
        "reason": "longer"}, user="duty-zhao")
    api.settle()
    listed = api.get("/warnings", role="department-user", dept="fire")
    assert [w["id"] for w in listed["data"]] == [issued_id]
    api.get(f"/warnings/{draft['id']}", role="department-user", dept="fire", expect=404)
    seen = api.get(f"/warnings/{issued_id}", role="department-user", dept="fire")
    assert "draft" not in seen and "authors" not in seen
    assert seen["content"]["texts"][1]["headline"] == "Gas leak: keep away"
    history = api.get(f"/warnings/{issued_id}/history", role="department-user", dept="fire")
    assert "Secret draft wording" not in str(history)
    # While the update is prepared the department sees the warning as issued: its status,
    # its list filters and its history are those of what was sent.
    assert seen["status"] == seen["recorded_status"] == "issued"
    assert [s["step"] for s in seen["steps"]] == ["issued"]
    assert [e["event"] for e in history] == ["Issued"]
    fire = {"role": "department-user", "dept": "fire"}
    assert [w["id"] for w in api.get("/warnings", status=["issued"], **fire)["data"]] == [
        issued_id]
    assert api.get("/warnings", status=["update-drafted"], **fire)["data"] == []
    assert [w["status"] for w in listed["data"]] == ["issued"]
    assert api.get(f"/warnings/{issued_id}")["status"] == "update-drafted"  # the centre's
    # The leader reads everything (read-only).
    assert api.get(f"/warnings/{draft['id']}", role="leader")["draft"] is not None


def test_an_issued_warning_past_its_expiry_is_shown_expired(tmp_path: Path,
                                                            demo_city: Any) -> None:
    """Expiry is computed against the system's clock: moved past `expires`, the warning reads
    expired (no wall-clock wait: the test is the same on a loaded machine)."""
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    system = build_system(Settings(data_dir=tmp_path), clock=clock, city=demo_city)
    system.accounts.hasher = TEST_HASHER
    with TestClient(create_app(system)) as client:
        api = Api(client, system)
        expires = clock() + timedelta(hours=2)
        warning_id = issued_warning(api, expires=expires.isoformat())
        api.settle()
        assert api.get(f"/warnings/{warning_id}")["status"] == "issued"
        assert [w["id"] for w in api.get("/warnings", current=True)["data"]] == [warning_id]
        clock.advance(hours=2, seconds=-1)
        assert api.get(f"/warnings/{warning_id}")["status"] == "issued"
        clock.advance(seconds=1)  # at `expires` it has expired
        assert api.get(f"/warnings/{warning_id}")["status"] == "expired"
        assert api.get("/warnings", current=True)["data"] == []
        assert [w["id"] for w in api.get("/warnings", status=["expired"])["data"]] == [
            warning_id]
        assert api.get("/warnings", status=["issued"])["data"] == []


def test_idempotency_key_and_if_match(api: Api) -> None:
    body = scratch_body(api)
    first = api.post("/warnings", body, key="draft-1", expect=201)
    again = api.post("/warnings", body, key="draft-1", expect=201)
    assert first["id"] == again["id"] and again["version"] == 1
    path = f"/warnings/{first['id']}"
    api.post(f"{path}/revise", {**{k: body[k] for k in ("texts", "expires", "contact")},
                                "level": "red"}, user="duty-sun")
    stale = api.client.post(f"{path}/approve", json={},
                            headers={**api.headers(user="duty-li"), "If-Match": '"1"'})
    assert stale.status_code == 409, stale.text
    assert "changed since you opened it" in stale.json()["detail"]
    ok = api.client.post(f"{path}/approve", json={},
                         headers={**api.headers(role="admin"), "If-Match": '"2"'})
    assert ok.status_code == 200, ok.text


def test_a_restricted_warning_reaches_only_the_departments_the_catalogue_names(
        api: Api) -> None:
    """A restricted warning's CAP document goes only where the catalogue's
    restricted-warnings condition allows (fire, police, ...); its screens follow the same
    rule: a department outside it does not see the warning at all, anywhere."""
    public_id = issued_warning(api)
    restricted_id = issued_warning(api, scope="restricted",
                                   restriction="Responding agencies only")
    api.settle()
    fire = {"role": "department-user", "dept": "fire"}
    water = {"role": "department-user", "dept": "water"}
    assert {w["id"] for w in api.get("/warnings", **fire)["data"]} == {
        public_id, restricted_id}
    assert api.get(f"/warnings/{restricted_id}", **fire)["scope"] == "restricted"

    assert [w["id"] for w in api.get("/warnings", **water)["data"]] == [public_id]
    api.get(f"/warnings/{restricted_id}", expect=404, **water)
    api.get(f"/warnings/{restricted_id}/history", expect=404, **water)
    api.get(f"/warnings/{public_id}", **water)
    for path in ("/spatial/warnings/features", "/ogc/collections/warnings/items",
                 "/ogc/collections/warning-areas/items"):
        shown = {f["id"] for f in api.get(path, **water)["features"]}
        assert shown == {public_id}, path
        assert {f["id"] for f in api.get(path, **fire)["features"]} == {
            public_id, restricted_id}, path
    api.get(f"/ogc/collections/warnings/items/{restricted_id}", expect=404, **water)
    # The centre's own staff see both; a filter on scope is one of the layer's filters.
    assert [f["id"] for f in api.get("/ogc/collections/warnings/items",
                                     scope="restricted")["features"]] == [restricted_id]
