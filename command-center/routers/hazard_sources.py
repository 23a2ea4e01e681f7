"""Hazard sources: the registry, sensors with thresholds, readings (only threshold crossings
are recorded), alarms acknowledged or escalated, inspection findings and their
rectification; list, get and history."""

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
from cityops.command_center.models.hazards import (
    EscalatedAlarmPublic,
    HazardSourcePublic,
    HazardSourcesPublic,
    ReadingOutcomePublic,
)
from cityops.command_center.schemas import Command, HazardGrade, PointIn
from cityops.command_center.scopes import LOGGED_IN
from cityops.command_center.sharing import shared_route
from cityops.command_center.time_travel import ReadSystem
from cityops.command_center.versions import SeenVersion
from cityops.domain.commands import CommandContext
from cityops.domain.hazards.commands import (
    AcknowledgeAlarm,
    AddSensor,
    DecommissionHazardSource,
    HazardSourceCommand,
    RecordFinding,
    RecordReading,
    RectifyFinding,
    RegisterHazardSource,
    RemoveSensor,
    UpdateHazardSource,
)
from cityops.domain.hazards.source import FindingSeverity, HazardStatus, ThresholdDirection

# Hazard sources are shared with every department: a login is all it takes to read them.
router = APIRouter(prefix="/hazard-sources", tags=["hazard sources"],
                   dependencies=[LOGGED_IN], route_class=shared_route("hazards"))


class HazardRegistration(Command):
    hazard_type: str = Field(description="Hazard type code, e.g. lpg-depot")
    name: str = Field(min_length=1, max_length=200)
    owner_name: str = Field(min_length=1, max_length=200)
    owner_contact: str = Field(min_length=1, max_length=200)
    grade: int = Field(ge=1, le=4, description="Hazard grade: 1 highest to 4")
    location: PointIn
    impact_radius_m: float | None = Field(default=None, gt=0,
                                          description="Default: the type's radius")
    impact_zone: AreaIn | None = Field(default=None, description="Instead of a radius")


class HazardUpdate(Command):
    """Only the fields given change; a new radius replaces a zone and a zone a radius."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    owner_name: str | None = Field(default=None, min_length=1, max_length=200)
    owner_contact: str | None = Field(default=None, min_length=1, max_length=200)
    grade: int | None = Field(default=None, ge=1, le=4)
    location: PointIn | None = None
    impact_radius_m: float | None = Field(default=None, gt=0)
    impact_zone: AreaIn | None = None
    reason: str = ""


class Decommissioning(Command):
    reason: str = Field(min_length=1)


class SensorIn(Command):
    sensor_id: str = Field(min_length=1, max_length=64, description="Unique on the source")
    kind: str = Field(description="Sensor kind code, e.g. gas-concentration")
    unit: str = Field(description="A unit the kind reports in, e.g. %LEL")
    direction: ThresholdDirection = ThresholdDirection.HIGH
    warning: float
    alarm: float
    deadband: float | None = Field(default=None, ge=0, description="Default: the catalogue's")
    label: str = ""


class SensorRemoval(Command):
    reason: str = ""


class Reading(Command):
    value: float
    at: datetime | None = Field(default=None, description="When it was measured (default: now)")


class AlarmAcknowledgement(Command):
    note: str = ""


class AlarmEscalation(Command):
    incident_id: UUID | None = Field(
        default=None, description="An existing incident to join; else a new one is reported")
    category: str | None = Field(default=None, description="For a new incident")
    incident_type: str | None = Field(default=None, description="For a new incident")
    title: str | None = Field(default=None, description="For a new incident")
    level: str | None = Field(default=None, description="For a new incident: I to IV")


class FindingIn(Command):
    description: str = Field(min_length=1, max_length=4000)
    severity: FindingSeverity
    rectification_deadline: datetime


class Rectification(Command):
    evidence: list[str] = Field(min_length=1, max_length=12,
                                description="Photo or document references")
    note: str = ""


def _state(system: SystemDep, source_id: UUID) -> dict[str, Any]:
    """The hazard source as the write side knows it now, with the latest readings this
    server has seen."""
    system.wake_projections()
    body = system.hazards.source(source_id).summary()
    latest = system.hazards.latest_readings.of_source(source_id)
    body["latest_readings"] = {sensor: reading.as_dict()
                               for sensor, reading in sorted(latest.items())}
    return body


def _issue(system: SystemDep, command: HazardSourceCommand, actor: CurrentActor,
           command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Run a command on one hazard source, as its user saw it (`If-Match`), and answer the
    source."""
    outcome = system.commands.handle(
        command, CommandContext(actor=actor, command_id=command_id, seen_versions=seen))
    return _state(system, outcome.subject)


