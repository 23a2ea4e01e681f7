"""Properties of the incident stream under any sequence of commands, by anyone, at any pace.

Whatever is attempted: the incident is only ever in a known state and moves along the
lifecycle's edges; a refused command records nothing; a repeated command id changes
nothing; the level stays within I..IV; a plan's task is given out once; milestone times are
in lifecycle order; and the incident rebuilt from its stored events has exactly the state
the command left in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import Command, CommandContext
from cityops.domain.errors import DomainError
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.incidents.application import Incidents
from cityops.domain.incidents.commands import (
    AcknowledgeTask,
    ActivatePlan,
    AddSituationReport,
    AssignCommander,
    AssignResourceToIncident,
    AssignTask,
    CancelTask,
    ChangeIncidentLevel,
    CloseIncident,
    CompleteTask,
    ContainIncident,
    DeescalateIncident,
    DefinePlan,
    DismissIncident,
    EscalateIncident,
    LinkToIncident,
    ReleaseResourceFromIncident,
    ReportIncident,
    RespondToIncident,
    ReviewIncident,
    UnlinkFromIncident,
    VerifyIncident,
    WaiveTask,
)
from cityops.domain.incidents.incident import (
    Finding,
    FindingAspect,
    Incident,
    IncidentStatus,
    TaskStatus,
)
from cityops.domain.incidents.plans import (
    PlanLevel,
    PlanTask,
    ResourceRequirement,
)

START = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
CATALOGUE = Catalogue.load()
LEVELS = ["I", "II", "III", "IV"]
ACTORS = [
    Actor("duty-officer", Role.DISPATCHER),
    Actor("planner", Role.PLANNER),
    Actor("water-duty", Role.DEPARTMENT_USER, department="water"),
    Actor("police-duty", Role.DEPARTMENT_USER, department="traffic-police"),
    Actor("inspector", Role.INSPECTOR),
    Actor("operator", Role.HOTLINE_OPERATOR),
    Actor("mayor", Role.LEADER),
]
DISPATCHER = ACTORS[0]
TARGETS = [uuid5(UUID(int=1), str(n)) for n in range(3)]
RESOURCES = [uuid5(UUID(int=2), str(n)) for n in range(3)]
AREA = Area(wkt="POLYGON ((120.15 30.27, 120.16 30.27, 120.16 30.28, 120.15 30.27))")

LIFECYCLE = {
    IncidentStatus.REPORTED: {IncidentStatus.VERIFIED, IncidentStatus.DISMISSED},
    IncidentStatus.VERIFIED: {IncidentStatus.RESPONDING},
    IncidentStatus.RESPONDING: {IncidentStatus.CONTAINED},
    IncidentStatus.CONTAINED: {IncidentStatus.CLOSED},
    IncidentStatus.CLOSED: {IncidentStatus.REVIEWED},
    IncidentStatus.DISMISSED: set(),
    IncidentStatus.REVIEWED: set(),
}


def _task(department: str, description: str, minutes: int) -> PlanTask:
    return PlanTask(department, description, timedelta(minutes=minutes))


def _plan_levels(extra_department: str) -> list[PlanLevel]:
    pumps = _task("water", "Pumps", 30)
    roads = _task("traffic-police", "Close roads", 60)
    return [
        PlanLevel("IV", tasks=(pumps,), resources=(ResourceRequirement("shelter", 1),)),
        PlanLevel("III", tasks=(pumps, roads)),
        PlanLevel("II", tasks=(roads, _task(extra_department, "Stand by", 10)),
                  resources=(ResourceRequirement("shelter", 2),)),
        PlanLevel("I", tasks=(pumps, roads, _task(extra_department, "Stand by", 10),
                              _task("fire", "Rescue", 15))),
    ]


class RecordingIncidents(Incidents):
    """Keeps the incident as the last command left it in memory, before it was reloaded."""

    last_saved: Incident | None = None

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        recordings = super().save(*objs, **kwargs)
        for obj in objs:
            if isinstance(obj, Incident):
                self.last_saved = obj
        return recordings


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


Step = tuple[str, int, int, int]
"""(command, actor index, argument, minutes passed before it)."""

COMMAND_NAMES = [
    "verify", "dismiss", "respond", "respond-with-plan", "activate-other-plan",
    "change-level", "escalate", "deescalate", "situation-report", "link", "unlink",
    "commander", "assign-task", "acknowledge", "complete", "cancel", "waive",
    "assign-resource",
    "release", "contain", "close", "review", "repeat",
]
SPINE = [["verify"], ["respond", "respond-with-plan"], ["contain"], ["close"], ["review"]]
"""The lifecycle's forward moves, stage by stage."""


