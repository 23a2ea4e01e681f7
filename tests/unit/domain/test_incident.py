"""The incident stream and its contingency plans, told as the command centre lives them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.application import COMMAND_NAMESPACE, CommandReceipt
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import CommandContext
from cityops.domain.errors import (
    CommandIdReused,
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
    OpenTasksRemain,
)
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
    FlareUpIncident,
    LinkToIncident,
    RecordResourceDeparture,
    ReleaseResourceFromIncident,
    ReportIncident,
    RespondToIncident,
    RetirePlan,
    ReviewIncident,
    RevisePlan,
    UnlinkFromIncident,
    VerifyIncident,
    WaiveTask,
)
from cityops.domain.incidents.incident import (
    Finding,
    FindingAspect,
    Incident,
    IncidentStatus,
    LinkKind,
    TaskStatus,
)
from cityops.domain.incidents.plans import (
    ContingencyPlan,
    PlanLevel,
    PlanStatus,
    PlanTask,
    ResourceRequirement,
    plan_id_for,
)

from .conftest import as_stored_by_version_1

START = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
UNDERPASS = GeoPoint(lon=120.155, lat=30.274)
FLOODED_BLOCK = Area(
    wkt="POLYGON ((120.15 30.27, 120.16 30.27, 120.16 30.28, 120.15 30.28, 120.15 30.27))"
)

DISPATCHER = Actor("duty-officer-1", Role.DISPATCHER)
PLANNER = Actor("planner-1", Role.PLANNER)
HOTLINE = Actor("operator-7", Role.HOTLINE_OPERATOR)
INSPECTOR = Actor("inspector-3", Role.INSPECTOR)
LEADER = Actor("mayor", Role.LEADER)
SENSOR_GATEWAY = Actor("sensor-gateway", Role.SYSTEM)
WATER = Actor("water-duty", Role.DEPARTMENT_USER, department="water")
TRAFFIC_POLICE = Actor("traffic-duty", Role.DEPARTMENT_USER, department="traffic-police")


class Clock:
    """A clock that stands still until the test moves it."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(catalogue: Catalogue, clock: Clock) -> Incidents:
    return Incidents(POPO, catalogue=catalogue, clock=clock)


def flood_levels() -> list[PlanLevel]:
    """The urban flood plan: more departments and pumps the higher the level."""
    pumps = PlanTask("water", "Open the drainage pumping stations", timedelta(minutes=30))
    close_roads = PlanTask("traffic-police", "Close the flooded underpasses", timedelta(hours=1))
    shelter = PlanTask("emergency-management", "Open the nearest shelters", timedelta(hours=2))
    return [
        PlanLevel("IV", tasks=(pumps,), resources=(ResourceRequirement("drainage-pump-truck", 1),)),
        PlanLevel("III", tasks=(pumps, close_roads),
                  resources=(ResourceRequirement("drainage-pump-truck", 2),)),
        PlanLevel("II", tasks=(pumps, close_roads, shelter),
                  resources=(ResourceRequirement("drainage-pump-truck", 4),
                             ResourceRequirement("shelter", 1))),
        PlanLevel("I", tasks=(pumps, close_roads, shelter,
                              PlanTask("fire", "Rescue trapped people", timedelta(minutes=15))),
                  resources=(ResourceRequirement("drainage-pump-truck", 6),
                             ResourceRequirement("water-rescue-boat", 2))),
    ]


def define_flood_plan(app: Incidents, code: str = "urban-flood") -> UUID:
    return app.handle(
        DefinePlan(code=code, plan_name="Urban flood and waterlogging",
            category="natural-disaster", incident_types=["flood", "waterlogging"],
            levels=flood_levels()),
        CommandContext(actor=PLANNER)).subject


def report_waterlogging(app: Incidents, *, actor: Actor = HOTLINE,
                        command_id: str | None = None, **overrides: Any) -> UUID:
    facts: dict[str, Any] = {
        "category": "natural-disaster", "incident_type": "waterlogging",
        "title": "Underpass under water", "description": "Cars stuck at Wulin underpass",
        "location": UNDERPASS, "source": "hotline",
    }
    facts.update(overrides)
    return app.handle(ReportIncident(**facts),
                      CommandContext(actor=actor, command_id=command_id)).subject


def events_of(app: Incidents, aggregate_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.events.get(aggregate_id)]


# --- the lifecycle, step by step --------------------------------------------------------


