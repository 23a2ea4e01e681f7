"""One event that cannot be projected must not stop a read model for the whole city (issue 10,
item 1), on each back end.

The reproduction: a department asked for an extension to 9999-12-31T23:59:59Z and a dispatcher
approved it; `ExtensionApproved` was stored and the grid-case projection failed on it on every
round, across restarts, so new cases never reached the lists. The domain now refuses such a
deadline, so the event is written here as an older version of the code wrote it: straight
onto the aggregate, past the command's checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cityops.bootstrap import CitySystem, build_system
from cityops.command_center.app import create_app
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import GridCase
from cityops.domain.gridcases.commands import DispatchCase, HandleCase, RegisterCase, ReportCase
from cityops.projections.cli import app as projections_cli
from cityops.settings import Settings

INSPECTOR = Actor("insp-D01-01", Role.INSPECTOR)
DISPATCHER = Actor("disp-1", Role.DISPATCHER)
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
SystemFactory = Callable[[], CitySystem]


def _points(system: CitySystem, count: int) -> list[GeoPoint]:
    cells = system.city.map.cells
    step = max(1, len(cells) // count)
    found = []
    for index in range(0, step * count, step):
        centre = cells.geometry.iloc[index].representative_point()
        found.append(GeoPoint(lon=centre.x, lat=centre.y))
    return found


def _report(system: CitySystem, point: GeoPoint) -> UUID:
    return system.grid_cases.handle(
        ReportCase(source="inspector", category="E0101", description="garbage heap by the bus stop",
                   location=point),
        CommandContext(actor=INSPECTOR)).subject


def _listed(system: CitySystem) -> set[str]:
    page = system.read_models.page("rm_grid_cases", limit=500)
    return {item["id"] for item in page.items}


def _health(system: CitySystem) -> dict[str, Any]:
    with TestClient(create_app(system, manage_lifecycle=False)) as client:
        response = client.get("/health")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _store_unprojectable_extension(system: CitySystem, case_id: UUID) -> None:
    """What the old code let through: an approved extension to the end of year 9999."""
    case = system.grid_cases.case(case_id)
    case.record(GridCase.ExtensionApproved, actor=DISPATCHER,
                at=system.grid_cases.clock(), deadline=FAR_FUTURE)
    system.grid_cases.save(case)


class IsolationContract:
    """What every back end must do with an aggregate the projection cannot project."""

    @pytest.fixture
    def make_system(self) -> Iterator[SystemFactory]:
        raise NotImplementedError

    @pytest.fixture
    def cli_env(self) -> dict[str, str]:
        raise NotImplementedError

    def test_one_unprojectable_case_does_not_stop_the_others_and_recovers_when_corrected(
        self, make_system: SystemFactory, cli_env: dict[str, str]
    ) -> None:
        system = make_system()
        first, second, third = _points(system, 3)
        broken = _report(system, first)
        system.grid_cases.handle(RegisterCase(case_id=broken), CommandContext(actor=DISPATCHER))
        system.grid_cases.handle(DispatchCase(case_id=broken), CommandContext(actor=DISPATCHER))
        department = system.grid_cases.case(broken).department
        system.catch_up()
        _store_unprojectable_extension(system, broken)
        later = _report(system, second)

        system.catch_up()  # used to raise OverflowError here, on every round

        assert str(later) in _listed(system)
        row = system.read_models.get("rm_grid_cases", str(broken))
        assert row is not None and row["status"] == "dispatched"
        assert row["handling_deadline"] != FAR_FUTURE.isoformat()  # its last good state
        health = _health(system)
        assert health["status"] == "degraded"
        [failing] = health["failing_aggregates"]
        assert failing["aggregate_id"] == str(broken)
        assert failing["stream"] == "gridcases"
        assert "OverflowError" in failing["error"]
        assert health["projection_lag"]["gridcases"] == 0
        status = CliRunner().invoke(projections_cli, ["status", "--json"], env=cli_env)
        assert status.exit_code == 0, status.output
        [listed] = json.loads(status.output)["failing_aggregates"]
        assert (listed["aggregate_id"], listed["stream"]) == (str(broken), "gridcases")

        # A restart does not bring the stop back: the new process tries the case again,
        # keeps it aside, and every other case keeps flowing.
        restarted = make_system()
        newest = _report(restarted, third)
        restarted.catch_up()
        assert str(newest) in _listed(restarted)
        [again] = [mark for f in restarted.followers for mark in f.failing()]
        assert again.aggregate_id == str(broken)
        assert again.attempts >= 2

        # The department reports the case handled: the event that corrects it. The case is
        # projected again, from the event it failed on, and its mark is cleared.
        user = Actor("dept-1", Role.DEPARTMENT_USER, department)
        restarted.grid_cases.handle(
            HandleCase(case_id=broken, result="cleared"),
            CommandContext(actor=user))
        restarted.catch_up()
        row = restarted.read_models.get("rm_grid_cases", str(broken))
        assert row is not None and row["status"] == "handled"
        assert row["handling_deadline"] == FAR_FUTURE.isoformat()
        assert row["extension_count"] == 1
        health = _health(restarted)
        assert health["status"] == "ok"
        assert health["failing_aggregates"] == []
        # Its history has no version for the state the projection could not compute: the
        # dispatched version stays in force until the case was handled.
        with restarted.read_models.store.transaction() as txn:
            txn.execute("SELECT since_version, status, valid_to FROM rm_grid_cases_history "
                        "WHERE id = %s ORDER BY since_version", (str(broken),))
            versions = [tuple(found) for found in txn.fetchall()]
        statuses = [status for _, status, _ in versions]
        assert statuses[-2:] == ["dispatched", "handled"]
        assert 4 not in [since for since, _, _ in versions]
        handled_from = restarted.grid_cases.case(broken).modified_on
        assert versions[-2][2] == handled_from.isoformat()

    def test_a_fixed_projection_projects_the_case_set_aside_at_its_restart(
        self, make_system: SystemFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        system = make_system()
        point = _points(system, 1)[0]
        broken = _report(system, point)
        system.grid_cases.handle(RegisterCase(case_id=broken), CommandContext(actor=DISPATCHER))
        system.grid_cases.handle(DispatchCase(case_id=broken), CommandContext(actor=DISPATCHER))
        _store_unprojectable_extension(system, broken)
        system.catch_up()
        assert _health(system)["status"] == "degraded"

        # The fix is deployed: the projection now shows such a case without lights.
        from cityops.projections import views

        original = views.turning_points

        def tolerant(*args: Any, **kwargs: Any) -> Any:
            try:
                return original(*args, **kwargs)
            except OverflowError:
                return None

        monkeypatch.setattr(views, "turning_points", tolerant)
        restarted = make_system()
        restarted.catch_up()
        row = restarted.read_models.get("rm_grid_cases", str(broken))
        assert row is not None
        assert row["handling_deadline"] == FAR_FUTURE.isoformat()
        assert row["extension_count"] == 1
        assert _health(restarted)["failing_aggregates"] == []


class TestSqlite(IsolationContract):
    @pytest.fixture
    def cli_env(self, tmp_path: Path) -> dict[str, str]:
        return {"CITYOPS_DATA_DIR": str(tmp_path / "store")}

    @pytest.fixture
    def make_system(self, tmp_path: Path, demo_city: Any) -> Iterator[SystemFactory]:
        systems: list[CitySystem] = []

        def make() -> CitySystem:
            system = build_system(Settings(data_dir=tmp_path / "store"), city=demo_city)
            systems.append(system)
            return system

        yield make
        for system in systems:
            system.close()


@pytest.mark.postgres
class TestPostgres(IsolationContract):
    @pytest.fixture
    def cli_env(self, fresh_database: str) -> dict[str, str]:
        return {"CITYOPS_DATABASE_URL": fresh_database, "CITYOPS_DATABASE_POOL_SIZE": "2"}

    @pytest.fixture
    def make_system(self, fresh_database: str, demo_city: Any) -> Iterator[SystemFactory]:
        systems: list[CitySystem] = []

        def make() -> CitySystem:
            system = build_system(
                Settings(database_url=fresh_database, database_pool_size=2), city=demo_city
            )
            systems.append(system)
            return system

        yield make
        for system in systems:
            system.close()
