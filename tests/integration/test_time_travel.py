"""Time travel (issue 12, item 1): the city at any past instant T, answered from the read
models' row versions (projections/history.py), equals the read models that a replay of the
stored events up to T from zero writes into an empty store, on both back ends; the API's
`as_of` answers from it, refuses instants it cannot show (422, saying which), and writes
refuse it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.command_center.time_travel import AS_OF_HEADER, PastRepository
from cityops.domain.accounts.commands import AddUser
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.ingest.tracks import ResourceTracks, TrackPoint
from cityops.projections.city_at import city_at
from cityops.projections.follower import Follower
from cityops.projections.history import HistoryTable
from cityops.projections.statistics import CityStatistics
from cityops.settings import Settings
from cityops.simulator import DemoDay, SimulatedClock, demo_day_start
from cityops.storage import SqliteReadStore

DAY = datetime(2026, 3, 3, tzinfo=UTC).date()
DEMO_HOURS = 3.0
"""How much of a demo day is played: every stream has events, resources move."""


class EventsUpTo:
    """An application's notification log as it was at T: only events stamped at or before
    T (what a replay from zero up to T reads)."""

    def __init__(self, application: Any, instant: datetime) -> None:
        self._application = application
        self.name = application.name
        self.mapper = application.mapper
        self.repository = application.repository
        self.events = application.events
        self.clock = lambda: instant
        kept = []
        start = 0
        while batch := application.recorder.select_notifications(
                start=start, limit=1000, inclusive_of_start=False):
            start = batch[-1].id
            kept += [n for n in batch
                     if application.mapper.to_domain_event(n).timestamp <= instant]
        self._kept = kept
        self.recorder = self

    def select_notifications(self, start: int, limit: int,
                             inclusive_of_start: bool = True, **_: Any) -> list[Any]:
        after = [n for n in self._kept
                 if n.id > start or (inclusive_of_start and n.id == start)]
        return after[:limit]

    def max_notification_id(self) -> int:
        return self._kept[-1].id if self._kept else 0


def replayed_to(system: CitySystem, instant: datetime, directory: Path) -> SqliteReadStore:
    """The read models a replay of every stored event up to `instant` writes into a new,
    empty store, through the same projection code (the current tables, no history)."""
    store = SqliteReadStore(directory / f"replay-{instant.timestamp()}.sqlite")
    for app in system.applications:
        tables = [t for t in system.generations.tables.get(app.name, ())
                  if not isinstance(t, HistoryTable)]
        if not tables:
            continue
        follower = Follower("replay", EventsUpTo(app, instant), tables,  # type: ignore[arg-type]
                            store)
        follower.create_tables()
        follower.catch_up()
    return store


def _normal(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def rows(store: Any, table: str, columns: list[str]) -> dict[str, tuple[Any, ...]]:
    """Every row of `table` (the given columns), by key, normalised across databases."""
    with store.transaction() as txn:
        txn.execute(f"SELECT {', '.join(columns)} FROM {table}")
        found = txn.fetchall()
    return {json.dumps([_normal(v) for v in row[:2]], default=str):
            tuple(_normal(v) for v in row) for row in found}


def current_columns(history: HistoryTable) -> list[str]:
    return list(history.names)


def play(settings_: Settings, demo_city: Any) -> tuple[CitySystem, SimulatedClock]:
    """A system that played the first hours of a demo day (every stream, moving vehicles)."""
    clock = SimulatedClock(datetime(2026, 3, 1, tzinfo=UTC), 0.0)
    system = build_system(settings_, clock=clock, city=demo_city)
    start = demo_day_start(system, DAY)
    clock.advance_to(start)
    demo = DemoDay(system, clock, start, seed=7)
    demo.plan()
    demo.run_until(start + timedelta(hours=DEMO_HOURS))
    system.catch_up()
    return system, clock


@pytest.fixture(scope="module")
def sqlite_city(tmp_path_factory: pytest.TempPathFactory, demo_city: Any
                ) -> Iterator[tuple[CitySystem, SimulatedClock]]:
    """The played morning on embedded SQLite."""
    played = play(Settings(data_dir=tmp_path_factory.mktemp("store"), run_projections=False),
                  demo_city)
    yield played
    played[0].close()


@pytest.fixture(scope="module")
def postgres_city(postgres_url: str, demo_city: Any
                  ) -> Iterator[tuple[CitySystem, SimulatedClock]]:
    """The played morning on PostgreSQL (a schema of its own)."""
    played = play(Settings(database_url=postgres_url, database_pool_size=2,
                           run_projections=False,
                           database_schema=f"tt_{uuid.uuid4().hex[:10]}"), demo_city)
    yield played
    played[0].close()


@pytest.fixture
def played(request: pytest.FixtureRequest) -> tuple[CitySystem, SimulatedClock]:
    """The played morning on the back end of the test's parameter (SQLite by default)."""
    backend = getattr(request, "param", "sqlite")
    found: tuple[CitySystem, SimulatedClock] = request.getfixturevalue(f"{backend}_city")
    return found


