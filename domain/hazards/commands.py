"""Every command of the hazard-source stream, as values: the registry of sources, their
sensors and readings, alarms and inspection findings.

One frozen dataclass per command, checked when it is built (types, enumerations, times,
geometries); what needs the hazard catalogue or the source's state is checked by the handler
in `hazards`. `name` is the command's name in the permissions table and the receipts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from cityops.domain.commands import Command
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.hazards.source import FindingSeverity, ThresholdDirection
from cityops.domain.incidents.commands import NewIncident
from cityops.domain.values import checked_id, checked_instant, checked_number, parse_enum


def _set(command: object, field: str, value: object) -> None:
    object.__setattr__(command, field, value)



def _point_args(point: GeoPoint) -> list[float]:
    return [point.lon, point.lat]


def _check_point(point: GeoPoint | None) -> None:
    if point is not None and not isinstance(point, GeoPoint):
        raise InvalidValue("location must be a point")


def _check_zone(zone: Area | None) -> None:
    if zone is not None and not isinstance(zone, Area):
        raise InvalidValue("impact zone must be an area (polygon)")


@dataclass(frozen=True, kw_only=True)
class RegisterHazardSource(Command):
    """Enter a hazard source in the registry; without a radius or zone it gets its type's
    default impact radius."""

    name: ClassVar[str] = "hazard.register"
    hazard_type: str
    source_name: str
    owner_name: str
    owner_contact: str
    grade: int
    location: GeoPoint
    impact_radius_m: float | None = None
    impact_zone: Area | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.location, GeoPoint):
            raise InvalidValue("location must be a point")
        _check_zone(self.impact_zone)

    def fingerprint_args(self) -> dict[str, Any]:
        return {
            "hazard_type": self.hazard_type, "name": self.source_name,
            "owner_name": self.owner_name, "owner_contact": self.owner_contact,
            "grade": self.grade, "location": _point_args(self.location),
            "impact_radius_m": self.impact_radius_m,
            "impact_zone": self.impact_zone.wkt if self.impact_zone else None,
        }


@dataclass(frozen=True, kw_only=True)
class HazardSourceCommand(Command):
    """A command on one registered hazard source."""

    name: ClassVar[str]
    source_id: UUID

    def __post_init__(self) -> None:
        checked_id("hazard source id", self.source_id)


@dataclass(frozen=True, kw_only=True)
class UpdateHazardSource(HazardSourceCommand):
    """Change registry details; what is not given stays. A new radius replaces a zone and a
    new zone replaces a radius."""

    name: ClassVar[str] = "hazard.update"
    source_name: str | None = None
    owner_name: str | None = None
    owner_contact: str | None = None
    grade: int | None = None
    location: GeoPoint | None = None
    impact_radius_m: float | None = None
    impact_zone: Area | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_point(self.location)
        _check_zone(self.impact_zone)
        if self.impact_radius_m is not None and self.impact_zone is not None:
            raise InvalidValue("give either an impact radius in metres or an impact zone, "
                               "not both")

    def fingerprint_args(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id, "name": self.source_name,
            "owner_name": self.owner_name, "owner_contact": self.owner_contact,
            "grade": self.grade,
            "location": _point_args(self.location) if self.location else None,
            "impact_radius_m": self.impact_radius_m,
            "impact_zone": self.impact_zone.wkt if self.impact_zone else None,
            "reason": self.reason,
        }


@dataclass(frozen=True, kw_only=True)
class DecommissionHazardSource(HazardSourceCommand):
    """Take a hazard source out of supervision for good; its open alarms end."""

    name: ClassVar[str] = "hazard.decommission"
    reason: str

    def fingerprint_args(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class AddSensor(HazardSourceCommand):
    """Put a sensor under watch with its warning and alarm thresholds (and the deadband that
    keeps its alarms from flapping; the catalogue's default if not given)."""

    name: ClassVar[str] = "hazard.add-sensor"
    sensor_id: str
    kind: str
    unit: str
    direction: ThresholdDirection
    warning: float
    alarm: float
    deadband: float | None = None
    label: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "direction",
             parse_enum(ThresholdDirection, self.direction, "threshold direction"))

    def fingerprint_args(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id, "sensor_id": self.sensor_id, "kind": self.kind,
            "unit": self.unit, "direction": self.direction, "warning": self.warning,
            "alarm": self.alarm, "deadband": self.deadband, "label": self.label,
        }


