"""A warehouse fire whose every figure can be counted by hand, for the after-action review's
tests: reported, verified, answered at level II with a plan of three tasks (one done on time,
one late, one waived: never done), two fire engines dispatched, on scene, cleared, then
contained and closed; the plan's ambulance is never sent. Minutes after the report (T0):

  0 reported (hotline)        7 engine 1 dispatched     16 engine 1 on scene
  4 verified at level II      8 engine 2 dispatched     18 engine 2 on scene
  5 response with the plan    8 engine 1 en route       30 police task done (due 20: late)
                              9 engine 2 en route       50 fire task done (due 65: on time)
 10 police task acknowledged 60 contained               70 health task waived (never)
 75 engine 1 clears the scene 76 engine 2 clears        90 both available   120 closed
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.incidents.commands import (
    AcknowledgeTask,
    CloseIncident,
    CompleteTask,
    ContainIncident,
    DefinePlan,
    ReportIncident,
    RespondToIncident,
    VerifyIncident,
    WaiveTask,
)
from cityops.domain.incidents.incident import IncidentSource
from cityops.domain.incidents.plans import PlanLevel, PlanTask, ResourceRequirement
from cityops.domain.resources.commands import (
    ClearScene,
    RegisterResource,
    ReportAvailable,
    ReportEnRoute,
    ReportOnScene,
)

T0 = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
TITLE = "仓库火灾 Warehouse fire"
WAREHOUSE = GeoPoint(lon=118.80, lat=32.05)
OPERATOR = Actor("hot-wu", Role.HOTLINE_OPERATOR)
DISPATCHER = Actor("duty-zhao", Role.DISPATCHER)
PLANNER = Actor("plan-lin", Role.PLANNER)
FIRE_CREW = Actor("fire-sun", Role.DEPARTMENT_USER, "fire")
POLICE = Actor("police-qian", Role.DEPARTMENT_USER, "police")


class ManualClock:
    """A clock that moves only when told."""

    speed = 0.0

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, minutes: float) -> None:
        self.now = T0 + timedelta(minutes=minutes)


@dataclass
class WarehouseFire:
    incident_id: UUID
    engines: tuple[UUID, UUID]
    tasks: dict[str, UUID]
    """Task id by department."""


def play_warehouse_fire(system: object, clock: ManualClock) -> WarehouseFire:
    """Play the fire on `system` (a CitySystem built with `clock`) and return its ids."""
    commands = system.commands  # type: ignore[attr-defined]

    def run(command: object, actor: Actor) -> UUID:
        subject: UUID = commands.handle(command, CommandContext(actor=actor)).subject
        return subject

    clock.at(-60)
    plan_id = run(DefinePlan(
        code="warehouse-fire", plan_name="Warehouse fire", category="accident-disaster",
        levels=(PlanLevel(level="II", tasks=(
            PlanTask(department="fire", description="Put the fire out",
                     allowance=timedelta(minutes=60)),
            PlanTask(department="police", description="Cordon off the street",
                     allowance=timedelta(minutes=15)),
            PlanTask(department="health", description="Ambulances on stand-by",
                     allowance=timedelta(minutes=20))),
            resources=(ResourceRequirement(kind="fire-engine", count=2),
                       ResourceRequirement(kind="ambulance", count=1))),)), PLANNER)
    engines = tuple(run(RegisterResource(
        kind="fire-engine", resource_name=f"消防车 {n}", call_sign=f"ENGINE {n}",
        department="fire", home_base=GeoPoint(lon=118.79, lat=32.04)), PLANNER)
        for n in (1, 2))
    clock.at(0)
    incident_id = run(ReportIncident(
        category="accident-disaster", incident_type="fire", title=TITLE,
        location=WAREHOUSE, source=IncidentSource.HOTLINE), OPERATOR)
    clock.at(4)
    run(VerifyIncident(incident_id=incident_id, level="II"), DISPATCHER)
    clock.at(5)
    run(RespondToIncident(incident_id=incident_id, level="II", plan_id=plan_id), DISPATCHER)
    incident = system.incidents.incident(incident_id)  # type: ignore[attr-defined]
    tasks = {t.department: t.id for t in incident.tasks.values()}
    operations = system.operations  # type: ignore[attr-defined]
    clock.at(7)
    operations.assign_resource(incident_id, engines[0], actor=DISPATCHER)
    clock.at(8)
    operations.assign_resource(incident_id, engines[1], actor=DISPATCHER)
    run(ReportEnRoute(resource_id=engines[0]), FIRE_CREW)
    clock.at(9)
    run(ReportEnRoute(resource_id=engines[1]), FIRE_CREW)
    clock.at(10)
    run(AcknowledgeTask(incident_id=incident_id, task_id=tasks["police"]), POLICE)
    clock.at(16)
    run(ReportOnScene(resource_id=engines[0]), FIRE_CREW)
    clock.at(18)
    run(ReportOnScene(resource_id=engines[1]), FIRE_CREW)
    clock.at(30)
    run(CompleteTask(incident_id=incident_id, task_id=tasks["police"],
                     result="street closed"), POLICE)
    clock.at(50)
    run(CompleteTask(incident_id=incident_id, task_id=tasks["fire"], result="fire out"),
        FIRE_CREW)
    clock.at(60)
    run(ContainIncident(incident_id=incident_id, note="under control"), DISPATCHER)
    clock.at(70)
    run(WaiveTask(incident_id=incident_id, task_id=tasks["health"],
                  reason="no casualties: ambulances not needed"), DISPATCHER)
    clock.at(75)
    run(ClearScene(resource_id=engines[0]), FIRE_CREW)
    clock.at(76)
    run(ClearScene(resource_id=engines[1]), FIRE_CREW)
    clock.at(90)
    for engine in engines:
        run(ReportAvailable(resource_id=engine), FIRE_CREW)
    system.catch_up()  # type: ignore[attr-defined]
    clock.at(120)
    run(CloseIncident(incident_id=incident_id, note="done"), DISPATCHER)
    system.catch_up()  # type: ignore[attr-defined]
    return WarehouseFire(incident_id, (engines[0], engines[1]), tasks)
