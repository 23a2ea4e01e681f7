"""The hazard source: a major hazard installation or risky place in the city's registry, its
monitoring sensors with thresholds, the alarms their threshold crossings raise, and the
hidden dangers inspectors find there.

Sensors report at a high rate, so a reading is not an event: the aggregate records only
threshold *crossings* (an alarm raised, its level changed, it cleared). Between crossings a
reading changes nothing here; the latest value of each sensor is a read-side matter (the
application keeps a small in-process cache, the read model keeps it for good).

Hysteresis: a level is entered as soon as its threshold is reached, but left only once the
value is back beyond the threshold by the sensor's deadband (a share of the threshold, 2 % by
default): a value hovering around a threshold does not raise and clear an alarm on every
reading.

Order: a reading measured at or before the sensor's last crossing (or before the sensor was
added) is ignored with the outcome `out-of-order`; this also makes a redelivered reading
harmless. Crossings are judged against the sensor's state as recorded, whatever arrives late.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from cityops.domain.actors import Actor
from cityops.domain.errors import InvalidValue, NotFound
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.hazards.catalogue import MAX_DEADBAND
from cityops.domain.model import CityAggregate, checked_text, iso_or_none
from cityops.domain.values import checked_deadline, checked_instant, checked_number

HAZARD_NAMESPACE = uuid5(NAMESPACE_URL, "https://cityops.invalid/hazard-sources")
MAX_EVIDENCE = 12
MAX_IMPACT_RADIUS_M = 50_000.0
SENSOR_ID_MAX = 64


class HazardStatus(StrEnum):
    ACTIVE = "active"
    """Registered and in service: monitored and inspected."""
    DECOMMISSIONED = "decommissioned"
    """Out of the registry's supervision for good (closed down, demolished, made safe)."""


class ThresholdDirection(StrEnum):
    """Which way a monitored value becomes dangerous."""

    HIGH = "high"
    """Danger when it rises (gas concentration, pressure, water level): warning < alarm."""
    LOW = "low"
    """Danger when it falls (cooling liquid level...): warning > alarm."""


class AlarmLevel(StrEnum):
    NORMAL = "normal"
    WARNING = "warning"
    ALARM = "alarm"


class ReadingEffect(StrEnum):
    """What a reading did to the hazard source; only the crossings are recorded."""

    UNCHANGED = "unchanged"
    """No threshold crossed: nothing recorded."""
    RAISED = "raised"
    LEVEL_CHANGED = "level-changed"
    CLEARED = "cleared"
    OUT_OF_ORDER = "out-of-order"
    """Measured at or before the sensor's last crossing (or its addition): ignored."""

    @property
    def recorded(self) -> bool:
        return self in (ReadingEffect.RAISED, ReadingEffect.LEVEL_CHANGED, ReadingEffect.CLEARED)


class AlarmEnd(StrEnum):
    """Why an alarm is no longer open."""

    BACK_TO_NORMAL = "back-to-normal"
    SENSOR_REMOVED = "sensor-removed"
    DECOMMISSIONED = "decommissioned"


class FindingSeverity(StrEnum):
    """Hidden dangers are major (may cause a serious accident) or general."""

    MAJOR = "major"
    GENERAL = "general"


# --- value objects of the aggregate's state --------------------------------------------------


@dataclass(frozen=True)
class Sensor:
    """A monitoring sensor of a hazard source and its warning and alarm thresholds."""

    sensor_id: str
    kind: str
    unit: str
    direction: ThresholdDirection
    warning: float
    alarm: float
    deadband: float
    """Share of a threshold by which the value must come back before that level is left."""
    label: str
    added_at: datetime

    def threshold(self, level: AlarmLevel) -> float:
        return self.alarm if level is AlarmLevel.ALARM else self.warning

    def as_dict(self) -> dict[str, Any]:
        return {
            "sensor_id": self.sensor_id,
            "kind": self.kind,
            "unit": self.unit,
            "direction": self.direction.value,
            "warning": self.warning,
            "alarm": self.alarm,
            "deadband": self.deadband,
            "label": self.label,
            "added_at": self.added_at.isoformat(),
        }


