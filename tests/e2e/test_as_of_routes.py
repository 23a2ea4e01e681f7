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
