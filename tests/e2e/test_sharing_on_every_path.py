"""The sharing catalogue holds on every read path: for each path (REST lists, items and
histories, `/ws`, the map layers, OGC API, exports, statistics, Open311, the departments'
feeds) x each viewer (every role, department users of entitled and of other departments,
departments' feeds) x each field class (shared unconditionally, conditional to named roles or
departments, not shared), a field is in the answer exactly when the catalogue lets that
viewer see it.

The expectation is read from the catalogue file itself, independently of the code under test,
and fields are found by unique values (sentinels) anywhere in the answer, so a field that
leaks under another key or nested somewhere is caught too."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from cityops.bootstrap import build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.sharing import Viewer
from cityops.feeds.commands import (
    Subscribe,
)
from cityops.feeds.routing import route
from cityops.feeds.streams import Stream
from cityops.feeds.subscription import Delivery, DeliveryKind, SubscriptionFilter
from cityops.settings import Settings

CATALOGUE: dict[str, Any] = json.loads(
    resources.files("cityops.domain").joinpath("data", "sharing.json").read_text("utf-8"))

CASUALTY_SENTINEL = 48_170
"""An injured count: found as an integer anywhere in an answer."""


@dataclass(frozen=True)
class FieldCase:
    """One field of one stream, found in answers by its sentinel."""

    stream: str
    field: str
    sentinel: str | int
    departments: frozenset[str] | None
    """The departments whose users have the item in their scope (None: every one)."""

    @property
    def label(self) -> str:
        return CATALOGUE["feeds"][self.stream]["fields"][self.field]

    @property
    def field_class(self) -> str:
        return self.label.split(":")[0]

    def allowed(self, role: str | None, department: str | None) -> bool:
        """Whether the catalogue file lets this viewer see the field."""
        label = self.label
        if label == "shared":
            return True
        if label == "not-shared":
            return role is not None and role in CATALOGUE["centre"]["roles"]
        condition = CATALOGUE["conditions"][label.removeprefix("conditional:")]
        return department in condition["departments"] or role in condition["roles"]

    def in_scope(self, role: str | None, department: str | None) -> bool:
        return (role != "department-user" or self.departments is None
                or department in self.departments)


FIELDS = (
    FieldCase("incidents", "title", "INCIDENT-TITLE-SENTINEL", None),
    FieldCase("incidents", "casualties", CASUALTY_SENTINEL, None),
    FieldCase("incidents", "summary", "REVIEW-SUMMARY-SENTINEL", None),
    FieldCase("incidents", "findings", "REVIEW-FINDING-SENTINEL", None),
    FieldCase("hazards", "owner_name", "OWNER-NAME-SENTINEL", None),
    FieldCase("hazards", "owner_contact", "OWNER-CONTACT-SENTINEL", None),
    FieldCase("hotline", "description", "TICKET-DESCRIPTION-SENTINEL", frozenset({"police"})),
    FieldCase("hotline", "caller_name", "CALLER-NAME-SENTINEL", frozenset({"police"})),
    FieldCase("hotline", "caller_phone", "13900004242", frozenset({"police"})),
    FieldCase("hotline", "calls", "MERGED-CALLER-SENTINEL", frozenset({"police"})),
    FieldCase("grid-cases", "description", "CASE-DESCRIPTION-SENTINEL", frozenset({"water"})),
    FieldCase("resources", "name", "RESOURCE-NAME-SENTINEL", frozenset({"police"})),
    FieldCase("resources", "notes", "RESOURCE-NOTES-SENTINEL", frozenset({"police"})),
)
FIELD_CLASSES = {"shared", "conditional", "not-shared"}
assert {f.field_class for f in FIELDS} == FIELD_CLASSES

PEOPLE: tuple[tuple[str, str | None], ...] = (
    ("inspector", None), ("hotline-operator", None), ("dispatcher", None), ("planner", None),
    ("admin", None), ("leader", None), ("system", None),
    ("department-user", "police"), ("department-user", "fire"),
    ("department-user", "health"), ("department-user", "water"),
)
FEEDS: tuple[str | None, ...] = (None, "police", "fire", "health", "water", "hotline",
                                 "command-centre")
"""Departments' feeds (Kafka department topics and webhooks); None: the city-wide topics.
The hotline and the command centre are the centre's own departments: every item is theirs."""


def _found(answer: Any, sentinel: str | int) -> bool:
    if isinstance(sentinel, int):
        if isinstance(answer, dict):
            return any(_found(v, sentinel) for v in answer.values())
        if isinstance(answer, list):
            return any(_found(v, sentinel) for v in answer)
        return answer == sentinel and not isinstance(answer, bool)
    return sentinel in json.dumps(answer, ensure_ascii=False)


