"""Query parameters a route does not take, and values an enumerated parameter does not have,
are refused naming them, on every GET route of the API: they used to be ignored, so
`GET /grid-cases?q=manhole` answered the whole list and `GET /incidents?level=V` an empty
one, as if a filter had been applied."""

from __future__ import annotations

import re
from typing import Any
from uuid import uuid4

UNKNOWN = "colour-of-the-sky"

PATH_VALUES = {"layer": "grid-cases", "collection_id": "grid-cases",
               "name": "grid-cases.geojson", "format": "json", "service_code": "C0101"}
"""Path parameters that must name something real for a route to get to its parameters."""

REQUIRED = {"/spatial/{layer}/nearest": {"point": "118.8,32.05"},
            "/spatial/{layer}/radius": {"point": "118.8,32.05", "radius_m": "100"}}
"""What the routes that check their own parameters need before they look at the others."""

NOT_AN_API_ROUTE = {"/", "/dashboard", "/login", "/field", "/drill-room"}


def _get_routes(api: Any) -> list[str]:
    paths = api.client.app.openapi()["paths"]
    return sorted(path for path, operations in paths.items()
                  if "get" in operations and path not in NOT_AN_API_ROUTE)


def _concrete(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: PATH_VALUES.get(m.group(1), str(uuid4())), path)


def test_grid_cases_refuse_an_unknown_filter_instead_of_listing_everything(api: Any) -> None:
    """Issue 9, item 10: `GET /grid-cases?q=manhole` answered the whole list."""
    api.post("/grid-cases", {"category": "E0101", "description": "bins",
                             "location": api.IN_TOWN}, role="inspector", expect=201)
    api.settle()
    body = api.get("/grid-cases", q="manhole", expect=422)
    assert body["error"] == "invalid-request"
    assert [p["field"] for p in body["problems"]] == ["query.q"]
    assert "unknown query parameter" in body["detail"]


def test_an_unknown_incident_level_is_refused_instead_of_matching_nothing(api: Any) -> None:
    """Issue 9, item 10: `GET /incidents?level=V` answered an empty list."""
    body = api.get("/incidents", level="V", expect=422)
    assert body["error"] == "invalid-request"
    assert body["problems"][0]["field"] == "query.level.0"
    assert "'I', 'II', 'III' or 'IV'" in body["detail"]
    assert api.get("/incidents", level=["I", "IV"])["count"] == 0


def test_every_get_route_refuses_an_unknown_parameter_naming_it(api: Any) -> None:
    walked = []
    for path in _get_routes(api):
        response = api.client.get(_concrete(path), params={**REQUIRED.get(path, {}), UNKNOWN: "1"},
                                  headers=api.headers("dispatcher"))
        if path.startswith("/ogc"):
            expected = 400  # OGC API Features: /req/core/query-param-unknown
        elif path.startswith("/open311"):
            expected = 400  # GeoReport v2: a 400 with the spec's list of errors
        else:
            expected = 422
        assert response.status_code == expected, (path, response.status_code, response.text)
        assert UNKNOWN in response.text, (path, response.text)
        if expected == 422:
            assert {"error", "detail"} <= set(response.json()), path
        walked.append(path)
    assert len(walked) > 50


def test_the_parameters_a_route_takes_are_still_taken(api: Any) -> None:
    api.get("/grid-cases", status=["reported"], light="green", open_only=True, limit=5)
    api.get("/incidents", level="I", open_only=True)
    api.get("/hazard-sources", grade=[1, 2], type="gas-station")
    api.get("/plans/applicable", category="accident-disaster", level="II")
    api.get("/statistics/areas", level="district")
    assert api.client.get("/ogc/collections", params={"f": "json"},
                          headers=api.headers()).status_code == 200
    assert api.client.get("/open311/v2/services.json",
                          params={"jurisdiction_id": api.system.settings.open311_jurisdiction_id,
                                  "api_key": "anything"}).status_code == 200
    features = api.client.get("/spatial/grid-cases/features", params={"status": "reported"},
                              headers=api.headers())
    assert features.status_code == 200, features.text


INVALID_VALUES = [
    ("/grid-cases", "status", "lost"),
    ("/grid-cases", "light", "purple"),
    ("/incidents", "level", "V"),
    ("/incidents", "status", "forgotten"),
    ("/hotline-tickets", "status", "lost"),
    ("/resources", "status", "asleep"),
    ("/hazard-sources", "grade", "7"),
    ("/plans/applicable", "level", "0"),
    ("/statistics/areas", "level", "planet"),
    ("/subscriptions", "status", "dormant"),
    ("/subscriptions", "stream", "gossip"),
]


def test_invalid_values_of_enumerated_parameters_are_refused_naming_them(api: Any) -> None:
    required = {"/plans/applicable": {"category": "accident-disaster"},
                "/statistics/areas": {}}
    for path, name, value in INVALID_VALUES:
        params = {**required.get(path, {}), name: value}
        if path == "/statistics/areas" and name != "level":
            params["level"] = "district"
        response = api.client.get(path, params=params, headers=api.headers("admin"))
        assert response.status_code == 422, (path, name, response.text)
        body = response.json()
        assert any(p["field"].startswith(f"query.{name}") for p in body["problems"]), (
            path, name, body)