def check_thresholds(direction: ThresholdDirection, warning: float, alarm: float,
                     deadband: float) -> None:
    """Refuse thresholds that are not numbers or not in the order of their direction."""
    for label, value in (("warning threshold", warning), ("alarm threshold", alarm),
                         ("deadband", deadband)):
        _number(label, value)
    if direction is ThresholdDirection.HIGH and not warning < alarm:
        raise InvalidValue(
            f"for a 'high' sensor the warning threshold ({warning}) must be below the alarm "
            f"threshold ({alarm})"
        )
    if direction is ThresholdDirection.LOW and not warning > alarm:
        raise InvalidValue(
            f"for a 'low' sensor the warning threshold ({warning}) must be above the alarm "
            f"threshold ({alarm})"
        )
    if not 0 <= deadband < MAX_DEADBAND:
        raise InvalidValue(f"deadband must be a share of the threshold in 0..{MAX_DEADBAND}")


def assess(sensor: Sensor, current: AlarmLevel, value: float) -> AlarmLevel:
    """The sensor's alarm level after `value`, given its level now (with hysteresis).

    A level is entered when its threshold is reached and kept until the value is back beyond
    the threshold by `deadband * |threshold|` (strictly).
    """
    sign = 1.0 if sensor.direction is ThresholdDirection.HIGH else -1.0

    def beyond(threshold: float, held: bool) -> bool:
        margin = sensor.deadband * abs(threshold) if held else 0.0
        return sign * value >= sign * threshold - margin

    if beyond(sensor.alarm, current is AlarmLevel.ALARM):
        return AlarmLevel.ALARM
    if beyond(sensor.warning, current is not AlarmLevel.NORMAL):
        return AlarmLevel.WARNING
    return AlarmLevel.NORMAL


@dataclass(frozen=True)
class Alarm:
    """An alarm of one sensor, from the crossing that raised it to the one that cleared it."""

    alarm_id: UUID
    sensor_id: str
    level: AlarmLevel
    peak_level: AlarmLevel
    value: float
    """The value at the last crossing."""
    threshold: float
    """The threshold whose crossing caused the last change."""
    raised_at: datetime
    changed_at: datetime
    """When the last crossing was measured."""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    incident_id: UUID | None = None
    escalated_at: datetime | None = None
    ended_at: datetime | None = None
    end: AlarmEnd | None = None

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "alarm_id": str(self.alarm_id),
            "sensor_id": self.sensor_id,
            "level": self.level.value,
            "peak_level": self.peak_level.value,
            "value": self.value,
            "threshold": self.threshold,
            "raised_at": self.raised_at.isoformat(),
            "changed_at": self.changed_at.isoformat(),
            "open": self.is_open,
            "acknowledged_at": iso_or_none(self.acknowledged_at),
            "acknowledged_by": self.acknowledged_by,
            "incident_id": str(self.incident_id) if self.incident_id else None,
            "escalated_at": iso_or_none(self.escalated_at),
            "ended_at": iso_or_none(self.ended_at),
            "end": self.end.value if self.end else None,
        }


@dataclass(frozen=True)
class Finding:
    """A hidden danger found on inspection, with its rectification deadline."""

    finding_id: UUID
    description: str
    severity: FindingSeverity
    rectification_deadline: datetime
    found_at: datetime
    found_by: str
    rectified_at: datetime | None = None
    evidence: tuple[str, ...] = ()
    rectification_note: str = ""

    @property
    def rectified(self) -> bool:
        return self.rectified_at is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "finding_id": str(self.finding_id),
            "description": self.description,
            "severity": self.severity.value,
            "rectification_deadline": self.rectification_deadline.isoformat(),
            "found_at": self.found_at.isoformat(),
            "found_by": self.found_by,
            "rectified_at": iso_or_none(self.rectified_at),
            "evidence": list(self.evidence),
            "rectification_note": self.rectification_note,
        }


