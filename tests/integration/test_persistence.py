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
from cityops.domain.errors import CommandIdReused, ConcurrencyConflict, IllegalTransition
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseStatus
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


class StorageContract:
    """The behaviour every back end must show."""

    @pytest.fixture
    def make_system(self) -> Iterator[SystemFactory]:
        raise NotImplementedError

    def report(self, system: CitySystem, point: GeoPoint, command_id: str | None = None,
               category: str = "E0101") -> Any:
        # Reported by the inspector who patrols the place (elsewhere it would be marked).
        inspector = Actor(system.city.map.locate(point).inspector_id, Role.INSPECTOR)
        return system.grid_cases.report(source="inspector", category=category,
                                        description="garbage heap by the bus stop",
                                        location=point, actor=inspector, command_id=command_id)

    def test_a_case_recorded_by_one_process_is_read_identically_by_another(
        self, make_system: SystemFactory
    ) -> None:
        first, second = make_system(), make_system()
        point = inside_points(first, 1)[0]
        case_id = self.report(first, point)
        first.grid_cases.register(case_id, actor=DISPATCHER)
        first.grid_cases.dispatch(case_id, actor=DISPATCHER)
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

    def test_two_dispatchers_cannot_both_win(self, make_system: SystemFactory) -> None:
        first, second = make_system(), make_system()
        case_id = self.report(first, inside_points(first, 1)[0])
        first.grid_cases.register(case_id, actor=DISPATCHER)
        # Both dispatchers have the registered case open at the same time.
        mine = first.grid_cases.case(case_id)
        theirs = second.grid_cases.case(case_id)
        now = datetime.now(UTC)
        mine.dispatch(department="sanitation", deadline=now + timedelta(hours=8),
                      limit_unit="working_hours", instructions="", actor=DISPATCHER, at=now)
        first.grid_cases.save(mine)
        theirs.dispatch(department="urban-management", deadline=now + timedelta(hours=8),
                        limit_unit="working_hours", instructions="",
                        actor=Actor("disp-2", Role.DISPATCHER), at=now)
        with pytest.raises(ConcurrencyConflict, match="changed by someone else"):
            second.grid_cases.run_command("grid-case.dispatch", actor=DISPATCHER,
                                          command_id=None, args={}, decide=lambda: [theirs])
        stored = second.grid_cases.case(case_id)
        assert stored.department == "sanitation"
        assert [type(e).__name__ for e in second.grid_cases.events.get(case_id)].count(
            "Dispatched") == 1

    def test_a_process_acting_on_a_case_it_has_cached_sees_what_another_process_did(
        self, make_system: SystemFactory
    ) -> None:
        first, second = make_system(), make_system()
        assert first.grid_cases.repository.cache is not None, "the aggregate cache is on"
        case_id = self.report(first, inside_points(first, 1)[0])
        first.grid_cases.register(case_id, actor=DISPATCHER)
        assert first.grid_cases.case(case_id).status is CaseStatus.REGISTERED  # now cached
        second.grid_cases.dispatch(case_id, actor=DISPATCHER, department="sanitation")
        # The first process's cached copy is brought up to date before it decides.
        with pytest.raises(IllegalTransition, match="it is dispatched"):
            first.grid_cases.dispatch(case_id, actor=DISPATCHER, department="urban-management")
        assert first.grid_cases.case(case_id).department == "sanitation"

        def decide_while_the_other_process_writes() -> list[Any]:
            case = first.grid_cases.case(case_id)
            second.grid_cases.return_to_centre(case_id, reason="a sewer, not ours",
                                               actor=SANITATION)
            case.request_suspension(reason="road closure", expected_resume_at=None,
                                    actor=SANITATION, at=case.modified_on)
            return [case]

        # Changed by the other process between this one's read and its save: a conflict,
        # never an overwrite, and the refused change leaves nothing in the cache.
        with pytest.raises(ConcurrencyConflict):
            first.grid_cases.run_command("grid-case.request-suspension", actor=SANITATION,
                                         command_id=None, args={"case_id": case_id},
                                         decide=decide_while_the_other_process_writes)
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
            system.grid_cases.register(case_id, actor=DISPATCHER)
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
        system.grid_cases.register(ids[0], actor=DISPATCHER)
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
        source_id = recorder.hazards.register(
            hazard_type=city_source.hazard_type, name=city_source.name,
            owner_name=city_source.owner_name, owner_contact=city_source.owner_contact,
            grade=city_source.grade, location=city_source.location, actor=DISPATCHER)
        recorder.hazards.add_sensor(source_id, sensor_id="gas-1", kind="gas-concentration",
                                    unit="%LEL", direction="high", warning=20, alarm=40,
                                    actor=DISPATCHER)
        gateway = Actor("iot-gateway", Role.SYSTEM)
        now = datetime.now(UTC)
        recorder.hazards.record_reading(source_id, "gas-1", 12.5, now, actor=gateway)
        recorder.hazards.record_reading(source_id, "gas-1", 3.0, now - timedelta(minutes=1),
                                        actor=gateway)
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
