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

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.command_center.time_travel import AS_OF_HEADER, past_store
from cityops.projections.follower import Follower
from cityops.projections.history import HistoryTable
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


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory, demo_city: Any,
           request: pytest.FixtureRequest) -> Iterator[tuple[CitySystem, SimulatedClock]]:
    """A system that played the first hours of a demo day (every stream, moving vehicles),
    on the back end of the test's parameter."""
    backend = request.param
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        settings_ = Settings(database_url=url, database_pool_size=2, run_projections=False,
                             database_schema=f"tt_{uuid.uuid4().hex[:10]}")
    else:
        settings_ = Settings(data_dir=tmp_path_factory.mktemp("store"),
                             run_projections=False)
    clock = SimulatedClock(datetime(2026, 3, 1, tzinfo=UTC), 0.0)
    system = build_system(settings_, clock=clock, city=demo_city)
    start = demo_day_start(system, DAY)
    clock.advance_to(start)
    demo = DemoDay(system, clock, start, seed=7)
    demo.plan()
    demo.run_until(start + timedelta(hours=DEMO_HOURS))
    system.catch_up()
    yield system, clock
    system.close()


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