def test_a_flood_from_the_first_call_to_the_after_action_review(
        app: Incidents, clock: Clock) -> None:
    # A planner has defined the urban flood plan.
    plan_id = define_flood_plan(app)

    # A citizen calls the hotline: the underpass is under water.
    incident_id = report_waterlogging(app)
    incident = app.incident(incident_id)
    assert incident.status is IncidentStatus.REPORTED
    assert incident.level == "IV"  # assessed as general until verified

    # The duty officer verifies it and judges it relatively major.
    clock.advance(minutes=5)
    app.handle(
        VerifyIncident(incident_id=incident_id, level="III", note="confirmed by camera"),
        CommandContext(actor=DISPATCHER))
    assert app.incident(incident_id).status is IncidentStatus.VERIFIED

    # He starts the response at level III with the flood plan: the plan's level III tasks go
    # to the water company and the traffic police, due by the plan's time allowances.
    clock.advance(minutes=5)
    activated_at = clock.now
    app.handle(
        RespondToIncident(incident_id=incident_id, level="III", plan_id=plan_id,
            reason="rain continues"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert incident.status is IncidentStatus.RESPONDING
    tasks = {t.department: t for t in incident.tasks.values()}
    assert set(tasks) == {"water", "traffic-police"}
    assert tasks["water"].due == activated_at + timedelta(minutes=30)
    assert tasks["traffic-police"].due == activated_at + timedelta(hours=1)
    assert incident.required_resources() == {"drainage-pump-truck": 2}

    # A commander is named; the hotline ticket and a grid case are linked.
    ticket_id, case_id = uuid4(), uuid4()
    app.handle(
        AssignCommander(incident_id=incident_id, commander="deputy-director-li"),
        CommandContext(actor=DISPATCHER))
    app.handle(
        LinkToIncident(incident_id=incident_id, kind="hotline-ticket", target_id=ticket_id),
        CommandContext(actor=HOTLINE))
    app.handle(
        LinkToIncident(incident_id=incident_id, kind=LinkKind.GRID_CASE, target_id=case_id),
        CommandContext(actor=DISPATCHER))

    # Two pump trucks are sent.
    trucks = [uuid4(), uuid4()]
    for truck in trucks:
        app.handle(
            AssignResourceToIncident(incident_id=incident_id, resource_id=truck,
                kind="drainage-pump-truck"),
            CommandContext(actor=DISPATCHER))
    assert app.incident(incident_id).resource_shortfall() == {}

    # The water company acknowledges its task and reports it done in time.
    clock.advance(minutes=3)
    app.handle(
        AcknowledgeTask(incident_id=incident_id, task_id=tasks["water"].id),
        CommandContext(actor=WATER))
    clock.advance(minutes=20)
    app.handle(
        CompleteTask(incident_id=incident_id, task_id=tasks["water"].id,
            result="3 stations running"),
        CommandContext(actor=WATER))

    # The first situation report: people trapped, the flooded block drawn on the map.
    app.handle(
        AddSituationReport(incident_id=incident_id, text="Two cars trapped, water 1.2 m",
            casualties={"trapped": 4, "injured": 0}, affected_area=FLOODED_BLOCK),
        CommandContext(actor=INSPECTOR))

    # The rain gets worse: the level is raised to II. Only the level II task that was not
    # given out yet is created (the pumps and road closure are not duplicated).
    clock.advance(minutes=10)
    raised_at = clock.now
    app.handle(
        EscalateIncident(incident_id=incident_id, reason="river over warning line"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert incident.level == "II"
    assert sorted(t.department for t in incident.tasks.values()) == [
        "emergency-management", "traffic-police", "water"]
    shelter = next(t for t in incident.tasks.values() if t.department == "emergency-management")
    assert shelter.due == raised_at + timedelta(hours=2)
    assert incident.required_resources() == {"drainage-pump-truck": 4, "shelter": 1}
    assert incident.resource_shortfall() == {"drainage-pump-truck": 2, "shelter": 1}

    # The water recedes: back to level III, with the reason; no task is created or removed.
    clock.advance(hours=1)
    app.handle(
        ChangeIncidentLevel(incident_id=incident_id, level="III", reason="water receding"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert len(incident.tasks) == 3
    assert [(c.level, c.reason) for c in incident.level_changes] == [
        ("III", "rain continues"), ("II", "river over warning line"), ("III", "water receding")]

    # Contained. It cannot be closed while the road closure and the shelters are open: the
    # refusal names them. The police report done; the shelters, never needed, are waived.
    clock.advance(hours=1)
    app.handle(
        ContainIncident(incident_id=incident_id, note="water below road level"),
        CommandContext(actor=DISPATCHER))
    clock.advance(hours=2)
    with pytest.raises(OpenTasksRemain, match="2 tasks are still open") as refused:
        app.handle(
            CloseIncident(incident_id=incident_id, note="roads reopened"),
            CommandContext(actor=DISPATCHER))
    assert [(t[1], t[3]) for t in refused.value.open_tasks] == [
        ("traffic-police", "assigned"), ("emergency-management", "assigned")]
    app.handle(
        CompleteTask(incident_id=incident_id, task_id=tasks["traffic-police"].id,
            result="underpasses closed"),
        CommandContext(actor=TRAFFIC_POLICE))
    app.handle(
        WaiveTask(incident_id=incident_id, task_id=shelter.id, reason="nobody needed a shelter"),
        CommandContext(actor=DISPATCHER))
    # Closed: the trucks still assigned are released by the closing.
    app.handle(
        CloseIncident(incident_id=incident_id, note="roads reopened"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert incident.status is IncidentStatus.CLOSED
    assert all(a.released_at == clock.now for a in incident.resources)
    assert {a.release_reason for a in incident.resources} == {"incident closed"}

    # The after-action review: a summary and structured findings.
    clock.advance(days=2)
    app.handle(
        ReviewIncident(incident_id=incident_id, summary="Pumps in time; shelters opened late.",
            findings=[
        Finding(FindingAspect.PLAN, "Shelter task allowance too long",
                recommendation="Reduce to 1 hour", department="emergency-management"),
        Finding(FindingAspect.RESPONSE_TIME, "Verification took 5 minutes"),
    ]),
        CommandContext(actor=PLANNER))
    incident = app.incident(incident_id)
    assert incident.status is IncidentStatus.REVIEWED
    summary = incident.summary()
    assert summary["review"]["findings"][0]["aspect"] == "plan"
    assert summary["response_times"] == {
        "to_verified": 300.0, "to_responding": 600.0,
        "to_contained": 600.0 + 33 * 60 + 60 * 60 + 3600.0,
        "to_closed": 600.0 + 33 * 60 + 60 * 60 + 3600.0 + 7200.0,
    }
    assert summary["casualties"] == {"injured": 0, "trapped": 4}
    assert summary["affected_area"] == FLOODED_BLOCK.to_geojson()
    assert {link["kind"] for link in summary["links"]} == {"hotline-ticket", "grid-case"}
    assert summary["open_tasks"] == 0
    done = next(t for t in summary["tasks"] if t["department"] == "water")
    assert done["status"] == "done" and done["done_late"] is False
    waived = next(t for t in summary["tasks"] if t["department"] == "emergency-management")
    assert (waived["status"], waived["waived_by"], waived["waive_reason"]) == (
        "waived", "duty-officer-1", "nobody needed a shelter")

    # Reloading the incident from its stored events gives exactly the same state.
    assert app.repository.get(incident_id).summary() == summary
    assert events_of(app, incident_id) == [
        "Reported", "Verified", "ResponseStarted", "PlanActivated", "CommanderAssigned",
        "Linked", "Linked", "ResourceAssigned", "ResourceAssigned", "TaskAcknowledged",
        "TaskDone", "SituationReported", "LevelChanged", "PlanActivated", "LevelChanged",
        "Contained", "TaskDone", "TaskWaived", "Closed", "Reviewed",
    ]


def test_a_false_report_is_dismissed_and_nothing_more_happens(app: Incidents) -> None:
    incident_id = report_waterlogging(app)
    app.handle(
        DismissIncident(incident_id=incident_id, reason="prank call: road dry on camera"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert incident.status is IncidentStatus.DISMISSED
    assert incident.dismiss_reason == "prank call: road dry on camera"
    with pytest.raises(IllegalTransition):
        app.handle(CloseIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))


def test_every_event_records_who_did_it_in_what_role_and_when(
        app: Incidents, clock: Clock) -> None:
    incident_id = report_waterlogging(app)
    clock.advance(minutes=7)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    reported, verified = app.events.get(incident_id)
    assert (reported.actor, reported.timestamp) == (HOTLINE, START)
    assert (verified.actor, verified.timestamp) == (DISPATCHER, START + timedelta(minutes=7))


# --- report: ids, sources, escalation --------------------------------------------------


def test_an_alarm_escalates_into_an_incident_under_the_id_it_chose(app: Incidents) -> None:
    alarm_id = uuid4()
    incident_id = uuid5(alarm_id, "incident")
    got = app.handle(
        ReportIncident(category="accident-disaster", incident_type="gas-leak",
            title="Gas concentration over threshold", location=UNDERPASS, source="alarm",
            source_ref=str(alarm_id), level="II", warning="orange", incident_id=incident_id),
        CommandContext(actor=SENSOR_GATEWAY)).subject
    assert got == incident_id
    incident = app.incident(incident_id)
    assert (incident.source.value, incident.source_ref, incident.warning) == (
        "alarm", str(alarm_id), "orange")
    app.handle(
        LinkToIncident(incident_id=incident_id, kind="hazard-alarm", target_id=alarm_id),
        CommandContext(actor=SENSOR_GATEWAY))

    # The same id reported again (another command) is a clear error, not a silent second.
    with pytest.raises(IllegalTransition, match="already reported"):
        app.handle(
            ReportIncident(category="accident-disaster", incident_type="gas-leak", title="Again",
                location=UNDERPASS, source="alarm", incident_id=incident_id),
            CommandContext(actor=SENSOR_GATEWAY))


def test_a_report_with_a_command_id_gets_an_id_derived_from_it(app: Incidents) -> None:
    incident_id = report_waterlogging(app, command_id="call-20260701-0001")
    assert incident_id == uuid5(COMMAND_NAMESPACE, "incident:call-20260701-0001")


def test_verification_may_correct_category_type_and_level(app: Incidents) -> None:
    incident_id = report_waterlogging(app)
    app.handle(
        VerifyIncident(incident_id=incident_id, category="accident-disaster",
            incident_type="utility-failure", level="II"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert (incident.category, incident.incident_type, incident.level, incident.level_rank) == (
        "accident-disaster", "utility-failure", "II", 2)


# --- idempotency, permissions, bad input -------------------------------------------------


def test_a_commands_receipt_is_stamped_by_the_applications_clock(app: Incidents,
                                                                   clock: Clock) -> None:
    """The receipt says when the command was handled on the city's clock (a drill's or the
    demo's), as its events do; it was stamped by the wall clock."""
    clock.advance(minutes=5)
    incident_id = report_waterlogging(app, command_id="call-stamped")
    receipt = app.repository.get(CommandReceipt.create_id("call-stamped"))
    assert receipt.created_on == clock() == app.repository.get(incident_id).created_on


def test_a_repeated_command_id_changes_nothing(app: Incidents) -> None:
    first = report_waterlogging(app, command_id="call-1")
    second = report_waterlogging(app, command_id="call-1")
    assert first == second
    assert events_of(app, first) == ["Reported"]

    app.handle(
        VerifyIncident(incident_id=first),
        CommandContext(actor=DISPATCHER, command_id="verify-1"))
    app.handle(
        VerifyIncident(incident_id=first),
        CommandContext(actor=DISPATCHER, command_id="verify-1"))
    app.handle(
        RespondToIncident(incident_id=first, level="IV"),
        CommandContext(actor=DISPATCHER, command_id="respond-1"))
    app.handle(
        AssignTask(incident_id=first, department="water", description="Check the pumps",
            allowance=timedelta(hours=1)),
        CommandContext(actor=DISPATCHER, command_id="task-1"))
    app.handle(
        AssignTask(incident_id=first, department="water", description="Check the pumps",
            allowance=timedelta(hours=1)),
        CommandContext(actor=DISPATCHER, command_id="task-1"))
    assert events_of(app, first) == ["Reported", "Verified", "ResponseStarted", "TaskAssigned"]
    assert set(app.incident(first).tasks) == {uuid5(COMMAND_NAMESPACE, "incident-task:task-1")}


def test_a_reused_command_id_with_other_arguments_is_refused(app: Incidents) -> None:
    incident_id = report_waterlogging(app, command_id="call-1")
    with pytest.raises(CommandIdReused):
        report_waterlogging(app, title="Another thing", command_id="call-1")
    app.handle(
        VerifyIncident(incident_id=incident_id),
        CommandContext(actor=DISPATCHER, command_id="verify-1"))
    with pytest.raises(CommandIdReused):
        app.handle(
            DismissIncident(incident_id=incident_id, reason="false"),
            CommandContext(actor=DISPATCHER, command_id="verify-1"))
    plan_id = define_flood_plan(app)
    with pytest.raises(CommandIdReused):
        app.handle(
            RetirePlan(plan_id=plan_id, reason="obsolete"),
            CommandContext(actor=PLANNER, command_id="verify-1"))


def test_plan_definition_is_idempotent_by_command_id(app: Incidents) -> None:
    first = app.handle(
        DefinePlan(code="urban-flood", plan_name="Urban flood", category="natural-disaster",
            levels=flood_levels()),
        CommandContext(actor=PLANNER, command_id="plan-1")).subject
    second = app.handle(
        DefinePlan(code="urban-flood", plan_name="Urban flood", category="natural-disaster",
            levels=flood_levels()),
        CommandContext(actor=PLANNER, command_id="plan-1")).subject
    assert first == second == plan_id_for("urban-flood")
    assert events_of(app, first) == ["Defined"]


@pytest.mark.parametrize(("actor", "command"), [
    (LEADER, lambda app, i: report_waterlogging(app, actor=LEADER)),
    (HOTLINE, lambda app, i: app.handle(
        VerifyIncident(incident_id=i),
        CommandContext(actor=HOTLINE)).subject),
    (WATER, lambda app, i: app.handle(
        RespondToIncident(incident_id=i, level="IV"),
        CommandContext(actor=WATER)).subject),
    (INSPECTOR, lambda app, i: app.handle(
        CloseIncident(incident_id=i),
        CommandContext(actor=INSPECTOR)).subject),
    (WATER, lambda app, i: app.handle(
        AssignResourceToIncident(incident_id=i, resource_id=uuid4(), kind="shelter"),
        CommandContext(actor=WATER)).subject),
    (HOTLINE, lambda app, i: app.handle(
        ReviewIncident(incident_id=i, summary="x"),
        CommandContext(actor=HOTLINE)).subject),
    (INSPECTOR, lambda app, i: app.handle(
        DefinePlan(code="x", plan_name="x", category="natural-disaster", levels=flood_levels()),
        CommandContext(actor=INSPECTOR)).subject),
    (LEADER, lambda app, i: app.handle(
        ChangeIncidentLevel(incident_id=i, level="I", reason="x"),
        CommandContext(actor=LEADER)).subject),
    (WATER, lambda app, i: app.handle(
        AssignCommander(incident_id=i, commander="me"),
        CommandContext(actor=WATER)).subject),
])
def test_a_role_that_may_not_issue_a_command_is_refused(
        app: Incidents, actor: Actor, command: Callable[[Incidents, UUID], object]) -> None:
    incident_id = report_waterlogging(app)
    with pytest.raises(NotPermitted, match=actor.role.value):
        command(app, incident_id)
    assert app.incident(incident_id).version == 1


def test_only_planning_roles_revise_and_retire_plans(
        app: Incidents) -> None:
    plan_id = define_flood_plan(app)
    with pytest.raises(NotPermitted):
        app.handle(
            RevisePlan(plan_id=plan_id, levels=flood_levels(), note="x"),
            CommandContext(actor=Actor("w", Role.DEPARTMENT_USER, department="water")))
    with pytest.raises(NotPermitted):
        app.handle(RetirePlan(plan_id=plan_id, reason="x"), CommandContext(actor=HOTLINE))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"level": "V"}, "unknown incident level 'V'"),
    ({"category": "weather"}, "unknown incident category"),
    ({"incident_type": "fire"}, "not in category"),
    ({"source": "pigeon"}, "unknown incident source"),
    ({"warning": "purple"}, "unknown warning colour"),
    ({"title": "   "}, "title must not be empty"),
    ({"title": "x" * 201}, "longer than 200"),
    ({"location": (120.1, 30.2)}, "location must be a point"),
])
def test_a_bad_report_is_refused_with_what_is_wrong(
        app: Incidents, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        report_waterlogging(app, **overrides)


def test_bad_values_on_an_incident_are_refused_and_nothing_is_recorded(
        app: Incidents, clock: Clock) -> None:
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=incident_id, level="III"),
        CommandContext(actor=DISPATCHER))
    version = app.incident(incident_id).version
    bad: list[tuple[Callable[[], object], str]] = [
        (lambda: app.handle(
            ChangeIncidentLevel(incident_id=incident_id, level="0", reason="x"),
            CommandContext(actor=DISPATCHER)).subject,
         "unknown incident level"),
        (lambda: app.handle(
            ChangeIncidentLevel(incident_id=incident_id, level="II", reason=" "),
            CommandContext(actor=DISPATCHER)).subject,
         "reason must not be empty"),
        (lambda: app.handle(
            AddSituationReport(incident_id=incident_id, text="x", casualties={"dead": -1}),
            CommandContext(actor=DISPATCHER)).subject, "count >= 0"),
        (lambda: app.handle(
            AddSituationReport(incident_id=incident_id, text="x", casualties={"wounded": 1}),
            CommandContext(actor=DISPATCHER)).subject, "unknown casualty figure"),
        (lambda: app.handle(
            AddSituationReport(incident_id=incident_id, text=""),
            CommandContext(actor=DISPATCHER)).subject,
         "report must not be empty"),
        (lambda: app.handle(
            LinkToIncident(incident_id=incident_id, kind="tweet", target_id=uuid4()),
            CommandContext(actor=DISPATCHER)).subject,
         "unknown link kind"),
        (lambda: app.handle(
            AssignResourceToIncident(incident_id=incident_id, resource_id=uuid4(), kind="tank"),
            CommandContext(actor=DISPATCHER)).subject, "unknown resource kind"),
        (lambda: app.handle(
            AssignTask(incident_id=incident_id, department="army", description="x",
                allowance=timedelta(hours=1)),
            CommandContext(actor=DISPATCHER)).subject,
         "unknown department"),
        (lambda: app.handle(
            AssignTask(incident_id=incident_id, department="water", description="x",
                allowance=timedelta(0)),
            CommandContext(actor=DISPATCHER)).subject,
         "more than zero"),
        (lambda: app.handle(
            ContainIncident(incident_id=incident_id),
            CommandContext(actor=DISPATCHER, at=START - timedelta(hours=1))).subject,
         "precedes its last recorded event"),
        (lambda: app.handle(
            ContainIncident(incident_id=incident_id),
            CommandContext(actor=DISPATCHER, at=START + timedelta(hours=1))).subject,
         "in the future"),
    ]
    for command, message in bad:
        with pytest.raises(InvalidValue, match=message):
            command()
    assert app.incident(incident_id).version == version


def test_review_findings_are_checked(app: Incidents) -> None:
    with pytest.raises(InvalidValue, match="unknown finding aspect"):
        Finding("luck", "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="finding must not be empty"):
        Finding(FindingAspect.OTHER, "")
    incident_id = report_waterlogging(app)
    with pytest.raises(InvalidValue, match="unknown department"):
        app.handle(
            ReviewIncident(incident_id=incident_id, summary="x",
                findings=[Finding(FindingAspect.COMMAND, "x", department="navy")]),
            CommandContext(actor=PLANNER))


def test_an_unknown_incident_or_plan_is_not_found(app: Incidents) -> None:
    with pytest.raises(NotFound, match="incident"):
        app.handle(VerifyIncident(incident_id=uuid4()), CommandContext(actor=DISPATCHER))
    with pytest.raises(NotFound, match="contingency plan"):
        app.plan_by_code("no-such-plan")
    plan_id = define_flood_plan(app)
    with pytest.raises(NotFound, match="incident"):
        app.incident(plan_id)  # a plan is not an incident


# --- illegal transitions: every state x every command --------------------------------------


STATES = [s.value for s in IncidentStatus]


@dataclass
class Situation:
    app: Incidents
    incident_id: UUID
    plan_id: UUID
    task_id: UUID | None
    resource_id: UUID


def bring_to(app: Incidents, state: str) -> Situation:
    """An incident in `state`; when it responds it is at level III without a plan, with one
    task of the water company and one assigned resource."""
    plan_id = define_flood_plan(app)
    incident_id = report_waterlogging(app)
    resource_id = uuid4()
    task_id = None
    if state == "dismissed":
        app.handle(
            DismissIncident(incident_id=incident_id, reason="false"),
            CommandContext(actor=DISPATCHER))
        return Situation(app, incident_id, plan_id, task_id, resource_id)
    def close() -> None:
        # Its task must be settled first (done here: the department reports it).
        assert task_id is not None
        app.handle(
            CompleteTask(incident_id=incident_id, task_id=task_id),
            CommandContext(actor=WATER))
        app.handle(CloseIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))

    steps: list[tuple[str, Callable[[], object]]] = [
        ("verified", lambda: app.handle(
            VerifyIncident(incident_id=incident_id),
            CommandContext(actor=DISPATCHER)).subject),
        ("responding", lambda: app.handle(
            RespondToIncident(incident_id=incident_id, level="III"),
            CommandContext(actor=DISPATCHER)).subject),
        ("contained", lambda: app.handle(
            ContainIncident(incident_id=incident_id),
            CommandContext(actor=DISPATCHER)).subject),
        ("closed", close),
        ("reviewed", lambda: app.handle(
            ReviewIncident(incident_id=incident_id, summary="done"),
            CommandContext(actor=PLANNER)).subject),
    ]
    order = ["reported", "verified", "responding", "contained", "closed", "reviewed"]
    for name, step in steps[:order.index(state)]:
        step()
        if name == "verified":
            app.handle(
                AssignResourceToIncident(incident_id=incident_id, resource_id=resource_id,
                    kind="rescue-team"),
                CommandContext(actor=DISPATCHER))
        if name == "responding":
            app.handle(
                AssignTask(incident_id=incident_id, department="water", description="Pump",
                    allowance=timedelta(hours=1)),
                CommandContext(actor=DISPATCHER))
            task_id = next(iter(app.incident(incident_id).tasks))
    return Situation(app, incident_id, plan_id, task_id, resource_id)


def _task(s: Situation) -> UUID:
    return s.task_id or uuid4()


def _close_settled(s: Situation) -> None:
    """Close, its task waived first where that is the only thing in the way (see
    `test_closing_is_refused_while_a_task_is_open` for the refusal)."""
    if s.task_id is not None and s.app.incident(s.incident_id).status.value == "contained":
        s.app.handle(
            WaiveTask(incident_id=s.incident_id, task_id=s.task_id, reason="not needed"),
            CommandContext(actor=DISPATCHER))
    s.app.handle(CloseIncident(incident_id=s.incident_id), CommandContext(actor=DISPATCHER))


COMMANDS: dict[str, tuple[Callable[[Situation], object], set[str]]] = {
    "verify": (lambda s: s.app.handle(
        VerifyIncident(incident_id=s.incident_id),
        CommandContext(actor=DISPATCHER)).subject, {"reported"}),
    "dismiss": (lambda s: s.app.handle(
        DismissIncident(incident_id=s.incident_id, reason="x"),
        CommandContext(actor=DISPATCHER)).subject,
                {"reported"}),
    "respond": (lambda s: s.app.handle(
        RespondToIncident(incident_id=s.incident_id, level="II"),
        CommandContext(actor=DISPATCHER)).subject,
                {"verified"}),
    "activate plan": (lambda s: s.app.handle(
        ActivatePlan(incident_id=s.incident_id, plan_id=s.plan_id),
        CommandContext(actor=DISPATCHER)).subject, {"responding"}),
    "change level": (lambda s: s.app.handle(
        ChangeIncidentLevel(incident_id=s.incident_id, level="I", reason="x"),
        CommandContext(actor=DISPATCHER)).subject, {"responding"}),
    "escalate": (lambda s: s.app.handle(
        EscalateIncident(incident_id=s.incident_id, reason="x"),
        CommandContext(actor=DISPATCHER)).subject,
                 {"responding"}),
    "deescalate": (lambda s: s.app.handle(
        DeescalateIncident(incident_id=s.incident_id, reason="x"),
        CommandContext(actor=DISPATCHER)).subject,
                   {"responding"}),
    "situation report": (lambda s: s.app.handle(
        AddSituationReport(incident_id=s.incident_id, text="x"),
        CommandContext(actor=DISPATCHER)).subject,
                         {"verified", "responding", "contained"}),
    "link": (lambda s: s.app.handle(
        LinkToIncident(incident_id=s.incident_id, kind="grid-case", target_id=uuid4()),
        CommandContext(actor=DISPATCHER)).subject,
             {"reported", "verified", "responding", "contained"}),
    "assign commander": (lambda s: s.app.handle(
        AssignCommander(incident_id=s.incident_id, commander="c"),
        CommandContext(actor=DISPATCHER)).subject,
                         {"reported", "verified", "responding", "contained"}),
    "assign task": (lambda s: s.app.handle(
        AssignTask(incident_id=s.incident_id, department="fire", description="x",
            allowance=timedelta(hours=1)),
        CommandContext(actor=DISPATCHER)).subject,
                    {"responding", "contained"}),
    "acknowledge task": (lambda s: s.app.handle(
        AcknowledgeTask(incident_id=s.incident_id, task_id=_task(s)),
        CommandContext(actor=WATER)).subject,
                         {"responding", "contained"}),
    "complete task": (lambda s: s.app.handle(
        CompleteTask(incident_id=s.incident_id, task_id=_task(s)),
        CommandContext(actor=WATER)).subject,
                      {"responding", "contained"}),
    "cancel task": (lambda s: s.app.handle(
        CancelTask(incident_id=s.incident_id, task_id=_task(s), reason="x"),
        CommandContext(actor=DISPATCHER)).subject,
                    {"responding", "contained"}),
    "waive task": (lambda s: s.app.handle(
        WaiveTask(incident_id=s.incident_id, task_id=_task(s), reason="x"),
        CommandContext(actor=DISPATCHER)).subject,
                   {"responding", "contained"}),
    "assign resource": (lambda s: s.app.handle(
        AssignResourceToIncident(incident_id=s.incident_id, resource_id=uuid4(), kind="expert"),
        CommandContext(actor=DISPATCHER)).subject,
                        {"verified", "responding", "contained"}),
    "release resource": (lambda s: s.app.handle(
        ReleaseResourceFromIncident(incident_id=s.incident_id, resource_id=s.resource_id),
        CommandContext(actor=DISPATCHER)).subject,
                         {"verified", "responding", "contained"}),
    "contain": (lambda s: s.app.handle(
        ContainIncident(incident_id=s.incident_id),
        CommandContext(actor=DISPATCHER)).subject, {"responding"}),
    "flare up": (lambda s: s.app.handle(
        FlareUpIncident(incident_id=s.incident_id, reason="fire rekindled"),
        CommandContext(actor=DISPATCHER)).subject, {"contained"}),
    "close": (_close_settled, {"contained"}),
    "review": (lambda s: s.app.handle(
        ReviewIncident(incident_id=s.incident_id, summary="x"),
        CommandContext(actor=PLANNER)).subject, {"closed"}),
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_is_allowed_exactly_in_its_states(
        app: Incidents, state: str, command: str) -> None:
    situation = bring_to(app, state)
    before = app.incident(situation.incident_id)
    assert before.status.value == state
    run, allowed = COMMANDS[command]
    if state in allowed:
        run(situation)
        assert app.incident(situation.incident_id).version > before.version
    else:
        with pytest.raises(IllegalTransition) as refused:
            run(situation)
        assert refused.value.kind == "incident"
        assert refused.value.aggregate_id == situation.incident_id
        assert refused.value.state.startswith(state)
        assert app.incident(situation.incident_id).version == before.version
        assert app.incident(situation.incident_id).summary() == before.summary()


# --- levels ---------------------------------------------------------------------------------


def test_the_level_cannot_be_raised_above_i_or_lowered_below_iv(app: Incidents) -> None:
    top = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=top), CommandContext(actor=DISPATCHER))
    app.handle(RespondToIncident(incident_id=top, level="I"), CommandContext(actor=DISPATCHER))
    with pytest.raises(IllegalTransition, match="already at the highest level I"):
        app.handle(
            EscalateIncident(incident_id=top, reason="worse"),
            CommandContext(actor=DISPATCHER))

    bottom = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=bottom), CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=bottom, level="IV"),
        CommandContext(actor=DISPATCHER))
    with pytest.raises(IllegalTransition, match="already at the lowest level IV"):
        app.handle(
            DeescalateIncident(incident_id=bottom, reason="better"),
            CommandContext(actor=DISPATCHER))
    with pytest.raises(IllegalTransition, match="already at level IV"):
        app.handle(
            ChangeIncidentLevel(incident_id=bottom, level="IV", reason="same"),
            CommandContext(actor=DISPATCHER))
    with pytest.raises(InvalidValue, match="unknown incident level"):
        app.handle(
            ChangeIncidentLevel(incident_id=bottom, level="V", reason="lower still"),
            CommandContext(actor=DISPATCHER))
    assert app.incident(bottom).version == 3


def test_escalating_step_by_step_gives_each_plan_task_once(app: Incidents) -> None:
    plan_id = define_flood_plan(app)
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=incident_id, level="IV", plan_id=plan_id),
        CommandContext(actor=DISPATCHER))
    counts = []
    for _ in range(3):
        app.handle(
            EscalateIncident(incident_id=incident_id, reason="worse"),
            CommandContext(actor=DISPATCHER))
        counts.append(len(app.incident(incident_id).tasks))
    assert counts == [2, 3, 4]
    # Down and up again: level II was already activated, so nothing new.
    app.handle(
        DeescalateIncident(incident_id=incident_id, reason="better"),
        CommandContext(actor=DISPATCHER))
    app.handle(
        EscalateIncident(incident_id=incident_id, reason="worse again"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert len(incident.tasks) == 4
    assert incident.plans[plan_id].levels == ["IV", "III", "II", "I"]
    keys = [(t.plan_id, t.department, t.description) for t in incident.tasks.values()]
    assert len(set(keys)) == len(keys)
    assert incident.required_resources() == {
        "drainage-pump-truck": 6, "shelter": 1, "water-rescue-boat": 2}


def test_jumping_levels_gives_only_the_target_levels_tasks(app: Incidents) -> None:
    plan_id = define_flood_plan(app)
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=incident_id, level="IV", plan_id=plan_id),
        CommandContext(actor=DISPATCHER))
    app.handle(
        ChangeIncidentLevel(incident_id=incident_id, level="I", reason="dam breach"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert sorted(t.department for t in incident.tasks.values()) == [
        "emergency-management", "fire", "traffic-police", "water"]
    assert incident.plans[plan_id].levels == ["IV", "I"]


def test_lowering_the_level_gives_no_tasks_of_the_lower_level(app: Incidents) -> None:
    plan_id = app.handle(
        DefinePlan(code="gas", plan_name="Gas leak", category="natural-disaster",
            levels=[
                                  PlanLevel("II", tasks=(PlanTask("gas", "Shut the main valve",
                                                                  timedelta(minutes=10)),)),
                                  PlanLevel("III", tasks=(PlanTask("police", "Keep people away",
                                                                   timedelta(minutes=20)),)),
                              ]),
        CommandContext(actor=PLANNER)).subject
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=incident_id, level="II", plan_id=plan_id),
        CommandContext(actor=DISPATCHER))
    app.handle(
        DeescalateIncident(incident_id=incident_id, reason="valve shut"),
        CommandContext(actor=DISPATCHER))
    app.handle(
        EscalateIncident(incident_id=incident_id, reason="second leak"),
        CommandContext(actor=DISPATCHER))
    app.handle(
        EscalateIncident(incident_id=incident_id, reason="spreading"),
        CommandContext(actor=DISPATCHER))  # the plan has no level I
    incident = app.incident(incident_id)
    assert [t.department for t in incident.tasks.values()] == ["gas"]
    assert incident.plans[plan_id].levels == ["II"]
    assert incident.level == "I"


