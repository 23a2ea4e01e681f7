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
