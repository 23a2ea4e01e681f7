"""The commands of the emergency streams (incidents and their plans, hazard sources,
resources) as values: each checked when it is built, digesting to the fingerprint its
receipts had when the application methods restated their arguments by hand (so a client's
retry across the upgrade is still a repeat), and keeping the role row of the name it shares
with the other outcomes of the same decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.application import CommandReceipt
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import COMMAND_CLASSES, Command, CommandContext, fingerprint
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.hazards.commands import (
    AcknowledgeAlarm,
    AddSensor,
    DecommissionHazardSource,
    RecordAlarmEscalation,
    RecordFinding,
    RecordReading,
    RectifyFinding,
    RegisterHazardSource,
    RemoveSensor,
    UpdateHazardSource,
)
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
    RecordResourceArrival,
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
from cityops.domain.incidents.incident import Finding, FindingAspect
from cityops.domain.incidents.plans import PlanLevel, ResourceRequirement
from cityops.domain.permissions import COMMAND_ROLES
from cityops.domain.resources.commands import (
    UNCHANGED,
    ActivateResource,
    ClearScene,
    DeactivateResource,
    DispatchResource,
    DispatchToOpenIncident,
    ReassignResource,
    ReassignToOpenIncident,
    RegisterResource,
    ReportAvailable,
    ReportEnRoute,
    ReportOnScene,
    ReturnToService,
    ReviseResource,
    StandDownResource,
    TakeOutOfService,
)

INCIDENT = UUID("5d0c0c44-8f7e-4f55-9c2b-0a6a3c1b7e21")
OTHER = UUID("9a1f7d2e-2b7c-4a0e-8d61-3f4e5a6b7c8d")
POINT = GeoPoint(118.80, 32.05)
AREA = Area(wkt="POLYGON ((118.7 32.0, 118.9 32.0, 118.9 32.1, 118.7 32.1, 118.7 32.0))")
WHEN = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
LEVELS = (PlanLevel("IV", resources=(ResourceRequirement("shelter", 1),)),)
FINDING = Finding(FindingAspect.PLAN, "too slow", department="water")

# Each command as a value, its name, and the arguments its application method digested
# before commands were values (copied from those methods: some differ from the fields).
BEFORE_VALUES: list[tuple[Command, str, dict[str, Any]]] = [
    (ReportIncident(category="natural-disaster", incident_type="flood", title="Underpass",
                    location=POINT, source="hotline", affected_area=AREA),
     "incident.report",
     {"category": "natural-disaster", "incident_type": "flood", "title": "Underpass",
      "description": "", "location": [POINT.lon, POINT.lat], "source": "hotline",
      "level": None, "affected_area": AREA.wkt, "source_ref": None, "warning": None,
      "incident_id": None}),
    (VerifyIncident(incident_id=INCIDENT, level="III"), "incident.verify",
     {"incident_id": INCIDENT, "category": None, "incident_type": None, "level": "III",
      "note": ""}),
    (DismissIncident(incident_id=INCIDENT, reason="false"), "incident.verify",
     {"incident_id": INCIDENT, "dismiss": "false"}),
    (RespondToIncident(incident_id=INCIDENT, level="IV", plan_id=OTHER), "incident.respond",
     {"incident_id": INCIDENT, "level": "IV", "plan_id": OTHER, "reason": ""}),
    (ActivatePlan(incident_id=INCIDENT, plan_id=OTHER), "incident.activate-plan",
     {"incident_id": INCIDENT, "plan_id": OTHER}),
    (ChangeIncidentLevel(incident_id=INCIDENT, level="II", reason="rain"),
     "incident.change-level", {"incident_id": INCIDENT, "level": "II", "reason": "rain"}),
    (EscalateIncident(incident_id=INCIDENT, reason="rain"), "incident.change-level",
     {"incident_id": INCIDENT, "step": -1, "reason": "rain"}),
    (DeescalateIncident(incident_id=INCIDENT, reason="dry"), "incident.change-level",
     {"incident_id": INCIDENT, "step": 1, "reason": "dry"}),
    (AddSituationReport(incident_id=INCIDENT, text="rising",
                        casualties={"missing": 1, "injured": 2}),
     "incident.add-situation-report",
     {"incident_id": INCIDENT, "text": "rising", "casualties": {"injured": 2, "missing": 1},
      "affected_area": None}),
    (LinkToIncident(incident_id=INCIDENT, kind="grid-case", target_id=OTHER),
     "incident.link", {"incident_id": INCIDENT, "kind": "grid-case", "target_id": OTHER}),
    (UnlinkFromIncident(incident_id=INCIDENT, kind="grid-case", target_id=OTHER,
                        reason="mistake"),
     "incident.link",
     {"incident_id": INCIDENT, "unlink": "grid-case", "target_id": OTHER,
      "reason": "mistake"}),
    (AssignCommander(incident_id=INCIDENT, commander="chief-li"),
     "incident.assign-commander",
     {"incident_id": INCIDENT, "commander": "chief-li", "reason": ""}),
    (AssignTask(incident_id=INCIDENT, department="water", description="pumps",
                allowance=timedelta(minutes=30)),
     "incident.assign-task",
     {"incident_id": INCIDENT, "department": "water", "description": "pumps",
      "allowance": timedelta(minutes=30), "task_id": None}),
    (AcknowledgeTask(incident_id=INCIDENT, task_id=OTHER), "incident.task",
     {"incident_id": INCIDENT, "task_id": OTHER, "move": "acknowledge"}),
    (CompleteTask(incident_id=INCIDENT, task_id=OTHER, result="done"), "incident.task",
     {"incident_id": INCIDENT, "task_id": OTHER, "move": "complete", "result": "done"}),
    (CancelTask(incident_id=INCIDENT, task_id=OTHER, reason="x"), "incident.cancel-task",
     {"incident_id": INCIDENT, "task_id": OTHER, "reason": "x"}),
    (WaiveTask(incident_id=INCIDENT, task_id=OTHER, reason="x"), "incident.waive-task",
     {"incident_id": INCIDENT, "task_id": OTHER, "reason": "x"}),
    (AssignResourceToIncident(incident_id=INCIDENT, resource_id=OTHER, kind="shelter"),
     "incident.assign-resource",
     {"incident_id": INCIDENT, "resource_id": OTHER, "kind": "shelter"}),
    (ReleaseResourceFromIncident(incident_id=INCIDENT, resource_id=OTHER),
     "incident.assign-resource", {"incident_id": INCIDENT, "release": OTHER}),
    (RecordResourceArrival(incident_id=INCIDENT, resource_id=OTHER, kind="shelter",
                           sent_at=WHEN),
     "incident.assign-resource",
     {"incident_id": INCIDENT, "resource_id": OTHER, "kind": "shelter", "sent_at": WHEN}),
    (RecordResourceDeparture(incident_id=INCIDENT, resource_id=OTHER, how="stood down",
                             left_at=WHEN),
     "incident.record-resource-departure",
     {"incident_id": INCIDENT, "resource_id": OTHER, "how": "stood down", "left_at": WHEN}),
    (ContainIncident(incident_id=INCIDENT, note="ok"), "incident.contain",
     {"incident_id": INCIDENT, "note": "ok"}),
    (FlareUpIncident(incident_id=INCIDENT, reason="again"), "incident.contain",
     {"incident_id": INCIDENT, "reason": "again", "flare_up": True}),
    (CloseIncident(incident_id=INCIDENT), "incident.close",
     {"incident_id": INCIDENT, "note": ""}),
    (ReviewIncident(incident_id=INCIDENT, summary="lessons", findings=[FINDING]),
     "incident.review",
     {"incident_id": INCIDENT, "summary": "lessons", "findings": [FINDING.as_fact()]}),
    (DefinePlan(code="urban-flood", plan_name="Urban flood", category="natural-disaster",
                incident_types=["flood"], levels=LEVELS),
     "plan.define",
     {"code": "urban-flood", "name": "Urban flood", "category": "natural-disaster",
      "incident_types": ["flood"], "levels": [lv.as_fact() for lv in LEVELS]}),
    (RevisePlan(plan_id=OTHER, levels=LEVELS, note="pumps"), "plan.revise",
     {"plan_id": OTHER, "levels": [lv.as_fact() for lv in LEVELS], "note": "pumps",
      "name": None, "incident_types": None}),
    (RetirePlan(plan_id=OTHER, reason="old"), "plan.retire",
     {"plan_id": OTHER, "reason": "old"}),
    (RegisterHazardSource(hazard_type="lpg-depot", source_name="Depot", owner_name="Co",
                          owner_contact="+86", grade=2, location=POINT),
     "hazard.register",
     {"hazard_type": "lpg-depot", "name": "Depot", "owner_name": "Co",
      "owner_contact": "+86", "grade": 2, "location": [POINT.lon, POINT.lat],
      "impact_radius_m": None, "impact_zone": None}),
    (UpdateHazardSource(source_id=OTHER, grade=1, impact_zone=AREA), "hazard.update",
     {"source_id": OTHER, "name": None, "owner_name": None, "owner_contact": None,
      "grade": 1, "location": None, "impact_radius_m": None, "impact_zone": AREA.wkt,
      "reason": ""}),
    (DecommissionHazardSource(source_id=OTHER, reason="closed"), "hazard.decommission",
     {"source_id": OTHER, "reason": "closed"}),
    (AddSensor(source_id=OTHER, sensor_id="GT-1", kind="gas-concentration", unit="%LEL",
               direction="high", warning=20, alarm=40),
     "hazard.add-sensor",
     {"source_id": OTHER, "sensor_id": "GT-1", "kind": "gas-concentration", "unit": "%LEL",
      "direction": "high", "warning": 20, "alarm": 40, "deadband": None, "label": ""}),
    (RemoveSensor(source_id=OTHER, sensor_id="GT-1"), "hazard.remove-sensor",
     {"source_id": OTHER, "sensor_id": "GT-1", "reason": ""}),
    (AcknowledgeAlarm(source_id=OTHER, alarm_id=INCIDENT, note="seen"),
     "hazard.acknowledge-alarm", {"source_id": OTHER, "alarm_id": INCIDENT, "note": "seen"}),
    (RecordAlarmEscalation(source_id=OTHER, alarm_id=INCIDENT), "hazard.escalate-alarm",
     {"source_id": OTHER, "alarm_id": INCIDENT, "incident_id": None, "note": ""}),
    (RecordFinding(source_id=OTHER, description="exit blocked", severity="major",
                   rectification_deadline=WHEN),
     "hazard.record-finding",
     {"source_id": OTHER, "description": "exit blocked", "severity": "major",
      "rectification_deadline": WHEN}),
    (RectifyFinding(source_id=OTHER, finding_id=INCIDENT, evidence=["photo:ab"]),
     "hazard.rectify-finding",
     {"source_id": OTHER, "finding_id": INCIDENT, "evidence": ["photo:ab"], "note": ""}),
    (RegisterResource(kind="shelter", resource_name="School", call_sign=" shelter  3 ",
                      department="emergency-management", home_base=POINT, capacity=800),
     "resource.register",
     {"kind": "shelter", "name": "School", "call_sign": "SHELTER 3",
      "department": "emergency-management", "home_base": [POINT.lon, POINT.lat],
      "capacity": 800, "stock": {}, "speciality": "", "notes": ""}),
    (ReviseResource(resource_id=OTHER, notes="hose"), "resource.revise",
     {"resource_id": OTHER, "name": None, "home_base": None, "capacity": "unchanged",
      "stock": None, "speciality": None, "notes": "hose"}),
    (ReviseResource(resource_id=OTHER, capacity=None), "resource.revise",
     {"resource_id": OTHER, "name": None, "home_base": None, "capacity": None,
      "stock": None, "speciality": None, "notes": None}),
    (DispatchResource(resource_id=OTHER, incident_id=INCIDENT, position=POINT),
     "resource.dispatch",
     {"resource_id": OTHER, "position": [POINT.lon, POINT.lat], "incident_id": INCIDENT}),
    (DispatchToOpenIncident(resource_id=OTHER, incident_id=INCIDENT), "resource.dispatch",
     {"resource_id": OTHER, "position": None, "incident_id": INCIDENT}),
    (ReassignResource(resource_id=OTHER, incident_id=INCIDENT), "resource.reassign",
     {"resource_id": OTHER, "position": None, "incident_id": INCIDENT}),
    (ReassignToOpenIncident(resource_id=OTHER, incident_id=INCIDENT), "resource.reassign",
     {"resource_id": OTHER, "position": None, "incident_id": INCIDENT}),
    (StandDownResource(resource_id=OTHER), "resource.stand-down",
     {"resource_id": OTHER, "position": None}),
    (ReportEnRoute(resource_id=OTHER, position=POINT), "resource.report-en-route",
     {"resource_id": OTHER, "position": [POINT.lon, POINT.lat]}),
    (ReportOnScene(resource_id=OTHER), "resource.report-on-scene",
     {"resource_id": OTHER, "position": None}),
    (ClearScene(resource_id=OTHER), "resource.clear-scene",
     {"resource_id": OTHER, "position": None}),
    (ReportAvailable(resource_id=OTHER), "resource.report-available",
     {"resource_id": OTHER, "position": None}),
    (ReturnToService(resource_id=OTHER), "resource.return-to-service",
     {"resource_id": OTHER, "position": None}),
    (TakeOutOfService(resource_id=OTHER, reason="rest"), "resource.take-out-of-service",
     {"resource_id": OTHER, "position": None, "reason": "rest"}),
    (ActivateResource(resource_id=OTHER), "resource.activate",
     {"resource_id": OTHER, "position": None}),
    (DeactivateResource(resource_id=OTHER), "resource.deactivate",
     {"resource_id": OTHER, "position": None}),
]


@pytest.mark.parametrize(("command", "name", "before"), BEFORE_VALUES,
                         ids=[f"{b[1]}:{type(b[0]).__name__}" for b in BEFORE_VALUES])
def test_a_command_digests_as_its_receipts_did_before_commands_were_values(
        command: Command, name: str, before: dict[str, Any]) -> None:
    assert command.name == name
    assert command.fingerprint() == fingerprint(name, before)


def test_every_class_sharing_a_name_keeps_that_name_s_role_row() -> None:
    names: dict[str, set[frozenset[Role]]] = {}
    for command, name, _ in BEFORE_VALUES:
        names.setdefault(name, set()).add(COMMAND_ROLES[type(command)])
    assert {n: len(rows) for n, rows in names.items() if len(rows) > 1} == {}
    # The gate at the door names commands by their names: each finds a class of its row.
    for name in names:
        assert COMMAND_CLASSES[name].name == name


@pytest.mark.parametrize(("build", "message"), [
    (lambda: LinkToIncident(incident_id=INCIDENT, kind="pigeon", target_id=OTHER),
     "unknown link kind 'pigeon'"),
    (lambda: ReportIncident(category="c", incident_type="t", title="x", location=(1, 2),
                            source="hotline"), "location must be a point"),
    (lambda: ReportIncident(category="c", incident_type="t", title="x", location=POINT,
                            source="pigeon"), "unknown incident source"),
    (lambda: VerifyIncident(incident_id=str(INCIDENT)), "incident id must be a UUID"),
    (lambda: AddSituationReport(incident_id=INCIDENT, text="x", casualties={"dead": -1}),
     "casualty figure dead"),
    (lambda: AssignTask(incident_id=INCIDENT, department="water", description="x",
                        allowance=30), "time allowance must be a duration"),
    (lambda: DefinePlan(code="Urban Flood", plan_name="x", category="c", levels=LEVELS),
     "plan code"),
    (lambda: RevisePlan(plan_id=OTHER, levels=["IV"], note="x"), "must be a PlanLevel"),
    (lambda: ReviewIncident(incident_id=INCIDENT, summary="x", findings=["slow"]),
     "must be a Finding"),
    (lambda: RecordResourceArrival(incident_id=INCIDENT, resource_id=OTHER, kind="k",
                                   sent_at=datetime(2026, 7, 1)), "no time zone"),
    (lambda: AddSensor(source_id=OTHER, sensor_id="s", kind="k", unit="u",
                       direction="sideways", warning=1, alarm=2),
     "threshold directions are high, low"),
    (lambda: RecordFinding(source_id=OTHER, description="x", severity="catastrophic",
                           rectification_deadline=WHEN), "finding severities are major, general"),
    (lambda: UpdateHazardSource(source_id=OTHER, impact_radius_m=10, impact_zone=AREA),
     "not both"),
    (lambda: RecordReading(source_id=OTHER, sensor_id="s", value=float("nan")), "finite"),
    (lambda: RegisterResource(kind="k", resource_name="n", call_sign=" ", department="d",
                              home_base=POINT), "call sign must not be empty"),
    (lambda: ReportOnScene(resource_id=OTHER, position=(1, 2)), "position must be a GeoPoint"),
    (lambda: DispatchResource(resource_id=OTHER, incident_id="i"), "incident id must be a"),
])
def test_a_command_is_checked_when_it_is_built(build: Any, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        build()


def test_a_revision_leaves_the_capacity_as_it_is_unless_given() -> None:
    assert ReviseResource(resource_id=OTHER).capacity is UNCHANGED


def test_a_level_change_receipted_before_the_upgrade_is_a_repeat_of_it() -> None:
    """A duty officer's tablet sends `POST /incidents/{id}/escalate` again after the
    upgrade: its receipt, written by the old code, answers it and nothing is recorded."""
    incidents = Incidents({"PERSISTENCE_MODULE": "eventsourcing.popo"},
                          catalogue=Catalogue.load())
    dispatcher = Actor("duty-1", Role.DISPATCHER)
    incident_id = incidents.handle(
        ReportIncident(category="natural-disaster", incident_type="flood", title="Underpass",
                       location=POINT, source="hotline"),
        CommandContext(actor=dispatcher)).subject
    incidents.handle(VerifyIncident(incident_id=incident_id), CommandContext(actor=dispatcher))
    incidents.handle(RespondToIncident(incident_id=incident_id, level="IV"),
                     CommandContext(actor=dispatcher))
    incidents.handle(EscalateIncident(incident_id=incident_id, reason="rain"),
                     CommandContext(actor=dispatcher))
    version = incidents.incident(incident_id).version
    incidents.save(CommandReceipt(
        command_id="tablet-7", command="incident.change-level",
        fingerprint=fingerprint("incident.change-level", {
            "incident_id": incident_id, "step": -1, "reason": "rain"}),
        aggregate_id=incident_id, actor=dispatcher))
    again = incidents.handle(EscalateIncident(incident_id=incident_id, reason="rain"),
                             CommandContext(actor=dispatcher, command_id="tablet-7"))
    assert (again.subject, again.repeated) == (incident_id, True)
    assert incidents.incident(incident_id).version == version
    assert incidents.incident(incident_id).level == "III"