@dataclass(frozen=True, kw_only=True)
class RemoveSensor(HazardSourceCommand):
    """Take a sensor out of watch; an alarm it had open ends."""

    name: ClassVar[str] = "hazard.remove-sensor"
    sensor_id: str
    reason: str = ""

    def fingerprint_args(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "sensor_id": self.sensor_id,
                "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class RecordReading(HazardSourceCommand):
    """One sensor reading (`measured_at`: when it was measured, default now), judged against
    the sensor's thresholds. No receipt: a redelivered reading is out of order (not after
    the last crossing), so it changes nothing."""

    name: ClassVar[str] = "hazard.reading"
    sensor_id: str
    value: float
    measured_at: datetime | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_number("reading value", self.value)
        if self.measured_at is not None:
            checked_instant("reading time", self.measured_at)


@dataclass(frozen=True, kw_only=True)
class AlarmCommand(HazardSourceCommand):
    """A command on one alarm of a hazard source."""

    alarm_id: UUID

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_id("alarm id", self.alarm_id)


@dataclass(frozen=True, kw_only=True)
class AcknowledgeAlarm(AlarmCommand):
    """The centre confirms it has seen an alarm."""

    name: ClassVar[str] = "hazard.acknowledge-alarm"
    note: str = ""

    def fingerprint_args(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "alarm_id": self.alarm_id, "note": self.note}


@dataclass(frozen=True, kw_only=True)
class RecordAlarmEscalation(AlarmCommand):
    """Record that an alarm became or joined an incident (created by the incident
    application): by default the incident with the alarm's deterministic id
    (`incident_id_for_alarm`). Repeating it for the same incident changes nothing."""

    name: ClassVar[str] = "hazard.escalate-alarm"
    incident_id: UUID | None = None
    note: str = ""
    new_incident: NewIncident | None = None
    """What the incident application reports (`processes.incident_escalations`); None: the
    alarm joins an incident that exists."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.incident_id is not None:
            checked_id("incident id", self.incident_id)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "alarm_id": self.alarm_id,
                "incident_id": self.incident_id, "note": self.note}


@dataclass(frozen=True, kw_only=True)
class RecordFinding(HazardSourceCommand):
    """Record a hidden danger found on inspection."""

    name: ClassVar[str] = "hazard.record-finding"
    description: str
    severity: FindingSeverity
    rectification_deadline: datetime

    def __post_init__(self) -> None:
        super().__post_init__()
        _set(self, "severity", parse_enum(FindingSeverity, self.severity, "finding severity",
                                          "finding severities"))
        checked_instant("rectification deadline", self.rectification_deadline)

    def fingerprint_args(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "description": self.description,
                "severity": self.severity,
                "rectification_deadline": self.rectification_deadline}


@dataclass(frozen=True, kw_only=True)
class RectifyFinding(HazardSourceCommand):
    """Record that a hidden danger was removed, with evidence."""

    name: ClassVar[str] = "hazard.rectify-finding"
    finding_id: UUID
    evidence: tuple[str, ...]
    note: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        checked_id("finding id", self.finding_id)
        if isinstance(self.evidence, str | bytes) or not hasattr(self.evidence, "__iter__"):
            raise InvalidValue("evidence must be a list of photo or document references")
        _set(self, "evidence", tuple(self.evidence))

    def fingerprint_args(self) -> dict[str, Any]:
        return {"source_id": self.source_id, "finding_id": self.finding_id,
                "evidence": list(self.evidence), "note": self.note}