@dataclass(frozen=True)
class ReadingOutcome:
    """What one reading did: the effect, the sensor's level after it and the alarm concerned
    (the open one, or the one the reading just cleared)."""

    source_id: UUID
    sensor_id: str
    effect: ReadingEffect
    level: AlarmLevel
    alarm: Alarm | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_id": str(self.source_id),
            "sensor_id": self.sensor_id,
            "effect": self.effect.value,
            "level": self.level.value,
            "alarm": self.alarm.as_dict() if self.alarm else None,
        }


# --- pure queries ----------------------------------------------------------------------------


def alarm_id_for(source_id: UUID, sensor_id: str, sequence: int) -> UUID:
    """The id of the `sequence`-th alarm of a hazard source: the same on every replay."""
    return uuid5(HAZARD_NAMESPACE, f"alarm:{source_id}:{sensor_id}:{sequence}")


def incident_id_for_alarm(alarm_id: UUID) -> UUID:
    """A deterministic id for the incident an alarm is escalated into, so that a coordinator
    retrying the escalation creates (and records) the same incident."""
    return uuid5(HAZARD_NAMESPACE, f"incident-from-alarm:{alarm_id}")


def open_alarms(source: HazardSource) -> list[Alarm]:
    """The alarms of a hazard source that have not cleared, most severe then oldest first."""
    alarms = [a for a in source.alarms.values() if a.is_open]
    alarms.sort(key=lambda a: (a.level is not AlarmLevel.ALARM, a.raised_at, a.sensor_id))
    return alarms


def finding_overdue(finding: Finding, now: datetime) -> bool:
    """A hidden danger is overdue once its deadline has passed without rectification."""
    return finding.rectified_at is None and now > finding.rectification_deadline


def overdue_findings(source: HazardSource, now: datetime) -> list[Finding]:
    """The hidden dangers of a hazard source not rectified by their deadline, oldest first."""
    overdue = [f for f in source.findings.values() if finding_overdue(f, now)]
    overdue.sort(key=lambda f: (f.rectification_deadline, f.found_at))
    return overdue


# --- validation ------------------------------------------------------------------------------




def _number(label: str, value: object) -> float:
    return checked_number(label, value)




def check_grade(grade: object) -> int:
    """Hazard grades run from 1 (highest hazard) to 4."""
    if isinstance(grade, bool) or not isinstance(grade, int) or not 1 <= grade <= 4:
        raise InvalidValue(f"hazard grade must be 1 (highest) to 4, got {grade!r}")
    return grade


def check_impact(radius_m: float | None, zone: Area | None) -> float | None:
    """An impact is a radius in metres or a zone polygon, exactly one of them."""
    if (radius_m is None) == (zone is None):
        raise InvalidValue("give either an impact radius in metres or an impact zone, not both")
    if zone is not None and not isinstance(zone, Area):
        raise InvalidValue("impact zone must be an area (polygon)")
    if radius_m is None:
        return None
    radius = _number("impact radius", radius_m)
    if not 0 < radius <= MAX_IMPACT_RADIUS_M:
        raise InvalidValue(f"impact radius must be in 0..{MAX_IMPACT_RADIUS_M:g} m, got {radius}")
    return radius


def check_sensor_id(sensor_id: str) -> str:
    sensor_id = checked_text("sensor id", sensor_id, limit=SENSOR_ID_MAX)
    if any(c.isspace() for c in sensor_id):
        raise InvalidValue(f"sensor id {sensor_id!r} must not contain spaces")
    return sensor_id


def _aware(label: str, moment: datetime) -> datetime:
    return checked_instant(label, moment)


# --- the aggregate ---------------------------------------------------------------------------


