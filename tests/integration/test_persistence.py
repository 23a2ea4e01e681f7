"""Storage behaviour, written once and run against each back end: the embedded SQLite files
and a real PostgreSQL server. Two `CitySystem`s built on the same stores stand for two
processes (two web workers, or a worker restarted after a crash)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.errors import CommandIdReused, ConcurrencyConflict, IllegalTransition
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseStatus
from cityops.domain.gridcases.commands import (
    DispatchCase,
    RegisterCase,
    ReportCase,
    RequestCaseSuspension,
    ReturnCaseToCentre,
)
from cityops.domain.hazards.commands import AddSensor, RecordReading, RegisterHazardSource
from cityops.domain.supervision import Light
from cityops.projections.follower import Follower
from cityops.projections.views import BBox
from cityops.settings import Settings

DISPATCHER = Actor("disp-1", Role.DISPATCHER)
SANITATION = Actor("san-1", Role.DEPARTMENT_USER, "sanitation")
SystemFactory = Callable[[], CitySystem]


def inside_points(system: CitySystem, count: int) -> list[GeoPoint]:
    """Points at the centres of real grid cells of the demo city, far apart."""
    cells = system.city.map.cells
    step = max(1, len(cells) // count)
    points = []
    for index in range(0, step * count, step):
        centre = cells.geometry.iloc[index].representative_point()
        points.append(GeoPoint(lon=centre.x, lat=centre.y))
    return points



def opened_once(monkeypatch: pytest.MonkeyPatch, system: CitySystem, case: Any,
                then: Callable[[], object] | None = None) -> None:
    """The next command of `system` on grid cases decides on `case` as it was opened (after
    which `then` runs, as another process writing meanwhile); later loads are the store's."""
    real = type(system.grid_cases).load_for

    def load_for(app: Any, cls: Any, aggregate_id: Any, *args: Any) -> Any:
        monkeypatch.setattr(app, "load_for", real.__get__(app))
        if then is not None:
            then()
        return case

    monkeypatch.setattr(system.grid_cases, "load_for", load_for.__get__(system.grid_cases))

