"""Incidents: report, verify or dismiss, respond at a level with contingency plans, raise or
lower the level, situation reports, links, commander, departments' tasks, resources on the
incident's side, contain, close and review; list and get from the read model."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field

from cityops.command_center.areas import AreaIn
from cityops.command_center.dependencies import (
    BBoxDep,
    CommandId,
    CurrentActor,
    PagingDep,
    SystemDep,
    page_body,
)
from cityops.command_center.history import event_history
from cityops.command_center.models.common import HistoryEntryPublic
from cityops.command_center.models.incidents import (
    IncidentPublic,
    IncidentsPublic,
)
from cityops.command_center.schemas import Command, LevelCode, PointIn
from cityops.command_center.scopes import incident_scope_where, scope_guard
from cityops.command_center.sharing import shared_route
from cityops.command_center.time_travel import ReadSystem
from cityops.command_center.versions import SeenVersion
from cityops.domain.commands import CommandContext
from cityops.domain.incidents.commands import (
    AcknowledgeTask,
    ActivatePlan,
    AddSituationReport,
    AssignCommander,
    AssignTask,
    CancelTask,
    ChangeIncidentLevel,
    CloseIncident,
    CompleteTask,
    ContainIncident,
    DeescalateIncident,
    DismissIncident,
    EscalateIncident,
    FlareUpIncident,
    IncidentCommand,
    LinkToIncident,
    ReportIncident,
    RespondToIncident,
    ReviewIncident,
    UnlinkFromIncident,
    VerifyIncident,
    WaiveTask,
)
from cityops.domain.incidents.incident import (
    CasualtyFigure,
    Finding,
    FindingAspect,
    IncidentSource,
    IncidentStatus,
    LinkKind,
)
from cityops.domain.values import duration_from_minutes

router = APIRouter(
    prefix="/incidents", tags=["incidents"], route_class=shared_route("incidents"),
    dependencies=[scope_guard("incident_id", "incident",
                              lambda system, i: system.incidents.incident(i).summary())],
)


class IncidentReport(Command):
    category: str = Field(description="Incident category code, e.g. accident-disaster")
    incident_type: str = Field(description="Type code within the category, e.g. fire")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    location: PointIn
    source: IncidentSource = IncidentSource.INSPECTOR
    level: str | None = Field(default=None, description="Assessed level I-IV (default: IV)")
    affected_area: AreaIn | None = None
    source_ref: str | None = Field(default=None, max_length=200)
    warning: str | None = Field(default=None, description="Warning colour: red, orange, "
                                "yellow or blue")
    at: datetime | None = Field(default=None, description="When it was reported (default: now)")


class IncidentVerification(Command):
    category: str | None = Field(default=None, description="Corrected category")
    incident_type: str | None = Field(default=None, description="Corrected type")
    level: str | None = Field(default=None, description="Corrected level")
    note: str = ""


class Reason(Command):
    reason: str = Field(min_length=1)


class ResponseStart(Command):
    level: str = Field(description="Response level I-IV")
    plan_id: UUID | None = Field(default=None, description="Contingency plan to activate")
    reason: str = ""


class PlanActivation(Command):
    plan_id: UUID


class LevelChange(Command):
    level: str = Field(description="The new response level I-IV")
    reason: str = Field(min_length=1)


class SituationReport(Command):
    text: str = Field(min_length=1, max_length=4000)
    casualties: dict[CasualtyFigure, Annotated[int, Field(ge=0)]] | None = Field(
        default=None, description="Counts of people: dead, injured, missing, trapped, evacuated")
    affected_area: AreaIn | None = None


class Link(Command):
    kind: LinkKind
    target_id: UUID


class Unlink(Command):
    kind: LinkKind
    target_id: UUID
    reason: str = Field(min_length=1)


class CommanderAssignment(Command):
    commander: str = Field(min_length=1, max_length=200, description="User id")
    reason: str = ""


class TaskAssignment(Command):
    department: str
    description: str = Field(min_length=1, max_length=4000)
    allowance_minutes: float = Field(gt=0, description="Time allowed, in minutes")
    task_id: UUID | None = Field(default=None, description="Default: a new id")


class TaskResult(Command):
    result: str = ""


class ResourceAssignment(Command):
    resource_id: UUID


class Note(Command):
    note: str = ""


class ReviewFinding(Command):
    aspect: FindingAspect
    text: str = Field(min_length=1)
    recommendation: str = ""
    department: str | None = None


class Review(Command):
    summary: str = Field(min_length=1)
    findings: list[ReviewFinding] = Field(default_factory=list, max_length=100)


def _state(system: SystemDep, incident_id: UUID) -> dict[str, Any]:
    """The incident as the write side knows it now (read-your-writes for the caller)."""
    system.wake_projections()
    return system.incidents.incident(incident_id).summary()


def _issue(system: SystemDep, command: IncidentCommand, actor: CurrentActor,
           command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Run a command on one incident, as its user saw it (`If-Match`), and answer the
    incident."""
    outcome = system.commands.handle(
        command, CommandContext(actor=actor, command_id=command_id, seen_versions=seen))
    return _state(system, outcome.subject)