def step_of(names: list[str], duty_officer: int = 5) -> st.SearchStrategy[Step]:
    """A command by the duty officer (who may do most things) `duty_officer` times in
    `duty_officer + 6`, else by someone else."""
    actors = st.sampled_from([0] * duty_officer + list(range(1, len(ACTORS))))
    return st.tuples(st.sampled_from(names), actors, st.integers(0, 11), st.integers(0, 90))


@st.composite
def steps(draw: st.DrawFn) -> list[Step]:
    """Random commands, with the lifecycle's forward moves among them up to a random stage,
    so that sequences end in every state and spend time in each."""
    result: list[Step] = []
    for stage in SPINE[:draw(st.integers(0, len(SPINE)))]:
        result += draw(st.lists(step_of(COMMAND_NAMES), max_size=8))
        if stage == ["close"]:
            # Mostly the open tasks are settled first, as closing requires.
            result += draw(st.lists(step_of(["waive"], duty_officer=30), max_size=8))
        result.append(draw(step_of(stage, duty_officer=30)))
    result += draw(st.lists(step_of(COMMAND_NAMES), max_size=8))
    return result


def command_for(app: Incidents, incident_id: UUID, plans: list[UUID], step: Step,
                command_id: str) -> Callable[[], UUID]:
    """The application call a step stands for, by its actor (which may not be allowed)."""
    name, actor_index, arg, _ = step
    actor = ACTORS[actor_index]
    level = LEVELS[arg % 4]
    context = CommandContext(actor=actor, command_id=command_id)

    # Chosen now, so that repeating the command repeats exactly the same arguments.
    incident = app.incident(incident_id)
    tasks = list(incident.tasks)
    task_id = tasks[arg % len(tasks)] if tasks else UUID(int=arg)
    still_open = [t.id for t in incident.open_tasks()]
    open_task_id = still_open[arg % len(still_open)] if still_open else task_id

    # Built when run: a command refused as it is built is refused as the call was.
    commands: dict[str, Callable[[], Command]] = {
        "verify": lambda: VerifyIncident(incident_id=incident_id, level=level),
        "dismiss": lambda: DismissIncident(incident_id=incident_id, reason="false"),
        "respond": lambda: RespondToIncident(incident_id=incident_id, level=level),
        "respond-with-plan": lambda: RespondToIncident(incident_id=incident_id, level=level,
                                                       plan_id=plans[0]),
        "activate-other-plan": lambda: ActivatePlan(incident_id=incident_id,
                                                    plan_id=plans[arg % 2]),
        "change-level": lambda: ChangeIncidentLevel(incident_id=incident_id, level=level,
                                                    reason="r"),
        "escalate": lambda: EscalateIncident(incident_id=incident_id, reason="worse"),
        "deescalate": lambda: DeescalateIncident(incident_id=incident_id, reason="better"),
        "situation-report": lambda: AddSituationReport(
            incident_id=incident_id, text=f"report {arg}",
            casualties={"injured": arg} if arg % 2 else None,
            affected_area=AREA if arg % 3 == 0 else None),
        "link": lambda: LinkToIncident(incident_id=incident_id,
                                       kind=["grid-case", "hotline-ticket"][arg % 2],
                                       target_id=TARGETS[arg % 3]),
        "unlink": lambda: UnlinkFromIncident(incident_id=incident_id,
                                             kind=["grid-case", "hotline-ticket"][arg % 2],
                                             target_id=TARGETS[arg % 3], reason="mistake"),
        "commander": lambda: AssignCommander(incident_id=incident_id,
                                             commander=f"chief-{arg % 3}"),
        "assign-task": lambda: AssignTask(
            incident_id=incident_id, department=["water", "gas", "traffic-police"][arg % 3],
            description=f"Task {arg}", allowance=timedelta(minutes=5 * (arg + 1))),
        "acknowledge": lambda: AcknowledgeTask(incident_id=incident_id, task_id=task_id),
        "complete": lambda: CompleteTask(incident_id=incident_id, task_id=task_id,
                                         result="ok"),
        "cancel": lambda: CancelTask(incident_id=incident_id, task_id=task_id,
                                     reason="not needed"),
        "waive": lambda: WaiveTask(incident_id=incident_id, task_id=open_task_id,
                                   reason="not needed now"),
        "assign-resource": lambda: AssignResourceToIncident(
            incident_id=incident_id, resource_id=RESOURCES[arg % 3],
            kind=["shelter", "expert", "ambulance"][arg % 3]),
        "release": lambda: ReleaseResourceFromIncident(incident_id=incident_id,
                                                       resource_id=RESOURCES[arg % 3]),
        "contain": lambda: ContainIncident(incident_id=incident_id),
        "close": lambda: CloseIncident(incident_id=incident_id),
        "review": lambda: ReviewIncident(incident_id=incident_id, summary="lessons", findings=(
            Finding(FindingAspect.PLAN, "too slow"),) if arg % 2 else ()),
    }
    build = commands[name]
    return lambda: app.handle(build(), context).subject