# --- contingency plans ------------------------------------------------------------------


def test_a_plan_is_defined_revised_and_retired(app: Incidents, clock: Clock) -> None:
    plan_id = define_flood_plan(app)
    assert plan_id == plan_id_for("urban-flood")
    plan = app.plan_by_code("urban-flood")
    assert (plan.status, plan.revision, plan.incident_types) == (
        PlanStatus.ACTIVE, 1, ["flood", "waterlogging"])

    clock.advance(days=30)
    levels = flood_levels()[:2]
    app.handle(
        RevisePlan(plan_id=plan_id, levels=levels, note="after the 2026 drill"),
        CommandContext(actor=PLANNER))
    plan = app.plan(plan_id)
    assert plan.revision == 2
    assert list(plan.levels) == ["IV", "III"]
    assert plan.revisions[-1].note == "after the 2026 drill"

    app.handle(
        RetirePlan(plan_id=plan_id, reason="replaced by the basin plan"),
        CommandContext(actor=PLANNER))
    plan = app.plan(plan_id)
    assert plan.status is PlanStatus.RETIRED
    with pytest.raises(IllegalTransition, match="retired"):
        app.handle(RetirePlan(plan_id=plan_id, reason="again"), CommandContext(actor=PLANNER))
    with pytest.raises(IllegalTransition, match="retired"):
        app.handle(
            RevisePlan(plan_id=plan_id, levels=levels, note="x"),
            CommandContext(actor=PLANNER))
    assert app.repository.get(plan_id).summary() == plan.summary()