@router.post("", response_model=HazardSourcePublic, status_code=201)
def register_hazard_source(body: HazardRegistration, system: SystemDep, actor: CurrentActor,
                           command_id: CommandId) -> dict[str, Any]:
    """Enter a hazard source in the registry."""
    register = RegisterHazardSource(
        hazard_type=body.hazard_type, source_name=body.name, owner_name=body.owner_name,
        owner_contact=body.owner_contact, grade=body.grade, location=body.location.to_point(),
        impact_radius_m=body.impact_radius_m,
        impact_zone=body.impact_zone.to_area() if body.impact_zone else None,
    )
    outcome = system.commands.handle(register,
                                     CommandContext(actor=actor, command_id=command_id))
    return _state(system, outcome.subject)


@router.get("", response_model=HazardSourcesPublic)
def list_hazard_sources(
    system: ReadSystem,
    paging: PagingDep,
    bbox: BBoxDep,
    hazard_type: Annotated[str | None, Query(alias="type", description="Hazard type code")]
    = None,
    grade: Annotated[list[HazardGrade] | None,
                     Query(description="Any of these grades (1-4)")] = None,
    status: HazardStatus | None = None,
    with_open_alarms: Annotated[bool, Query(description="Only those with an open alarm")]
    = False,
) -> dict[str, Any]:
    """List hazard sources with filters, newest first."""
    filters: dict[str, Any] = {}
    if hazard_type:
        filters["hazard_type"] = hazard_type
    if grade:
        filters["grade"] = grade
    if status is not None:
        filters["status"] = status.value
    extra = [("open_alarm_count > %s", [0])] if with_open_alarms else []
    page = system.read_models.page("rm_hazard_sources", filters=filters, bbox=bbox,
                                   extra_where=extra, limit=paging.limit, offset=paging.offset)
    return page_body(page.items, page.total, paging)


@router.get("/{source_id}", response_model=HazardSourcePublic)
def get_hazard_source(source_id: UUID, system: ReadSystem) -> dict[str, Any]:
    """One hazard source with its sensors, alarms and hidden dangers."""
    return _state(system, source_id)


@router.get("/{source_id}/history", response_model=list[HistoryEntryPublic])
def hazard_source_history(source_id: UUID, system: ReadSystem) -> list[dict[str, Any]]:
    """Every event of the hazard source: what happened, who did it, in what role, and when."""
    system.hazards.source(source_id)
    return event_history(system.hazards.events.get(source_id))


@router.post("/{source_id}/update", response_model=HazardSourcePublic)
def update_hazard_source(source_id: UUID, body: HazardUpdate, system: SystemDep,
                         actor: CurrentActor, command_id: CommandId,
                         seen: SeenVersion) -> dict[str, Any]:
    """Change registry details (owner, grade, location, impact)."""
    command = UpdateHazardSource(
        source_id=source_id, source_name=body.name, owner_name=body.owner_name,
        owner_contact=body.owner_contact, grade=body.grade,
        location=body.location.to_point() if body.location else None,
        impact_radius_m=body.impact_radius_m,
        impact_zone=body.impact_zone.to_area() if body.impact_zone else None,
        reason=body.reason,
    )
    return _issue(system, command, actor, command_id, seen)