def check_invariants(incident: Incident) -> None:
    """What must hold of an incident whatever happened to it."""
    assert incident.status in set(IncidentStatus)
    level = CATALOGUE.incident_level(incident.level)
    assert level.rank == incident.level_rank
    assert 1 <= incident.level_rank <= 4

    milestones = [incident.reported_at, incident.verified_at, incident.responding_at,
                  incident.contained_at, incident.closed_at, incident.reviewed_at]
    reached = [m for m in milestones if m is not None]
    assert reached == sorted(reached)
    # Milestones are reached in order, without gaps.
    assert all(m is not None for m in milestones[:len(reached)])
    if incident.status is IncidentStatus.DISMISSED:
        assert incident.dismissed_at is not None and len(reached) == 1

    if incident.responding_at is None:
        assert not incident.tasks and not incident.plans
    plan_keys = [(t.plan_id, t.department, t.description)
                 for t in incident.tasks.values() if t.plan_id is not None]
    assert len(plan_keys) == len(set(plan_keys)), "a plan task was given out twice"
    for task in incident.tasks.values():
        assert task.status in set(TaskStatus)
        assert (task.done_at is not None) == (task.status is TaskStatus.DONE)
        assert (task.cancelled_at is not None) == (task.status is TaskStatus.CANCELLED)
        assert (task.waived_at is not None) == (task.status is TaskStatus.WAIVED)
        assert task.due > task.assigned_at
    for plan in incident.plans.values():
        assert len(plan.levels) == len(set(plan.levels))

    open_resources = [a.resource_id for a in incident.resources if a.released_at is None]
    assert len(open_resources) == len(set(open_resources))
    if incident.closed_at is not None:
        assert not open_resources
        assert not incident.open_tasks(), "closed with tasks still open"

    links = [(link.kind, link.target_id) for link in incident.links]
    assert len(links) == len(set(links))
    assert (incident.after_action is not None) == (incident.status is IncidentStatus.REVIEWED)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps())
