"""A snapshot passes the documents on as the database writes them (issue 14: decoding and
encoding 6,000 documents again was three fifths of a snapshot at 1,000,000 grid cases), with
a grid case's light computed in SQL: the same features, properties and lights as the
documents decoded, on SQLite and on PostgreSQL, at the instants where lights turn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cityops.bootstrap import CitySystem
from cityops.command_center.live import LiveHub, Subscription, _dumps
from cityops.domain.actors import Actor, Role
from cityops.projections.live_changes import LIVE_LAYERS
from cityops.settings import Settings
from cityops.simulator import build_demo

DISPATCHER = Actor("snapshot-dispatcher", Role.DISPATCHER)


def simulated_day(settings: Settings) -> CitySystem:
    system, demo = build_demo(settings, seed=7, speed=0.0, today=date(2026, 11, 24))
    demo.run_until(demo.start + timedelta(hours=10))
    system.catch_up()
    return system


@pytest.fixture(scope="module")
def sqlite_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CitySystem]:
    system = simulated_day(Settings(data_dir=tmp_path_factory.mktemp("snapshot-text"),
                                    run_projections=False))
    yield system
    system.close()


def turning_instants(system: CitySystem) -> list[datetime]:
    """Now, and the instants (and a microsecond either side) of a few cases' turns."""
    found = [system.clock()]
    with system.read_models.store.transaction() as txn:
        txn.execute("SELECT yellow_at, red_at FROM rm_grid_cases WHERE is_open "
                    "AND yellow_at IS NOT NULL ORDER BY id LIMIT 3")
        for row in txn.fetchall():
            for text in row:
                moment = datetime.fromisoformat(text)
                found += [moment - timedelta(microseconds=1), moment,
                          moment + timedelta(microseconds=1)]
    return found


def rows_of(system: CitySystem, table: str) -> int:
    with system.read_models.store.transaction() as txn:
        txn.execute(f"SELECT count(*) FROM {table}")
        row = txn.fetchone()
    assert row is not None
    return int(row[0])


def assert_as_written_equals_decoded(system: CitySystem) -> None:
    hub = LiveHub(system)
    store = system.generations.active().store
    everything = Subscription(frozenset(LIVE_LAYERS))
    lights: set[Any] = set()
    for now in turning_instants(system):
        for layer in LIVE_LAYERS.values():
            written, matched = hub._features(store, layer, everything, DISPATCHER, now,
                                             as_written=True)
            decoded, counted = hub._features(store, layer, everything, DISPATCHER, now)
            assert matched == counted == rows_of(system, layer.table), layer.id
            assert json.loads(_dumps({"f": written})) == json.loads(_dumps({"f": decoded})), (
                layer.id, now)
            if layer.lights:
                lights |= {f["properties"]["light"] for f in decoded}
    assert {"green", "yellow", "red"} <= lights


def test_the_documents_as_written_are_the_documents_decoded_on_sqlite(
        sqlite_day: CitySystem) -> None:
    assert_as_written_equals_decoded(sqlite_day)


@pytest.mark.postgres
def test_the_documents_as_written_are_the_documents_decoded_on_postgres(
        fresh_database: str, tmp_path: Path) -> None:
    system = simulated_day(Settings(data_dir=tmp_path, database_url=fresh_database,
                                    run_projections=False))
    try:
        assert_as_written_equals_decoded(system)
    finally:
        system.close()