@router.post("/{source_id}/decommission", response_model=HazardSourcePublic)
def decommission_hazard_source(source_id: UUID, body: Decommissioning, system: SystemDep,
                               actor: CurrentActor, command_id: CommandId,
                               seen: SeenVersion) -> dict[str, Any]:
    """Take a hazard source out of supervision for good; its open alarms end."""
    command = DecommissionHazardSource(source_id=source_id, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{source_id}/sensors", response_model=HazardSourcePublic)
def add_sensor(source_id: UUID, body: SensorIn, system: SystemDep, actor: CurrentActor,
               command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Put a sensor under watch with its warning and alarm thresholds."""
    command = AddSensor(
        source_id=source_id, sensor_id=body.sensor_id, kind=body.kind, unit=body.unit,
        direction=body.direction, warning=body.warning, alarm=body.alarm,
        deadband=body.deadband, label=body.label,
    )
    return _issue(system, command, actor, command_id, seen)


@router.post("/{source_id}/sensors/{sensor_id}/remove", response_model=HazardSourcePublic)
def remove_sensor(source_id: UUID, sensor_id: str, body: SensorRemoval, system: SystemDep,
                  actor: CurrentActor, command_id: CommandId,
                  seen: SeenVersion) -> dict[str, Any]:
    """Take a sensor out of watch; an alarm it had open ends."""
    command = RemoveSensor(source_id=source_id, sensor_id=sensor_id, reason=body.reason)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{source_id}/sensors/{sensor_id}/readings", response_model=ReadingOutcomePublic)
def record_reading(source_id: UUID, sensor_id: str, body: Reading, system: SystemDep,
                   actor: CurrentActor) -> dict[str, Any]:
    """Judge one reading; only a threshold crossing is recorded. The answer says what it did."""
    # A repeated reading is out of order (not after the last crossing): no Idempotency-Key.
    # Nor If-Match: a reading is judged against the source as it is when it arrives.
    reading = RecordReading(source_id=source_id, sensor_id=sensor_id, value=body.value,
                            measured_at=body.at)
    outcome = system.hazards.judge_reading(reading, CommandContext(actor=actor))
    if outcome.effect.recorded:
        system.wake_projections()
    return outcome.as_dict()


@router.post("/{source_id}/alarms/{alarm_id}/acknowledge", response_model=HazardSourcePublic)
def acknowledge_alarm(source_id: UUID, alarm_id: UUID, body: AlarmAcknowledgement,
                      system: SystemDep, actor: CurrentActor,
                      command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """The centre confirms it has seen an alarm."""
    command = AcknowledgeAlarm(source_id=source_id, alarm_id=alarm_id, note=body.note)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{source_id}/alarms/{alarm_id}/escalation", response_model=EscalatedAlarmPublic)
def escalate_alarm(source_id: UUID, alarm_id: UUID, body: AlarmEscalation, system: SystemDep,
                   actor: CurrentActor, command_id: CommandId,
                   seen: SeenVersion) -> dict[str, Any]:
    """Escalate an alarm into a new incident at the hazard source, or join an incident;
    recorded on both streams (running it again repeats nothing)."""
    incident_id = system.operations.escalate_alarm(
        source_id, alarm_id, incident_id=body.incident_id, category=body.category,
        incident_type=body.incident_type, title=body.title, level=body.level, actor=actor,
        command_id=command_id, seen_versions=seen)
    return {**_state(system, source_id), "incident_id": str(incident_id)}


@router.post("/{source_id}/findings", response_model=HazardSourcePublic, status_code=201)
def record_finding(source_id: UUID, body: FindingIn, system: SystemDep, actor: CurrentActor,
                   command_id: CommandId, seen: SeenVersion) -> dict[str, Any]:
    """Record a hidden danger found on inspection, with its rectification deadline."""
    command = RecordFinding(source_id=source_id, description=body.description,
                            severity=body.severity,
                            rectification_deadline=body.rectification_deadline)
    return _issue(system, command, actor, command_id, seen)


@router.post("/{source_id}/findings/{finding_id}/rectify", response_model=HazardSourcePublic)
def rectify_finding(source_id: UUID, finding_id: UUID, body: Rectification, system: SystemDep,
                    actor: CurrentActor, command_id: CommandId,
                    seen: SeenVersion) -> dict[str, Any]:
    """Record that a hidden danger was removed, with evidence."""
    command = RectifyFinding(source_id=source_id, finding_id=finding_id,
                             evidence=tuple(body.evidence), note=body.note)
    return _issue(system, command, actor, command_id, seen)
