"""Every read of the city's state takes `as_of` (issue 12, item 1: "one parameter, the same
everywhere, documented in OpenAPI"): a walk of the app's own OpenAPI document finds every GET
route (and every query sent as a POST) and checks that it declares the `as_of` query
parameter, unless it is listed below with the reason it reads no state of the city. GET
/search and the Open311 GETs took none."""

from __future__ import annotations

from typing import Any

PAGES = "an HTML page: its scripts fetch the city with as_of"
DRILL_ROOM = "drill room management (a drill's own clock, not the city's past)"
REVIEWS = ("an after-action review: the planners' analysis of the record, its window chosen "
           "by start/end (item 4), not the city's state at an instant")
SUBSCRIPTIONS = ("departments' feed subscriptions: sharing configuration, not the city's "
                 "state (its own history: /subscriptions/{id}/history)")
CAP = ("a published CAP document or feed: what was sent, kept as sent (the warnings at T: "
       "/warnings?as_of=)")
OGC_METADATA = "OGC API service metadata (landing, definition, conformance): no city state"

EXEMPT: dict[tuple[str, str], str] = {
    ("GET", "/"): PAGES,
    ("GET", "/dashboard"): PAGES,
    ("GET", "/login"): PAGES,
    ("GET", "/field"): PAGES,
    ("GET", "/drill-room"): PAGES,
    ("GET", "/after-action-review"): PAGES,
    ("GET", "/health"): "the process's health now",
    ("GET", "/metrics"): "the process's metrics now",
    ("GET", "/clock"): "the server's time now",
    ("GET", "/time-travel"): "the span as_of may take",
    ("GET", "/auth/me"): "the logged-in user, not the city",
    ("GET", "/catalogue"): "the category catalogue: configuration loaded at start-up",
    ("GET", "/field/me/cells"): "the inspector's cells on the city map, the same at every "
    "instant",
    ("GET", "/search/places"): "the gazetteer of the city map, the same at every instant",
    ("GET", "/photos/{sha256}"): "a photo stored by its content hash: the same bytes for ever",
    ("GET", "/photos/{sha256}/info"): "a photo stored by its content hash: the same for ever",
    ("GET", "/drills"): DRILL_ROOM,
    ("GET", "/drills/ready"): DRILL_ROOM,
    ("GET", "/drills/{drill_id}"): DRILL_ROOM,
    ("GET", "/exercises"): DRILL_ROOM,
    ("GET", "/exercises/{exercise_id}"): DRILL_ROOM,
    ("GET", "/scenarios"): "the scenario files a drill may be started with: files, not the "
    "city's state",
    ("GET", "/reviews"): REVIEWS,
    ("GET", "/reviews/improvements"): REVIEWS,
    ("GET", "/reviews/incidents/{incident_id}"): REVIEWS,
    ("GET", "/reviews/incidents/{incident_id}/report.csv"): REVIEWS,
    ("GET", "/reviews/incidents/{incident_id}/report.pdf"): REVIEWS,
    ("GET", "/reviews/period"): REVIEWS,
    ("GET", "/reviews/period/report.csv"): REVIEWS,
    ("GET", "/reviews/period/report.pdf"): REVIEWS,
    ("GET", "/reviews/{review_id}"): REVIEWS,
    ("GET", "/reviews/{review_id}/report"): REVIEWS,
    ("GET", "/reviews/{review_id}/report.csv"): REVIEWS,
    ("GET", "/reviews/{review_id}/report.pdf"): REVIEWS,
    ("GET", "/subscriptions"): SUBSCRIPTIONS,
    ("GET", "/subscriptions/catalogue"): "the shared-data catalogue: configuration",
    ("GET", "/subscriptions/{subscription_id}"): SUBSCRIPTIONS,
    ("GET", "/subscriptions/{subscription_id}/history"): SUBSCRIPTIONS,
    ("GET", "/subscriptions/{subscription_id}/deliveries"): "a webhook delivery log",
    ("GET", "/cap/alerts.atom"): CAP,
    ("GET", "/cap/alerts/{identifier}.xml"): CAP,
    ("GET", "/cap/warnings/{warning_id}"): CAP,
    ("GET", "/cap/warnings/{warning_id}/{sequence}.xml"): CAP,
    ("GET", "/ogc"): OGC_METADATA,
    ("GET", "/ogc/api"): OGC_METADATA,
    ("GET", "/ogc/conformance"): OGC_METADATA,
    ("GET", "/open311/discovery.{format}"): "Open311 service discovery: where the endpoint "
    "is and the formats it speaks",
}
"""The GET routes that take no `as_of`, each with the reason: they read no state of the
city that changes with its events."""