def test_a_plan_code_is_defined_once(app: Incidents) -> None:
    define_flood_plan(app)
    with pytest.raises(IllegalTransition, match="already defined"):
        define_flood_plan(app)


@pytest.mark.parametrize(("change", "message"), [
    ({"code": "Urban Flood"}, "plan code"),
    ({"category": "weather"}, "unknown incident category"),
    ({"incident_types": ["fire"]}, "not in category"),
    ({"incident_types": ["flood", "flood"]}, "incident type twice"),
    ({"levels": []}, "at least one level"),
    ({"levels": [PlanLevel("V", resources=(ResourceRequirement("shelter", 1),))]},
     "unknown incident level"),
    ({"levels": [PlanLevel("IV", tasks=(PlanTask("army", "x", timedelta(hours=1)),))]},
     "unknown department"),
    ({"levels": [PlanLevel("IV", resources=(ResourceRequirement("tank", 1),))]},
     "unknown resource kind"),
    ({"levels": [PlanLevel("IV", resources=(ResourceRequirement("shelter", 1),)),
                 PlanLevel("IV", resources=(ResourceRequirement("shelter", 2),))]},
     "level twice"),
])
def test_a_bad_plan_is_refused(app: Incidents, change: dict[str, Any], message: str) -> None:
    facts: dict[str, Any] = {"code": "urban-flood", "plan_name": "Urban flood",
                             "category": "natural-disaster", "levels": flood_levels()}
    facts.update(change)
    with pytest.raises(InvalidValue, match=message):
        app.handle(DefinePlan(**facts), CommandContext(actor=PLANNER))
    assert app.plans() == []


