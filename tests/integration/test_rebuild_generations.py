"""Rebuilding the read models without downtime, written once and run on SQLite and on
PostgreSQL. Two `CitySystem`s on the same stores stand for two processes: one serves and
follows (its projection thread runs), the other rebuilds (as `cityops projections rebuild`
does). While generation 2 is built, generation 1 keeps serving and keeps following new
events; at the switch-over the serving process moves to generation 2, which then holds the
same rows as generation 1 would, events recorded during the build included."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import (
    DispatchCase,
    RegisterCase,
    ReportCase,
    ReturnCaseToCentre,
)
from cityops.projections.cli import app as projections_cli
from cityops.projections.follower import is_secondary_index
from cityops.projections.generations import (
    GenerationError,
    GenerationState,
    PostgresGenerations,
    ReadModelGenerations,
    SqliteGenerations,
    rebuild,
)
from cityops.settings import Settings

INSPECTOR = Actor("insp-1", Role.INSPECTOR)
DISPATCHER = Actor("disp-1", Role.DISPATCHER)
SystemFactory = Callable[..., CitySystem]


def eventually(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Whether `condition` becomes true within `timeout_s` (checked every 20 ms)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def points(system: CitySystem, count: int) -> list[GeoPoint]:
    cells = system.city.map.cells
    step = max(1, len(cells) // count)
    found = []
    for index in range(count):
        centre = cells.geometry.iloc[index * step].representative_point()
        found.append(GeoPoint(lon=centre.x, lat=centre.y))
    return found


def record_cases(system: CitySystem, where: list[GeoPoint]) -> list[str]:
    """Report, register and dispatch a case at each point (some returned and redispatched)."""
    ids = []
    for index, point in enumerate(where):
        case_id = system.grid_cases.handle(
            ReportCase(source="inspector", category="E0101", description="garbage heap",
                       location=point),
            CommandContext(actor=INSPECTOR)).subject
        system.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
        system.grid_cases.handle(DispatchCase(case_id=case_id), CommandContext(actor=DISPATCHER))
        if index % 3 == 0:
            department = system.grid_cases.case(case_id).department
            system.grid_cases.handle(
                ReturnCaseToCentre(case_id=case_id, reason="not ours",
                                   suggested_department=("roads" if department != "roads"
                                                         else "sanitation")),
                CommandContext(actor=Actor("dept-1", Role.DEPARTMENT_USER, department)))
        ids.append(str(case_id))
    return ids


def all_rows(generations: ReadModelGenerations, number: int) -> dict[str, list[Any]]:
    """Every row of every read-model table of generation `number`, caught up first."""
    generation = generations.open(number)
    try:
        generation.catch_up()
        rows = {}
        with generation.store.transaction() as txn:
            for group in generations.tables.values():
                for table in group:
                    txn.execute(f"SELECT * FROM {table.table}")
                    rows[table.table] = sorted(
                        (tuple(json.dumps(v, sort_keys=True, default=str)
                               if isinstance(v, dict) else v for v in row)
                         for row in txn.fetchall()), key=repr)
        return rows
    finally:
        generation.close()


class RebuildContract:
    """The behaviour of a rebuild on every back end."""

    @pytest.fixture
    def make_system(self) -> Iterator[SystemFactory]:
        raise NotImplementedError

    @pytest.fixture
    def cli_env(self) -> dict[str, str]:
        raise NotImplementedError

    def generation_exists(self, system: CitySystem, number: int) -> bool:
        raise NotImplementedError

    def index_names(self, system: CitySystem, number: int) -> set[str]:
        raise NotImplementedError

    def test_a_rebuild_writes_the_rows_first_and_indexes_them_before_it_serves(
        self, make_system: SystemFactory
    ) -> None:
        """Keeping each secondary index up to date row by row was most of a rebuild's
        writing (issue 14): they are built over the rows once they are written."""
        system = make_system()
        record_cases(system, points(system, 4))
        system.catch_up()
        secondary = {statement.split()[5]
                     for tables in system.generations.tables.values() for table in tables
                     for statement in table.ddl(system.generations.store().dialect)
                     if is_secondary_index(statement)}
        assert len(secondary) > 20
        serving = self.index_names(system, 1)
        assert secondary <= serving
        building = system.generations.begin_rebuild()
        assert self.index_names(system, building.number) == serving - secondary
        result = rebuild(system.generations, generation=building)
        assert result.generation == 2
        assert self.index_names(system, 2) == serving
        assert all_rows(system.generations, 2) == all_rows(system.generations, 1)

    def test_the_old_generation_serves_and_follows_until_the_switch(
        self, make_system: SystemFactory
    ) -> None:
        serving = make_system(run_projections=True, projection_poll_interval_s=0.05)
        where = points(serving, 14)
        before = record_cases(serving, where[:8])
        serving.catch_up()
        serving.start_projections()
        rebuilding = make_system()
        during: list[str] = []

        def while_building(done: int, total: int) -> None:
            if during or done == 0:
                return
            # Mid-build: the serving process still reads and follows generation 1.
            assert serving.generations.refresh().number == 1
            during.extend(record_cases(serving, where[8:]))
            assert eventually(lambda: serving.read_models.page(
                "rm_grid_cases", limit=100).total == len(before) + len(during))

        result = rebuild(rebuilding.generations, batch_size=3, progress=while_building)
        assert during, "the rebuild went in one batch: nothing was recorded during it"
        assert (result.generation, result.retired, result.dropped) == (2, 1, None)
        assert result.events > 0 and result.events_per_second > 0
        # The serving process notices the switch and follows generation 2 from there on.
        assert serving.generations.refresh().number == 2
        after = record_cases(serving, where[:1])
        expected = {*before, *during, *after}
        assert eventually(lambda: {d["id"] for d in serving.read_models.page(
            "rm_grid_cases", limit=100).items} == expected)
        assert eventually(lambda: all(p.lag == 0 for p in serving.generations.progress_of(2)))
        states = {r.number: r.state for r in serving.generations.registry.records()}
        assert states == {1: GenerationState.RETIRED, 2: GenerationState.ACTIVE}
        # Generation 2 holds exactly the rows generation 1 holds once it has caught up.
        assert all_rows(serving.generations, 2) == all_rows(serving.generations, 1)
        figures = serving.statistics.city(serving.grid_cases.clock())
        assert figures.reported == len(expected)
        # Every third case of each batch recorded was returned: 3 of 8, 2 of 6, 1 of 1.
        assert figures.dispatches.returned == 3 + 2 + 1

    def test_an_interrupted_rebuild_resumes_and_a_restart_starts_over(
        self, make_system: SystemFactory
    ) -> None:
        system = make_system()
        record_cases(system, points(system, 6))
        system.catch_up()
        expected = all_rows(system.generations, 1)
        first = make_system()
        building = first.generations.begin_rebuild()
        for follower in building.followers:
            follower.process_batch(size=2)
        assert sum(p.position for p in building.progress()) > 0
        first.close()  # the rebuild process dies
        resumed = make_system()
        result = rebuild(resumed.generations, batch_size=4)
        assert result.generation == building.number == 2
        assert all_rows(resumed.generations, 2) == expected
        # A rebuild that is restarted drops its unfinished generation and takes a new one.
        unfinished = resumed.generations.begin_rebuild()
        assert unfinished.number == 3
        unfinished.followers[0].process_batch(size=2)
        restarted = resumed.generations.begin_rebuild(restart=True)
        assert restarted.number == 4
        record = resumed.generations.registry.record(3)
        assert record.state is GenerationState.DROPPED
        assert not self.generation_exists(resumed, 3)
        result = rebuild(resumed.generations, generation=restarted, drop_old=True, drain_s=0)
        assert (result.generation, result.dropped) == (4, 2)
        assert not self.generation_exists(resumed, 2)
        assert all_rows(resumed.generations, 4) == expected

    def test_a_start_on_read_models_of_older_table_definitions_builds_new_ones(
        self, make_system: SystemFactory
    ) -> None:
        """An upgrade whose tables have a column more: the start failed on the old tables
        (`column "verified" does not exist`); it builds a generation from the events."""
        system = make_system()
        cases = record_cases(system, points(system, 5))
        system.catch_up()
        expected = all_rows(system.generations, 1)
        # Generation 1 as an older version of the code left it: its tickets had no reply
        # columns yet, and the registry holds that code's table definitions.
        with system.generations.active().store.transaction() as txn:
            txn.execute("DROP TABLE rm_tickets")
            txn.execute("CREATE TABLE rm_tickets (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
        with system.generations.registry.store.transaction() as txn:
            txn.execute("UPDATE projection_generations SET schema_digest = 'older' "
                        "WHERE generation = 1")
        system.close()
        upgraded = make_system()
        result = upgraded.generations.rebuilt_on_start
        assert result is not None and (result.generation, result.retired) == (2, 1)
        assert upgraded.generations.active().number == 2
        assert {d["id"] for d in upgraded.read_models.page(
            "rm_grid_cases", limit=100).items} == set(cases)
        assert all_rows(upgraded.generations, 2) == expected
        assert upgraded.statistics.hotline(upgraded.grid_cases.clock()).tickets == 0
        upgraded.close()
        again = make_system()
        assert again.generations.rebuilt_on_start is None
        assert again.generations.active().number == 2

    def test_a_start_replaces_an_unfinished_build_of_other_code(
        self, make_system: SystemFactory
    ) -> None:
        """Read models of older definitions and an interrupted rebuild by yet other code:
        the start refused (`being built by other code`, a stack trace); it starts over."""
        system = make_system()
        cases = record_cases(system, points(system, 3))
        system.catch_up()
        expected = all_rows(system.generations, 1)
        unfinished = system.generations.begin_rebuild()
        unfinished.followers[0].process_batch(size=1)
        with system.generations.registry.store.transaction() as txn:
            txn.execute("UPDATE projection_generations SET schema_digest = 'older'")
        system.close()
        upgraded = make_system()
        result = upgraded.generations.rebuilt_on_start
        assert result is not None and (result.generation, result.retired) == (3, 1)
        assert upgraded.generations.registry.record(2).state is GenerationState.DROPPED
        assert not self.generation_exists(upgraded, 2)
        assert all_rows(upgraded.generations, 3) == expected
        assert {d["id"] for d in upgraded.read_models.page(
            "rm_grid_cases", limit=100).items} == set(cases)

    def test_the_serving_generation_cannot_be_dropped(self, make_system: SystemFactory) -> None:
        system = make_system()
        with pytest.raises(GenerationError, match="serves reads"):
            system.generations.drop(1)
        building = system.generations.begin_rebuild()
        with pytest.raises(GenerationError, match="being built"):
            system.generations.drop(building.number)
        with pytest.raises(GenerationError, match="not being built"):
            system.generations.registry.activate(1)

    def test_the_commands_show_the_lag_rebuild_and_drop_the_old_generation(
        self, make_system: SystemFactory, cli_env: dict[str, str]
    ) -> None:
        writer = make_system()
        ids = record_cases(writer, points(writer, 4))
        runner = CliRunner()
        status = runner.invoke(projections_cli, ["status", "--json"], env=cli_env)
        assert status.exit_code == 0, status.output
        [generation] = json.loads(status.output)["generations"]
        assert (generation["generation"], generation["state"]) == (1, "active")
        lag = {p["application"]: p["lag"] for p in generation["projections"]}
        head = writer.grid_cases.recorder.max_notification_id()
        assert lag["gridcases"] == head and head > 0
        table = runner.invoke(projections_cli, ["status"], env=cli_env)
        assert table.exit_code == 0 and "gridcases" in table.output
        built = runner.invoke(projections_cli, ["rebuild", "--drop-old"], env=cli_env)
        assert built.exit_code == 0, built.output
        assert "Generation 2 serves reads now (was 1)" in built.output
        assert "events/s" in built.output
        assert "Generation 1 dropped." in built.output
        assert not self.generation_exists(writer, 1)
        status = runner.invoke(projections_cli, ["status", "--json"], env=cli_env)
        [generation] = json.loads(status.output)["generations"]
        assert (generation["generation"], generation["state"]) == (2, "active")
        assert all(p["lag"] == 0 for p in generation["projections"])
        # The writer's process reads generation 2 once it notices the switch.
        writer.generations.refresh()
        assert {d["id"] for d in writer.read_models.page("rm_grid_cases").items} == set(ids)
        refused = runner.invoke(projections_cli, ["drop", "2"], env=cli_env)
        assert refused.exit_code == 1 and "serves reads" in refused.output


class TestSqlite(RebuildContract):
    @pytest.fixture
    def make_system(self, tmp_path: Path, demo_city: Any) -> Iterator[SystemFactory]:
        systems: list[CitySystem] = []

        def make(**settings: Any) -> CitySystem:
            system = build_system(Settings(data_dir=tmp_path / "store", **settings),
                                  city=demo_city)
            systems.append(system)
            return system

        yield make
        for system in systems:
            system.close()

    @pytest.fixture
    def cli_env(self, tmp_path: Path) -> dict[str, str]:
        return {"CITYOPS_DATA_DIR": str(tmp_path / "store")}

    def generation_exists(self, system: CitySystem, number: int) -> bool:
        storage = system.generations.storage
        assert isinstance(storage, SqliteGenerations)
        return storage.path(number).exists()

    def index_names(self, system: CitySystem, number: int) -> set[str]:
        storage = system.generations.storage
        assert isinstance(storage, SqliteGenerations)
        with closing(sqlite3.connect(storage.path(number))) as connection:
            return {name for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND name NOT LIKE 'sqlite_autoindex%'")}


@pytest.mark.postgres
class TestPostgres(RebuildContract):
    @pytest.fixture
    def make_system(self, fresh_database: str, demo_city: Any) -> Iterator[SystemFactory]:
        systems: list[CitySystem] = []

        def make(**settings: Any) -> CitySystem:
            system = build_system(
                Settings(database_url=fresh_database, database_pool_size=2, **settings),
                city=demo_city)
            systems.append(system)
            return system

        yield make
        for system in systems:
            system.close()

    @pytest.fixture
    def cli_env(self, fresh_database: str) -> dict[str, str]:
        return {"CITYOPS_DATABASE_URL": fresh_database, "CITYOPS_DATABASE_POOL_SIZE": "2"}

    def generation_exists(self, system: CitySystem, number: int) -> bool:
        storage = system.generations.storage
        assert isinstance(storage, PostgresGenerations)
        with psycopg.connect(storage.url) as connection:
            row = connection.execute("SELECT count(*) FROM information_schema.schemata "
                                     "WHERE schema_name = %s",
                                     (storage.schema_of(number),)).fetchone()
        return bool(row and row[0])

    def index_names(self, system: CitySystem, number: int) -> set[str]:
        storage = system.generations.storage
        assert isinstance(storage, PostgresGenerations)
        with psycopg.connect(storage.url) as connection:
            return {name for (name,) in connection.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s",
                (storage.schema_of(number),))}

    def test_a_new_generation_gets_the_city_layers_before_it_serves(
        self, make_system: SystemFactory
    ) -> None:
        system = make_system()
        storage = system.generations.storage
        assert isinstance(storage, PostgresGenerations)
        building = system.generations.begin_rebuild()
        with psycopg.connect(storage.url) as connection:
            tables = {name for (name,) in connection.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (storage.schema_of(building.number),)).fetchall()}
        assert "rm_grid_cases" in tables
        assert any(name.startswith("map_") for name in tables), tables


def test_the_projection_process_follows_the_stores_and_a_switch_over(
    tmp_path: Path, demo_city: Any
) -> None:
    """`cityops projections run` as its own process: it follows what another process
    records, moves to the new generation when a rebuild switches over, and stops cleanly
    on SIGTERM."""
    data_dir = tmp_path / "store"
    writer = build_system(Settings(data_dir=data_dir), city=demo_city)
    env = {**os.environ, "CITYOPS_DATA_DIR": str(data_dir),
           "CITYOPS_PROJECTION_POLL_INTERVAL_S": "0.05"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from cityops.projections.cli import app; app()", "run",
         "--report-every", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        where = points(writer, 6)
        record_cases(writer, where[:3])

        def caught_up(number: int) -> bool:
            progress = writer.generations.progress_of(number)
            return all(p.lag == 0 for p in progress) and progress[0].position > 0

        assert eventually(lambda: caught_up(1), timeout_s=60), "generation 1 not followed"
        result = rebuild(writer.generations)
        assert result.generation == 2
        record_cases(writer, where[3:])
        head = writer.grid_cases.recorder.max_notification_id()
        # Only the projection process follows now: it must have moved to generation 2.
        assert eventually(lambda: writer.generations.progress_of(2)[0].position == head,
                          timeout_s=60), "generation 2 not followed after the switch"
        assert writer.read_models.page("rm_grid_cases").total == 6
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        writer.close()
    assert process.returncode == 0, output
    assert "Following 6 event stores" in output  # the five streams and the warnings
