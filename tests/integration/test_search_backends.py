"""Search over HTTP on both read stores (issue 9, item 12): a dispatcher finds "the pipe on
Reservoir Road" without coordinates — the cases located in that street, or whose text names
it — by words in English or Chinese, by places of the demo city (a street, a road, a
facility) and by ids; a department user finds only what their lists show; caller personal
data is never searched. The same scenario runs on the embedded SQLite store and on
PostgreSQL, which must give the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.domain.accounts.account import PasswordHasher
from cityops.domain.actors import Actor, Role
from cityops.domain.geometry import GeoPoint
from cityops.maps.gazetteer import Gazetteer
from cityops.settings import Settings

INSPECTOR = Actor("insp-search", Role.INSPECTOR)
OPERATOR = Actor("hotline-search", Role.HOTLINE_OPERATOR)
DISPATCHER = Actor("duty-search", Role.DISPATCHER)
ADMIN = Actor("admin-search", Role.ADMIN)


class City:
    """Where the scenario happens: a cell of Reservoir Road Street (D04-S02), a cell that
    Central Avenue crosses, and a cell of Drum Tower Street (D01-S01) far from both."""

    def __init__(self, demo_city: Any) -> None:
        gazetteer = Gazetteer.of_city(demo_city)
        avenue = next(p for p in gazetteer.places if p.name == "Central Avenue")
        near_avenue = gazetteer.cells_of(avenue).cells
        cells = sorted(demo_city.map.cells_in("D04-S02"))
        self.reservoir_road = self._centre(demo_city, cells[len(cells) // 2])
        self.avenue = self._centre(demo_city, sorted(near_avenue)[len(near_avenue) // 2])
        drum = [c for c in sorted(demo_city.map.cells_in("D01-S01")) if c not in near_avenue]
        self.drum_tower = self._centre(demo_city, drum[len(drum) // 2])

    @staticmethod
    def _centre(demo_city: Any, code: str) -> GeoPoint:
        centre: GeoPoint = demo_city.map.cell(code).centre
        return centre


class Scenario:
    """The items of the scenario, by what they are."""

    def __init__(self, system: CitySystem, city: City) -> None:
        self.ids: dict[str, str] = {}
        cases = system.grid_cases

        def case(name: str, description: str, where: GeoPoint, category: str = "E0502") -> UUID:
            case_id = cases.report(source="inspector", category=category,
                                   description=description, location=where, actor=INSPECTOR)
            self.ids[name] = str(case_id)
            return case_id

        in_street = case("in-street", "Burst pipe flooding the pavement", city.reservoir_road)
        case("elsewhere", "Burst pipe under the bus stop", city.drum_tower)
        case("names-street", "Water pipe leak on Reservoir Road, says a resident",
             city.drum_tower)
        case("chinese", "中山路水管爆裂，路面积水", city.drum_tower)  # noqa: RUF001
        case("on-avenue", "Garbage pile left by the kerb", city.avenue, "E0101")
        cases.register(in_street, actor=DISPATCHER)
        cases.dispatch(in_street, department="water", actor=DISPATCHER)
        ticket = system.hotline.receive(
            channel="phone", ticket_type="complaint", topic="water-supply",
            description="Caller reports a broken pipe outside the school",
            caller_name="Zhang Sanfeng", caller_phone="13812345678",
            location=city.drum_tower, actor=OPERATOR)
        self.ids["ticket"] = str(ticket)
        for name, title, where in (("leak-in-street", "Gas leak at the dam road",
                                    city.reservoir_road),
                                   ("leak-elsewhere", "Gas leak at the market", city.drum_tower)):
            self.ids[name] = str(system.incidents.report(
                category="accident-disaster", incident_type="gas-leak", title=title,
                location=where, source="department", actor=DISPATCHER))
        system.catch_up()


def _serve(system: CitySystem) -> TestClient:
    system.accounts.hasher = PasswordHasher(n=2**10, r=8, p=1)
    for name, role, department in (("duty-search", Role.DISPATCHER, None),
                                   ("water-search", Role.DEPARTMENT_USER, "water"),
                                   ("leader-search", Role.LEADER, None)):
        system.accounts.add_user(name, role=role, department=department,
                                 password="search-password-1", actor=ADMIN)
    return TestClient(create_app(system, manage_lifecycle=False))


Served = tuple[TestClient, Scenario]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                              marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           demo_city: Any) -> Iterator[Served]:
    """The scenario on each read store (the same expectations hold on both)."""
    data_dir = tmp_path_factory.mktemp(f"search-{request.param}")
    url = None
    if request.param == "postgres":
        databases = request.getfixturevalue("test_databases")
        url = databases.create("search")
    system = build_system(Settings(data_dir=data_dir, database_url=url, database_pool_size=2,
                                   run_projections=False), city=demo_city)
    try:
        scenario = Scenario(system, City(demo_city))
        with _serve(system) as client:
            yield client, scenario
    finally:
        system.close()
        if url is not None:
            databases.drop(url)


def find(served: Served, q: str, user: str = "duty-search",
         **params: Any) -> dict[str, Any]:
    client, _ = served
    token = client.app.state.auth.issue_token(user)  # type: ignore[attr-defined]
    answer = client.get("/search", params={"q": q, **params},
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body

def names(served: Served, hits: dict[str, Any] | None) -> set[str]:
    assert hits is not None
    by_id = {v: k for k, v in served[1].ids.items()}
    assert hits["count"] == len(hits["data"])
    return {by_id[doc["id"]] for doc in hits["data"]}

def test_the_pipe_on_reservoir_road(served: Served) -> None:
    body = find(served, "the pipe on Reservoir Road")
    assert body["words"] == ["pipe"]
    assert [(p["name"], p["kind"], p["code"]) for p in body["places"]] == [
        ("Reservoir Road Street", "street", "D04-S02")]
    # Located in the street, or naming it; the other pipes are elsewhere.
    assert names(served, body["grid_cases"]) == {"in-street", "names-street"}

def test_words_alone_search_descriptions(served: Served) -> None:
    body = find(served, "burst PIPE")
    assert names(served, body["grid_cases"]) == {"in-street", "elsewhere"}
    assert names(served, body["hotline_tickets"]) == set()
    assert names(served, find(served, "pipe")["hotline_tickets"]) == {"ticket"}

def test_chinese_words(served: Served) -> None:
    for q in ("水管", "中山路 水管", "中山路的水管", "路面积水"):
        assert names(served, find(served, q)["grid_cases"]) == {"chinese"}, q
    assert names(served, find(served, "煤气")["grid_cases"]) == set()

def test_a_road_of_the_map(served: Served) -> None:
    body = find(served, "garbage along Central Avenue")
    assert [p["kind"] for p in body["places"]] == ["landmark"]
    assert names(served, body["grid_cases"]) == {"on-avenue"}
    assert names(served, find(served, "garbage Reservoir Road")["grid_cases"]
                      ) == set()

def test_incidents_by_place_and_words(served: Served) -> None:
    assert names(served, find(served, "gas leak")["incidents"]) == {
        "leak-in-street", "leak-elsewhere"}
    assert names(served, find(served, "gas leak Reservoir Road")["incidents"]
                      ) == {"leak-in-street"}
    assert names(served, find(served, "leak Drum Tower")["incidents"]) == {
        "leak-elsewhere"}

def test_ids_and_grid_codes(served: Served) -> None:
    scenario = served[1]
    prefix = scenario.ids["names-street"][:8]
    assert names(served, find(served, prefix)["grid_cases"]) == {"names-street"}
    ticket = find(served, scenario.ids["ticket"].upper())["hotline_tickets"]
    assert names(served, ticket) == {"ticket"}
    cell = find(served, "D04-S02")["grid_cases"]
    assert names(served, cell) == {"in-street"}

def test_a_department_finds_only_what_its_lists_show(
        served: Served) -> None:
    body = find(served, "pipe", user="water-search")
    assert names(served, body["grid_cases"]) == {"in-street"}
    assert names(served, body["hotline_tickets"]) == set()
    assert names(served, body["incidents"]) == set()

def test_caller_personal_data_is_neither_searched_nor_shown(
        served: Served) -> None:
    assert names(served, find(served, "Sanfeng")["hotline_tickets"]) == set()
    assert names(served, find(served, "13812345678")["hotline_tickets"]
                      ) == set()
    shown = find(served, "broken pipe", user="leader-search")["hotline_tickets"]
    assert shown is not None
    # The sharing policy withholds caller data from a leader: absent, not masked.
    assert shown["data"] and "caller" not in shown["data"][0]

def test_kinds_and_limits(served: Served) -> None:
    body = find(served, "pipe", kind="grid-cases", limit=1)
    assert body["hotline_tickets"] is None and body["incidents"] is None
    assert (len(body["grid_cases"]["data"]), body["grid_cases"]["count"]) == (1, 3)

def test_bad_searches_get_a_clear_422(served: Served) -> None:
    client, _ = served
    token = client.app.state.auth.issue_token("duty-search")  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {token}"}
    for params, said in (({"q": "   "}, "empty"), ({"q": "x" * 201}, "200"),
                         ({"q": "pipe", "kind": "resources"}, "kind"),
                         ({"q": "pipe", "limit": 0}, "limit")):
        answer = client.get("/search", params=params, headers=headers)
        assert answer.status_code == 422, (params, answer.text)
        assert said in answer.text, (params, answer.text)
    assert client.get("/search", params={"q": "pipe"}).status_code == 401

def test_the_gazetteer_places_the_map(served: Served) -> None:
    client, _ = served
    token = client.app.state.auth.issue_token("duty-search")  # type: ignore[attr-defined]
    answer = client.get("/search/places", params={"q": "reservoir road"},
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    first = answer.json()["data"][0]
    assert (first["name"], first["kind"], first["code"]) == (
        "Reservoir Road Street", "street", "D04-S02")
    minx, miny, maxx, maxy = first["bbox"]
    lon, lat = first["point"]["coordinates"]
    assert minx < lon < maxx and miny < lat < maxy