BACKENDS = [pytest.param("sqlite"),
            pytest.param("postgres", marks=pytest.mark.postgres)]


def instants(system: CitySystem, clock: SimulatedClock) -> st.SearchStrategy[datetime]:
    """Instants from a little before the first event to the city's time now."""
    from cityops.command_center.time_travel import first_event_at

    first = first_event_at(system)
    assert first is not None
    return st.datetimes(min_value=first.replace(tzinfo=None),
                        max_value=clock().replace(tzinfo=None),
                        timezones=st.just(UTC))


@pytest.mark.parametrize("played", BACKENDS, indirect=True)
def test_the_city_as_of_any_instant_equals_a_replay_to_it_from_zero(
    played: tuple[CitySystem, SimulatedClock], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Property: at many random T, every read model read as of T (history intervals)
    equals the read models a replay of the stored events up to T writes into an empty
    store, through the same projection code."""
    system, clock = played
    histories = [t for group in system.generations.tables.values() for t in group
                 if isinstance(t, HistoryTable)]
    assert {h.current for h in histories} >= {
        "rm_grid_cases", "rm_case_dispatches", "rm_case_returns", "rm_incidents", "rm_plans",
        "rm_hazard_sources", "rm_tickets", "rm_ticket_returns", "rm_resources", "rm_warnings"}
    directory = tmp_path_factory.mktemp("replays")
    seen_nonempty: set[str] = set()

    @settings(max_examples=12, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(instant=instants(system, clock))
    def check(instant: datetime) -> None:
        from cityops.projections.as_of import PastStore

        expected_store = replayed_to(system, instant, directory)
        past = PastStore(system.read_models.store, instant, histories)
        for history in histories:
            columns = current_columns(history)
            expected = rows(expected_store, history.current, columns)
            answered = rows(past, history.current, columns)
            assert answered == expected, (history.current, instant)
            if expected:
                seen_nonempty.add(history.current)
        expected_store.close()

    check()
    # The instants drawn saw every stream with rows (not a vacuous equality).
    assert {"rm_grid_cases", "rm_incidents", "rm_resources", "rm_tickets",
            "rm_hazard_sources"} <= seen_nonempty


# --- the API's `as_of` ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(sqlite_city: tuple[CitySystem, SimulatedClock]) -> TestClient:
    """The command centre's app over the played morning, logged in as a duty officer."""
    system, _ = sqlite_city
    system.accounts.handle(
        AddUser(username="duty-tt", role=Role.DISPATCHER, password="time-travel-password"),
        CommandContext(actor=Actor("admin-tt", Role.ADMIN)))
    client = TestClient(create_app(system, manage_lifecycle=False))
    login = client.post("/auth/login", json={"username": "duty-tt",
                                             "password": "time-travel-password"})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return client


def _mid(played: tuple[CitySystem, SimulatedClock]) -> datetime:
    """An instant in the middle of the played hours."""
    return played[1]() - timedelta(hours=DEMO_HOURS / 2)


@pytest.mark.parametrize(("as_of", "says"), [
    ("yesterday", "not an ISO 8601 instant"),
    ("2026-03-03T10:00:00", "has no time zone"),
    ("2026-03-03 10:00", "has no time zone"),
    ("2099-01-01T00:00:00+00:00", "is in the future"),
    ("2026-01-01T00:00:00Z", "is before the first event"),
])
def test_an_instant_that_cannot_be_shown_is_refused_saying_why(
    api: TestClient, as_of: str, says: str
) -> None:
    for path in ("/grid-cases", "/incidents", "/resources", "/statistics/key-figures",
                 "/spatial/grid-cases/features", "/ogc/collections/grid-cases/items"):
        response = api.get(path, params={"as_of": as_of})
        assert response.status_code == (400 if path.startswith("/ogc") else 422), path
        assert says in response.text, (path, response.text)
        if not path.startswith("/ogc"):
            body = response.json()
            assert response.status_code == 422 and body["error"] == "invalid-request"
            assert body["problems"] == [{"field": "query.as_of",
                                         "message": body["problems"][0]["message"]}]
            assert says in body["problems"][0]["message"]


def test_a_write_refuses_as_of(api: TestClient, played: tuple[CitySystem, SimulatedClock]
                               ) -> None:
    instant = _mid(played).isoformat()
    response = api.post("/grid-cases", params={"as_of": instant}, json={
        "source": "inspector", "category": "manhole-cover", "description": "past write",
        "location": {"type": "Point", "coordinates": [118.80, 32.05]}})
    assert response.status_code == 422, response.text
    assert "as_of" in response.text


def test_lists_and_items_answer_as_they_stood_marked_as_the_past(
    api: TestClient, played: tuple[CitySystem, SimulatedClock],
    tmp_path_factory: pytest.TempPathFactory
) -> None:
    system, _ = played
    instant = _mid(played)
    expected = replayed_to(system, instant, tmp_path_factory.mktemp("api"))
    for path, table in (("/grid-cases", "rm_grid_cases"), ("/incidents", "rm_incidents"),
                        ("/hotline-tickets", "rm_tickets"),
                        ("/hazard-sources", "rm_hazard_sources")):
        now = api.get(path, params={"limit": 500})
        past = api.get(path, params={"limit": 500, "as_of": instant.isoformat()})
        assert past.status_code == 200, past.text
        assert AS_OF_HEADER not in now.headers
        assert datetime.fromisoformat(past.headers[AS_OF_HEADER]) == instant
        with expected.transaction() as txn:
            txn.execute(f"SELECT id, version FROM {table}")
            stood = {r[0]: r[1] for r in txn.fetchall()}
        assert {i["id"]: i["version"] for i in past.json()["data"]} == stood, path
        assert past.json()["count"] == len(stood)
    assert now.json()["count"] >= past.json()["count"]
    # A case: as it stood (its version then, its light at T), and not there before it was
    # reported.
    case = next(c for c in api.get("/grid-cases", params={"limit": 500}).json()["data"]
                if c["version"] > 2)
    history = api.get(f"/grid-cases/{case['id']}/history").json()
    second = datetime.fromisoformat(history[1]["at"])
    then = api.get(f"/grid-cases/{case['id']}", params={"as_of": second.isoformat()})
    assert then.status_code == 200 and then.json()["version"] == history[1]["version"]
    assert then.json()["status"] != case["status"] or case["version"] == 2
    cut = api.get(f"/grid-cases/{case['id']}/history", params={"as_of": second.isoformat()})
    assert [e["version"] for e in cut.json()] == [e["version"] for e in history
                                                 if datetime.fromisoformat(e["at"]) <= second]
    before = datetime.fromisoformat(history[0]["at"]) - timedelta(microseconds=1)
    missing = api.get(f"/grid-cases/{case['id']}", params={"as_of": before.isoformat()})
    assert missing.status_code == 404, missing.text
    expected.close()


def test_statistics_as_of_t_are_the_figures_of_the_city_at_t(
    api: TestClient, played: tuple[CitySystem, SimulatedClock],
    tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The supervision lights and every key figure as they stood at T: the same as the
    statistics of a replay to T, computed with the clock at T."""
    system, _ = played
    instant = _mid(played)
    expected = CityStatistics(replayed_to(system, instant, tmp_path_factory.mktemp("st")))
    answered = api.get("/statistics/key-figures", params={"as_of": instant.isoformat()})
    assert answered.status_code == 200, answered.text
    figures = answered.json()
    assert figures == json.loads(json.dumps(expected.key_figures(instant).as_dict()))
    assert datetime.fromisoformat(figures["at"]) == instant
    now = api.get("/statistics/key-figures").json()
    assert now["cases"] != figures["cases"]


def test_resource_positions_at_t_come_from_the_recorded_tracks(
    api: TestClient, played: tuple[CitySystem, SimulatedClock]
) -> None:
    """A vehicle's fix that only the track kept (no event: too close to the last recorded
    one, or cached) is where the vehicle was at T: in its item, the list and the map."""
    system, _ = played
    instant = _mid(played)
    past = PastRepository(system.resources, instant)
    resource_id, recorded = next(
        (r.id, r.position) for r in (system.resources.resource(UUID(d["id"])) for d in
                                     system.read_models.page("rm_resources", limit=500).items)
        if r.mobile and r.id in past and past.get(r.id).position is not None
        and past.get(r.id).position.at < instant)
    at_t = past.get(resource_id).position
    tracked = GeoPoint(lon=round(at_t.point.lon + 0.0013, 6), lat=round(at_t.point.lat + 0.0007, 6))
    ResourceTracks(system.generations.registry.store).record(TrackPoint(
        resource_id=resource_id, call_sign="tt-1", measured_at=instant, position=tracked))
    where = [tracked.lon, tracked.lat]
    as_of = {"as_of": instant.isoformat()}
    one = api.get(f"/resources/{resource_id}", params=as_of)
    assert one.status_code == 200, one.text
    assert one.json()["latest_position"]["point"]["coordinates"] == where
    listed = api.get("/resources", params={**as_of, "limit": 500}).json()["data"]
    row = next(r for r in listed if r["id"] == str(resource_id))
    assert row["position"]["point"]["coordinates"] == where
    features = api.get("/spatial/resources/features",
                       params={**as_of, "limit": 500}).json()["features"]
    feature = next(f for f in features if f["id"] == str(resource_id))
    geojson = api.get("/spatial/resources/features", params={**as_of, "limit": 1})
    assert datetime.fromisoformat(geojson.headers[AS_OF_HEADER]) == instant
    assert feature["geometry"]["coordinates"] == where
    # A moment before the fix, the vehicle is where its events had it.
    earlier = {"as_of": (instant - timedelta(microseconds=1)).isoformat()}
    before = api.get("/resources", params={**earlier, "limit": 500}).json()["data"]
    assert next(r for r in before if r["id"] == str(resource_id))["position"]["point"][
        "coordinates"] == [at_t.point.lon, at_t.point.lat]
    assert recorded is not None


def test_the_cli_prints_the_city_at_an_instant(played: tuple[CitySystem, SimulatedClock]
                                              ) -> None:
    from typer.testing import CliRunner

    from cityops.cli import app as cli

    system, _ = played
    instant = _mid(played)
    env = {"CITYOPS_DATA_DIR": str(system.settings.data_dir)}
    runner = CliRunner()
    shown = runner.invoke(cli, ["history", "at", instant.isoformat(), "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    answer = json.loads(shown.output)
    counts = {name: layer["total"] for name, layer in answer["layers"].items()}
    expected = city_at(system, instant)
    assert counts == {name: layer["total"] for name, layer in expected["layers"].items()}
    assert answer["key_figures"] == json.loads(json.dumps(expected["key_figures"]))
    text = runner.invoke(cli, ["history", "at", instant.isoformat(), "--layer", "incidents"],
                         env=env)
    assert text.exit_code == 0 and "the past, not now" in text.output, text.output
    assert "incidents:" in text.output and "grid-cases:" not in text.output
    for bad, says in (("2026-03-03T10:00", "no time zone"), ("soon", "not an ISO 8601"),
                      ("2001-01-01T00:00Z", "before the first event")):
        refused = runner.invoke(cli, ["history", "at", bad], env=env)
        assert refused.exit_code == 2 and says in refused.output, refused.output


@pytest.mark.postgres
def test_postgis_questions_and_figures_as_of_t_on_postgres(
    postgres_city: tuple[CitySystem, SimulatedClock],
    tmp_path_factory: pytest.TempPathFactory
) -> None:
    """On PostgreSQL the past is asked of PostGIS too: the features of a layer, in a bbox
    and within a radius, and the key figures, as they stood at T."""
    system, _ = postgres_city
    instant = _mid(postgres_city)
    replay = replayed_to(system, instant, tmp_path_factory.mktemp("pg"))
    system.accounts.handle(
        AddUser(username="duty-tt-pg", role=Role.DISPATCHER, password="time-travel-password"),
        CommandContext(actor=Actor("admin-tt", Role.ADMIN)))
    client = TestClient(create_app(system, manage_lifecycle=False))
    login = client.post("/auth/login", json={"username": "duty-tt-pg",
                                             "password": "time-travel-password"})
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    as_of = {"as_of": instant.isoformat()}
    with replay.transaction() as txn:
        txn.execute("SELECT id FROM rm_grid_cases")
        cases = {r[0] for r in txn.fetchall()}
    features = client.get("/spatial/grid-cases/features", params={**as_of, "limit": 500})
    assert features.status_code == 200, features.text
    assert {f["id"] for f in features.json()["features"]} == cases
    items = client.get("/ogc/collections/grid-cases/items", params={**as_of, "limit": 500,
                                                                     "bbox": "118,31,120,33"})
    assert items.status_code == 200, items.text
    assert {f["id"] for f in items.json()["features"]} <= cases
    radius = client.get("/spatial/grid-cases/radius",
                        params={**as_of, "point": "118.80,32.05", "radius_m": 50_000,
                                "limit": 500})
    assert radius.status_code == 200, radius.text
    assert {f["id"] for f in radius.json()["features"]} <= cases
    within = client.post("/spatial/grid-cases/within", params=as_of, json={
        "geometry": {"type": "Polygon", "coordinates": [[[118, 31], [120, 31], [120, 33],
                                                         [118, 33], [118, 31]]]},
        "limit": 500})
    assert within.status_code == 200, within.text
    assert {f["id"] for f in within.json()["features"]} <= cases
    assert AS_OF_HEADER in within.headers
    figures = client.get("/statistics/key-figures", params=as_of)
    assert figures.status_code == 200, figures.text
    expected = CityStatistics(replay).key_figures(instant).as_dict()
    assert figures.json() == json.loads(json.dumps(expected))
    replay.close()


# --- every read route takes `as_of`: search, Open311 ----------------------------------------


def _client_of(system: CitySystem, username: str) -> TestClient:
    """The command centre's app over `system`, logged in as a duty officer `username`."""
    if system.accounts.find_user(username) is None:
        system.accounts.handle(
            AddUser(username=username, role=Role.DISPATCHER, password="time-travel-password"),
            CommandContext(actor=Actor("admin-tt", Role.ADMIN)))
    client = TestClient(create_app(system, manage_lifecycle=False))
    login = client.post("/auth/login", json={"username": username,
                                             "password": "time-travel-password"})
    assert login.status_code == 200, login.text
    client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
    return client


def _common_word(store: Any) -> str:
    """The commonest longer word of the grid cases' descriptions in `store` (a search
    that finds many cases)."""
    from collections import Counter

    with store.transaction() as txn:
        txn.execute("SELECT doc FROM rm_grid_cases")
        docs = [_normal(r[0]) for r in txn.fetchall()]
    words = Counter(w.strip(".,;:").lower() for d in docs
                    for w in (d.get("description") or "").split() if len(w) > 4)
    return words.most_common(1)[0][0]


@pytest.mark.parametrize("played", BACKENDS, indirect=True)
def test_search_as_of_t_finds_what_a_replay_to_t_holds(
    played: tuple[CitySystem, SimulatedClock], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 12, item 1: GET /search took no `as_of`. At T it finds the cases, tickets and
    incidents as they stood (their versions then, a case's light at T): the same as the
    search asked of the read models a replay to T writes."""
    from cityops.command_center.routers.search import _locate, gazetteer_of
    from cityops.projections.search import GRID_CASES, HOTLINE_TICKETS, INCIDENTS, parse_query
    from cityops.projections.search import search as search_rows
    from cityops.projections.views import ReadModels, case_light

    system, _ = played
    instant = _mid(played)
    replay = replayed_to(system, instant, tmp_path_factory.mktemp("search"))
    client = _client_of(system, "duty-tt-search")
    word = _common_word(replay)
    answered = client.get("/search", params={"q": word, "limit": 100,
                                             "as_of": instant.isoformat()})
    assert answered.status_code == 200, answered.text
    assert datetime.fromisoformat(answered.headers[AS_OF_HEADER]) == instant
    past = answered.json()
    read_models = ReadModels(replay, list(system.read_models.tables.values()))
    query = parse_query(word, gazetteer_of(system))
    for key, target in (("grid_cases", GRID_CASES), ("hotline_tickets", HOTLINE_TICKETS),
                        ("incidents", INCIDENTS)):
        expected = search_rows(read_models, target, query, filters={}, extra_where=[],
                               limit=100, offset=0, locate=_locate(system))
        assert past[key]["count"] == expected.total, key
        assert [(i["id"], i["version"]) for i in past[key]["data"]] == [
            (d["id"], d["version"]) for d in expected.items], key
    assert past["grid_cases"]["count"] > 0
    lights = {d["id"]: case_light(d, instant) for d in search_rows(
        read_models, GRID_CASES, query, filters={}, extra_where=[], limit=100, offset=0,
        locate=_locate(system)).items}
    assert {i["id"]: i["light"] for i in past["grid_cases"]["data"]} == {
        k: (v.value if v else None) for k, v in lights.items()}
    now = client.get("/search", params={"q": word, "limit": 100}).json()
    assert AS_OF_HEADER not in client.get("/search", params={"q": word}).headers
    assert [(i["id"], i["version"]) for i in now["grid_cases"]["data"]] != [
        (i["id"], i["version"]) for i in past["grid_cases"]["data"]]
    replay.close()


def _open311_expected(system: CitySystem, replay: Any, instant: datetime
                      ) -> dict[str, dict[str, Any]]:
    """The Open311 requests a replay to T holds, in the default window (the 90 days up to
    T), each as the spec's JSON renders it: the independent oracle of GET requests at T."""
    from cityops.command_center.open311 import Format, case_as_request, render
    from cityops.command_center.routers.open311 import Open311State

    state = Open311State(system)
    services = state.services.services
    start = instant - timedelta(days=90)
    with replay.transaction() as txn:
        txn.execute("SELECT doc, created_at, updated_at FROM rm_grid_cases")
        rows = txn.fetchall()
    expected = [case_as_request(_normal(doc), created, updated, state.context)
                for doc, created, updated in rows
                if _normal(doc)["category"] in services
                and start <= datetime.fromisoformat(created) <= instant]
    rendered = json.loads(render(Format.JSON, "service_requests", "request", expected))
    return {r["service_request_id"]: r for r in rendered}


@pytest.mark.parametrize("played", BACKENDS, indirect=True)
def test_open311_requests_as_of_t_are_those_a_replay_to_t_holds(
    played: tuple[CitySystem, SimulatedClock], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 12, item 1: the Open311 GETs took no `as_of`. At T, GET Service Requests
    answers the requests of a replay to T (their status and dates then), newest first, and
    GET Service Request one of them as it stood; a request reported after T is not found.
    Public, with no login, and still the spec's JSON and XML."""
    system, _ = played
    instant = _mid(played)
    replay = replayed_to(system, instant, tmp_path_factory.mktemp("open311"))
    client = TestClient(create_app(system, manage_lifecycle=False))
    as_of = {"as_of": instant.isoformat()}
    listed = client.get("/open311/v2/requests.json", params=as_of)
    assert listed.status_code == 200, listed.text
    assert listed.headers["content-type"].startswith("application/json")
    assert datetime.fromisoformat(listed.headers[AS_OF_HEADER]) == instant
    expected = _open311_expected(system, replay, instant)
    answered = {r["service_request_id"]: r for r in listed.json()}
    assert answered == expected
    assert len(answered) > 5
    stamps = [r["requested_datetime"] for r in listed.json()]
    assert stamps == sorted(stamps, reverse=True)
    now = {r["service_request_id"]: r for r in
           client.get("/open311/v2/requests.json").json()}
    changed = next(i for i, r in answered.items()
                   if i in now and now[i]["updated_datetime"] != r["updated_datetime"])
    one = client.get(f"/open311/v2/requests/{changed}.json", params=as_of)
    assert one.status_code == 200, one.text
    assert one.json() == [expected[changed]]
    assert client.get(f"/open311/v2/requests/{changed}.json").json() == [now[changed]]
    by_ids = client.get("/open311/v2/requests.json",
                        params={**as_of, "service_request_id": changed})
    assert by_ids.json() == [expected[changed]]
    xml = client.get(f"/open311/v2/requests/{changed}.xml", params=as_of)
    assert xml.status_code == 200 and xml.headers["content-type"].startswith("text/xml")
    assert f"<service_request_id>{changed}</service_request_id>" in xml.text
    later = next(i for i in now if i not in answered
                 and now[i]["requested_datetime"] > instant.isoformat())
    missing = client.get(f"/open311/v2/requests/{later}.json", params=as_of)
    assert missing.status_code == 404, missing.text
    assert missing.json() == [{"code": 404, "description":
                               f"service_request_id {later!r} was not found"}]
    replay.close()


@pytest.mark.parametrize("played", BACKENDS, indirect=True)
def test_an_open311_request_and_its_token_did_not_exist_before_it_was_posted(
    played: tuple[CitySystem, SimulatedClock]
) -> None:
    """A request POSTed now: at an earlier T neither its token nor the request is there
    (404, the spec's list), as of now both are; the services answer the same at every T."""
    from cityops.domain.accounts.commands import IssueApiKey

    system, clock = played
    issued = IssueApiKey.new(f"tt-app-{uuid.uuid4().hex[:6]}")
    system.accounts.handle(issued, CommandContext(actor=Actor("admin-tt", Role.ADMIN)))
    client = TestClient(create_app(system, manage_lifecycle=False))
    posted = client.post("/open311/v2/requests.json", data={
        "api_key": issued.key, "service_code": "C0105", "lat": "32.05", "long": "118.80",
        "description": "The street lamp at the corner is out (time travel)"})
    assert posted.status_code == 201, posted.text
    request_id, token = posted.json()[0]["service_request_id"], posted.json()[0]["token"]
    system.catch_up()
    earlier = {"as_of": _mid(played).isoformat()}
    now = {"as_of": clock().isoformat()}
    for path in (f"/open311/v2/tokens/{token}.json", f"/open311/v2/requests/{request_id}.json"):
        assert client.get(path, params=earlier).status_code == 404, path
        found = client.get(path, params=now)
        assert found.status_code == 200, (path, found.text)
        assert found.json()[0]["service_request_id"] == request_id
    assert request_id in {r["service_request_id"] for r in
                          client.get("/open311/v2/requests.json", params=now).json()}
    services = client.get("/open311/v2/services.json")
    assert client.get("/open311/v2/services.json", params=earlier).json() == services.json()
    assert client.get("/open311/v2/services/C0105.xml", params=earlier).text == \
        client.get("/open311/v2/services/C0105.xml").text


@pytest.mark.parametrize("played", BACKENDS, indirect=True)
def test_a_hazard_source_at_t_shows_no_reading_measured_after_t(
    played: tuple[CitySystem, SimulatedClock]
) -> None:
    """A hazard source as it stood at T showed its sensors' latest readings of now (measured
    after T): at T it shows those measured by then (each still the latest then) and its
    alarms as they stood."""
    system, _ = played
    instant = _mid(played)
    client = _client_of(system, "duty-tt-hazards")
    sources = client.get("/hazard-sources", params={"limit": 500}).json()["data"]
    seen_later = seen_kept = 0
    for source in sources:
        now = client.get(f"/hazard-sources/{source['id']}").json()
        then = client.get(f"/hazard-sources/{source['id']}",
                          params={"as_of": instant.isoformat()})
        if then.status_code == 404:
            continue
        assert then.status_code == 200, then.text
        expected = {sensor: reading for sensor, reading in now["latest_readings"].items()
                    if datetime.fromisoformat(reading["measured_at"]) <= instant}
        assert then.json()["latest_readings"] == expected
        assert then.json()["version"] == PastRepository(system.hazards, instant).get(
            UUID(source["id"])).version
        seen_later += len(now["latest_readings"]) - len(expected)
        seen_kept += len(expected)
    assert seen_later > 0  # not vacuous: readings measured after T were left out


def test_the_cli_covers_every_stream_the_api_answers_as_of(api: TestClient) -> None:
    """`cityops history at` has a layer for every stream whose list the API answers at T,
    by the same name, and reads single items through the API's own item routes."""
    from cityops.accounts_cli import cli_actor
    from cityops.projections.city_at import LAYERS
    from cityops.time_travel_cli import item_readers

    spec = api.get("/openapi.json").json()
    listed = {path.strip("/") for path, operations in spec["paths"].items()
              if path.count("/") == 1 and "get" in operations
              and any(p["name"] == "as_of" for p in operations["get"].get("parameters", []))
              and path not in ("/search",)}
    assert listed == set(LAYERS)
    assert set(item_readers(cli_actor())) == set(LAYERS)


def test_the_cli_shows_items_and_their_histories_as_of_t_as_the_api_does(
    api: TestClient, played: tuple[CitySystem, SimulatedClock]
) -> None:
    """Issue 12, item 1: the CLI had no single item nor history at T (the API has both):
    `--item ID` shows each as the API's item and history routes answer at T."""
    from typer.testing import CliRunner

    from cityops.cli import app as cli

    system, _ = played
    instant = _mid(played)
    as_of = {"as_of": instant.isoformat()}
    case = next(c for c in api.get("/grid-cases", params={**as_of, "limit": 500}).json()["data"]
                if api.get(f"/grid-cases/{c['id']}").json()["version"] > c["version"])
    incident = api.get("/incidents", params={**as_of, "limit": 1}).json()["data"][0]
    resource = api.get("/resources", params={**as_of, "limit": 1}).json()["data"][0]
    later = next(c for c in api.get("/grid-cases", params={"limit": 500}).json()["data"]
                 if api.get(f"/grid-cases/{c['id']}", params=as_of).status_code == 404)
    env = {"CITYOPS_DATA_DIR": str(system.settings.data_dir)}
    runner = CliRunner()
    args = ["history", "at", instant.isoformat(), "--layer", "incidents", "--json"]
    for item_id in (case["id"], incident["id"], resource["id"], later["id"]):
        args += ["--item", item_id]
    shown = runner.invoke(cli, args, env=env)
    assert shown.exit_code == 0, shown.output
    items = json.loads(shown.output)["items"]
    assert [i["layer"] for i in items] == ["grid-cases", "incidents", "resources", None]
    for shown_item, path in zip(items[:3], (f"/grid-cases/{case['id']}",
                                           f"/incidents/{incident['id']}",
                                           f"/resources/{resource['id']}"), strict=True):
        then = api.get(path, params=as_of).json()
        assert (shown_item["item"]["version"], shown_item["item"]["status"]) == (
            then["version"], then["status"]), path
        if shown_item["history"] is not None:
            history = api.get(f"{path}/history", params=as_of).json()
            assert [(e["event"], e["version"], e["at"]) for e in shown_item["history"]] == [
                (e["event"], e["version"], e["at"]) for e in history]
    assert items[0]["item"]["version"] == case["version"]  # not now's
    assert items[0]["item"]["light"] == api.get(f"/grid-cases/{case['id']}",
                                                params=as_of).json()["light"]
    assert items[3]["item"] is None
    text = runner.invoke(cli, ["history", "at", instant.isoformat(), "--layer", "incidents",
                               "--item", case["id"]], env=env)
    assert text.exit_code == 0 and f"grid-cases {case['id']}" in text.output, text.output
    refused = runner.invoke(cli, ["history", "at", instant.isoformat(), "--item", "case-7"],
                            env=env)
    assert refused.exit_code == 2 and "--item takes an item's id" in refused.output