@pytest.mark.parametrize(("build", "message"), [
    (lambda: PlanLevel("IV"), "neither tasks nor resources"),
    (lambda: PlanTask("water", "x", timedelta(days=31)), "at most 30 days"),
    (lambda: PlanTask("water", " ", timedelta(hours=1)), "task description must not be empty"),
    (lambda: ResourceRequirement("shelter", 0), ">= 1"),
    (lambda: PlanLevel("IV", tasks=(PlanTask("water", "x", timedelta(hours=1)),
                                    PlanTask("water", "x", timedelta(hours=2)))),
     "same task twice"),
    (lambda: PlanLevel("IV", resources=(ResourceRequirement("shelter", 1),
                                        ResourceRequirement("shelter", 2))),
     "resource kind twice"),
])
def test_plan_content_is_checked_when_it_is_built(
        build: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        build()


def test_finding_the_plans_for_a_category_and_level(app: Incidents) -> None:
    define_flood_plan(app)
    app.handle(
        DefinePlan(code="earthquake", plan_name="Earthquake", category="natural-disaster",
            incident_types=["earthquake"], levels=flood_levels()),
        CommandContext(actor=PLANNER))
    app.handle(
        DefinePlan(code="all-natural", plan_name="Any natural disaster, level I only",
            category="natural-disaster",
            levels=[PlanLevel("I", resources=(ResourceRequirement("expert", 3),))]),
        CommandContext(actor=PLANNER))
    app.handle(
        DefinePlan(code="fire", plan_name="Fire", category="accident-disaster",
            levels=flood_levels()),
        CommandContext(actor=PLANNER))
    retired = app.handle(
        DefinePlan(code="old-flood", plan_name="Old flood plan", category="natural-disaster",
            levels=flood_levels()),
        CommandContext(actor=PLANNER)).subject
    app.handle(RetirePlan(plan_id=retired, reason="obsolete"), CommandContext(actor=PLANNER))

    def codes(*args: Any) -> list[str]:
        return [p.code for p in app.plans_for(*args)]

    assert codes("natural-disaster", "III", "flood") == ["urban-flood"]
    assert codes("natural-disaster", "I", "flood") == ["all-natural", "urban-flood"]
    assert codes("natural-disaster", "I") == ["all-natural", "earthquake", "urban-flood"]
    assert codes("accident-disaster", "IV") == ["fire"]
    assert codes("public-health", "IV") == []
    assert [p.code for p in app.plans()] == [
        "all-natural", "earthquake", "fire", "old-flood", "urban-flood"]
    with pytest.raises(InvalidValue):
        app.plans_for("natural-disaster", "V")
    with pytest.raises(InvalidValue):
        app.plans_for("natural-disaster", "I", "fire")


@pytest.mark.parametrize(("plan", "message"), [
    ({"code": "fire", "category": "accident-disaster", "incident_types": []},
     "it is a plan for accident-disaster"),
    ({"code": "quake", "category": "natural-disaster", "incident_types": ["earthquake"]},
     "it is a plan for natural-disaster/earthquake"),
    ({"code": "top-only", "category": "natural-disaster", "incident_types": [],
      "levels": [PlanLevel("I", resources=(ResourceRequirement("expert", 1),))]},
     "it has nothing for level III"),
])
def test_a_plan_that_does_not_fit_the_incident_is_not_activated(
        app: Incidents, plan: dict[str, Any], message: str) -> None:
    plan = dict(plan)
    plan_id = app.handle(
        DefinePlan(plan_name="Plan", levels=plan.pop("levels", flood_levels()), **plan),
        CommandContext(actor=PLANNER)).subject
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    with pytest.raises(IllegalTransition, match=message) as refused:
        app.handle(
            RespondToIncident(incident_id=incident_id, level="III", plan_id=plan_id),
            CommandContext(actor=DISPATCHER))
    assert refused.value.kind == "contingency plan"
    # The whole command is refused: the incident did not start responding either.
    assert app.incident(incident_id).status is IncidentStatus.VERIFIED


def test_a_retired_plan_cannot_be_activated(app: Incidents) -> None:
    plan_id = define_flood_plan(app)
    app.handle(RetirePlan(plan_id=plan_id, reason="replaced"), CommandContext(actor=PLANNER))
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    with pytest.raises(IllegalTransition, match="retired"):
        app.handle(
            RespondToIncident(incident_id=incident_id, level="III", plan_id=plan_id),
            CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=incident_id, level="III"),
        CommandContext(actor=DISPATCHER))
    with pytest.raises(IllegalTransition, match="retired"):
        app.handle(
            ActivatePlan(incident_id=incident_id, plan_id=plan_id),
            CommandContext(actor=DISPATCHER))