class HazardSource(CityAggregate):
    """A major hazard installation or risky place under supervision."""

    KIND = "hazard source"

    class Registered(CityAggregate.Created):
        """`HazardSource.__init__` makes the hazard source's state from these facts (the library
        passes a created event's fields to `__init__` by name)."""

        # Declared again only for the type checker: it sees `Created` without `Event`'s actor.
        actor: Actor
        hazard_type: str
        name: str
        owner_name: str
        owner_contact: str
        grade: int
        location: GeoPoint
        impact_radius_m: float | None
        impact_zone: Area | None

    class DetailsUpdated(CityAggregate.Event):
        """Corrected or changed registry details (all given, changed or not)."""

        name: str
        owner_name: str
        owner_contact: str
        grade: int
        location: GeoPoint
        impact_radius_m: float | None
        impact_zone: Area | None
        reason: str

        def apply(self, source: HazardSource) -> None:
            source.name = self.name
            source.owner_name = self.owner_name
            source.owner_contact = self.owner_contact
            source.grade = self.grade
            source.location = self.location
            source.impact_radius_m = self.impact_radius_m
            source.impact_zone = self.impact_zone

    class Decommissioned(CityAggregate.Event):
        """Out of supervision; its open alarms end with it."""

        reason: str

        def apply(self, source: HazardSource) -> None:
            source.status = HazardStatus.DECOMMISSIONED
            source.decommissioned_at = self.timestamp
            source.decommission_reason = self.reason
            for sensor_id in list(source.open_alarm_ids):
                source.end_alarm(sensor_id, self.timestamp, AlarmEnd.DECOMMISSIONED)

    class SensorAdded(CityAggregate.Event):
        sensor_id: str
        kind: str
        unit: str
        direction: str
        warning: float
        alarm: float
        deadband: float
        label: str

        def apply(self, source: HazardSource) -> None:
            source.sensors[self.sensor_id] = Sensor(
                sensor_id=self.sensor_id, kind=self.kind, unit=self.unit,
                direction=ThresholdDirection(self.direction), warning=self.warning,
                alarm=self.alarm, deadband=self.deadband, label=self.label,
                added_at=self.timestamp,
            )
            source.levels[self.sensor_id] = AlarmLevel.NORMAL
            # Readings measured before the sensor was (re-)added are not its readings.
            source.last_crossing_at[self.sensor_id] = self.timestamp

    class SensorRemoved(CityAggregate.Event):
        """The sensor is taken out; an alarm it had open ends with it."""

        sensor_id: str
        reason: str

        def apply(self, source: HazardSource) -> None:
            if self.sensor_id in source.open_alarm_ids:
                source.end_alarm(self.sensor_id, self.timestamp, AlarmEnd.SENSOR_REMOVED)
            del source.sensors[self.sensor_id]
            del source.levels[self.sensor_id]
            del source.last_crossing_at[self.sensor_id]

    class AlarmRaised(CityAggregate.Event):
        """A reading crossed the warning or alarm threshold from normal."""

        alarm_id: UUID
        sensor_id: str
        level: str
        value: float
        threshold: float
        measured_at: datetime

        def apply(self, source: HazardSource) -> None:
            level = AlarmLevel(self.level)
            source.alarm_count += 1
            source.alarms[self.alarm_id] = Alarm(
                alarm_id=self.alarm_id, sensor_id=self.sensor_id, level=level, peak_level=level,
                value=self.value, threshold=self.threshold, raised_at=self.measured_at,
                changed_at=self.measured_at,
            )
            source.open_alarm_ids[self.sensor_id] = self.alarm_id
            source.levels[self.sensor_id] = level
            source.last_crossing_at[self.sensor_id] = self.measured_at

    class AlarmLevelChanged(CityAggregate.Event):
        """An open alarm went from warning to alarm or back; `threshold` is the one crossed.

        A rise to the alarm level needs a new acknowledgement; a fall keeps the one given.
        """

        alarm_id: UUID
        sensor_id: str
        previous_level: str
        level: str
        value: float
        threshold: float
        measured_at: datetime

        def apply(self, source: HazardSource) -> None:
            level = AlarmLevel(self.level)
            alarm = source.alarms[self.alarm_id]
            rose = level is AlarmLevel.ALARM
            source.alarms[self.alarm_id] = replace(
                alarm, level=level, value=self.value, threshold=self.threshold,
                changed_at=self.measured_at,
                peak_level=AlarmLevel.ALARM if rose else alarm.peak_level,
                acknowledged_at=None if rose else alarm.acknowledged_at,
                acknowledged_by=None if rose else alarm.acknowledged_by,
            )
            source.levels[self.sensor_id] = level
            source.last_crossing_at[self.sensor_id] = self.measured_at

    class AlarmCleared(CityAggregate.Event):
        """The value came back below the warning threshold by the deadband."""

        alarm_id: UUID
        sensor_id: str
        value: float
        threshold: float
        measured_at: datetime

        def apply(self, source: HazardSource) -> None:
            alarm = source.alarms[self.alarm_id]
            source.alarms[self.alarm_id] = replace(
                alarm, value=self.value, threshold=self.threshold, changed_at=self.measured_at,
            )
            source.end_alarm(self.sensor_id, self.measured_at, AlarmEnd.BACK_TO_NORMAL)
            source.last_crossing_at[self.sensor_id] = self.measured_at

    class AlarmAcknowledged(CityAggregate.Event):
        alarm_id: UUID
        note: str

        def apply(self, source: HazardSource) -> None:
            source.alarms[self.alarm_id] = replace(
                source.alarms[self.alarm_id], acknowledged_at=self.timestamp,
                acknowledged_by=self.actor.user_id,
            )

    class AlarmEscalated(CityAggregate.Event):
        """The alarm became (or joined) an incident. A new one (`new_incident`: its category,
        incident type, title and level) is reported by the incident application from this
        event (`processes.incident_escalations`); None: it joins an existing one, or was
        recorded before that process."""

        class_version = 2
        alarm_id: UUID
        incident_id: UUID
        note: str
        new_incident: dict[str, str | None] | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # The incident was reported before the alarm recorded its escalation then.
            state["new_incident"] = None

        def apply(self, source: HazardSource) -> None:
            source.alarms[self.alarm_id] = replace(
                source.alarms[self.alarm_id], incident_id=self.incident_id,
                escalated_at=self.timestamp,
            )

    class FindingRecorded(CityAggregate.Event):
        """An inspector found a hidden danger, to be rectified by the deadline."""

        finding_id: UUID
        description: str
        severity: str
        rectification_deadline: datetime

        def apply(self, source: HazardSource) -> None:
            source.findings[self.finding_id] = Finding(
                finding_id=self.finding_id, description=self.description,
                severity=FindingSeverity(self.severity),
                rectification_deadline=self.rectification_deadline, found_at=self.timestamp,
                found_by=self.actor.user_id,
            )

    class FindingRectified(CityAggregate.Event):
        finding_id: UUID
        evidence: list[str]
        note: str

        def apply(self, source: HazardSource) -> None:
            source.findings[self.finding_id] = replace(
                source.findings[self.finding_id], rectified_at=self.timestamp,
                evidence=tuple(self.evidence), rectification_note=self.note,
            )

    # --- state -----------------------------------------------------------------------------

    def __init__(self, *, hazard_type: str, name: str, owner_name: str, owner_contact: str,
                 grade: int, location: GeoPoint, impact_radius_m: float | None,
                 impact_zone: Area | None, actor: Actor, timestamp: datetime) -> None:
        """The hazard source as registered (from the `Registered` event's facts): every
        attribute it keeps is declared here, once, with its type; the events change them."""
        self.status: HazardStatus = HazardStatus.ACTIVE
        self.hazard_type = hazard_type
        self.name = name
        self.owner_name = owner_name
        self.owner_contact = owner_contact
        self.grade = grade
        self.location = location
        self.impact_radius_m = impact_radius_m
        self.impact_zone = impact_zone
        self.registered_at = timestamp
        self.registered_by = actor.user_id
        self.decommissioned_at: datetime | None = None
        self.decommission_reason: str | None = None
        self.sensors: dict[str, Sensor] = {}
        self.levels: dict[str, AlarmLevel] = {}
        self.last_crossing_at: dict[str, datetime] = {}
        self.open_alarm_ids: dict[str, UUID] = {}
        self.alarms: dict[UUID, Alarm] = {}
        self.alarm_count = 0
        self.findings: dict[UUID, Finding] = {}

    def end_alarm(self, sensor_id: str, at: datetime, end: AlarmEnd) -> None:
        """Close the sensor's open alarm (used by the events that end alarms)."""
        alarm_id = self.open_alarm_ids.pop(sensor_id)
        self.alarms[alarm_id] = replace(self.alarms[alarm_id], ended_at=at, end=end)
        if sensor_id in self.levels:
            self.levels[sensor_id] = AlarmLevel.NORMAL

    def sensor(self, sensor_id: str) -> Sensor:
        try:
            return self.sensors[sensor_id]
        except KeyError:
            raise NotFound(f"{self.KIND} {self.id} sensor", sensor_id) from None

    def alarm(self, alarm_id: UUID) -> Alarm:
        try:
            return self.alarms[alarm_id]
        except KeyError:
            raise NotFound(f"{self.KIND} {self.id} alarm", alarm_id) from None

    def finding(self, finding_id: UUID) -> Finding:
        try:
            return self.findings[finding_id]
        except KeyError:
            raise NotFound(f"{self.KIND} {self.id} finding", finding_id) from None

    def impacts(self, point: GeoPoint) -> bool:
        """Whether a point lies inside the source's impact zone (or radius)."""
        if self.impact_zone is not None:
            return bool(self.impact_zone.shape.covers(point.shape))
        assert self.impact_radius_m is not None
        return self.location.distance_m(point) <= self.impact_radius_m

    # --- commands --------------------------------------------------------------------------

    @classmethod
    def register(
        cls,
        *,
        source_id: UUID,
        hazard_type: str,
        name: str,
        owner_name: str,
        owner_contact: str,
        grade: int,
        location: GeoPoint,
        impact_radius_m: float | None,
        impact_zone: Area | None,
        actor: Actor,
        at: datetime,
    ) -> HazardSource:
        """Enter a hazard source in the registry."""
        if not isinstance(location, GeoPoint):
            raise InvalidValue("location must be a point")
        return cls._create(
            cls.Registered,
            id=source_id,
            timestamp=at,
            actor=actor,
            hazard_type=hazard_type,
            name=checked_text("name", name, limit=200),
            owner_name=checked_text("owner name", owner_name, limit=200),
            owner_contact=checked_text("owner contact", owner_contact, limit=200),
            grade=check_grade(grade),
            location=location,
            impact_radius_m=check_impact(impact_radius_m, impact_zone),
            impact_zone=impact_zone,
        )

    def update_details(self, *, name: str, owner_name: str, owner_contact: str, grade: int,
                       location: GeoPoint, impact_radius_m: float | None,
                       impact_zone: Area | None, reason: str, actor: Actor,
                       at: datetime) -> None:
        self.require_status("update", HazardStatus.ACTIVE)
        if not isinstance(location, GeoPoint):
            raise InvalidValue("location must be a point")
        self.record(self.DetailsUpdated, actor=actor, at=at,
                    name=checked_text("name", name, limit=200),
                    owner_name=checked_text("owner name", owner_name, limit=200),
                    owner_contact=checked_text("owner contact", owner_contact, limit=200),
                    grade=check_grade(grade), location=location,
                    impact_radius_m=check_impact(impact_radius_m, impact_zone),
                    impact_zone=impact_zone, reason=checked_text("reason", reason, required=False))

    def decommission(self, *, reason: str, actor: Actor, at: datetime) -> None:
        self.require_status("decommission", HazardStatus.ACTIVE)
        self.record(self.Decommissioned, actor=actor, at=at, reason=checked_text("reason", reason))

    def add_sensor(self, *, sensor_id: str, kind: str, unit: str,
                   direction: ThresholdDirection, warning: float, alarm: float,
                   deadband: float, label: str, actor: Actor, at: datetime) -> None:
        self.require_status("add a sensor to", HazardStatus.ACTIVE)
        sensor_id = check_sensor_id(sensor_id)
        if sensor_id in self.sensors:
            self.refuse("add a sensor to", f"it already has a sensor {sensor_id!r}")
        direction = ThresholdDirection(direction)
        check_thresholds(direction, warning, alarm, deadband)
        self.record(self.SensorAdded, actor=actor, at=at, sensor_id=sensor_id, kind=kind,
                    unit=unit, direction=direction.value, warning=float(warning),
                    alarm=float(alarm), deadband=float(deadband),
                    label=checked_text("label", label, required=False, limit=200))

    def remove_sensor(self, *, sensor_id: str, reason: str, actor: Actor, at: datetime) -> None:
        self.require_status("remove a sensor from", HazardStatus.ACTIVE)
        self.sensor(sensor_id)
        self.record(self.SensorRemoved, actor=actor, at=at, sensor_id=sensor_id,
                    reason=checked_text("reason", reason, required=False))

    def quiet_outcome(self, *, sensor_id: str, value: float,
                      measured_at: datetime) -> ReadingOutcome | None:
        """The outcome of a reading that records nothing (out of order, or its level
        unchanged), judged without changing anything; None when `observe` would record an
        event or refuse the reading. Lets a reading be judged on a shared copy of the
        source (`HazardSources.judge_reading`): most readings cross no threshold."""
        if self.status is not HazardStatus.ACTIVE or sensor_id not in self.sensors:
            return None
        try:
            value = _number("reading value", value)
            _aware("reading time", measured_at)
        except InvalidValue:
            return None
        current = self.levels[sensor_id]
        if measured_at <= self.last_crossing_at[sensor_id]:
            return self._outcome(sensor_id, ReadingEffect.OUT_OF_ORDER)
        if assess(self.sensors[sensor_id], current, value) is current:
            return self._outcome(sensor_id, ReadingEffect.UNCHANGED)
        return None

    def observe(self, *, sensor_id: str, value: float, measured_at: datetime,
                actor: Actor) -> ReadingOutcome:
        """Judge one reading: record an event only if it crosses a threshold."""
        self.require_status("record a reading of", HazardStatus.ACTIVE)
        sensor = self.sensor(sensor_id)
        value = _number("reading value", value)
        _aware("reading time", measured_at)
        current = self.levels[sensor_id]
        if measured_at <= self.last_crossing_at[sensor_id]:
            return self._outcome(sensor_id, ReadingEffect.OUT_OF_ORDER)
        level = assess(sensor, current, value)
        if level is current:
            return self._outcome(sensor_id, ReadingEffect.UNCHANGED)
        # The event is logged no earlier than the aggregate's last event (the log is in time
        # order); the time the value was measured is kept as a fact of its own.
        at = max(measured_at, self.modified_on)
        facts: dict[str, Any] = {"sensor_id": sensor_id, "value": value,
                                 "measured_at": measured_at}
        if current is AlarmLevel.NORMAL:
            alarm_id = alarm_id_for(self.id, sensor_id, self.alarm_count + 1)
            self.record(self.AlarmRaised, actor=actor, at=at, alarm_id=alarm_id,
                        level=level.value, threshold=sensor.threshold(level), **facts)
            return self._outcome(sensor_id, ReadingEffect.RAISED)
        alarm_id = self.open_alarm_ids[sensor_id]
        if level is AlarmLevel.NORMAL:
            self.record(self.AlarmCleared, actor=actor, at=at, alarm_id=alarm_id,
                        threshold=sensor.warning, **facts)
            return self._outcome(sensor_id, ReadingEffect.CLEARED, alarm_id)
        # warning <-> alarm: either way it is the alarm threshold that was crossed.
        self.record(self.AlarmLevelChanged, actor=actor, at=at, alarm_id=alarm_id,
                    previous_level=current.value, level=level.value, threshold=sensor.alarm,
                    **facts)
        return self._outcome(sensor_id, ReadingEffect.LEVEL_CHANGED)

    def _outcome(self, sensor_id: str, effect: ReadingEffect,
                 alarm_id: UUID | None = None) -> ReadingOutcome:
        if alarm_id is None:
            alarm_id = self.open_alarm_ids.get(sensor_id)
        return ReadingOutcome(
            source_id=self.id, sensor_id=sensor_id, effect=effect,
            level=self.levels[sensor_id],
            alarm=self.alarms[alarm_id] if alarm_id is not None else None,
        )

    def acknowledge_alarm(self, *, alarm_id: UUID, note: str, actor: Actor,
                          at: datetime) -> None:
        """The centre has seen the alarm (an alarm that cleared unseen can be acknowledged)."""
        self.require_status("acknowledge an alarm of", HazardStatus.ACTIVE)
        alarm = self.alarm(alarm_id)
        if alarm.acknowledged:
            self.refuse("acknowledge an alarm of", f"alarm {alarm_id} is already acknowledged")
        self.record(self.AlarmAcknowledged, actor=actor, at=at, alarm_id=alarm_id,
                    note=checked_text("note", note, required=False))

    def escalate_alarm(self, *, alarm_id: UUID, incident_id: UUID, note: str, actor: Actor,
                       at: datetime, new_incident: dict[str, str | None] | None = None) -> bool:
        """Record that the alarm became (or joined) an incident; an alarm that cleared may
        still be escalated. Escalating again into the same incident changes nothing (False:
        a coordinator may retry); into another incident it is refused."""
        alarm = self.alarm(alarm_id)
        if alarm.incident_id == incident_id:
            return False
        self.require_status("escalate an alarm of", HazardStatus.ACTIVE)
        if alarm.incident_id is not None:
            self.refuse("escalate an alarm of",
                        f"alarm {alarm_id} is already escalated into incident {alarm.incident_id}")
        self.record(self.AlarmEscalated, actor=actor, at=at, alarm_id=alarm_id,
                    incident_id=incident_id, note=checked_text("note", note, required=False),
                    new_incident=new_incident)
        return True

    def record_finding(self, *, finding_id: UUID, description: str,
                       severity: FindingSeverity, rectification_deadline: datetime,
                       actor: Actor, at: datetime) -> None:
        self.require_status("record a hidden danger at", HazardStatus.ACTIVE)
        if finding_id in self.findings:
            self.refuse("record a hidden danger at", f"finding {finding_id} is already recorded")
        checked_deadline("rectification deadline", rectification_deadline, at)
        if rectification_deadline <= at:
            raise InvalidValue(
                f"rectification deadline {rectification_deadline.isoformat()} is not after the "
                f"finding ({at.isoformat()})"
            )
        self.record(self.FindingRecorded, actor=actor, at=at, finding_id=finding_id,
                    description=checked_text("description", description),
                    severity=FindingSeverity(severity).value,
                    rectification_deadline=rectification_deadline)

    def rectify_finding(self, *, finding_id: UUID, evidence: list[str], note: str,
                        actor: Actor, at: datetime) -> None:
        """The hidden danger was removed, with evidence (late rectification is still one)."""
        self.require_status("rectify a hidden danger at", HazardStatus.ACTIVE)
        finding = self.finding(finding_id)
        if finding.rectified:
            self.refuse("rectify a hidden danger at", f"finding {finding_id} is already rectified")
        if not evidence:
            raise InvalidValue("a rectification needs evidence (photo or document references)")
        if len(evidence) > MAX_EVIDENCE:
            raise InvalidValue(f"at most {MAX_EVIDENCE} pieces of evidence")
        self.record(self.FindingRectified, actor=actor, at=at, finding_id=finding_id,
                    evidence=[checked_text("evidence reference", e, limit=500) for e in evidence],
                    note=checked_text("note", note, required=False))

    def summary(self) -> dict[str, Any]:
        """The hazard source's current state as plain data (for API responses and tests)."""
        return {
            "id": str(self.id),
            "version": self.version,
            "status": self.status.value,
            "hazard_type": self.hazard_type,
            "name": self.name,
            "owner": {"name": self.owner_name, "contact": self.owner_contact},
            "grade": self.grade,
            "location": self.location.to_geojson(),
            "impact_radius_m": self.impact_radius_m,
            "impact_zone": self.impact_zone.to_geojson() if self.impact_zone else None,
            "registered_at": self.registered_at.isoformat(),
            "decommissioned_at": iso_or_none(self.decommissioned_at),
            "decommission_reason": self.decommission_reason,
            "sensors": [
                {**sensor.as_dict(), "level": self.levels[sensor_id].value,
                 "last_crossing_at": self.last_crossing_at[sensor_id].isoformat()}
                for sensor_id, sensor in sorted(self.sensors.items())
            ],
            "alarm_count": self.alarm_count,
            "open_alarms": [str(a.alarm_id) for a in open_alarms(self)],
            "alarms": [a.as_dict() for a in self.alarms.values()],
            "findings": [f.as_dict() for f in self.findings.values()],
        }