@router.post("", response_model=IncidentPublic, status_code=201)
def report_incident(body: IncidentReport, system: SystemDep, actor: CurrentActor,
                    command_id: CommandId) -> dict[str, Any]:
    """Report an emergency from the hotline, an inspector, a sensor or a department."""
    report = ReportIncident(
        category=body.category, incident_type=body.incident_type, title=body.title,
        description=body.description, location=body.location.to_point(), source=body.source,
        level=body.level, affected_area=body.affected_area.to_area() if body.affected_area
        else None, source_ref=body.source_ref, warning=body.warning,
    )
    outcome = system.commands.handle(
        report, CommandContext(actor=actor, command_id=command_id, at=body.at))
    return _state(system, outcome.subject)


@router.get("", response_model=IncidentsPublic)
def list_incidents(
    system: ReadSystem,
    actor: CurrentActor,
    paging: PagingDep,
    bbox: BBoxDep,
    status: Annotated[list[IncidentStatus] | None, Query(description="Any of these states")]
    = None,
    category: str | None = None,
    level: Annotated[list[LevelCode] | None,
                     Query(description="Any of these levels (I-IV)")] = None,
    open_only: bool = False,
) -> dict[str, Any]:
    """List incidents with filters, newest first."""
    filters: dict[str, Any] = {}
    if status:
        filters["status"] = [s.value for s in status]
    if category:
        filters["category"] = category
    if level:
        filters["level"] = level
    if open_only:
        filters["is_open"] = True
    page = system.read_models.page(
        "rm_incidents", filters=filters, bbox=bbox,
        extra_where=incident_scope_where(system.read_models.store.dialect, actor),
        limit=paging.limit, offset=paging.offset)
    return page_body(page.items, page.total, paging)


@router.get("/{incident_id}", response_model=IncidentPublic)
def get_incident(incident_id: UUID, system: ReadSystem) -> dict[str, Any]:
    """One incident, as recorded now, with its timeline, tasks and resources."""
    return _state(system, incident_id)


@router.get("/{incident_id}/history", response_model=list[HistoryEntryPublic])
def incident_history(incident_id: UUID, system: ReadSystem) -> list[dict[str, Any]]:
    """Every event of the incident: what happened, who did it, in what role, and when."""
    system.incidents.incident(incident_id)
    return event_history(system.incidents.events.get(incident_id))


@router.post("/{incident_id}/verify", response_model=IncidentPublic)
def verify_incident(incident_id: UUID, body: IncidentVerification, system: SystemDep,
                    actor: CurrentActor, command_id: CommandId,
                    seen: SeenVersion) -> dict[str, Any]:
    """Confirm the incident is real (correcting its category, type or level)."""
    command = VerifyIncident(incident_id=incident_id, category=body.category,
                             incident_type=body.incident_type, level=body.level,
                             note=body.note)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/dismiss", response_model=IncidentPublic)