class StorageContract:
    """The behaviour every back end must show."""

    @pytest.fixture
    def make_system(self) -> Iterator[SystemFactory]:
        raise NotImplementedError

    def report(self, system: CitySystem, point: GeoPoint, command_id: str | None = None,
               category: str = "E0101") -> Any:
        # Reported by the inspector who patrols the place (elsewhere it would be marked).
        inspector = Actor(system.city.map.locate(point).inspector_id, Role.INSPECTOR)
        return system.grid_cases.handle(
            ReportCase(source="inspector", category=category,
                       description="garbage heap by the bus stop", location=point),
            CommandContext(actor=inspector, command_id=command_id)).subject

    def test_a_case_recorded_by_one_process_is_read_identically_by_another(
        self, make_system: SystemFactory
    ) -> None:
        first, second = make_system(), make_system()
        point = inside_points(first, 1)[0]
        case_id = self.report(first, point)
        first.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
        first.grid_cases.handle(DispatchCase(case_id=case_id), CommandContext(actor=DISPATCHER))
        assert second.grid_cases.case(case_id).summary() == first.grid_cases.case(case_id).summary()
        assert second.grid_cases.case(case_id).status is CaseStatus.DISPATCHED

    def test_a_repeated_command_id_changes_nothing_across_processes(
        self, make_system: SystemFactory
    ) -> None:
        first, second = make_system(), make_system()
        point = inside_points(first, 1)[0]
        case_id = self.report(first, point, command_id="field-app-42:report")
        head = first.grid_cases.recorder.max_notification_id()
        again = self.report(second, point, command_id="field-app-42:report")
        assert again == case_id
        assert second.grid_cases.recorder.max_notification_id() == head
        with pytest.raises(CommandIdReused):
            self.report(second, point, command_id="field-app-42:report", category="E0102")

    def test_two_dispatchers_cannot_both_win(self, make_system: SystemFactory,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
        first, second = make_system(), make_system()
        case_id = self.report(first, inside_points(first, 1)[0])
        first.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
        # Both dispatchers have the registered case open at the same time.
        mine = first.grid_cases.case(case_id)
        theirs = second.grid_cases.case(case_id)
        now = datetime.now(UTC)
        mine.dispatch(department="sanitation", deadline=now + timedelta(hours=8),
                      limit_unit="working_hours", instructions="", actor=DISPATCHER, at=now)
        first.grid_cases.save(mine)
        # The second dispatcher's command decides on the case as they had it open.
        opened_once(monkeypatch, second, theirs)
        with pytest.raises(ConcurrencyConflict, match="changed by someone else"):
            second.grid_cases.handle(
                DispatchCase(case_id=case_id, department="urban-management"),
                CommandContext(actor=Actor("disp-2", Role.DISPATCHER)))
        stored = second.grid_cases.case(case_id)
        assert stored.department == "sanitation"
        assert [type(e).__name__ for e in second.grid_cases.events.get(case_id)].count(
            "Dispatched") == 1

    def test_a_process_acting_on_a_case_it_has_cached_sees_what_another_process_did(
        self, make_system: SystemFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        first, second = make_system(), make_system()
        assert first.grid_cases.repository.cache is not None, "the aggregate cache is on"
        case_id = self.report(first, inside_points(first, 1)[0])
        first.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=DISPATCHER))
        assert first.grid_cases.case(case_id).status is CaseStatus.REGISTERED  # now cached
        second.grid_cases.handle(
            DispatchCase(case_id=case_id, department="sanitation"),
            CommandContext(actor=DISPATCHER))
        # The first process's cached copy is brought up to date before it decides.
        with pytest.raises(IllegalTransition, match="it is dispatched"):
            first.grid_cases.handle(
                DispatchCase(case_id=case_id, department="urban-management"),
                CommandContext(actor=DISPATCHER))
        assert first.grid_cases.case(case_id).department == "sanitation"

        # The other process writes right after this one's command has read the case.
        opened_once(monkeypatch, first, first.grid_cases.case(case_id), then=lambda: (
            second.grid_cases.handle(
                ReturnCaseToCentre(case_id=case_id, reason="a sewer, not ours"),
                CommandContext(actor=SANITATION))))

        # Changed by the other process between this one's read and its save: a conflict,
        # never an overwrite, and the refused change leaves nothing in the cache.
        with pytest.raises(ConcurrencyConflict):
            first.grid_cases.handle(
                RequestCaseSuspension(case_id=case_id, reason="road closure"),
                CommandContext(actor=SANITATION))
        cached = first.grid_cases.case(case_id)
        assert cached.status is CaseStatus.RETURNED
        assert cached.summary() == second.grid_cases.case(case_id).summary()
        stored = [type(e).__name__ for e in second.grid_cases.events.get(case_id)]
        assert stored[-1] == "ReturnedToCentre" and "SuspensionRequested" not in stored

    def test_read_model_resumes_after_a_restart_without_gap_or_double_count(
        self, make_system: SystemFactory
    ) -> None:
        writer = make_system()
        points = inside_points(writer, 12)
        ids = [self.report(writer, p, command_id=f"resume-{i}") for i, p in enumerate(points[:6])]
        reader = make_system()
        follower = reader.followers[0]
        # Stop part-way through, as a projection process killed mid-stream would.
        follower.process_batch(size=4)
        stopped_at = follower.position()
        assert 0 < stopped_at < follower.head()
        ids += [self.report(writer, p, command_id=f"resume-{i}")
                for i, p in enumerate(points[6:], start=6)]
        restarted = make_system()
        restarted.catch_up()
        page = restarted.read_models.page("rm_grid_cases", limit=100)
        assert page.total == 12
        assert sorted(d["id"] for d in page.items) == sorted(str(i) for i in ids)
        assert all(d["version"] == 1 for d in page.items)
        assert restarted.followers[0].position() == restarted.followers[0].head()

    def test_rebuild_from_zero_gives_the_same_rows(self, make_system: SystemFactory) -> None:
        system = make_system()
        for index, point in enumerate(inside_points(system, 5)):
            case_id = self.report(system, point, command_id=f"rebuild-{index}")
            system.grid_cases.handle(
                RegisterCase(case_id=case_id),
                CommandContext(actor=DISPATCHER))
        system.catch_up()
        before = system.read_models.page("rm_grid_cases", limit=100).items
        table = system.followers[0].tables
        rebuilt = Follower("rebuild-check", system.grid_cases, list(table.values()), system.store)
        rebuilt.catch_up()
        after = system.read_models.page("rm_grid_cases", limit=100).items
        assert sorted(before, key=lambda d: d["id"]) == sorted(after, key=lambda d: d["id"])
        assert rebuilt.position() == rebuilt.head()

    def test_queries_filter_by_status_area_bbox_and_light(self, make_system: SystemFactory) -> None:
        system = make_system()
        points = inside_points(system, 4)
        ids = [self.report(system, p, command_id=f"query-{i}") for i, p in enumerate(points)]
        system.grid_cases.handle(RegisterCase(case_id=ids[0]), CommandContext(actor=DISPATCHER))
        system.catch_up()
        registered = system.read_models.page("rm_grid_cases", filters={"status": ["registered"]})
        assert [d["id"] for d in registered.items] == [str(ids[0])]
        cell = system.grid_cases.case(ids[1]).grid_cell
        assert cell is not None
        district = cell.split("-")[0]
        in_district = system.read_models.page("rm_grid_cases", prefixes={"grid_cell": district})
        assert str(ids[1]) in {d["id"] for d in in_district.items}
        p = points[2]
        box = BBox(p.lon - 0.0001, p.lat - 0.0001, p.lon + 0.0001, p.lat + 0.0001)
        boxed = system.read_models.page("rm_grid_cases", bbox=box)
        assert [d["id"] for d in boxed.items] == [str(ids[2])]
        now = datetime.now(UTC)
        clause = system.read_models.grid_case_lights(Light.GREEN, now)
        green = system.read_models.page("rm_grid_cases", extra_where=[clause], limit=100)
        late = now + timedelta(days=30)
        clause = system.read_models.grid_case_lights(Light.RED, late)
        red_later = system.read_models.page("rm_grid_cases", extra_where=[clause], limit=100)
        assert green.total == 4
        assert red_later.total == 4


    def test_the_latest_reading_recorded_by_one_process_is_seen_by_another(
        self, make_system: SystemFactory
    ) -> None:
        recorder, reader = make_system(), make_system()
        city_source = recorder.city.hazard_sources[0]
        source_id = recorder.hazards.handle(
            RegisterHazardSource(hazard_type=city_source.hazard_type,
                source_name=city_source.name, owner_name=city_source.owner_name,
                owner_contact=city_source.owner_contact, grade=city_source.grade,
                location=city_source.location),
            CommandContext(actor=DISPATCHER)).subject
        recorder.hazards.handle(
            AddSensor(source_id=source_id, sensor_id="gas-1", kind="gas-concentration",
                unit="%LEL", direction="high", warning=20, alarm=40),
            CommandContext(actor=DISPATCHER))
        gateway = Actor("iot-gateway", Role.SYSTEM)
        now = datetime.now(UTC)
        recorder.hazards.judge_reading(
            RecordReading(source_id=source_id, sensor_id="gas-1", value=12.5, measured_at=now),
            CommandContext(actor=gateway))
        recorder.hazards.judge_reading(
            RecordReading(source_id=source_id, sensor_id="gas-1", value=3.0,
                measured_at=now - timedelta(minutes=1)),
            CommandContext(actor=gateway))
        seen = reader.hazards.latest_readings.of_source(source_id)
        assert set(seen) == {"gas-1"}
        assert (seen["gas-1"].value, seen["gas-1"].measured_at) == (12.5, now)


class TestSqlite(StorageContract):
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
class TestPostgres(StorageContract):
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