# --- the city ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city(module_api: Any) -> Any:
    """One world for the whole matrix: an incident with casualties and a review, a hazard
    source with its owner's contact, a ticket routed to the police with a merged call, a
    case dispatched to water with a duplicate suggestion, a police resource with notes; and
    every department's subscriptions to each whole stream, made before it all happened."""
    feeds = module_api.client.app.state.feeds
    for department in FEEDS:
        if department is None:
            continue
        actor = Actor(f"department-user-{department}", Role.DEPARTMENT_USER, department)
        for stream in Stream:
            subscription_id = feeds.subscriptions.subscribe(
                Subscribe(department=department, subscription_name="everything",
                    filter=SubscriptionFilter(stream=stream),
                    triggers=["created", "updated", "closed"],
                    delivery=Delivery(kind=DeliveryKind.KAFKA)),
                CommandContext(actor=actor)).subject
            _SUBSCRIPTIONS[(department, stream)] = subscription_id
    _build(module_api)
    module_api.settle()
    return module_api


def _build(api: Any) -> None:
    incident = api.post("/incidents", {
        "category": "accident-disaster", "incident_type": "fire",
        "title": "INCIDENT-TITLE-SENTINEL", "location": api.IN_TOWN}, expect=201)["id"]
    path = f"/incidents/{incident}"
    api.post(f"{path}/verify", {})
    api.post(f"{path}/respond", {"level": "IV"})
    for department in ("police", "fire", "health", "water"):
        api.post(f"{path}/tasks", {"department": department, "description": "Go",
                                   "allowance_minutes": 30})
    api.post(f"{path}/situation-reports", {"text": "Two floors burning",
                                           "casualties": {"injured": CASUALTY_SENTINEL}})
    contained = api.post(f"{path}/contain", {"note": "out"})
    for task in contained["tasks"]:  # an incident closes only with every task settled
        api.post(f"{path}/tasks/{task['id']}/waive", {"reason": "Fire out before they came"})
    api.post(f"{path}/close", {})
    api.post(f"{path}/review", {
        "summary": "REVIEW-SUMMARY-SENTINEL",
        "findings": [{"aspect": "response-time", "text": "REVIEW-FINDING-SENTINEL"}]},
        role="planner")

    api.post("/hazard-sources", {
        "hazard_type": "lpg-depot", "name": "Riverside LPG", "grade": 2,
        "owner_name": "OWNER-NAME-SENTINEL", "owner_contact": "OWNER-CONTACT-SENTINEL",
        "location": api.IN_TOWN}, role="planner", expect=201)

    call = {"ticket_type": "complaint", "topic": "noise", "channel": "phone",
            "description": "TICKET-DESCRIPTION-SENTINEL", "caller_name": "CALLER-NAME-SENTINEL",
            "caller_phone": "13900004242", "location": api.IN_TOWN}
    ticket = api.post("/hotline-tickets", call, role="hotline-operator", expect=201)["id"]
    again = api.post("/hotline-tickets", {**call, "caller_name": "MERGED-CALLER-SENTINEL",
                                          "caller_phone": "13700001111"},
                     role="hotline-operator", expect=201)["id"]
    api.post(f"/hotline-tickets/{again}/merge", {"primary_id": ticket},
             role="hotline-operator")
    api.post(f"/hotline-tickets/{ticket}/assign", {"department": "police"},
             role="hotline-operator")

    report = {"category": "E0101", "description": "CASE-DESCRIPTION-SENTINEL",
              "location": {"type": "Point", "coordinates": [118.8001, 32.0501]}}
    first = api.post("/grid-cases", report, role="inspector", expect=201)["id"]
    api.settle()
    second = api.post("/grid-cases", report, role="inspector", expect=201)["id"]
    for case in (first, second):
        api.post(f"/grid-cases/{case}/register")
        api.post(f"/grid-cases/{case}/dispatch", {"department": "water"})

    api.post("/resources", {
        "kind": "rescue-team", "name": "RESOURCE-NAME-SENTINEL", "call_sign": "POLICE 9",
        "department": "police", "home_base": api.IN_TOWN,
        "notes": "RESOURCE-NOTES-SENTINEL"}, role="planner", expect=201)


# --- the read paths ---------------------------------------------------------------------------

Reader = Callable[[Any, str, str | None], Any]
"""Reads a path as a person (role, department): the answer's JSON."""


def _rest(collection: str) -> Reader:
    """A collection's list, each item of it and each item's history (when it has one)."""

    def read(api: Any, role: str, dept: str | None) -> Any:
        listed = api.get(collection, role=role, dept=dept, limit=500)["data"]
        every = api.get(collection, role="admin", limit=500)["data"]
        items = []
        for doc in every:
            response = api.client.get(f"{collection}/{doc['id']}",
                                      headers=api.headers(role, dept))
            if response.status_code == 200:
                items.append(response.json())
                history = api.client.get(f"{collection}/{doc['id']}/history",
                                         headers=api.headers(role, dept))
                if history.status_code == 200:
                    items.append(history.json())
        return {"list": listed, "items": items}

    return read


