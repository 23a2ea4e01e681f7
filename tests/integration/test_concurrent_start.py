"""Several server processes starting at the same instant on a fresh PostgreSQL database:
their start-up creates the event stores, the read models and the other tables at once, and
none of them may fail ("tuple concurrently updated", duplicate types or schemas) or find a
table half there. Each round starts three systems together on a schema nobody has used."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import ReportCase
from cityops.settings import Settings

ROUNDS = 4
AT_ONCE = 3
INSPECTOR = Actor("insp-start", Role.INSPECTOR)


def test_systems_starting_at_once_on_a_fresh_database_all_start(
        fresh_database: str, tmp_path: Path, demo_city: Any) -> None:
    for round_number in range(ROUNDS):
        # Round 0 starts in the database's default schema, the others each in a new one.
        schema = None if round_number == 0 else f"start_round_{round_number}"
        settings = Settings(data_dir=tmp_path / f"round-{round_number}",
                            database_url=fresh_database, database_schema=schema,
                            database_pool_size=2)
        ready = threading.Barrier(AT_ONCE)

        def start(_: int, settings: Settings = settings,
                  ready: threading.Barrier = ready) -> CitySystem:
            ready.wait(timeout=60)
            return build_system(settings, city=demo_city)

        with ThreadPoolExecutor(AT_ONCE) as pool:
            outcomes = [pool.submit(start, n) for n in range(AT_ONCE)]
            systems: list[CitySystem] = []
            errors: list[BaseException] = []
            for outcome in outcomes:
                try:
                    systems.append(outcome.result(timeout=300))
                except Exception as error:  # every failure is reported below, not the first
                    errors.append(error)
        try:
            assert not errors, f"round {round_number}: {len(errors)} of {AT_ONCE} starts " \
                               f"failed: {errors!r}"
            # The systems work on what they created together: one records, another reads.
            case = systems[0].grid_cases.handle(
                ReportCase(source="inspector", category="E0101", description="Start-up check",
                           location=GeoPoint(118.80, 32.05)),
                CommandContext(actor=INSPECTOR)).subject
            systems[-1].catch_up()
            shown = systems[-1].read_models.get("rm_grid_cases", str(case))
            assert shown is not None and shown["id"] == str(case)
        finally:
            for system in systems:
                system.close()
    # Every round's schema got its own event stores (nothing was created twice elsewhere).
    with psycopg.connect(fresh_database) as connection:
        rows = connection.execute(
            "SELECT table_schema, count(*) FROM information_schema.tables "
            "WHERE table_name = 'gridcases_events' GROUP BY table_schema").fetchall()
    assert sorted(rows) == sorted([("public", 1)] + [(f"start_round_{n}", 1)
                                                     for n in range(1, ROUNDS)])