def test_any_sequence_of_commands_keeps_the_incident_sound(steps: list[Step]) -> None:
    clock = Clock()
    app = RecordingIncidents({"PERSISTENCE_MODULE": "eventsourcing.popo"}, catalogue=CATALOGUE,
                             clock=clock)
    planner = ACTORS[1]
    plans = [
        app.handle(
            DefinePlan(code="flood", plan_name="Flood", category="natural-disaster",
                levels=_plan_levels("emergency-management")),
            CommandContext(actor=planner)).subject,
        app.handle(
            DefinePlan(code="flood-health", plan_name="Flood health", category="natural-disaster",
                incident_types=["flood"], levels=_plan_levels("health")),
            CommandContext(actor=planner)).subject,
    ]
    incident_id = app.handle(
        ReportIncident(category="natural-disaster", incident_type="flood",
            title="River over its banks", location=GeoPoint(120.1, 30.2), source="sensor"),
        CommandContext(actor=DISPATCHER)).subject
    done: list[tuple[Callable[[], UUID], int]] = []

    for number, step in enumerate(steps):
        clock.now += timedelta(minutes=step[3])
        before = app.incident(incident_id)
        if step[0] == "repeat":
            if not done:
                continue
            # The same command id with the same arguments: nothing new is recorded.
            call, _ = done[step[2] % len(done)]
            assert call() == incident_id
            assert app.incident(incident_id).summary() == before.summary()
            continue
        call = command_for(app, incident_id, plans, step, f"command-{number}")
        app.last_saved = None
        try:
            assert call() == incident_id
        except DomainError:
            after = app.incident(incident_id)
            assert after.version == before.version, "a refused command recorded something"
            assert after.summary() == before.summary()
            continue
        done.append((call, number))
        after = app.incident(incident_id)
        assert after.status is before.status or after.status in LIFECYCLE[before.status]
        if step[0] in ("change-level", "escalate", "deescalate") and (
                after.level_rank > before.level_rank):
            assert after.tasks.keys() == before.tasks.keys(), "lowering the level gave tasks"
        check_invariants(after)
        # The state rebuilt from the stored events is the state the command left in memory.
        assert app.last_saved is not None
        assert after.summary() == app.last_saved.summary()

    final = app.repository.get(incident_id)
    assert isinstance(final, Incident)
    check_invariants(final)
    event(f"ended {final.status.value}")


@settings(max_examples=100, deadline=None)
@given(levels=st.lists(st.sampled_from(LEVELS), min_size=1, max_size=12))
def test_whatever_the_level_changes_each_plan_task_is_given_out_once(
        levels: list[str]) -> None:
    clock = Clock()
    app = Incidents({"PERSISTENCE_MODULE": "eventsourcing.popo"}, catalogue=CATALOGUE,
                    clock=clock)
    plan_id = app.handle(
        DefinePlan(code="flood", plan_name="Flood", category="natural-disaster",
            levels=_plan_levels("health")),
        CommandContext(actor=ACTORS[1])).subject
    incident_id = app.handle(
        ReportIncident(category="natural-disaster", incident_type="flood", title="Flood",
            location=GeoPoint(120.1, 30.2), source="sensor"),
        CommandContext(actor=DISPATCHER)).subject
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=incident_id, level=levels[0], plan_id=plan_id),
        CommandContext(actor=DISPATCHER))
    raised_to = {levels[0]}
    current = levels[0]
    for level in levels[1:]:
        clock.now += timedelta(minutes=1)
        try:
            app.handle(
                ChangeIncidentLevel(incident_id=incident_id, level=level, reason="r"),
                CommandContext(actor=DISPATCHER))
        except DomainError:
            assert level == current
            continue
        if LEVELS.index(level) < LEVELS.index(current):
            raised_to.add(level)
        current = level
    incident = app.incident(incident_id)
    plan = app.plan(plan_id)
    expected = {task.key for level in raised_to for task in plan.levels[level].tasks}
    assert {(t.department, t.description) for t in incident.tasks.values()} == expected
    assert len(incident.tasks) == len(expected)
    assert set(incident.plans[plan_id].levels) == raised_to
    requirement = max((r.count for level in raised_to for r in plan.levels[level].resources),
                      default=None)
    assert incident.required_resources() == ({"shelter": requirement} if requirement else {})
