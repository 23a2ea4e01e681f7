"""The incident read model's figures, written once and run against each back end: a resource
is active on one incident at a time (also when its release was interrupted in one process
and completed by another), the shortfall follows, and an incident closes with its tasks
settled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.errors import IllegalTransition, OpenTasksRemain
from cityops.domain.geometry import GeoPoint
from cityops.domain.incidents.commands import (
    CloseIncident,
    CompleteTask,
    ContainIncident,
    DefinePlan,
    ReportIncident,
    RespondToIncident,
    VerifyIncident,
    WaiveTask,
)
from cityops.domain.incidents.plans import (
    PlanLevel,
    PlanTask,
    ResourceRequirement,
)
from cityops.domain.resources.commands import (
    ClearScene,
    ReassignResource,
    RegisterResource,
    ReportAvailable,
    ReportOnScene,
)
from cityops.settings import Settings

DISPATCHER = Actor("disp-1", Role.DISPATCHER)
PLANNER = Actor("planner-1", Role.PLANNER)
HOTLINE = Actor("operator-1", Role.HOTLINE_OPERATOR)
WATER_CREW = Actor("pump-crew", Role.DEPARTMENT_USER, "water")
WATER_DESK = Actor("water-desk", Role.DEPARTMENT_USER, "water")
SystemFactory = Callable[[], CitySystem]


def flood_plan(system: CitySystem) -> UUID:
    return system.incidents.handle(
        DefinePlan(code="underpass-flood", plan_name="Underpass flooding",
            category="natural-disaster",
            levels=[PlanLevel("IV", tasks=(
            PlanTask("water", "Open the pumping station", timedelta(minutes=30)),
            PlanTask("traffic-police", "Close the underpass", timedelta(minutes=20))),
            resources=(ResourceRequirement("drainage-pump-truck", 1),))]),
        CommandContext(actor=PLANNER, command_id="figures:plan")).subject


def responding_flood(system: CitySystem, plan_id: UUID, title: str,
                     location: GeoPoint) -> UUID:
    incident_id = system.incidents.handle(
        ReportIncident(category="natural-disaster", incident_type="waterlogging", title=title,
            location=location, source="hotline"),
        CommandContext(actor=HOTLINE)).subject
    system.incidents.handle(
        VerifyIncident(incident_id=incident_id),
        CommandContext(actor=DISPATCHER))
    system.incidents.handle(
        RespondToIncident(incident_id=incident_id, level="IV", plan_id=plan_id),
        CommandContext(actor=DISPATCHER))
    return incident_id


def rows(system: CitySystem) -> dict[str, dict[str, Any]]:
    system.catch_up()
    return {d["id"]: d for d in system.read_models.page("rm_incidents", limit=50).items}


def open_ids(system: CitySystem) -> list[str]:
    page = system.read_models.page("rm_incidents", filters={"is_open": True}, limit=50)
    return [d["id"] for d in page.items]


def active(row: dict[str, Any]) -> list[str]:
    return [a["resource_id"] for a in row["resources"] if a["released_at"] is None]


class IncidentFiguresContract:
    """What every back end must show of the incident read model's figures."""

    @pytest.fixture
    def make_system(self) -> Iterator[SystemFactory]:
        raise NotImplementedError

    def test_a_resource_is_active_on_one_incident_even_across_processes(
            self, make_system: SystemFactory) -> None:
        first_process, second_process = make_system(), make_system()
        plan_id = flood_plan(first_process)
        centre = first_process.city.map.cells.geometry.iloc[40].centroid
        location = GeoPoint(lon=float(centre.x), lat=float(centre.y))
        first = responding_flood(first_process, plan_id, "Underpass A", location)
        second = responding_flood(first_process, plan_id, "Underpass B", location)
        truck = first_process.resources.handle(
            RegisterResource(kind="drainage-pump-truck", resource_name="Pump truck 3",
                call_sign="PUMP 3", department="water", home_base=location),
            CommandContext(actor=PLANNER)).subject

        first_process.operations.assign_resource(first, truck, actor=DISPATCHER)
        assignments = first_process.operations.resource_assignments
        first_process.resources.handle(
            ReportOnScene(resource_id=truck),
            CommandContext(actor=WATER_CREW))
        assignments.clear_scene(truck, actor=WATER_CREW)
        assignments.report_available(truck, actor=WATER_CREW)
        first_process.operations.assign_resource(second, truck, actor=DISPATCHER)
        seen = rows(first_process)
        assert active(seen[str(first)]) == [] and active(seen[str(second)]) == [str(truck)]
        assert seen[str(first)]["resource_shortfall"] == {"drainage-pump-truck": 1}
        assert seen[str(second)]["resource_shortfall"] == {}
        assert seen[str(first)]["resources"][0]["release_reason"] == "cleared the scene"

        # The second process records only the resource's side of leaving B (the crew's own
        # reports); the incident records it when the processes across streams next run
        # there (here the first process's next assignment), nobody repeating a call.
        second_process.resources.handle(
            ReportOnScene(resource_id=truck),
            CommandContext(actor=WATER_CREW))
        second_process.resources.handle(
            ClearScene(resource_id=truck),
            CommandContext(actor=WATER_CREW))
        second_process.resources.handle(
            ReportAvailable(resource_id=truck),
            CommandContext(actor=WATER_CREW))
        assert second_process.incidents.incident(second).assignment(truck) is not None
        first_process.operations.assign_resource(first, truck, actor=DISPATCHER)
        for system in (first_process, second_process):
            seen = rows(system)
            assert active(seen[str(first)]) == [str(truck)]
            assert active(seen[str(second)]) == []
            assert seen[str(first)]["resource_shortfall"] == {}
            assert seen[str(second)]["resource_shortfall"] == {"drainage-pump-truck": 1}

    def test_a_resource_sent_from_its_own_side_is_active_on_the_incident_it_is_sent_to(
            self, make_system: SystemFactory) -> None:
        """Issue 9 item 1, the arrival side: dispatched or reassigned from the resource's
        side, it is listed on the incident it is sent to (and its shortfall counts it), also
        when the arrival was interrupted in one process and completed by another."""
        first_process, second_process = make_system(), make_system()
        plan_id = flood_plan(first_process)
        centre = first_process.city.map.cells.geometry.iloc[40].centroid
        location = GeoPoint(lon=float(centre.x), lat=float(centre.y))
        first = responding_flood(first_process, plan_id, "Underpass A", location)
        second = responding_flood(first_process, plan_id, "Underpass B", location)
        truck = first_process.resources.handle(
            RegisterResource(kind="drainage-pump-truck", resource_name="Pump truck 3",
                call_sign="PUMP 3", department="water", home_base=location),
            CommandContext(actor=PLANNER)).subject
        assignments = first_process.operations.resource_assignments

        assignments.dispatch(truck, incident_id=first, actor=DISPATCHER)
        first_process.resources.handle(
            ReportOnScene(resource_id=truck),
            CommandContext(actor=WATER_CREW))
        assignments.reassign(truck, incident_id=second, actor=DISPATCHER)
        seen = rows(first_process)
        assert active(seen[str(first)]) == [] and active(seen[str(second)]) == [str(truck)]
        assert seen[str(first)]["resource_shortfall"] == {"drainage-pump-truck": 1}
        assert seen[str(second)]["resource_shortfall"] == {}

        # The second process records only the resource's side of sending it back to A (as
        # a process stopped half-way would); the first runs the same command again, which
        # completes it once (or the process would, on its own).
        second_process.resources.handle(
            ReassignResource(resource_id=truck, incident_id=first),
            CommandContext(actor=DISPATCHER, command_id="figures:back-to-a"))
        assert second_process.incidents.incident(first).assignment(truck) is None
        for _ in range(2):
            assignments.reassign(truck, incident_id=first, actor=DISPATCHER,
                                 command_id="figures:back-to-a")
        for system in (first_process, second_process):
            seen = rows(system)
            assert active(seen[str(first)]) == [str(truck)]
            assert active(seen[str(second)]) == []
            assert len(seen[str(first)]["resources"]) == 2
            assert seen[str(first)]["resource_shortfall"] == {}
            assert seen[str(second)]["resource_shortfall"] == {"drainage-pump-truck": 1}

        # An incident closed meanwhile takes no resource: nothing recorded on either stream.
        second_process.incidents.handle(
            ContainIncident(incident_id=second),
            CommandContext(actor=DISPATCHER))
        version = second_process.resources.resource(truck).version
        with pytest.raises(IllegalTransition, match="it is contained"):
            assignments.reassign(truck, incident_id=second, actor=DISPATCHER)
        assert first_process.resources.resource(truck).version == version
        assert active(rows(second_process)[str(first)]) == [str(truck)]

    def test_an_incident_closes_only_with_its_tasks_settled(
            self, make_system: SystemFactory) -> None:
        system = make_system()
        plan_id = flood_plan(system)
        centre = system.city.map.cells.geometry.iloc[40].centroid
        incident_id = responding_flood(system, plan_id, "Underpass A",
                                       GeoPoint(lon=float(centre.x), lat=float(centre.y)))
        system.incidents.handle(
            ContainIncident(incident_id=incident_id),
            CommandContext(actor=DISPATCHER))
        tasks = {t.department: t.id
                 for t in system.incidents.incident(incident_id).tasks.values()}
        with pytest.raises(OpenTasksRemain):
            system.incidents.handle(
                CloseIncident(incident_id=incident_id),
                CommandContext(actor=DISPATCHER))
        row = rows(system)[str(incident_id)]
        assert (row["status"], row["open_tasks"]) == ("contained", 2)
        assert open_ids(system) == [str(incident_id)]

        system.incidents.handle(
            CompleteTask(incident_id=incident_id, task_id=tasks["water"]),
            CommandContext(actor=WATER_DESK))
        system.incidents.handle(
            WaiveTask(incident_id=incident_id, task_id=tasks["traffic-police"],
                reason="the underpass drained by itself"),
            CommandContext(actor=DISPATCHER, command_id="figures:waive"))
        system.incidents.handle(
            CloseIncident(incident_id=incident_id),
            CommandContext(actor=DISPATCHER))
        row = rows(system)[str(incident_id)]
        assert (row["status"], row["open_tasks"]) == ("closed", 0)
        assert open_ids(system) == []
        assert sorted(t["status"] for t in row["tasks"]) == ["done", "waived"]
        # Another process reads the same row.
        restarted = make_system()
        assert rows(restarted)[str(incident_id)] == row


class TestSqlite(IncidentFiguresContract):
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
class TestPostgres(IncidentFiguresContract):
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