def _websocket(api: Any, role: str, dept: str | None) -> Any:
    layers = ["grid-cases", "incidents", "hazard-sources", "resources", "hotline-tickets"]
    with api.client.websocket_connect("/ws") as socket:
        socket.send_json({"type": "hello", "token": api.token(role, dept),
                          "subscribe": {"layers": layers}})
        while True:
            message = socket.receive_json()
            if message["type"] == "snapshot":
                return message["layers"]


def _get(*paths: str) -> Reader:
    def read(api: Any, role: str, dept: str | None) -> Any:
        answers = []
        for path in paths:
            response = api.client.get(path, headers=api.headers(role, dept))
            if response.status_code == 200:  # a department user may be refused city figures
                answers.append(response.json() if "json" in response.headers[
                    "content-type"] else response.text)
        return answers

    return read


MAP_LAYERS = ("incidents", "incident-areas", "grid-cases", "hazard-sources", "hazard-zones",
              "resources", "hotline-tickets")

ALL_STREAMS = frozenset(CATALOGUE["feeds"])
SELECTION: frozenset[str] = frozenset()

READ_PATHS: dict[str, tuple[Reader, frozenset[str]]] = {
    "REST incidents": (_rest("/incidents"), frozenset({"incidents"})),
    "REST hazard sources": (_rest("/hazard-sources"), frozenset({"hazards"})),
    "REST hotline tickets": (_rest("/hotline-tickets"), frozenset({"hotline"})),
    "REST grid cases": (_rest("/grid-cases"), frozenset({"grid-cases"})),
    "REST resources": (_rest("/resources"), frozenset({"resources"})),
    "/ws snapshot": (_websocket, ALL_STREAMS),
    "/spatial": (_get(*(f"/spatial/{layer}/features" for layer in MAP_LAYERS)), SELECTION),
    "/ogc": (_get(*(f"/ogc/collections/{layer}/items" for layer in MAP_LAYERS)), SELECTION),
    "exports": (_get(*(f"/exports/{layer}.geojson" for layer in MAP_LAYERS),
                     *(f"/exports/{layer}.csv" for layer in MAP_LAYERS)), SELECTION),
    "statistics": (_get("/statistics/key-figures", "/statistics/areas",
                        "/statistics/departments", "/statistics/incidents",
                        "/statistics/hotline"), SELECTION),
    "Open311": (_get("/open311/v2/requests.json", "/open311/v2/requests.xml"), SELECTION),
    "search": (_get("/search?q=sentinel&limit=50", "/search?q=incident+title+sentinel",
                    "/search?q=ticket+description+sentinel",
                    "/search?q=case+description+sentinel"), SELECTION),
}
"""Each read path, and the streams whose whole documents it shows (every field of an item
the viewer may see); the others show a fixed selection, and must show no field that is not
shared with all: they are checked for leaks only."""

_ANSWERS: dict[tuple[str, str, str | None], Any] = {}
_SUBSCRIPTIONS: dict[tuple[str, Stream], Any] = {}


def _answer(api: Any, path: str, role: str, dept: str | None) -> Any:
    key = (path, role, dept)
    if key not in _ANSWERS:
        _ANSWERS[key] = READ_PATHS[path][0](api, role, dept)
    return _ANSWERS[key]


def _ids(field: FieldCase) -> str:
    return f"{field.field_class}:{field.stream}.{field.field}"


@pytest.mark.parametrize("field", FIELDS, ids=_ids)
@pytest.mark.parametrize(("role", "dept"), PEOPLE,
                         ids=[f"{r}-{d}" if d else r for r, d in PEOPLE])
@pytest.mark.parametrize("path", list(READ_PATHS))
def test_a_field_is_on_a_read_path_exactly_when_the_catalogue_shares_it_with_the_viewer(
        city: Any, path: str, role: str, dept: str | None, field: FieldCase) -> None:
    answer = _answer(city, path, role, dept)
    whole_documents = field.stream in READ_PATHS[path][1]
    found = _found(answer, field.sentinel)
    if not field.allowed(role, dept):
        assert not found, f"{path} leaks {field.stream}.{field.field} ({field.label}) to " \
                          f"{role} {dept or ''}"
    elif whole_documents and field.in_scope(role, dept):
        assert found, f"{path} withholds {field.stream}.{field.field} ({field.label}) " \
                      f"from {role} {dept or ''}, whom the catalogue entitles"