POST_QUERIES = {("POST", "/spatial/{layer}/within")}
"""Questions sent as a POST (a polygon body): reads, so they take `as_of` too."""


def _as_of_routes(spec: dict[str, Any]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(the read routes that declare `as_of`, those that do not)."""
    taking, lacking = set(), set()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            route = (method.upper(), path)
            if method != "get" and route not in POST_QUERIES:
                continue
            query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            (taking if "as_of" in query else lacking).add(route)
    return taking, lacking


def test_every_read_of_the_city_declares_as_of_in_openapi(api: Any) -> None:
    """Issue 12, item 1: GET /search and the Open311 GETs (requests, one request, services,
    tokens) took no `as_of`, nor did an inspector's tasks or the OGC collections."""
    spec = api.client.get("/openapi.json").json()
    taking, lacking = _as_of_routes(spec)
    assert lacking - set(EXEMPT) == set(), "read routes without as_of (take it, or say why not)"
    assert set(EXEMPT) - lacking == set(), "exempt routes that are gone or take as_of now"
    assert taking >= POST_QUERIES
    for route in taking:
        method, path = route
        operation = spec["paths"][path][method.lower()]
        as_of = next(p for p in operation["parameters"] if p["name"] == "as_of")
        assert as_of["required"] is False, route
        assert "past instant" in as_of["description"], route  # the one shared description


def test_every_exemption_says_why() -> None:
    assert all(len(reason) > 15 for reason in EXEMPT.values())


# --- the routes that took none, answering the past ------------------------------------------

ZHANG = "insp-D01-01"
"""An inspector of the demo city (communities D01-S01-C01 and D01-S01-C02)."""
BAD_INSTANTS = [
    ("yesterday", "not an ISO 8601 instant"),
    ("2026-03-03T10:00:00", "has no time zone"),
    ("2999-01-01T00:00:00+00:00", "is in the future"),
    ("2001-01-01T00:00:00Z", "is before the first event"),
]


def _between(api: Any, before: str, after: str) -> str:
    """An instant after `before`'s last event and before `after`'s first (history paths)."""
    last = api.history(before)[-1]["at"]
    first = api.history(after)[0]["at"]
    assert last < first
    return str(last)


def test_an_inspectors_tasks_as_of_t_are_those_waiting_then(api: Any) -> None:
    cells = api.system.city.map.cells
    cell = sorted(cells.loc[cells["inspector"] == ZHANG, "code"])[0]
    centre = api.system.city.map.cell(cell).centre
    case = api.post("/grid-cases", {
        "category": "E0101", "description": "Bins overflowing",
        "location": {"type": "Point", "coordinates": [centre.lon, centre.lat]},
    }, role="inspector", user=ZHANG, expect=201)
    path = f"/grid-cases/{case['id']}"
    api.post(f"{path}/register")
    api.post(f"{path}/dispatch")
    api.post(f"{path}/handle", {"result": "Cleared"}, role="department-user",
             dept="sanitation")
    waiting = api.history(path)[-1]["at"]
    api.post(f"{path}/verify", {"fixed": True}, role="inspector", user=ZHANG)
    api.settle()
    now = api.get("/field/me/tasks", role="inspector", user=ZHANG)
    assert now["count"] == 0
    then = api.client.get("/field/me/tasks", params={"as_of": waiting},
                          headers=api.headers("inspector", user=ZHANG))
    assert then.status_code == 200, then.text
    assert then.headers["X-CityOps-As-Of"]
    assert [(t["id"], t["status"]) for t in then.json()["data"]] == [(case["id"], "handled")]


def test_search_as_of_finds_what_stood_then_and_refuses_bad_instants(api: Any) -> None:
    first = api.post("/grid-cases", {"category": "E0101", "description": "Fallen magnolia",
                                     "location": api.IN_TOWN}, role="inspector", expect=201)
    second = api.post("/grid-cases", {"category": "E0101",
                                      "description": "Fallen magnolia again",
                                      "location": api.IN_TOWN}, role="inspector", expect=201)
    instant = _between(api, f"/grid-cases/{first['id']}", f"/grid-cases/{second['id']}")
    api.settle()
    assert api.get("/search", q="magnolia")["grid_cases"]["count"] == 2
    then = api.get("/search", q="magnolia", as_of=instant)["grid_cases"]
    assert [c["id"] for c in then["data"]] == [first["id"]] and then["count"] == 1
    for bad, says in BAD_INSTANTS:
        refused = api.get("/search", q="magnolia", as_of=bad, expect=422)
        assert refused["error"] == "invalid-request"
        assert refused["problems"][0]["field"] == "query.as_of"
        assert says in refused["detail"], refused


def test_open311_refuses_a_bad_instant_the_specs_way_in_both_formats(api: Any) -> None:
    """An Open311 client gets its own error list (400, in the format it asked for), saying
    which of the instant's problems it has; without `as_of` nothing changed."""
    import xml.etree.ElementTree as ET

    api.post("/grid-cases", {"category": "C0105", "description": "Lamp out",
                             "location": api.IN_TOWN}, role="inspector", expect=201)
    for path in ("/open311/v2/requests", "/open311/v2/services",
                 "/open311/v2/services/C0105"):
        for bad, says in BAD_INSTANTS:
            as_json = api.client.get(f"{path}.json", params={"as_of": bad})
            assert as_json.status_code == 400, (path, as_json.text)
            [error] = as_json.json()
            assert error["code"] == 400 and error["description"].startswith("as_of: ")
            assert says in error["description"], error
            as_xml = api.client.get(f"{path}.xml", params={"as_of": bad})
            assert as_xml.status_code == 400
            assert as_xml.headers["content-type"].startswith("text/xml")
            root = ET.fromstring(as_xml.text)
            assert root.tag == "errors" and says in root.findtext("error/description", "")
        plain = api.client.get(f"{path}.json")
        assert plain.status_code == 200 and "X-CityOps-As-Of" not in plain.headers
    unknown = api.client.get("/open311/v2/requests.json", params={"as_off": "x"})
    assert unknown.status_code == 400 and "as_of" in unknown.text  # listed as taken


def test_ogc_collections_as_of_link_to_the_layers_at_that_instant(api: Any) -> None:
    """A GIS client that opens the collections at T and follows their links stays at T."""
    first = api.post("/grid-cases", {"category": "E0101", "description": "Spoil heap",
                                     "location": api.IN_TOWN}, role="inspector", expect=201)
    second = api.post("/grid-cases", {"category": "E0101", "description": "Spoil heap two",
                                      "location": api.IN_TOWN}, role="inspector", expect=201)
    instant = _between(api, f"/grid-cases/{first['id']}", f"/grid-cases/{second['id']}")
    api.settle()
    collections = api.get("/ogc/collections", as_of=instant)
    grid = next(c for c in collections["collections"] if c["id"] == "grid-cases")
    items_link = next(link["href"] for link in grid["links"] if link["rel"] == "items")
    assert "as_of=" in items_link
    followed = api.client.get(items_link, headers=api.headers())
    assert followed.status_code == 200, followed.text
    assert {f["id"] for f in followed.json()["features"]} == {first["id"]}
    one = api.get("/ogc/collections/grid-cases", as_of=instant)
    assert all("as_of=" in link["href"] for link in one["links"])
    now = api.get("/ogc/collections/grid-cases")
    assert all("as_of" not in link["href"] for link in now["links"])
    refused = api.client.get("/ogc/collections", params={"as_of": "2026-03-03T10:00:00"},
                             headers=api.headers())
    assert refused.status_code == 400 and "has no time zone" in refused.text
