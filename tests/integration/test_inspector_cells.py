"""An inspector's verification tasks on each storage back end (issue 9, item 6): the handled
cases in their cells that the centre assigned to nobody else, and those assigned to them (a
filter on a fact of the rows' documents, written in each database's own JSON SQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.routers.field import verification_tasks
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.gridcases.commands import (
    AssignCaseVerifier,
    DispatchCase,
    HandleCase,
    RegisterCase,
    ReportCase,
)
from cityops.settings import Settings

DISPATCHER = Actor("disp-1", Role.DISPATCHER)
SANITATION = Actor("san-1", Role.DEPARTMENT_USER, "sanitation")
ZHANG, WANG = "insp-D01-01", "insp-D01-02"


def handled_case(system: CitySystem, cell: str, n: int) -> UUID:
    centre = system.city.map.cell(cell).centre
    case_id = system.grid_cases.handle(
        ReportCase(source="inspector", category="E0101", description=f"heap {n}", location=centre),
        CommandContext(actor=Actor(system.city.map.inspector_of(cell), Role.INSPECTOR))).subject
    system.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
    system.grid_cases.handle(
        DispatchCase(case_id=case_id, department="sanitation"),
        CommandContext(actor=DISPATCHER))
    system.grid_cases.handle(
        HandleCase(case_id=case_id, result="cleared"),
        CommandContext(actor=SANITATION))
    return case_id


class TasksContract:
    @pytest.fixture
    def system(self) -> Iterator[CitySystem]:
        raise NotImplementedError

    def test_tasks_are_own_cells_unless_assigned_elsewhere_and_the_assigned_ones(
            self, system: CitySystem) -> None:
        city_map = system.city.map
        mine, theirs = city_map.cells_of_inspector(ZHANG), city_map.cells_of_inspector(WANG)
        own = handled_case(system, mine[0], 1)
        given_away = handled_case(system, mine[1], 2)
        given_to_me = handled_case(system, theirs[0], 3)
        kept = handled_case(system, theirs[1], 4)
        system.grid_cases.handle(
            AssignCaseVerifier(case_id=given_away, inspector=WANG),
            CommandContext(actor=DISPATCHER))
        system.grid_cases.handle(
            AssignCaseVerifier(case_id=given_to_me, inspector=ZHANG),
            CommandContext(actor=DISPATCHER))
        system.catch_up()

        def ids(inspector: str, cells: list[str]) -> set[str]:
            page = verification_tasks(system.read_models, inspector, cells, 50, 0)
            assert page.total == len(page.items)
            return {d["id"] for d in page.items}

        assert ids(ZHANG, mine) == {str(own), str(given_to_me)}
        assert ids(WANG, theirs) == {str(given_away), str(kept)}
        assert ids("insp-D02-01", []) == set()


class TestSqlite(TasksContract):
    @pytest.fixture
    def system(self, tmp_path: Path, demo_city: Any) -> Iterator[CitySystem]:
        built = build_system(Settings(data_dir=tmp_path / "store"), city=demo_city)
        yield built
        built.close()


@pytest.mark.postgres
class TestPostgres(TasksContract):
    @pytest.fixture
    def system(self, fresh_database: str, demo_city: Any) -> Iterator[CitySystem]:
        built = build_system(Settings(database_url=fresh_database, database_pool_size=2),
                             city=demo_city)
        yield built
        built.close()