def test_a_plan_retired_during_the_response_gives_no_more_tasks(app: Incidents) -> None:
    plan_id = define_flood_plan(app)
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=incident_id, level="IV", plan_id=plan_id),
        CommandContext(actor=DISPATCHER))
    app.handle(RetirePlan(plan_id=plan_id, reason="replaced"), CommandContext(actor=PLANNER))
    app.handle(
        EscalateIncident(incident_id=incident_id, reason="worse"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert incident.level == "III"
    assert len(incident.tasks) == 1


def test_raising_the_level_uses_the_plans_current_revision(app: Incidents) -> None:
    plan_id = define_flood_plan(app)
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=incident_id, level="IV", plan_id=plan_id),
        CommandContext(actor=DISPATCHER))
    revised = [*flood_levels()[:1], PlanLevel("III", tasks=(
        PlanTask("roads", "Put up diversion signs", timedelta(minutes=45)),))]
    app.handle(
        RevisePlan(plan_id=plan_id, levels=revised, note="roads do the signs"),
        CommandContext(actor=PLANNER))
    app.handle(
        EscalateIncident(incident_id=incident_id, reason="worse"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert sorted(t.department for t in incident.tasks.values()) == ["roads", "water"]
    assert incident.plans[plan_id].revision == 2


def test_two_plans_can_run_on_one_incident_but_each_only_once(app: Incidents) -> None:
    flood = define_flood_plan(app)
    power = app.handle(
        DefinePlan(code="power-outage", plan_name="Power outage", category="natural-disaster",
            levels=[PlanLevel(
                                "III", tasks=(PlanTask("power", "Cut power to flooded "
                                                       "substations", timedelta(minutes=20)),),
                                resources=(ResourceRequirement("drainage-pump-truck", 1),))]),
        CommandContext(actor=PLANNER)).subject
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=incident_id, level="III", plan_id=flood),
        CommandContext(actor=DISPATCHER))
    app.handle(
        ActivatePlan(incident_id=incident_id, plan_id=power),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert len(incident.tasks) == 3
    assert incident.required_resources() == {"drainage-pump-truck": 3}
    with pytest.raises(IllegalTransition, match="already activated"):
        app.handle(
            ActivatePlan(incident_id=incident_id, plan_id=flood),
            CommandContext(actor=DISPATCHER))


# --- tasks ---------------------------------------------------------------------------------


@pytest.fixture
def responding(app: Incidents) -> tuple[UUID, dict[str, UUID]]:
    """An incident responding at level III with the flood plan: tasks by department."""
    plan_id = define_flood_plan(app)
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    app.handle(
        RespondToIncident(incident_id=incident_id, level="III", plan_id=plan_id),
        CommandContext(actor=DISPATCHER))
    tasks = {t.department: t.id for t in app.incident(incident_id).tasks.values()}
    return incident_id, tasks


def test_a_department_moves_only_its_own_tasks(
        app: Incidents, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, tasks = responding
    version = app.incident(incident_id).version
    with pytest.raises(NotPermitted, match="it is a task of traffic-police"):
        app.handle(
            AcknowledgeTask(incident_id=incident_id, task_id=tasks["traffic-police"]),
            CommandContext(actor=WATER))
    with pytest.raises(NotPermitted):
        app.handle(
            CompleteTask(incident_id=incident_id, task_id=tasks["water"]),
            CommandContext(actor=TRAFFIC_POLICE))
    assert app.incident(incident_id).version == version
    app.handle(
        CompleteTask(incident_id=incident_id, task_id=tasks["traffic-police"], result="closed"),
        CommandContext(actor=TRAFFIC_POLICE))
    # The centre may move any department's task.
    app.handle(
        AcknowledgeTask(incident_id=incident_id, task_id=tasks["water"]),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert incident.tasks[tasks["traffic-police"]].status is TaskStatus.DONE
    assert incident.tasks[tasks["water"]].status is TaskStatus.ACKNOWLEDGED


def test_task_transitions(app: Incidents, clock: Clock,
                          responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, tasks = responding
    water = tasks["water"]
    app.handle(
        AcknowledgeTask(incident_id=incident_id, task_id=water),
        CommandContext(actor=WATER))
    with pytest.raises(IllegalTransition, match="cannot acknowledge incident task"):
        app.handle(
            AcknowledgeTask(incident_id=incident_id, task_id=water),
            CommandContext(actor=WATER))
    clock.advance(hours=2)  # the allowance was 30 minutes
    app.handle(
        CompleteTask(incident_id=incident_id, task_id=water, result="pumps on"),
        CommandContext(actor=WATER))
    assert app.incident(incident_id).tasks[water].summary()["done_late"] is True
    for move in (lambda: app.handle(
        CompleteTask(incident_id=incident_id, task_id=water),
        CommandContext(actor=WATER)).subject,
                 lambda: app.handle(
                     CancelTask(incident_id=incident_id, task_id=water, reason="x"),
                     CommandContext(actor=DISPATCHER)).subject):
        with pytest.raises(IllegalTransition, match="it is done"):
            move()
    police = tasks["traffic-police"]
    with pytest.raises(NotPermitted):
        app.handle(
            CancelTask(incident_id=incident_id, task_id=police, reason="not needed"),
            CommandContext(actor=TRAFFIC_POLICE))
    app.handle(
        CancelTask(incident_id=incident_id, task_id=police, reason="road already closed"),
        CommandContext(actor=DISPATCHER))
    with pytest.raises(IllegalTransition, match="it is cancelled"):
        app.handle(
            CompleteTask(incident_id=incident_id, task_id=police),
            CommandContext(actor=TRAFFIC_POLICE))
    with pytest.raises(NotFound, match="incident task"):
        app.handle(
            AcknowledgeTask(incident_id=incident_id, task_id=uuid4()),
            CommandContext(actor=DISPATCHER))


def test_the_centre_gives_a_task_outside_the_plan(
        app: Incidents, clock: Clock, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, _ = responding
    task_id = uuid4()
    app.handle(
        AssignTask(incident_id=incident_id, department="health",
            description="Send an ambulance team", allowance=timedelta(minutes=20), task_id=task_id),
        CommandContext(actor=DISPATCHER))
    task = app.incident(incident_id).tasks[task_id]
    assert (task.department, task.plan_id, task.due) == (
        "health", None, clock.now + timedelta(minutes=20))
    with pytest.raises(IllegalTransition, match="exists already"):
        app.handle(
            AssignTask(incident_id=incident_id, department="health", description="Again",
                allowance=timedelta(minutes=20), task_id=task_id),
            CommandContext(actor=DISPATCHER))


def test_closing_is_refused_while_a_task_is_open_and_the_refusal_names_each_one(
        app: Incidents, clock: Clock, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, tasks = responding
    app.handle(
        AcknowledgeTask(incident_id=incident_id, task_id=tasks["water"]),
        CommandContext(actor=WATER))
    app.handle(ContainIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    version = app.incident(incident_id).version
    with pytest.raises(OpenTasksRemain) as refused:
        app.handle(CloseIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    assert refused.value.state.startswith("contained and 2 tasks are still open")
    assert refused.value.open_tasks == (
        (str(tasks["water"]), "water", "Open the drainage pumping stations", "acknowledged"),
        (str(tasks["traffic-police"]), "traffic-police", "Close the flooded underpasses",
         "assigned"),
    )
    assert isinstance(refused.value, IllegalTransition)  # a 409, as any illegal transition
    assert app.incident(incident_id).version == version

    # Done, cancelled or waived: each settles a task; then it closes.
    app.handle(
        CompleteTask(incident_id=incident_id, task_id=tasks["water"]),
        CommandContext(actor=WATER))
    with pytest.raises(OpenTasksRemain, match="1 task is still open"):
        app.handle(CloseIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    clock.advance(minutes=5)
    app.handle(
        WaiveTask(incident_id=incident_id, task_id=tasks["traffic-police"],
            reason="  road closed by the rain "),
        CommandContext(actor=DISPATCHER))
    app.handle(CloseIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert incident.status is IncidentStatus.CLOSED and incident.open_tasks() == []
    waived = incident.tasks[tasks["traffic-police"]]
    assert (waived.status, waived.waived_at, waived.waived_by, waived.waive_reason) == (
        TaskStatus.WAIVED, clock.now, DISPATCHER.user_id, "road closed by the rain")


def test_a_waiver_needs_a_reason_and_the_centre(
        app: Incidents, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, tasks = responding
    version = app.incident(incident_id).version
    with pytest.raises(InvalidValue, match="reason must not be empty"):
        app.handle(
            WaiveTask(incident_id=incident_id, task_id=tasks["water"], reason="  "),
            CommandContext(actor=DISPATCHER))
    # The department whose task it is may not waive it, nor may a leader.
    for actor in (WATER, LEADER):
        with pytest.raises(NotPermitted, match=r"incident\.waive-task"):
            app.handle(
                WaiveTask(incident_id=incident_id, task_id=tasks["water"], reason="too busy"),
                CommandContext(actor=actor))
    with pytest.raises(NotFound, match="incident task"):
        app.handle(
            WaiveTask(incident_id=incident_id, task_id=uuid4(), reason="x"),
            CommandContext(actor=DISPATCHER))
    assert app.incident(incident_id).version == version
    # Only an open task is waived; a waived task is settled for good.
    app.handle(
        CompleteTask(incident_id=incident_id, task_id=tasks["water"]),
        CommandContext(actor=WATER))
    with pytest.raises(IllegalTransition, match="it is done"):
        app.handle(
            WaiveTask(incident_id=incident_id, task_id=tasks["water"], reason="x"),
            CommandContext(actor=DISPATCHER))
    app.handle(
        WaiveTask(incident_id=incident_id, task_id=tasks["traffic-police"], reason="x"),
        CommandContext(actor=DISPATCHER, command_id="waive-police"))
    # Repeated with its command id: nothing more happens.
    version = app.incident(incident_id).version
    app.handle(
        WaiveTask(incident_id=incident_id, task_id=tasks["traffic-police"], reason="x"),
        CommandContext(actor=DISPATCHER, command_id="waive-police"))
    assert app.incident(incident_id).version == version
    for move in (lambda: app.handle(
        CompleteTask(incident_id=incident_id, task_id=tasks["traffic-police"]),
        CommandContext(actor=TRAFFIC_POLICE)).subject,
                 lambda: app.handle(
                     CancelTask(incident_id=incident_id, task_id=tasks["traffic-police"],
                         reason="x"),
                     CommandContext(actor=DISPATCHER)).subject):
        with pytest.raises(IllegalTransition, match="it is waived"):
            move()


def test_a_release_says_how_the_assignment_ended(
        app: Incidents, clock: Clock, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, _ = responding
    truck = uuid4()
    app.handle(
        AssignResourceToIncident(incident_id=incident_id, resource_id=truck,
            kind="drainage-pump-truck"),
        CommandContext(actor=DISPATCHER))
    assert app.incident(incident_id).assignment_number(truck) == 1
    clock.advance(minutes=30)
    left_at = clock.now - timedelta(minutes=10)
    crew = Actor("pump-3-crew", Role.DEPARTMENT_USER, "water")
    app.handle(
        RecordResourceDeparture(incident_id=incident_id, resource_id=truck,
            how="cleared the scene", left_at=left_at),
        CommandContext(actor=crew))
    incident = app.incident(incident_id)
    assert incident.assignment_number(truck) is None
    assert incident.resources[0].summary()["released_at"] == left_at.isoformat()
    assert (incident.resources[0].released_by, incident.resources[0].release_reason) == (
        "pump-3-crew", "cleared the scene")
    # Sent again: its second assignment; the centre's own release says so.
    app.handle(
        AssignResourceToIncident(incident_id=incident_id, resource_id=truck,
            kind="drainage-pump-truck"),
        CommandContext(actor=DISPATCHER))
    assert app.incident(incident_id).assignment_number(truck) == 2
    app.handle(
        ReleaseResourceFromIncident(incident_id=incident_id, resource_id=truck),
        CommandContext(actor=DISPATCHER))
    assert app.incident(incident_id).resources[1].release_reason == "released by the centre"
    # A departure reported before the incident's last event is recorded at that event.
    app.handle(
        AssignResourceToIncident(incident_id=incident_id, resource_id=truck,
            kind="drainage-pump-truck"),
        CommandContext(actor=DISPATCHER))
    app.handle(
        RecordResourceDeparture(incident_id=incident_id, resource_id=truck, how="stood down",
            left_at=left_at),
        CommandContext(actor=crew))
    assert app.incident(incident_id).resources[2].released_at == clock.now


def test_a_release_stored_before_it_said_how_reads_as_the_centres(
        app: Incidents, responding: tuple[UUID, dict[str, UUID]]) -> None:
    """A `ResourceReleased` stored as version 1 had no reason: only the centre released
    resources then."""
    incident_id, _ = responding
    truck = uuid4()
    app.handle(
        AssignResourceToIncident(incident_id=incident_id, resource_id=truck,
            kind="drainage-pump-truck"),
        CommandContext(actor=DISPATCHER))
    app.handle(
        ReleaseResourceFromIncident(incident_id=incident_id, resource_id=truck),
        CommandContext(actor=DISPATCHER))
    released = list(app.events.get(incident_id))[-1]
    upcast = as_stored_by_version_1(app, released, "reason")
    assert isinstance(upcast, Incident.ResourceReleased)
    assert (upcast.resource_id, upcast.reason) == (truck, "released by the centre")


# --- links, commander, resources, situation reports ---------------------------------------


def test_linking_the_same_thing_twice_changes_nothing(app: Incidents) -> None:
    incident_id = report_waterlogging(app)
    ticket = uuid4()
    app.handle(
        LinkToIncident(incident_id=incident_id, kind="hotline-ticket", target_id=ticket),
        CommandContext(actor=HOTLINE))
    version = app.incident(incident_id).version
    app.handle(
        LinkToIncident(incident_id=incident_id, kind="hotline-ticket", target_id=ticket),
        CommandContext(actor=HOTLINE))
    assert app.incident(incident_id).version == version
    # The same id as another kind is another link.
    app.handle(
        LinkToIncident(incident_id=incident_id, kind="grid-case", target_id=ticket),
        CommandContext(actor=DISPATCHER))
    app.handle(
        UnlinkFromIncident(incident_id=incident_id, kind="hotline-ticket", target_id=ticket,
            reason="wrong ticket"),
        CommandContext(actor=DISPATCHER))
    assert [link["kind"] for link in app.incident(incident_id).summary()["links"]] == [
        "grid-case"]
    with pytest.raises(IllegalTransition, match="not linked"):
        app.handle(
            UnlinkFromIncident(incident_id=incident_id, kind="hotline-ticket", target_id=ticket,
                reason="again"),
            CommandContext(actor=DISPATCHER))


def test_the_commander_is_assigned_and_replaced(app: Incidents) -> None:
    incident_id = report_waterlogging(app)
    app.handle(
        AssignCommander(incident_id=incident_id, commander="chief-wang"),
        CommandContext(actor=DISPATCHER))
    app.handle(
        AssignCommander(incident_id=incident_id, commander="deputy-mayor-zhao",
            reason="raised to level II"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(incident_id)
    assert incident.commander == "deputy-mayor-zhao"
    assert [(c.commander, c.previous) for c in incident.commanders] == [
        ("chief-wang", None), ("deputy-mayor-zhao", "chief-wang")]
    with pytest.raises(IllegalTransition, match="already its commander"):
        app.handle(
            AssignCommander(incident_id=incident_id, commander="deputy-mayor-zhao"),
            CommandContext(actor=DISPATCHER))


def test_resources_are_assigned_and_released(
        app: Incidents, clock: Clock, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, _ = responding
    boat = uuid4()
    app.handle(
        AssignResourceToIncident(incident_id=incident_id, resource_id=boat,
            kind="water-rescue-boat"),
        CommandContext(actor=DISPATCHER))
    with pytest.raises(IllegalTransition, match="assigned to it already"):
        app.handle(
            AssignResourceToIncident(incident_id=incident_id, resource_id=boat,
                kind="water-rescue-boat"),
            CommandContext(actor=DISPATCHER))
    clock.advance(minutes=40)
    app.handle(
        ReleaseResourceFromIncident(incident_id=incident_id, resource_id=boat),
        CommandContext(actor=DISPATCHER))
    with pytest.raises(IllegalTransition, match="not assigned to it"):
        app.handle(
            ReleaseResourceFromIncident(incident_id=incident_id, resource_id=boat),
            CommandContext(actor=DISPATCHER))
    clock.advance(minutes=10)
    app.handle(
        AssignResourceToIncident(incident_id=incident_id, resource_id=boat,
            kind="water-rescue-boat"),
        CommandContext(actor=DISPATCHER))
    assignments = app.incident(incident_id).summary()["resources"]
    assert [(a["assigned_at"], a["released_at"]) for a in assignments] == [
        (START.isoformat(), (START + timedelta(minutes=40)).isoformat()),
        ((START + timedelta(minutes=50)).isoformat(), None),
    ]


def test_situation_reports_build_the_timeline(app: Incidents, clock: Clock) -> None:
    incident_id = report_waterlogging(app)
    app.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=DISPATCHER))
    app.handle(
        AddSituationReport(incident_id=incident_id, text="Water rising"),
        CommandContext(actor=INSPECTOR))
    clock.advance(minutes=30)
    app.handle(
        AddSituationReport(incident_id=incident_id, text="One person missing",
            casualties={"missing": 1, "dead": 0}, affected_area=FLOODED_BLOCK),
        CommandContext(actor=WATER))
    reports = app.incident(incident_id).summary()["situation_reports"]
    assert [(r["number"], r["author"], r["author_department"], r["casualties"]) for r in
            reports] == [(1, "inspector-3", None, None),
                         (2, "water-duty", "water", {"dead": 0, "missing": 1})]
    assert reports[1]["at"] == (START + timedelta(minutes=30)).isoformat()


def test_an_incident_reloaded_from_its_events_has_the_same_summary(
        app: Incidents, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, tasks = responding
    app.handle(
        AddSituationReport(incident_id=incident_id, text="x", casualties={"injured": 2},
            affected_area=FLOODED_BLOCK),
        CommandContext(actor=DISPATCHER))
    app.handle(
        LinkToIncident(incident_id=incident_id, kind="hazard-alarm", target_id=uuid4()),
        CommandContext(actor=SENSOR_GATEWAY))
    app.handle(
        AcknowledgeTask(incident_id=incident_id, task_id=tasks["water"]),
        CommandContext(actor=WATER))
    incident = app.incident(incident_id)
    reloaded = app.repository.get(incident_id)
    assert isinstance(reloaded, Incident)
    assert reloaded.summary() == incident.summary()
    plan = app.plan_by_code("urban-flood")
    stored_plan = app.repository.get(plan.id)
    assert isinstance(stored_plan, ContingencyPlan)
    assert stored_plan.summary() == plan.summary()


def test_a_contained_incident_that_flares_up_responds_again_and_can_be_contained_later(
        app: Incidents) -> None:
    situation = bring_to(app, "contained")
    app.handle(
        FlareUpIncident(incident_id=situation.incident_id,
            reason="Water rising again after the pumps left"),
        CommandContext(actor=DISPATCHER))
    incident = app.incident(situation.incident_id)
    assert (incident.status.value, incident.level, incident.contained_at) == (
        "responding", "III", None)
    app.handle(
        ContainIncident(incident_id=situation.incident_id),
        CommandContext(actor=DISPATCHER))
    assert app.incident(situation.incident_id).status.value == "contained"
    assert events_of(app, situation.incident_id)[-2:] == ["FlaredUp", "Contained"]