@pytest.mark.parametrize("field", FIELDS, ids=_ids)
@pytest.mark.parametrize("department", FEEDS, ids=[d or "city-wide" for d in FEEDS])
def test_a_field_is_in_a_departments_feed_exactly_when_the_catalogue_shares_it(
        city: Any, department: str | None, field: FieldCase) -> None:
    """Kafka's department topics and webhooks: what a subscription to the whole stream
    receives (routing and the message as the publisher builds it)."""
    feeds = city.client.app.state.feeds  # type: ignore[attr-defined]
    messages = []
    for reader in feeds.readers():
        if reader.stream.value != field.stream:
            continue
        for event in reader.read(0, 10_000).events:
            if department is None:
                messages.append(event.message(city.system.sharing, Viewer.city_wide()))
                continue
            subscription = _whole_stream(feeds, department, reader.stream)
            routes = route(event, [subscription], city.system.city.map,
                           city.system.sharing)
            if department in routes.departments:
                messages.append(event.message(city.system.sharing,
                                              Viewer.department_feed(department)))
    found = _found(messages, field.sentinel)
    if not field.allowed(None, department):
        assert not found, f"the feed of {department or 'the city'} leaks {field.field}"
    elif (department is None or department in CATALOGUE["centre"]["departments"]
          or field.departments is None or department in field.departments):
        assert found, f"the feed of {department or 'the city'} lacks {field.field}"
    else:
        # Another department's ticket, case or resource: not in this department's feed.
        assert not found, f"the feed of {department} has another department's {field.stream}"


def _whole_stream(feeds: Any, department: str, stream: Stream) -> Any:
    return feeds.subscriptions.subscription(_SUBSCRIPTIONS[(department, stream)])


# --- the reproductions of the issue -----------------------------------------------------------


def test_the_casualty_figures_and_review_go_to_those_the_catalogue_names(city: Any) -> None:
    """Issue 9, item 8: department users and inspectors read casualty figures and
    after-action reviews through the API although the catalogue grants them to named roles
    and departments only. (The built-in catalogue names the leader for both, for the
    leaders' overview: the leader reads them.)"""
    incident = city.get("/incidents", role="admin")["data"][0]["id"]
    for role, dept in (("inspector", None), ("department-user", "water"),
                       ("hotline-operator", None)):
        seen = city.get(f"/incidents/{incident}", role=role, dept=dept)
        assert "casualties" not in seen and "review" not in seen, role
        assert all("casualties" not in r for r in seen["situation_reports"])
        history = city.get(f"/incidents/{incident}/history", role=role, dept=dept)
        assert not _found(history, CASUALTY_SENTINEL)
        assert "REVIEW-SUMMARY-SENTINEL" not in json.dumps(history)
    leader = city.get(f"/incidents/{incident}", role="leader")
    assert leader["casualties"] == {"injured": CASUALTY_SENTINEL}
    assert leader["review"]["summary"] == "REVIEW-SUMMARY-SENTINEL"
    health = city.get(f"/incidents/{incident}", role="department-user", dept="health")
    assert health["casualties"] == {"injured": CASUALTY_SENTINEL} and "review" not in health
    planner = city.get(f"/incidents/{incident}", role="planner")
    assert "casualties" not in planner and planner["review"]["findings"]


def test_hazard_owners_contact_goes_only_to_the_services_that_act_on_an_alarm(
        city: Any) -> None:
    """Issue 9, item 8: every role read hazard-source owners' contact details."""
    for role, dept in PEOPLE:
        listed = city.get("/hazard-sources", role=role, dept=dept)["data"]
        owner = listed[0]["owner"]
        assert owner["name"] == "OWNER-NAME-SENTINEL"
        entitled = role in ("dispatcher", "admin") or dept in ("police", "fire")
        assert ("contact" in owner) is entitled, (role, dept)


def test_map_layers_must_not_publish_a_field_that_is_not_shared_with_all(
        tmp_path: Path, demo_city: Any) -> None:
    from cityops.command_center.sharing import check_map_layers
    from cityops.domain.errors import CatalogueError
    from cityops.projections.spatial_layers import LAYERS, Property

    system = build_system(Settings(data_dir=tmp_path), city=demo_city)
    try:
        check_map_layers(system, LAYERS.values())  # the published layers pass
        layer = LAYERS["hotline-tickets"]
        leaking = replace(layer, properties=(*layer.properties, Property("caller")))
        with pytest.raises(CatalogueError, match="caller of the hotline stream"):
            check_map_layers(system, [leaking])
    finally:
        system.close()


def test_the_search_path_finds_the_sentinel_items_so_its_leak_check_is_not_empty(
        city: Any) -> None:
    answer = json.dumps(_answer(city, "search", "dispatcher", None))
    for sentinel in ("INCIDENT-TITLE-SENTINEL", "TICKET-DESCRIPTION-SENTINEL",
                     "CASE-DESCRIPTION-SENTINEL"):
        assert sentinel in answer