def dismiss_incident(incident_id: UUID, body: Reason, system: SystemDep, actor: CurrentActor,
                     command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Dismiss a false report."""
    command = DismissIncident(incident_id=incident_id, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/respond", response_model=IncidentPublic)
def respond_to_incident(incident_id: UUID, body: ResponseStart, system: SystemDep,
                        actor: CurrentActor, command_id: CommandId,
                        seen: SeenVersion) -> dict[str, Any]:
    """Start the response at a level, usually activating a contingency plan at it."""
    command = RespondToIncident(incident_id=incident_id, level=body.level,
                                plan_id=body.plan_id, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/activate-plan", response_model=IncidentPublic)
def activate_plan(incident_id: UUID, body: PlanActivation, system: SystemDep,
                  actor: CurrentActor, command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Activate (another) contingency plan at the incident's level: its tasks go out."""
    command = ActivatePlan(incident_id=incident_id, plan_id=body.plan_id)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/level", response_model=IncidentPublic)
def change_level(incident_id: UUID, body: LevelChange, system: SystemDep, actor: CurrentActor,
                 command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Set the response level; raising it gives out the activated plans' new tasks."""
    command = ChangeIncidentLevel(incident_id=incident_id, level=body.level,
                                  reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/escalate", response_model=IncidentPublic)
def escalate_incident(incident_id: UUID, body: Reason, system: SystemDep, actor: CurrentActor,
                      command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Raise the response level by one (IV -> III -> II -> I)."""
    command = EscalateIncident(incident_id=incident_id, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/de-escalate", response_model=IncidentPublic)
def deescalate_incident(incident_id: UUID, body: Reason, system: SystemDep,
                        actor: CurrentActor, command_id: CommandId,
                        seen: SeenVersion) -> dict[str, Any]:
    """Lower the response level by one (I -> II -> III -> IV)."""
    command = DeescalateIncident(incident_id=incident_id, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/situation-reports", response_model=IncidentPublic)
def add_situation_report(incident_id: UUID, body: SituationReport, system: SystemDep,
                         actor: CurrentActor, command_id: CommandId,
                         seen: SeenVersion) -> dict[str, Any]:
    """Add what is known now to the timeline: casualty figures, the affected area."""
    casualties = ({figure.value: count for figure, count in body.casualties.items()}
                  if body.casualties is not None else None)
    command = AddSituationReport(
        incident_id=incident_id, text=body.text, casualties=casualties,
        affected_area=body.affected_area.to_area() if body.affected_area else None,
    )
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/links", response_model=IncidentPublic)
def link_incident(incident_id: UUID, body: Link, system: SystemDep, actor: CurrentActor,
                  command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Link a grid case, hotline ticket or hazard alarm (linking it again changes nothing)."""
    command = LinkToIncident(incident_id=incident_id, kind=body.kind,
                             target_id=body.target_id)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/unlink", response_model=IncidentPublic)
def unlink_incident(incident_id: UUID, body: Unlink, system: SystemDep, actor: CurrentActor,
                    command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Remove a link made by mistake."""
    command = UnlinkFromIncident(incident_id=incident_id, kind=body.kind,
                                 target_id=body.target_id, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/commander", response_model=IncidentPublic)
def assign_commander(incident_id: UUID, body: CommanderAssignment, system: SystemDep,
                     actor: CurrentActor, command_id: CommandId,
                     seen: SeenVersion) -> dict[str, Any]:
    """Name the incident's commander, or replace the current one."""
    command = AssignCommander(incident_id=incident_id, commander=body.commander,
                              reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/tasks", response_model=IncidentPublic)
def assign_task(incident_id: UUID, body: TaskAssignment, system: SystemDep,
                actor: CurrentActor, command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Give a department a task outside the plans, due after its allowance."""
    command = AssignTask(
        incident_id=incident_id, department=body.department, description=body.description,
        allowance=duration_from_minutes("allowance_minutes", body.allowance_minutes),
        task_id=body.task_id,
    )
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/tasks/{task_id}/acknowledge", response_model=IncidentPublic)
def acknowledge_task(incident_id: UUID, task_id: UUID, system: SystemDep, actor: CurrentActor,
                     command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The department confirms it has the task in hand (its own department's only)."""
    command = AcknowledgeTask(incident_id=incident_id, task_id=task_id)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/tasks/{task_id}/complete", response_model=IncidentPublic)
def complete_task(incident_id: UUID, task_id: UUID, body: TaskResult, system: SystemDep,
                  actor: CurrentActor, command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The department reports the task done (its own department's only)."""
    command = CompleteTask(incident_id=incident_id, task_id=task_id, result=body.result)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/tasks/{task_id}/cancel", response_model=IncidentPublic)
def cancel_task(incident_id: UUID, task_id: UUID, body: Reason, system: SystemDep,
                actor: CurrentActor, command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The centre calls a task off."""
    command = CancelTask(incident_id=incident_id, task_id=task_id, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/tasks/{task_id}/waive", response_model=IncidentPublic)
def waive_task(incident_id: UUID, task_id: UUID, body: Reason, system: SystemDep,
               actor: CurrentActor, command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The centre, for the commander, accepts closing without an open task (with a reason)."""
    command = WaiveTask(incident_id=incident_id, task_id=task_id, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/resources", response_model=IncidentPublic)
def assign_resource(incident_id: UUID, body: ResourceAssignment, system: SystemDep,
                    actor: CurrentActor, command_id: CommandId,
                    seen: SeenVersion) -> dict[str, Any]:
    """Dispatch an available resource to the incident, recorded on both (one click)."""
    system.operations.assign_resource(incident_id, body.resource_id, actor=actor,
                                      command_id=command_id, seen_versions=seen)
    return _state(system, incident_id)


@router.post("/{incident_id}/resources/{resource_id}/release", response_model=IncidentPublic)
def release_resource(incident_id: UUID, resource_id: UUID, system: SystemDep,
                     actor: CurrentActor, command_id: CommandId,
                     seen: SeenVersion) -> dict[str, Any]:
    """Release a resource from the incident, recorded on both: it is stood down if it had
    not arrived, and clears the scene (a depot or shelter closes) if it had."""
    system.operations.release_resource(incident_id, resource_id, actor=actor,
                                       command_id=command_id, seen_versions=seen)
    return _state(system, incident_id)


@router.post("/{incident_id}/contain", response_model=IncidentPublic)
def contain_incident(incident_id: UUID, body: Note, system: SystemDep, actor: CurrentActor,
                     command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The situation is under control."""
    command = ContainIncident(incident_id=incident_id, note=body.note)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/flare-up", response_model=IncidentPublic)
def flare_up(incident_id: UUID, body: Reason, system: SystemDep, actor: CurrentActor,
             command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """A contained incident got out of control again: the response resumes."""
    command = FlareUpIncident(incident_id=incident_id, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/close", response_model=IncidentPublic)
def close_incident(incident_id: UUID, body: Note, system: SystemDep, actor: CurrentActor,
                   command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Close a contained incident whose tasks are all done, cancelled or waived (else 409
    naming the open ones); resources still assigned are released."""
    command = CloseIncident(incident_id=incident_id, note=body.note)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{incident_id}/review", response_model=IncidentPublic)
def review_incident(incident_id: UUID, body: Review, system: SystemDep, actor: CurrentActor,
                    command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Record the after-action review of a closed incident."""
    findings = [Finding(aspect=f.aspect, text=f.text, recommendation=f.recommendation,
                        department=f.department) for f in body.findings]
    command = ReviewIncident(incident_id=incident_id, summary=body.summary,
                             findings=tuple(findings))
    return _issue(system, command, actor, command_id, seen)
