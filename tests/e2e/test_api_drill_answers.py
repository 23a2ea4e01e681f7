"""Every answer from a drill says so: a walk over a sample of the API's routes of each kind
(JSON lists and documents, CSV, GeoJSON, PDF, Atom, OGC, bulk actions, subscriptions),
successes and refusals alike, switched into a drill by the header or by the pages' cookie,
each answered with `X-CityOps-Drill: <id>`; the same routes in the live city carry no mark.
And what a participant subscribes to in a drill is the drill's own, never a live
subscription."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from cityops.command_center.app import create_app
from cityops.drills import DRILL_COOKIE, DRILL_HEADER

from .conftest import Api
from .test_api_drills import replayed, reported, window

NO_SUCH_CASE = "/grid-cases/00000000-0000-4000-8000-000000000001"

SUCCESSES: list[tuple[str, str, str]] = [
    # (method, path, the media type answered)
    ("GET", "/grid-cases", "application/json"),
    ("GET", "/grid-cases/{case}", "application/json"),
    ("GET", "/grid-cases/{case}/history", "application/json"),
    ("GET", "/incidents", "application/json"),
    ("GET", "/statistics/departments", "application/json"),
    ("GET", "/clock", "application/json"),
    ("GET", "/ogc", "application/json"),
    ("GET", "/ogc/conformance", "application/json"),
    ("GET", "/ogc/collections/grid-cases/items", "application/geo+json"),
    ("GET", "/spatial/grid-cases/features", "application/geo+json"),
    ("GET", "/exports/grid-cases.csv", "text/csv"),
    ("GET", "/exports/grid-cases.geojson", "application/geo+json"),
    ("GET", "/reviews/period/report.pdf", "application/pdf"),
    ("GET", "/reviews/period/report.csv", "text/csv"),
    ("GET", "/cap/alerts.atom", "application/atom+xml"),
    ("GET", "/subscriptions", "application/json"),  # as a dispatcher
    ("GET", "/subscriptions/catalogue", "application/json"),
    ("POST", "/grid-cases/bulk/register", "application/json"),  # as a dispatcher
]

REFUSALS: list[tuple[str, str, str, int]] = [
    # (method, path, role, the status answered)
    ("GET", NO_SUCH_CASE, "planner", 404),
    ("GET", "/grid-cases?no_such_parameter=1", "planner", 422),
    ("GET", "/grid-cases?limit=0", "planner", 422),
    ("POST", "/grid-cases", "inspector", 422),  # no body
    ("POST", "/grid-cases/{case}/register", "inspector", 403),  # not an inspector's command
    ("POST", "/grid-cases/{case}/close", "dispatcher", 409),  # a reported case is not closed
    ("GET", "/exports/grid-cases.shp", "planner", 422),
    ("GET", "/subscriptions/00000000-0000-4000-8000-000000000002", "dispatcher", 404),
    ("GET", "/cap/alerts/no-such-alert.xml", "planner", 404),
]


@pytest.fixture(scope="module")
def drilled(tmp_path_factory: pytest.TempPathFactory,
            demo_city: Any) -> Iterator[tuple[Api, dict[str, Any]]]:
    """One app with a drill (the last hour replayed) that has one reported case, and an
    inspector and a dispatcher invited."""
    from cityops.bootstrap import build_system
    from cityops.settings import Settings

    from .conftest import TEST_HASHER

    system = build_system(Settings(data_dir=tmp_path_factory.mktemp("drill-answers")),
                          city=demo_city)
    system.accounts.hasher = TEST_HASHER
    with TestClient(create_app(system)) as client:
        api = Api(client, system)
        case = reported(api)
        started = api.post("/drills", {"title": "Marked drill", **window(), "speed": "max",
                                       "participants": ["inspector-1", "dispatcher-1"]},
                           role="planner", expect=201)
        drill = replayed(api, started["id"])
        yield api, {"drill": drill["id"], "case": case["id"]}


def _call(api: Api, method: str, path: str, role: str, *, drill: str | None,
          cookie: bool = False, case: str | None = None) -> Any:
    """`method path` as `role`, switched into `drill` by the header (or the cookie)."""
    headers = api.headers(role)
    api.client.cookies.clear()
    if drill is not None and cookie:
        api.client.cookies.set(DRILL_COOKIE, drill)
    elif drill is not None:
        headers[DRILL_HEADER] = drill
    body: Any = None
    if path.endswith("/bulk/register"):
        body = {"items": [{"id": case}]}
    elif method == "POST" and path != "/grid-cases":  # that one is refused for its body
        body = {}
    try:
        return api.client.request(method, path, headers=headers, json=body)
    finally:
        api.client.cookies.clear()


def _role(method: str, path: str) -> str:
    """Who walks a route: the planner, but a dispatcher for commands and subscriptions."""
    return "dispatcher" if method == "POST" or path.startswith("/subscriptions") \
        else "planner"


@pytest.mark.parametrize(("method", "path", "media"), SUCCESSES,
                         ids=[f"{m} {p}" for m, p, _ in SUCCESSES])
@pytest.mark.parametrize("switch", ["header", "cookie"])
def test_every_kind_of_answer_from_a_drill_carries_the_drill_mark(
        drilled: tuple[Api, dict[str, Any]], method: str, path: str, media: str,
        switch: str) -> None:
    api, ids = drilled
    answer = _call(api, method, path.format(**ids), _role(method, path),
                   drill=ids["drill"], cookie=switch == "cookie", case=ids["case"])
    assert answer.status_code < 300, answer.text
    assert answer.headers["content-type"].startswith(media), answer.headers
    assert answer.headers.get(DRILL_HEADER) == ids["drill"], (path, dict(answer.headers))


@pytest.mark.parametrize(("method", "path", "role", "status"), REFUSALS,
                         ids=[f"{m} {p.split('?')[-1]} {s}" for m, p, _, s in REFUSALS])
def test_every_refusal_from_a_drill_carries_the_drill_mark(
        drilled: tuple[Api, dict[str, Any]], method: str, path: str, role: str,
        status: int) -> None:
    api, ids = drilled
    answer = _call(api, method, path.format(**ids), role, drill=ids["drill"])
    assert answer.status_code == status, answer.text
    assert answer.headers.get(DRILL_HEADER) == ids["drill"], (path, dict(answer.headers))


@pytest.mark.parametrize(("method", "path", "media"),
                         [s for s in SUCCESSES if s[0] == "GET"],
                         ids=[p for m, p, _ in SUCCESSES if m == "GET"])
def test_the_live_citys_answers_carry_no_drill_mark(
        drilled: tuple[Api, dict[str, Any]], method: str, path: str, media: str) -> None:
    api, ids = drilled
    answer = _call(api, method, path.format(**ids), _role(method, path), drill=None)
    assert answer.status_code < 300, answer.text
    assert DRILL_HEADER not in answer.headers


def test_a_live_refusal_carries_no_drill_mark(drilled: tuple[Api, dict[str, Any]]) -> None:
    api, _ = drilled
    answer = _call(api, "GET", NO_SUCH_CASE, "planner", drill=None)
    assert answer.status_code == 404 and DRILL_HEADER not in answer.headers


def test_a_body_too_large_for_a_drill_is_refused_marked(
        drilled: tuple[Api, dict[str, Any]]) -> None:
    """Refused before anything reads it (the body limit, outside the routes), still marked."""
    api, ids = drilled
    headers = {**api.headers("dispatcher"), DRILL_HEADER: ids["drill"],
               "Content-Type": "application/json"}
    answer = api.client.post("/grid-cases/bulk/register", headers=headers,
                             content=b'{"items": [' + b" " * (300 * 1024) + b"]}")
    assert answer.status_code == 413, answer.text
    assert answer.headers.get(DRILL_HEADER) == ids["drill"]


def test_an_unexpected_failure_in_a_drill_is_marked_too(
        drilled: tuple[Api, dict[str, Any]]) -> None:
    """A 500 (a bug) from a route acting in a drill: the server's answer says so too."""
    from fastapi import Depends

    from cityops.command_center.dependencies import get_system

    api, ids = drilled
    app: Any = api.client.app

    def failing(system: Any = Depends(get_system)) -> None:  # noqa: B008
        raise RuntimeError("a bug")

    app.add_api_route("/test-failure", failing, methods=["GET"])
    client = TestClient(app, raise_server_exceptions=False)  # no second lifespan
    answer = client.get("/test-failure", headers={**api.headers("planner"),
                                                  DRILL_HEADER: ids["drill"]})
    assert answer.status_code == 500
    assert answer.headers.get(DRILL_HEADER) == ids["drill"]
    live = client.get("/test-failure", headers=api.headers("planner"))
    assert live.status_code == 500 and DRILL_HEADER not in live.headers


