"""The incident stream and its contingency plans, told as the command centre lives them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.application import COMMAND_NAMESPACE
from cityops.domain.catalogue import Catalogue
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
    return app.define_plan(code=code, name="Urban flood and waterlogging",
                           category="natural-disaster", incident_types=["flood", "waterlogging"],
                           levels=flood_levels(), actor=PLANNER)


def report_waterlogging(app: Incidents, **overrides: Any) -> UUID:
    facts: dict[str, Any] = {
        "category": "natural-disaster", "incident_type": "waterlogging",
        "title": "Underpass under water", "description": "Cars stuck at Wulin underpass",
        "location": UNDERPASS, "source": "hotline", "actor": HOTLINE,
    }
    facts.update(overrides)
    return app.report(**facts)


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
    app.verify(incident_id, level="III", note="confirmed by camera", actor=DISPATCHER)
    assert app.incident(incident_id).status is IncidentStatus.VERIFIED

    # He starts the response at level III with the flood plan: the plan's level III tasks go
    # to the water company and the traffic police, due by the plan's time allowances.
    clock.advance(minutes=5)
    activated_at = clock.now
    app.respond(incident_id, level="III", plan_id=plan_id, reason="rain continues",
                actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert incident.status is IncidentStatus.RESPONDING
    tasks = {t.department: t for t in incident.tasks.values()}
    assert set(tasks) == {"water", "traffic-police"}
    assert tasks["water"].due == activated_at + timedelta(minutes=30)
    assert tasks["traffic-police"].due == activated_at + timedelta(hours=1)
    assert incident.required_resources() == {"drainage-pump-truck": 2}

    # A commander is named; the hotline ticket and a grid case are linked.
    ticket_id, case_id = uuid4(), uuid4()
    app.assign_commander(incident_id, commander="deputy-director-li", actor=DISPATCHER)
    app.link(incident_id, kind="hotline-ticket", target_id=ticket_id, actor=HOTLINE)
    app.link(incident_id, kind=LinkKind.GRID_CASE, target_id=case_id, actor=DISPATCHER)

    # Two pump trucks are sent.
    trucks = [uuid4(), uuid4()]
    for truck in trucks:
        app.assign_resource(incident_id, resource_id=truck, kind="drainage-pump-truck",
                            actor=DISPATCHER)
    assert app.incident(incident_id).resource_shortfall() == {}

    # The water company acknowledges its task and reports it done in time.
    clock.advance(minutes=3)
    app.acknowledge_task(incident_id, tasks["water"].id, actor=WATER)
    clock.advance(minutes=20)
    app.complete_task(incident_id, tasks["water"].id, result="3 stations running",
                      actor=WATER)

    # The first situation report: people trapped, the flooded block drawn on the map.
    app.add_situation_report(incident_id, text="Two cars trapped, water 1.2 m",
                             casualties={"trapped": 4, "injured": 0},
                             affected_area=FLOODED_BLOCK, actor=INSPECTOR)

    # The rain gets worse: the level is raised to II. Only the level II task that was not
    # given out yet is created (the pumps and road closure are not duplicated).
    clock.advance(minutes=10)
    raised_at = clock.now
    app.escalate(incident_id, reason="river over warning line", actor=DISPATCHER)
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
    app.change_level(incident_id, level="III", reason="water receding", actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert len(incident.tasks) == 3
    assert [(c.level, c.reason) for c in incident.level_changes] == [
        ("III", "rain continues"), ("II", "river over warning line"), ("III", "water receding")]

    # Contained. It cannot be closed while the road closure and the shelters are open: the
    # refusal names them. The police report done; the shelters, never needed, are waived.
    clock.advance(hours=1)
    app.contain(incident_id, note="water below road level", actor=DISPATCHER)
    clock.advance(hours=2)
    with pytest.raises(OpenTasksRemain, match="2 tasks are still open") as refused:
        app.close_incident(incident_id, note="roads reopened", actor=DISPATCHER)
    assert [(t[1], t[3]) for t in refused.value.open_tasks] == [
        ("traffic-police", "assigned"), ("emergency-management", "assigned")]
    app.complete_task(incident_id, tasks["traffic-police"].id, result="underpasses closed",
                      actor=TRAFFIC_POLICE)
    app.waive_task(incident_id, shelter.id, reason="nobody needed a shelter",
                   actor=DISPATCHER)
    # Closed: the trucks still assigned are released by the closing.
    app.close_incident(incident_id, note="roads reopened", actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert incident.status is IncidentStatus.CLOSED
    assert all(a.released_at == clock.now for a in incident.resources)
    assert {a.release_reason for a in incident.resources} == {"incident closed"}

    # The after-action review: a summary and structured findings.
    clock.advance(days=2)
    app.review(incident_id, summary="Pumps in time; shelters opened late.", findings=[
        Finding(FindingAspect.PLAN, "Shelter task allowance too long",
                recommendation="Reduce to 1 hour", department="emergency-management"),
        Finding(FindingAspect.RESPONSE_TIME, "Verification took 5 minutes"),
    ], actor=PLANNER)
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
    app.dismiss(incident_id, reason="prank call: road dry on camera", actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert incident.status is IncidentStatus.DISMISSED
    assert incident.dismiss_reason == "prank call: road dry on camera"
    with pytest.raises(IllegalTransition):
        app.close_incident(incident_id, actor=DISPATCHER)


def test_every_event_records_who_did_it_in_what_role_and_when(
        app: Incidents, clock: Clock) -> None:
    incident_id = report_waterlogging(app)
    clock.advance(minutes=7)
    app.verify(incident_id, actor=DISPATCHER)
    reported, verified = app.events.get(incident_id)
    assert (reported.actor, reported.timestamp) == (HOTLINE, START)
    assert (verified.actor, verified.timestamp) == (DISPATCHER, START + timedelta(minutes=7))


# --- report: ids, sources, escalation --------------------------------------------------


def test_an_alarm_escalates_into_an_incident_under_the_id_it_chose(app: Incidents) -> None:
    alarm_id = uuid4()
    incident_id = uuid5(alarm_id, "incident")
    got = app.report(category="accident-disaster", incident_type="gas-leak",
                     title="Gas concentration over threshold", location=UNDERPASS,
                     source="alarm", source_ref=str(alarm_id), level="II", warning="orange",
                     incident_id=incident_id, actor=SENSOR_GATEWAY)
    assert got == incident_id
    incident = app.incident(incident_id)
    assert (incident.source.value, incident.source_ref, incident.warning) == (
        "alarm", str(alarm_id), "orange")
    app.link(incident_id, kind="hazard-alarm", target_id=alarm_id, actor=SENSOR_GATEWAY)

    # The same id reported again (another command) is a clear error, not a silent second.
    with pytest.raises(IllegalTransition, match="already reported"):
        app.report(category="accident-disaster", incident_type="gas-leak", title="Again",
                   location=UNDERPASS, source="alarm", incident_id=incident_id,
                   actor=SENSOR_GATEWAY)


def test_a_report_with_a_command_id_gets_an_id_derived_from_it(app: Incidents) -> None:
    incident_id = report_waterlogging(app, command_id="call-20260701-0001")
    assert incident_id == uuid5(COMMAND_NAMESPACE, "incident:call-20260701-0001")


def test_verification_may_correct_category_type_and_level(app: Incidents) -> None:
    incident_id = report_waterlogging(app)
    app.verify(incident_id, category="accident-disaster", incident_type="utility-failure",
               level="II", actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert (incident.category, incident.incident_type, incident.level, incident.level_rank) == (
        "accident-disaster", "utility-failure", "II", 2)


# --- idempotency, permissions, bad input -------------------------------------------------


def test_a_repeated_command_id_changes_nothing(app: Incidents) -> None:
    first = report_waterlogging(app, command_id="call-1")
    second = report_waterlogging(app, command_id="call-1")
    assert first == second
    assert events_of(app, first) == ["Reported"]

    app.verify(first, actor=DISPATCHER, command_id="verify-1")
    app.verify(first, actor=DISPATCHER, command_id="verify-1")
    app.respond(first, level="IV", actor=DISPATCHER, command_id="respond-1")
    app.assign_task(first, department="water", description="Check the pumps",
                    allowance=timedelta(hours=1), actor=DISPATCHER, command_id="task-1")
    app.assign_task(first, department="water", description="Check the pumps",
                    allowance=timedelta(hours=1), actor=DISPATCHER, command_id="task-1")
    assert events_of(app, first) == ["Reported", "Verified", "ResponseStarted", "TaskAssigned"]
    assert set(app.incident(first).tasks) == {uuid5(COMMAND_NAMESPACE, "incident-task:task-1")}


def test_a_reused_command_id_with_other_arguments_is_refused(app: Incidents) -> None:
    incident_id = report_waterlogging(app, command_id="call-1")
    with pytest.raises(CommandIdReused):
        report_waterlogging(app, title="Another thing", command_id="call-1")
    app.verify(incident_id, actor=DISPATCHER, command_id="verify-1")
    with pytest.raises(CommandIdReused):
        app.dismiss(incident_id, reason="false", actor=DISPATCHER, command_id="verify-1")
    plan_id = define_flood_plan(app)
    with pytest.raises(CommandIdReused):
        app.retire_plan(plan_id, reason="obsolete", actor=PLANNER, command_id="verify-1")


def test_plan_definition_is_idempotent_by_command_id(app: Incidents) -> None:
    first = app.define_plan(code="urban-flood", name="Urban flood", category="natural-disaster",
                            levels=flood_levels(), actor=PLANNER, command_id="plan-1")
    second = app.define_plan(code="urban-flood", name="Urban flood",
                             category="natural-disaster", levels=flood_levels(), actor=PLANNER,
                             command_id="plan-1")
    assert first == second == plan_id_for("urban-flood")
    assert events_of(app, first) == ["Defined"]


@pytest.mark.parametrize(("actor", "command"), [
    (LEADER, lambda app, i: report_waterlogging(app, actor=LEADER)),
    (HOTLINE, lambda app, i: app.verify(i, actor=HOTLINE)),
    (WATER, lambda app, i: app.respond(i, level="IV", actor=WATER)),
    (INSPECTOR, lambda app, i: app.close_incident(i, actor=INSPECTOR)),
    (WATER, lambda app, i: app.assign_resource(i, resource_id=uuid4(), kind="shelter",
                                               actor=WATER)),
    (HOTLINE, lambda app, i: app.review(i, summary="x", actor=HOTLINE)),
    (INSPECTOR, lambda app, i: app.define_plan(code="x", name="x", category="natural-disaster",
                                               levels=flood_levels(), actor=INSPECTOR)),
    (LEADER, lambda app, i: app.change_level(i, level="I", reason="x", actor=LEADER)),
    (WATER, lambda app, i: app.assign_commander(i, commander="me", actor=WATER)),
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
        app.revise_plan(plan_id, levels=flood_levels(), note="x",
                        actor=Actor("w", Role.DEPARTMENT_USER, department="water"))
    with pytest.raises(NotPermitted):
        app.retire_plan(plan_id, reason="x", actor=HOTLINE)


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
    app.verify(incident_id, actor=DISPATCHER)
    app.respond(incident_id, level="III", actor=DISPATCHER)
    version = app.incident(incident_id).version
    bad: list[tuple[Callable[[], object], str]] = [
        (lambda: app.change_level(incident_id, level="0", reason="x", actor=DISPATCHER),
         "unknown incident level"),
        (lambda: app.change_level(incident_id, level="II", reason=" ", actor=DISPATCHER),
         "reason must not be empty"),
        (lambda: app.add_situation_report(incident_id, text="x", casualties={"dead": -1},
                                          actor=DISPATCHER), "count >= 0"),
        (lambda: app.add_situation_report(incident_id, text="x", casualties={"wounded": 1},
                                          actor=DISPATCHER), "unknown casualty figure"),
        (lambda: app.add_situation_report(incident_id, text="", actor=DISPATCHER),
         "report must not be empty"),
        (lambda: app.link(incident_id, kind="tweet", target_id=uuid4(), actor=DISPATCHER),
         "unknown link kind"),
        (lambda: app.assign_resource(incident_id, resource_id=uuid4(), kind="tank",
                                     actor=DISPATCHER), "unknown resource kind"),
        (lambda: app.assign_task(incident_id, department="army", description="x",
                                 allowance=timedelta(hours=1), actor=DISPATCHER),
         "unknown department"),
        (lambda: app.assign_task(incident_id, department="water", description="x",
                                 allowance=timedelta(0), actor=DISPATCHER),
         "more than zero"),
        (lambda: app.contain(incident_id, actor=DISPATCHER, at=START - timedelta(hours=1)),
         "precedes its last recorded event"),
        (lambda: app.contain(incident_id, actor=DISPATCHER, at=START + timedelta(hours=1)),
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
        app.review(incident_id, summary="x", actor=PLANNER,
                   findings=[Finding(FindingAspect.COMMAND, "x", department="navy")])


def test_an_unknown_incident_or_plan_is_not_found(app: Incidents) -> None:
    with pytest.raises(NotFound, match="incident"):
        app.verify(uuid4(), actor=DISPATCHER)
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
        app.dismiss(incident_id, reason="false", actor=DISPATCHER)
        return Situation(app, incident_id, plan_id, task_id, resource_id)
    def close() -> None:
        # Its task must be settled first (done here: the department reports it).
        assert task_id is not None
        app.complete_task(incident_id, task_id, actor=WATER)
        app.close_incident(incident_id, actor=DISPATCHER)

    steps: list[tuple[str, Callable[[], object]]] = [
        ("verified", lambda: app.verify(incident_id, actor=DISPATCHER)),
        ("responding", lambda: app.respond(incident_id, level="III", actor=DISPATCHER)),
        ("contained", lambda: app.contain(incident_id, actor=DISPATCHER)),
        ("closed", close),
        ("reviewed", lambda: app.review(incident_id, summary="done", actor=PLANNER)),
    ]
    order = ["reported", "verified", "responding", "contained", "closed", "reviewed"]
    for name, step in steps[:order.index(state)]:
        step()
        if name == "verified":
            app.assign_resource(incident_id, resource_id=resource_id, kind="rescue-team",
                                actor=DISPATCHER)
        if name == "responding":
            app.assign_task(incident_id, department="water", description="Pump",
                            allowance=timedelta(hours=1), actor=DISPATCHER)
            task_id = next(iter(app.incident(incident_id).tasks))
    return Situation(app, incident_id, plan_id, task_id, resource_id)


def _task(s: Situation) -> UUID:
    return s.task_id or uuid4()


def _close_settled(s: Situation) -> None:
    """Close, its task waived first where that is the only thing in the way (see
    `test_closing_is_refused_while_a_task_is_open` for the refusal)."""
    if s.task_id is not None and s.app.incident(s.incident_id).status.value == "contained":
        s.app.waive_task(s.incident_id, s.task_id, reason="not needed", actor=DISPATCHER)
    s.app.close_incident(s.incident_id, actor=DISPATCHER)


COMMANDS: dict[str, tuple[Callable[[Situation], object], set[str]]] = {
    "verify": (lambda s: s.app.verify(s.incident_id, actor=DISPATCHER), {"reported"}),
    "dismiss": (lambda s: s.app.dismiss(s.incident_id, reason="x", actor=DISPATCHER),
                {"reported"}),
    "respond": (lambda s: s.app.respond(s.incident_id, level="II", actor=DISPATCHER),
                {"verified"}),
    "activate plan": (lambda s: s.app.activate_plan(s.incident_id, plan_id=s.plan_id,
                                                    actor=DISPATCHER), {"responding"}),
    "change level": (lambda s: s.app.change_level(s.incident_id, level="I", reason="x",
                                                  actor=DISPATCHER), {"responding"}),
    "escalate": (lambda s: s.app.escalate(s.incident_id, reason="x", actor=DISPATCHER),
                 {"responding"}),
    "deescalate": (lambda s: s.app.deescalate(s.incident_id, reason="x", actor=DISPATCHER),
                   {"responding"}),
    "situation report": (lambda s: s.app.add_situation_report(s.incident_id, text="x",
                                                              actor=DISPATCHER),
                         {"verified", "responding", "contained"}),
    "link": (lambda s: s.app.link(s.incident_id, kind="grid-case", target_id=uuid4(),
                                  actor=DISPATCHER),
             {"reported", "verified", "responding", "contained"}),
    "assign commander": (lambda s: s.app.assign_commander(s.incident_id, commander="c",
                                                          actor=DISPATCHER),
                         {"reported", "verified", "responding", "contained"}),
    "assign task": (lambda s: s.app.assign_task(s.incident_id, department="fire",
                                                description="x", allowance=timedelta(hours=1),
                                                actor=DISPATCHER),
                    {"responding", "contained"}),
    "acknowledge task": (lambda s: s.app.acknowledge_task(s.incident_id, _task(s),
                                                          actor=WATER),
                         {"responding", "contained"}),
    "complete task": (lambda s: s.app.complete_task(s.incident_id, _task(s), actor=WATER),
                      {"responding", "contained"}),
    "cancel task": (lambda s: s.app.cancel_task(s.incident_id, _task(s), reason="x",
                                                actor=DISPATCHER),
                    {"responding", "contained"}),
    "waive task": (lambda s: s.app.waive_task(s.incident_id, _task(s), reason="x",
                                              actor=DISPATCHER),
                   {"responding", "contained"}),
    "assign resource": (lambda s: s.app.assign_resource(s.incident_id, resource_id=uuid4(),
                                                        kind="expert", actor=DISPATCHER),
                        {"verified", "responding", "contained"}),
    "release resource": (lambda s: s.app.release_resource(s.incident_id,
                                                          resource_id=s.resource_id,
                                                          actor=DISPATCHER),
                         {"verified", "responding", "contained"}),
    "contain": (lambda s: s.app.contain(s.incident_id, actor=DISPATCHER), {"responding"}),
    "flare up": (lambda s: s.app.flare_up(s.incident_id, reason="fire rekindled",
                                          actor=DISPATCHER), {"contained"}),
    "close": (_close_settled, {"contained"}),
    "review": (lambda s: s.app.review(s.incident_id, summary="x", actor=PLANNER), {"closed"}),
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
    app.verify(top, actor=DISPATCHER)
    app.respond(top, level="I", actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match="already at the highest level I"):
        app.escalate(top, reason="worse", actor=DISPATCHER)

    bottom = report_waterlogging(app)
    app.verify(bottom, actor=DISPATCHER)
    app.respond(bottom, level="IV", actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match="already at the lowest level IV"):
        app.deescalate(bottom, reason="better", actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match="already at level IV"):
        app.change_level(bottom, level="IV", reason="same", actor=DISPATCHER)
    with pytest.raises(InvalidValue, match="unknown incident level"):
        app.change_level(bottom, level="V", reason="lower still", actor=DISPATCHER)
    assert app.incident(bottom).version == 3


def test_escalating_step_by_step_gives_each_plan_task_once(app: Incidents) -> None:
    plan_id = define_flood_plan(app)
    incident_id = report_waterlogging(app)
    app.verify(incident_id, actor=DISPATCHER)
    app.respond(incident_id, level="IV", plan_id=plan_id, actor=DISPATCHER)
    counts = []
    for _ in range(3):
        app.escalate(incident_id, reason="worse", actor=DISPATCHER)
        counts.append(len(app.incident(incident_id).tasks))
    assert counts == [2, 3, 4]
    # Down and up again: level II was already activated, so nothing new.
    app.deescalate(incident_id, reason="better", actor=DISPATCHER)
    app.escalate(incident_id, reason="worse again", actor=DISPATCHER)
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
    app.verify(incident_id, actor=DISPATCHER)
    app.respond(incident_id, level="IV", plan_id=plan_id, actor=DISPATCHER)
    app.change_level(incident_id, level="I", reason="dam breach", actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert sorted(t.department for t in incident.tasks.values()) == [
        "emergency-management", "fire", "traffic-police", "water"]
    assert incident.plans[plan_id].levels == ["IV", "I"]


def test_lowering_the_level_gives_no_tasks_of_the_lower_level(app: Incidents) -> None:
    plan_id = app.define_plan(code="gas", name="Gas leak", category="natural-disaster",
                              levels=[
                                  PlanLevel("II", tasks=(PlanTask("gas", "Shut the main valve",
                                                                  timedelta(minutes=10)),)),
                                  PlanLevel("III", tasks=(PlanTask("police", "Keep people away",
                                                                   timedelta(minutes=20)),)),
                              ], actor=PLANNER)
    incident_id = report_waterlogging(app)
    app.verify(incident_id, actor=DISPATCHER)
    app.respond(incident_id, level="II", plan_id=plan_id, actor=DISPATCHER)
    app.deescalate(incident_id, reason="valve shut", actor=DISPATCHER)
    app.escalate(incident_id, reason="second leak", actor=DISPATCHER)
    app.escalate(incident_id, reason="spreading", actor=DISPATCHER)  # the plan has no level I
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
    app.revise_plan(plan_id, levels=levels, note="after the 2026 drill", actor=PLANNER)
    plan = app.plan(plan_id)
    assert plan.revision == 2
    assert list(plan.levels) == ["IV", "III"]
    assert plan.revisions[-1].note == "after the 2026 drill"

    app.retire_plan(plan_id, reason="replaced by the basin plan", actor=PLANNER)
    plan = app.plan(plan_id)
    assert plan.status is PlanStatus.RETIRED
    with pytest.raises(IllegalTransition, match="retired"):
        app.retire_plan(plan_id, reason="again", actor=PLANNER)
    with pytest.raises(IllegalTransition, match="retired"):
        app.revise_plan(plan_id, levels=levels, note="x", actor=PLANNER)
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
    facts: dict[str, Any] = {"code": "urban-flood", "name": "Urban flood",
                             "category": "natural-disaster", "levels": flood_levels(),
                             "actor": PLANNER}
    facts.update(change)
    with pytest.raises(InvalidValue, match=message):
        app.define_plan(**facts)
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
    app.define_plan(code="earthquake", name="Earthquake", category="natural-disaster",
                    incident_types=["earthquake"], levels=flood_levels(), actor=PLANNER)
    app.define_plan(code="all-natural", name="Any natural disaster, level I only",
                    category="natural-disaster",
                    levels=[PlanLevel("I", resources=(ResourceRequirement("expert", 3),))],
                    actor=PLANNER)
    app.define_plan(code="fire", name="Fire", category="accident-disaster",
                    levels=flood_levels(), actor=PLANNER)
    retired = app.define_plan(code="old-flood", name="Old flood plan",
                              category="natural-disaster", levels=flood_levels(),
                              actor=PLANNER)
    app.retire_plan(retired, reason="obsolete", actor=PLANNER)

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
    plan_id = app.define_plan(name="Plan", levels=plan.pop("levels", flood_levels()),
                              actor=PLANNER, **plan)
    incident_id = report_waterlogging(app)
    app.verify(incident_id, actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match=message) as refused:
        app.respond(incident_id, level="III", plan_id=plan_id, actor=DISPATCHER)
    assert refused.value.kind == "contingency plan"
    # The whole command is refused: the incident did not start responding either.
    assert app.incident(incident_id).status is IncidentStatus.VERIFIED


def test_a_retired_plan_cannot_be_activated(app: Incidents) -> None:
    plan_id = define_flood_plan(app)
    app.retire_plan(plan_id, reason="replaced", actor=PLANNER)
    incident_id = report_waterlogging(app)
    app.verify(incident_id, actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match="retired"):
        app.respond(incident_id, level="III", plan_id=plan_id, actor=DISPATCHER)
    app.respond(incident_id, level="III", actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match="retired"):
        app.activate_plan(incident_id, plan_id=plan_id, actor=DISPATCHER)


def test_a_plan_retired_during_the_response_gives_no_more_tasks(app: Incidents) -> None:
    plan_id = define_flood_plan(app)
    incident_id = report_waterlogging(app)
    app.verify(incident_id, actor=DISPATCHER)
    app.respond(incident_id, level="IV", plan_id=plan_id, actor=DISPATCHER)
    app.retire_plan(plan_id, reason="replaced", actor=PLANNER)
    app.escalate(incident_id, reason="worse", actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert incident.level == "III"
    assert len(incident.tasks) == 1


def test_raising_the_level_uses_the_plans_current_revision(app: Incidents) -> None:
    plan_id = define_flood_plan(app)
    incident_id = report_waterlogging(app)
    app.verify(incident_id, actor=DISPATCHER)
    app.respond(incident_id, level="IV", plan_id=plan_id, actor=DISPATCHER)
    revised = [*flood_levels()[:1], PlanLevel("III", tasks=(
        PlanTask("roads", "Put up diversion signs", timedelta(minutes=45)),))]
    app.revise_plan(plan_id, levels=revised, note="roads do the signs", actor=PLANNER)
    app.escalate(incident_id, reason="worse", actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert sorted(t.department for t in incident.tasks.values()) == ["roads", "water"]
    assert incident.plans[plan_id].revision == 2


def test_two_plans_can_run_on_one_incident_but_each_only_once(app: Incidents) -> None:
    flood = define_flood_plan(app)
    power = app.define_plan(code="power-outage", name="Power outage",
                            category="natural-disaster", levels=[PlanLevel(
                                "III", tasks=(PlanTask("power", "Cut power to flooded "
                                                       "substations", timedelta(minutes=20)),),
                                resources=(ResourceRequirement("drainage-pump-truck", 1),))],
                            actor=PLANNER)
    incident_id = report_waterlogging(app)
    app.verify(incident_id, actor=DISPATCHER)
    app.respond(incident_id, level="III", plan_id=flood, actor=DISPATCHER)
    app.activate_plan(incident_id, plan_id=power, actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert len(incident.tasks) == 3
    assert incident.required_resources() == {"drainage-pump-truck": 3}
    with pytest.raises(IllegalTransition, match="already activated"):
        app.activate_plan(incident_id, plan_id=flood, actor=DISPATCHER)


# --- tasks ---------------------------------------------------------------------------------


@pytest.fixture
def responding(app: Incidents) -> tuple[UUID, dict[str, UUID]]:
    """An incident responding at level III with the flood plan: tasks by department."""
    plan_id = define_flood_plan(app)
    incident_id = report_waterlogging(app)
    app.verify(incident_id, actor=DISPATCHER)
    app.respond(incident_id, level="III", plan_id=plan_id, actor=DISPATCHER)
    tasks = {t.department: t.id for t in app.incident(incident_id).tasks.values()}
    return incident_id, tasks


def test_a_department_moves_only_its_own_tasks(
        app: Incidents, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, tasks = responding
    version = app.incident(incident_id).version
    with pytest.raises(NotPermitted, match="it is a task of traffic-police"):
        app.acknowledge_task(incident_id, tasks["traffic-police"], actor=WATER)
    with pytest.raises(NotPermitted):
        app.complete_task(incident_id, tasks["water"], actor=TRAFFIC_POLICE)
    assert app.incident(incident_id).version == version
    app.complete_task(incident_id, tasks["traffic-police"], result="closed",
                      actor=TRAFFIC_POLICE)
    # The centre may move any department's task.
    app.acknowledge_task(incident_id, tasks["water"], actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert incident.tasks[tasks["traffic-police"]].status is TaskStatus.DONE
    assert incident.tasks[tasks["water"]].status is TaskStatus.ACKNOWLEDGED


def test_task_transitions(app: Incidents, clock: Clock,
                          responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, tasks = responding
    water = tasks["water"]
    app.acknowledge_task(incident_id, water, actor=WATER)
    with pytest.raises(IllegalTransition, match="cannot acknowledge incident task"):
        app.acknowledge_task(incident_id, water, actor=WATER)
    clock.advance(hours=2)  # the allowance was 30 minutes
    app.complete_task(incident_id, water, result="pumps on", actor=WATER)
    assert app.incident(incident_id).tasks[water].summary()["done_late"] is True
    for move in (lambda: app.complete_task(incident_id, water, actor=WATER),
                 lambda: app.cancel_task(incident_id, water, reason="x", actor=DISPATCHER)):
        with pytest.raises(IllegalTransition, match="it is done"):
            move()
    police = tasks["traffic-police"]
    with pytest.raises(NotPermitted):
        app.cancel_task(incident_id, police, reason="not needed", actor=TRAFFIC_POLICE)
    app.cancel_task(incident_id, police, reason="road already closed", actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match="it is cancelled"):
        app.complete_task(incident_id, police, actor=TRAFFIC_POLICE)
    with pytest.raises(NotFound, match="incident task"):
        app.acknowledge_task(incident_id, uuid4(), actor=DISPATCHER)


def test_the_centre_gives_a_task_outside_the_plan(
        app: Incidents, clock: Clock, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, _ = responding
    task_id = uuid4()
    app.assign_task(incident_id, department="health", description="Send an ambulance team",
                    allowance=timedelta(minutes=20), task_id=task_id, actor=DISPATCHER)
    task = app.incident(incident_id).tasks[task_id]
    assert (task.department, task.plan_id, task.due) == (
        "health", None, clock.now + timedelta(minutes=20))
    with pytest.raises(IllegalTransition, match="exists already"):
        app.assign_task(incident_id, department="health", description="Again",
                        allowance=timedelta(minutes=20), task_id=task_id, actor=DISPATCHER)


def test_closing_is_refused_while_a_task_is_open_and_the_refusal_names_each_one(
        app: Incidents, clock: Clock, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, tasks = responding
    app.acknowledge_task(incident_id, tasks["water"], actor=WATER)
    app.contain(incident_id, actor=DISPATCHER)
    version = app.incident(incident_id).version
    with pytest.raises(OpenTasksRemain) as refused:
        app.close_incident(incident_id, actor=DISPATCHER)
    assert refused.value.state.startswith("contained and 2 tasks are still open")
    assert refused.value.open_tasks == (
        (str(tasks["water"]), "water", "Open the drainage pumping stations", "acknowledged"),
        (str(tasks["traffic-police"]), "traffic-police", "Close the flooded underpasses",
         "assigned"),
    )
    assert isinstance(refused.value, IllegalTransition)  # a 409, as any illegal transition
    assert app.incident(incident_id).version == version

    # Done, cancelled or waived: each settles a task; then it closes.
    app.complete_task(incident_id, tasks["water"], actor=WATER)
    with pytest.raises(OpenTasksRemain, match="1 task is still open"):
        app.close_incident(incident_id, actor=DISPATCHER)
    clock.advance(minutes=5)
    app.waive_task(incident_id, tasks["traffic-police"], reason="  road closed by the rain ",
                   actor=DISPATCHER)
    app.close_incident(incident_id, actor=DISPATCHER)
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
        app.waive_task(incident_id, tasks["water"], reason="  ", actor=DISPATCHER)
    # The department whose task it is may not waive it, nor may a leader.
    for actor in (WATER, LEADER):
        with pytest.raises(NotPermitted, match=r"incident\.waive-task"):
            app.waive_task(incident_id, tasks["water"], reason="too busy", actor=actor)
    with pytest.raises(NotFound, match="incident task"):
        app.waive_task(incident_id, uuid4(), reason="x", actor=DISPATCHER)
    assert app.incident(incident_id).version == version
    # Only an open task is waived; a waived task is settled for good.
    app.complete_task(incident_id, tasks["water"], actor=WATER)
    with pytest.raises(IllegalTransition, match="it is done"):
        app.waive_task(incident_id, tasks["water"], reason="x", actor=DISPATCHER)
    app.waive_task(incident_id, tasks["traffic-police"], reason="x", actor=DISPATCHER,
                   command_id="waive-police")
    # Repeated with its command id: nothing more happens.
    version = app.incident(incident_id).version
    app.waive_task(incident_id, tasks["traffic-police"], reason="x", actor=DISPATCHER,
                   command_id="waive-police")
    assert app.incident(incident_id).version == version
    for move in (lambda: app.complete_task(incident_id, tasks["traffic-police"],
                                           actor=TRAFFIC_POLICE),
                 lambda: app.cancel_task(incident_id, tasks["traffic-police"], reason="x",
                                         actor=DISPATCHER)):
        with pytest.raises(IllegalTransition, match="it is waived"):
            move()


def test_a_release_says_how_the_assignment_ended(
        app: Incidents, clock: Clock, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, _ = responding
    truck = uuid4()
    app.assign_resource(incident_id, resource_id=truck, kind="drainage-pump-truck",
                        actor=DISPATCHER)
    assert app.incident(incident_id).assignment_number(truck) == 1
    clock.advance(minutes=30)
    left_at = clock.now - timedelta(minutes=10)
    crew = Actor("pump-3-crew", Role.DEPARTMENT_USER, "water")
    app.record_resource_departure(incident_id, resource_id=truck, how="cleared the scene",
                                  left_at=left_at, actor=crew)
    incident = app.incident(incident_id)
    assert incident.assignment_number(truck) is None
    assert incident.resources[0].summary()["released_at"] == left_at.isoformat()
    assert (incident.resources[0].released_by, incident.resources[0].release_reason) == (
        "pump-3-crew", "cleared the scene")
    # Sent again: its second assignment; the centre's own release says so.
    app.assign_resource(incident_id, resource_id=truck, kind="drainage-pump-truck",
                        actor=DISPATCHER)
    assert app.incident(incident_id).assignment_number(truck) == 2
    app.release_resource(incident_id, resource_id=truck, actor=DISPATCHER)
    assert app.incident(incident_id).resources[1].release_reason == "released by the centre"
    # A departure reported before the incident's last event is recorded at that event.
    app.assign_resource(incident_id, resource_id=truck, kind="drainage-pump-truck",
                        actor=DISPATCHER)
    app.record_resource_departure(incident_id, resource_id=truck, how="stood down",
                                  left_at=left_at, actor=crew)
    assert app.incident(incident_id).resources[2].released_at == clock.now


def test_a_release_stored_before_it_said_how_reads_as_the_centres(
        app: Incidents, responding: tuple[UUID, dict[str, UUID]]) -> None:
    """A `ResourceReleased` stored as version 1 had no reason: only the centre released
    resources then."""
    incident_id, _ = responding
    truck = uuid4()
    app.assign_resource(incident_id, resource_id=truck, kind="drainage-pump-truck",
                        actor=DISPATCHER)
    app.release_resource(incident_id, resource_id=truck, actor=DISPATCHER)
    released = list(app.events.get(incident_id))[-1]
    stored = app.mapper.to_stored_event(released)
    state = app.mapper.transcoder.decode(stored.state)
    assert state.pop("class_version") == 2
    del state["reason"]
    as_v1 = type(stored)(originator_id=stored.originator_id,
                         originator_version=stored.originator_version, topic=stored.topic,
                         state=app.mapper.transcoder.encode(state))
    upcast = app.mapper.to_domain_event(as_v1)
    assert isinstance(upcast, Incident.ResourceReleased)
    assert (upcast.resource_id, upcast.reason) == (truck, "released by the centre")


# --- links, commander, resources, situation reports ---------------------------------------


def test_linking_the_same_thing_twice_changes_nothing(app: Incidents) -> None:
    incident_id = report_waterlogging(app)
    ticket = uuid4()
    app.link(incident_id, kind="hotline-ticket", target_id=ticket, actor=HOTLINE)
    version = app.incident(incident_id).version
    app.link(incident_id, kind="hotline-ticket", target_id=ticket, actor=HOTLINE)
    assert app.incident(incident_id).version == version
    # The same id as another kind is another link.
    app.link(incident_id, kind="grid-case", target_id=ticket, actor=DISPATCHER)
    app.unlink(incident_id, kind="hotline-ticket", target_id=ticket, reason="wrong ticket",
               actor=DISPATCHER)
    assert [link["kind"] for link in app.incident(incident_id).summary()["links"]] == [
        "grid-case"]
    with pytest.raises(IllegalTransition, match="not linked"):
        app.unlink(incident_id, kind="hotline-ticket", target_id=ticket, reason="again",
                   actor=DISPATCHER)


def test_the_commander_is_assigned_and_replaced(app: Incidents) -> None:
    incident_id = report_waterlogging(app)
    app.assign_commander(incident_id, commander="chief-wang", actor=DISPATCHER)
    app.assign_commander(incident_id, commander="deputy-mayor-zhao", reason="raised to level II",
                         actor=DISPATCHER)
    incident = app.incident(incident_id)
    assert incident.commander == "deputy-mayor-zhao"
    assert [(c.commander, c.previous) for c in incident.commanders] == [
        ("chief-wang", None), ("deputy-mayor-zhao", "chief-wang")]
    with pytest.raises(IllegalTransition, match="already its commander"):
        app.assign_commander(incident_id, commander="deputy-mayor-zhao", actor=DISPATCHER)


def test_resources_are_assigned_and_released(
        app: Incidents, clock: Clock, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, _ = responding
    boat = uuid4()
    app.assign_resource(incident_id, resource_id=boat, kind="water-rescue-boat",
                        actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match="assigned to it already"):
        app.assign_resource(incident_id, resource_id=boat, kind="water-rescue-boat",
                            actor=DISPATCHER)
    clock.advance(minutes=40)
    app.release_resource(incident_id, resource_id=boat, actor=DISPATCHER)
    with pytest.raises(IllegalTransition, match="not assigned to it"):
        app.release_resource(incident_id, resource_id=boat, actor=DISPATCHER)
    clock.advance(minutes=10)
    app.assign_resource(incident_id, resource_id=boat, kind="water-rescue-boat",
                        actor=DISPATCHER)
    assignments = app.incident(incident_id).summary()["resources"]
    assert [(a["assigned_at"], a["released_at"]) for a in assignments] == [
        (START.isoformat(), (START + timedelta(minutes=40)).isoformat()),
        ((START + timedelta(minutes=50)).isoformat(), None),
    ]


def test_situation_reports_build_the_timeline(app: Incidents, clock: Clock) -> None:
    incident_id = report_waterlogging(app)
    app.verify(incident_id, actor=DISPATCHER)
    app.add_situation_report(incident_id, text="Water rising", actor=INSPECTOR)
    clock.advance(minutes=30)
    app.add_situation_report(incident_id, text="One person missing",
                             casualties={"missing": 1, "dead": 0},
                             affected_area=FLOODED_BLOCK, actor=WATER)
    reports = app.incident(incident_id).summary()["situation_reports"]
    assert [(r["number"], r["author"], r["author_department"], r["casualties"]) for r in
            reports] == [(1, "inspector-3", None, None),
                         (2, "water-duty", "water", {"dead": 0, "missing": 1})]
    assert reports[1]["at"] == (START + timedelta(minutes=30)).isoformat()


def test_an_incident_reloaded_from_its_events_has_the_same_summary(
        app: Incidents, responding: tuple[UUID, dict[str, UUID]]) -> None:
    incident_id, tasks = responding
    app.add_situation_report(incident_id, text="x", casualties={"injured": 2},
                             affected_area=FLOODED_BLOCK, actor=DISPATCHER)
    app.link(incident_id, kind="hazard-alarm", target_id=uuid4(), actor=SENSOR_GATEWAY)
    app.acknowledge_task(incident_id, tasks["water"], actor=WATER)
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
    app.flare_up(situation.incident_id, reason="Water rising again after the pumps left",
                 actor=DISPATCHER)
    incident = app.incident(situation.incident_id)
    assert (incident.status.value, incident.level, incident.contained_at) == (
        "responding", "III", None)
    app.contain(situation.incident_id, actor=DISPATCHER)
    assert app.incident(situation.incident_id).status.value == "contained"
    assert events_of(app, situation.incident_id)[-2:] == ["FlaredUp", "Contained"]
