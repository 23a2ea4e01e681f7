"""Bad input is refused with a clear error, never a 500 (issue 10, items 1 and 2).

Each test reproduces a server error that schema-driven fuzzing of the API found; the six
causes were: a MultiPolygon member that is not an array, an allowance of 1e300 minutes, an
offset of 2^63 or more, date-times at the edges of the range, a non-ASCII byte in a bearer
token; and item 1's approved extension to the end of year 9999.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

IN_TOWN = {"type": "Point", "coordinates": [118.80, 32.05]}
BAD_MULTIPOLYGONS = [
    {"type": "MultiPolygon", "coordinates": [1]},
    {"type": "MultiPolygon", "coordinates": [[1, 2]]},
    {"type": "MultiPolygon", "coordinates": [[[1, 2]]]},
    {"type": "MultiPolygon", "coordinates": [[[[118.8, 32.0], "x", [118.9, 32.1]]]]},
    {"type": "Polygon", "coordinates": [{"a": 1}]},
]
EDGE_INSTANTS = [
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59Z",
    "1969-12-31T23:59:59Z",
]


def _incident(api: Any, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = api.post("/incidents", {
        "category": "accident-disaster", "incident_type": "fire", "title": "Warehouse fire",
        "location": IN_TOWN, **changes}, expect=201)
    return body


def _dispatched_case(api: Any) -> tuple[str, str]:
    case = api.post("/grid-cases", {"category": "E0101", "description": "Garbage heap",
                                    "location": IN_TOWN}, role="inspector", expect=201)
    path = f"/grid-cases/{case['id']}"
    api.post(f"{path}/register")
    dispatched = api.post(f"{path}/dispatch", {})
    return path, dispatched["department"]


# --- item 1: a value the read models cannot project is refused ------------------------------


def test_an_extension_to_the_year_9999_is_refused_and_nothing_is_stored(api: Any) -> None:
    path, department = _dispatched_case(api)
    refused = api.post(f"{path}/extension-requests",
                       {"requested_deadline": "9999-12-31T23:59:59Z", "reason": "later"},
                       role="department-user", dept=department, expect=422)
    assert refused["error"] == "invalid-value" and "requested deadline" in refused["detail"]
    asked = api.post(f"{path}/extension-requests",
                     {"requested_deadline": (datetime.now(UTC) + timedelta(days=30))
                      .isoformat(), "reason": "Waiting for a truck"},
                     role="department-user", dept=department)
    assert asked["pending_extension"] is not None
    refused = api.post(f"{path}/extension-decision",
                       {"approve": True, "deadline": "9999-12-31T23:59:59Z"}, expect=422)
    assert "deadline" in refused["detail"]
    assert [e["event"] for e in api.history(path)][-1] == "ExtensionRequested"
    api.settle()
    assert api.get("/health")["status"] == "ok"


@pytest.mark.parametrize("years", [6, 100])
def test_a_deadline_more_than_five_years_ahead_is_refused(api: Any, years: int) -> None:
    path, department = _dispatched_case(api)
    later = (datetime.now(UTC) + timedelta(days=366 * years)).isoformat()
    refused = api.post(f"{path}/extension-requests",
                       {"requested_deadline": later, "reason": "later"},
                       role="department-user", dept=department, expect=422)
    assert "years after" in refused["detail"]


def test_readings_and_thresholds_beyond_a_trillion_are_refused(api: Any) -> None:
    source = api.post("/hazard-sources", {
        "hazard_type": "lpg-depot", "name": "Riverside LPG depot", "owner_name": "Riverside",
        "owner_contact": "+86 25 8888 0000", "grade": 2, "location": IN_TOWN},
        role="planner", expect=201)
    path = f"/hazard-sources/{source['id']}"
    sensor = {"sensor_id": "gas-1", "kind": "gas-concentration", "unit": "%LEL",
              "direction": "high", "warning": 20, "alarm": 1e300}
    assert "alarm threshold" in api.post(f"{path}/sensors", sensor, role="planner",
                                         expect=422)["detail"]
    api.post(f"{path}/sensors", {**sensor, "alarm": 50}, role="planner")
    detail = api.post(f"{path}/sensors/gas-1/readings", {"value": -1e200}, role="system",
                      expect=422)["detail"]
    assert "reading value" in detail


# --- item 2, cause 1: a MultiPolygon member that is not an array ----------------------------


@pytest.mark.parametrize("area", BAD_MULTIPOLYGONS)
def test_a_malformed_area_is_refused_on_incidents_reports_hazards_and_subscriptions(
    api: Any, area: dict[str, Any]
) -> None:
    assert api.post("/incidents", {
        "category": "accident-disaster", "incident_type": "fire", "title": "Fire",
        "location": IN_TOWN, "affected_area": area}, expect=422)["error"] == "invalid-request"
    incident = _incident(api)
    api.post(f"/incidents/{incident['id']}/situation-reports",
             {"text": "Spreading", "affected_area": area}, expect=422)
    api.post("/hazard-sources", {
        "hazard_type": "lpg-depot", "name": "Depot", "owner_name": "Riverside",
        "owner_contact": "+86 25 8888 0000", "grade": 2, "location": IN_TOWN,
        "impact_zone": area}, role="planner", expect=422)
    api.post("/subscriptions", {
        "name": "Fires", "filter": {"stream": "incidents", "area": {"polygon": area}},
        "delivery": {"kind": "kafka"}}, role="department-user", dept="water", expect=422)


# --- cause 2: an allowance of 1e300 minutes ------------------------------------------------


@pytest.mark.parametrize("minutes", [1e300, 1e15])
def test_an_enormous_task_allowance_is_refused(api: Any, minutes: float) -> None:
    incident = _incident(api)
    refused = api.post(f"/incidents/{incident['id']}/tasks", {
        "department": "water", "description": "Shut the main", "allowance_minutes": minutes},
        expect=422)
    assert "allowance" in refused["detail"]
    plan = {"code": "big-fire", "name": "Big fire", "category": "accident-disaster",
            "levels": [{"level": "IV", "tasks": [{"department": "water",
                                                  "description": "Shut the main",
                                                  "allowance_minutes": minutes}]}]}
    assert "allowance" in api.post("/plans", plan, role="planner", expect=422)["detail"]


# --- cause 3: an offset of 2^63 or more on every list ------------------------------------


@pytest.mark.parametrize("path", [
    "/grid-cases", "/incidents", "/hazard-sources", "/hotline-tickets", "/resources", "/plans",
    "/subscriptions", "/spatial/grid-cases/features", "/ogc/collections/grid-cases/items",
])
@pytest.mark.parametrize("offset", [2**63, 2**64 + 5, 10**30])
def test_an_offset_beyond_64_bits_is_refused(api: Any, path: str, offset: int) -> None:
    response = api.client.get(path, params={"offset": offset}, headers=api.headers())
    assert response.status_code in (400, 422), response.text  # OGC API answers its 400


def test_the_largest_offset_allowed_answers_an_empty_page(api: Any) -> None:
    from cityops.command_center.dependencies import MAX_OFFSET

    page = api.get("/grid-cases", offset=MAX_OFFSET)
    assert page["data"] == [] and page["offset"] == MAX_OFFSET


# --- cause 4: date-times at the edges of the range ----------------------------------------


@pytest.mark.parametrize("instant", EDGE_INSTANTS)
def test_edge_instants_are_refused_in_queries(api: Any, instant: str) -> None:
    for path in ("/statistics/key-figures", "/statistics/departments", "/statistics/hotline",
                 "/statistics/areas"):
        response = api.client.get(path, params={"at": instant}, headers=api.headers())
        assert response.status_code == 422, (path, response.text)
    for path in ("/spatial/grid-cases/features", "/ogc/collections/grid-cases/items",
                 "/exports/grid-cases"):
        for value in (instant, f"{instant}/..", f"../{instant}"):
            response = api.client.get(path, params={"datetime": value},
                                      headers=api.headers())
            assert response.status_code in (400, 422), (path, value, response.text)


@pytest.mark.parametrize("instant", EDGE_INSTANTS)
def test_edge_instants_are_refused_in_commands(api: Any, instant: str) -> None:
    refused = api.post("/grid-cases", {"category": "E0101", "description": "Garbage heap",
                                       "location": IN_TOWN, "at": instant},
                       role="inspector", expect=422)
    assert refused["error"] == "invalid-value"
    api.post("/incidents", {"category": "accident-disaster", "incident_type": "fire",
                            "title": "Fire", "location": IN_TOWN, "at": instant}, expect=422)
    path, department = _dispatched_case(api)
    api.post(f"{path}/extension-requests", {"requested_deadline": instant, "reason": "x"},
             role="department-user", dept=department, expect=422)


@pytest.mark.parametrize("instant", EDGE_INSTANTS)
def test_edge_dates_are_refused_by_open311_without_login(api: Any, instant: str) -> None:
    for name in ("start_date", "end_date"):
        response = api.client.get("/open311/v2/requests.json", params={name: instant})
        assert response.status_code == 400, response.text
        assert name in response.json()[0]["description"]


# --- cause 5: a non-ASCII byte in a bearer token -------------------------------------------


@pytest.mark.parametrize("token", ["\u00e9", "abc.d\u00e9f", "\u00ff\u00ff.\u00ff"])
def test_a_non_ascii_bearer_token_is_a_401(api: Any, token: str) -> None:
    raw = f"Bearer {token}".encode("latin-1")
    response = api.client.get("/grid-cases", headers={"Authorization": raw})  # type: ignore[dict-item]
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "not-authenticated"


def test_a_non_ascii_token_on_the_websocket_closes_it_with_a_code(api: Any) -> None:
    client: TestClient = api.client
    with client.websocket_connect("/ws") as socket:
        socket.send_text('{"type": "hello", "token": "abc.d\u00e9f", '
                         '"subscribe": {"layers": ["grid-cases"]}}')
        assert socket.receive_json()["type"] == "error"
        closing = socket.receive()
    assert closing["type"] == "websocket.close" and closing["code"] == 4401


# --- item 5: webhooks to internal addresses ------------------------------------------------


@pytest.mark.parametrize("url", ["http://127.0.0.1:5432/", "http://169.254.169.254/latest",
                                 "http://[::1]:8080/hook", "http://10.1.2.3/hook"])
def test_a_department_user_cannot_subscribe_an_internal_webhook(api: Any, url: str) -> None:
    subscription = {"name": "Our system", "filter": {"stream": "grid-cases"},
                    "delivery": {"kind": "webhook", "url": url}}
    refused = api.post("/subscriptions", subscription, role="department-user", dept="water",
                       expect=422)
    assert refused["error"] == "invalid-value"
    assert "public addresses only" in refused["detail"]
    public = {**subscription, "delivery": {"kind": "webhook",
                                           "url": "https://93.184.216.34/hook"}}
    created = api.post("/subscriptions", public, role="department-user", dept="water",
                       expect=201)
    revised = {key: public[key] for key in ("name", "filter", "delivery")}
    revised["triggers"] = created["triggers"]
    revised["delivery"] = {"kind": "webhook", "url": url}
    response = api.client.put(f"/subscriptions/{created['id']}", json=revised,
                              headers=api.headers("department-user", "water"))
    assert response.status_code == 422, response.text
