"""Hazard sources as the API answers them: the source document (its `summary()`: owner,
sensors and their levels, alarms, findings), with the latest readings on GET and commands,
and what a reading did."""

from __future__ import annotations

from pydantic import Field

from cityops.command_center.models.common import (
    AreaPublic,
    Number,
    PagePublic,
    PointPublic,
    Public,
    Timestamp,
    Uuid,
    withheld,
)
from cityops.domain.hazards.source import (
    AlarmEnd,
    AlarmLevel,
    FindingSeverity,
    HazardStatus,
    ReadingEffect,
    ThresholdDirection,
)


class OwnerPublic(Public):
    """The operator of the installation."""

    name: str
    contact: str | None = withheld("How to reach the operator.")


class SensorPublic(Public):
    """A monitoring sensor, its thresholds and the level it is at now."""

    sensor_id: str
    kind: str
    unit: str
    direction: ThresholdDirection
    warning: Number
    alarm: Number
    deadband: Number = Field(description="Share of a threshold by which the value must come "
                             "back before that level is left")
    label: str
    added_at: Timestamp
    level: AlarmLevel
    last_crossing_at: Timestamp


class AlarmPublic(Public):
    """An alarm of one sensor, from the crossing that raised it to the one that cleared it."""

    alarm_id: Uuid
    sensor_id: str
    level: AlarmLevel
    peak_level: AlarmLevel
    value: Number = Field(description="The value at the last crossing")
    threshold: Number = Field(description="The threshold whose crossing caused the last "
                              "change")
    raised_at: Timestamp
    changed_at: Timestamp
    open: bool
    acknowledged_at: Timestamp | None
    acknowledged_by: str | None
    incident_id: Uuid | None
    escalated_at: Timestamp | None
    ended_at: Timestamp | None
    end: AlarmEnd | None


class HazardFindingPublic(Public):
    """A hidden danger found on inspection, with its rectification deadline."""

    finding_id: Uuid
    description: str
    severity: FindingSeverity
    rectification_deadline: Timestamp
    found_at: Timestamp
    found_by: str
    rectified_at: Timestamp | None
    evidence: list[str]
    rectification_note: str


class HazardSourceDocument(Public):
    """A hazard source as recorded: its `summary()` (also the read model's document)."""

    id: Uuid
    version: int = Field(description="Also the answer's ETag; send it as If-Match")
    status: HazardStatus
    hazard_type: str
    name: str
    owner: OwnerPublic
    grade: int = Field(description="Hazard grade: 1 highest to 4")
    location: PointPublic
    impact_radius_m: Number | None
    impact_zone: AreaPublic | None
    registered_at: Timestamp
    decommissioned_at: Timestamp | None
    decommission_reason: str | None
    sensors: list[SensorPublic]
    alarm_count: int
    open_alarms: list[Uuid] = Field(description="Most severe, then oldest first")
    alarms: list[AlarmPublic]
    findings: list[HazardFindingPublic]


class LatestReadingPublic(Public):
    """The latest reading of a sensor this server has seen (readings are not events)."""

    value: Number
    measured_at: Timestamp
    level: AlarmLevel


class HazardSourcePublic(HazardSourceDocument):
    """A hazard source as recorded now, with the latest reading of each sensor."""

    latest_readings: dict[str, LatestReadingPublic] = Field(
        description="By sensor id")


class EscalatedAlarmPublic(HazardSourcePublic):
    """The hazard source after an alarm's escalation, and the incident it went to."""

    incident_id: Uuid = Field(description="The incident the alarm was escalated into")


class HazardSourcesPublic(PagePublic[HazardSourceDocument]):
    """A page of hazard sources."""


class ReadingOutcomePublic(Public):
    """What one reading did: the effect, the sensor's level after it and the alarm concerned
    (the open one, or the one the reading just cleared)."""

    source_id: Uuid
    sensor_id: str
    effect: ReadingEffect
    level: AlarmLevel
    alarm: AlarmPublic | None