def test_a_switch_refused_is_answered_by_the_live_gate_unmarked(
        drilled: tuple[Api, dict[str, Any]]) -> None:
    """Not a participant, or no drill of that id: the request never got into a drill."""
    api, ids = drilled
    refused = _call(api, "GET", "/grid-cases", "leader", drill=ids["drill"])
    assert refused.status_code == 403 and DRILL_HEADER not in refused.headers
    unknown = _call(api, "GET", "/grid-cases", "planner", drill=str(uuid4()))
    assert unknown.status_code == 422 and DRILL_HEADER not in unknown.headers


def test_a_subscription_made_in_a_drill_is_the_drills_own(
        drilled: tuple[Api, dict[str, Any]]) -> None:
    """A department user switched into a drill subscribes: the subscription is in the
    drill (listed there, with the mark), and the live city has none."""
    api, ids = drilled
    api.post(f"/drills/{ids['drill']}/participants", {"users": ["water-1"]}, role="planner")
    headers = {**api.headers("department-user", "water", user="water-1"),
               DRILL_HEADER: ids["drill"]}
    body = {"name": "water cases in the drill",
            "filter": {"stream": "grid-cases"}, "triggers": ["created"],
            "delivery": {"kind": "kafka"}}
    made = api.client.post("/subscriptions", json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert made.headers[DRILL_HEADER] == ids["drill"]
    subscription = made.json()["id"]
    in_drill = api.client.get("/subscriptions", headers=headers).json()
    assert [s["id"] for s in in_drill["data"]] == [subscription]
    live = api.get("/subscriptions", role="department-user", dept="water", user="water-1")
    assert live["count"] == 0
    api.get(f"/subscriptions/{subscription}", role="department-user", dept="water",
            user="water-1", expect=404)
    assert not api.client.app.state.feeds.subscriptions.all(  # type: ignore[attr-defined]
        "water")


def test_a_drills_warning_is_an_exercise_served_in_the_drill_only(
        drilled: tuple[Api, dict[str, Any]]) -> None:
    """A warning issued in a drill: its CAP alert is the drill's (its code names the
    drill), served in the drill's alert list and Atom feed (marked DRILL), never live."""
    from lxml import etree

    from .test_api_warnings import scratch_body

    api, ids = drilled
    drill = ids["drill"]
    api.post(f"/drills/{drill}/participants", {"users": ["duty-zhao", "duty-li"]},
             role="planner")

    def in_drill(method: str, path: str, user: str, body: Any = None) -> Any:
        headers = {**api.headers("dispatcher", user=user), DRILL_HEADER: drill}
        answer = api.client.request(method, path, headers=headers, json=body)
        assert answer.status_code < 300, answer.text
        assert answer.headers[DRILL_HEADER] == drill
        return answer

    warning = in_drill("POST", "/warnings", "duty-zhao", scratch_body(api)).json()
    in_drill("POST", f"/warnings/{warning['id']}/approve", "duty-li", {})
    in_drill("POST", f"/warnings/{warning['id']}/issue", "duty-li", {})
    deadline = time.monotonic() + 30
    while not (alerts := in_drill("GET", f"/cap/warnings/{warning['id']}",
                                  "duty-zhao").json())["count"]:
        assert time.monotonic() < deadline, "the drill's CAP alert was not written"
        time.sleep(0.1)
    [alert] = alerts["data"]
    assert (alert["status"], alert["drill_id"], alert["held"]) == ("Exercise", drill, False)
    document = in_drill("GET", f"/cap/warnings/{warning['id']}/1.xml", "duty-zhao").content
    namespace = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
    assert etree.fromstring(document).findtext("cap:code", namespaces=namespace) == \
        f"CITYOPS-DRILL:{drill}"
    atom = in_drill("GET", "/cap/alerts.atom", "duty-zhao").content
    assert b"DRILL" in atom and alert["identifier"].encode() in atom
    assert f'label="{drill}"'.encode() in atom
    # Live has nothing of it.
    assert api.get(f"/cap/warnings/{warning['id']}", user="duty-zhao")["count"] == 0
    live_atom = api.client.get("/cap/alerts.atom").content
    assert alert["identifier"].encode() not in live_atom and b"DRILL" not in live_atom
