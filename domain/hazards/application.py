"""The hazard-source application: the registry of hazard sources, their sensors and
thresholds, the alarms raised by threshold crossings, and inspection findings.

Readings arrive at a high rate and most of them change nothing: `record_reading` saves only
when a reading crosses a threshold (see `hazard`). The latest value of every sensor is kept in
`latest_readings`, a small in-process cache: a read-side convenience for this process only
(lost on restart, not shared between workers, never used to decide anything); the read model
keeps the latest readings for everyone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4, uuid5

from cityops.domain.actors import Actor
from cityops.domain.application import (
    COMMAND_NAMESPACE,
    CityApplication,
    Clock,
    system_clock,
)
from cityops.domain.errors import ConcurrencyConflict, InvalidValue
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.domain.hazards.source import (
    AlarmLevel,
    FindingSeverity,
    HazardSource,
    ReadingOutcome,
    ThresholdDirection,
    incident_id_for_alarm,
)
from cityops.domain.permissions import check_permitted
from cityops.domain.values import parse_enum

READING_ATTEMPTS = 3
"""Readings of several sensors of one source may cross at the same moment in several workers:
a crossing that loses the race is judged again against the winner's state."""
LATEST_READINGS_SIZE = 50_000


@dataclass(frozen=True)
class LatestReading:
    """The most recent value seen from a sensor by this process."""

    value: float
    measured_at: datetime
    level: AlarmLevel

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "measured_at": self.measured_at.isoformat(),
                "level": self.level.value}


class LatestReadingsStore(Protocol):
    """Where the latest reading of each sensor is kept: memory for one process, or a table
    that every process shares (readings are high-rate and never each an event)."""

    def remember(self, source_id: UUID, sensor_id: str, reading: LatestReading) -> None: ...
    def get(self, source_id: UUID, sensor_id: str) -> LatestReading | None: ...
    def of_source(self, source_id: UUID) -> dict[str, LatestReading]: ...
    def forget(self, source_id: UUID, sensor_id: str) -> None: ...


class LatestReadings:
    """A bounded, thread-safe cache of the latest reading per sensor (read-side only)."""

    def __init__(self, max_entries: int = LATEST_READINGS_SIZE) -> None:
        if max_entries < 1:
            raise InvalidValue("the latest-readings cache needs room for at least one sensor")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[UUID, str], LatestReading] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, source_id: UUID, sensor_id: str, reading: LatestReading) -> None:
        """Keep `reading` unless a newer one is already known (readings may arrive late)."""
        key = (source_id, sensor_id)
        with self._lock:
            known = self._entries.get(key)
            if known is not None and known.measured_at >= reading.measured_at:
                return
            self._entries[key] = reading
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def get(self, source_id: UUID, sensor_id: str) -> LatestReading | None:
        with self._lock:
            return self._entries.get((source_id, sensor_id))

    def of_source(self, source_id: UUID) -> dict[str, LatestReading]:
        with self._lock:
            return {s: r for (i, s), r in self._entries.items() if i == source_id}

    def forget(self, source_id: UUID, sensor_id: str) -> None:
        with self._lock:
            self._entries.pop((source_id, sensor_id), None)


def _decided(source: HazardSource) -> Callable[[], Sequence[HazardSource]]:
    """A `decide` for a reading already judged (the judgement needed the loaded aggregate)."""
    return lambda: [source]


class HazardSources(CityApplication):
    """Registers hazard sources, watches their sensors' thresholds and their hidden dangers."""

    name = "hazards"

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        catalogue: HazardCatalogue,
        clock: Clock = system_clock,
        latest_readings: LatestReadingsStore | None = None,
    ) -> None:
        super().__init__(env, clock=clock)
        self.catalogue = catalogue
        self.latest_readings: LatestReadingsStore = latest_readings or LatestReadings()

    def source(self, source_id: UUID) -> HazardSource:
        return self.load(HazardSource, source_id)


    def _impact(self, hazard_type: str, radius_m: float | None,
                zone: Area | None) -> float | None:
        """Neither radius nor zone given: the hazard type's default radius."""
        if radius_m is None and zone is None:
            return self.catalogue.hazard_type(hazard_type).default_impact_radius_m
        return radius_m

    # --- registry ---------------------------------------------------------------------------

    def register(
        self,
        *,
        hazard_type: str,
        name: str,
        owner_name: str,
        owner_contact: str,
        grade: int,
        location: GeoPoint,
        actor: Actor,
        impact_radius_m: float | None = None,
        impact_zone: Area | None = None,
        at: datetime | None = None,
        command_id: str | None = None,
    ) -> UUID:
        """Enter a hazard source in the registry; without a radius or zone it gets its type's
        default impact radius."""
        self.catalogue.hazard_type(hazard_type)
        when = self.now(at)
        radius = self._impact(hazard_type, impact_radius_m, impact_zone)
        # A derived id makes a repeated registration (same command id) land on the same source.
        source_id = (uuid5(COMMAND_NAMESPACE, f"hazard-source:{command_id}") if command_id
                     else uuid4())

        def decide() -> list[HazardSource]:
            return [HazardSource.register(
                source_id=source_id, hazard_type=hazard_type, name=name, owner_name=owner_name,
                owner_contact=owner_contact, grade=grade, location=location,
                impact_radius_m=radius, impact_zone=impact_zone, actor=actor, at=when,
            )]

        def already_registered() -> None:
            # The new source's first event conflicts on save when its id is taken.
            if self.exists(source_id):
                self.source(source_id).refuse("register", "it is already registered")

        return self.command("hazard.register", actor, command_id, {
            "hazard_type": hazard_type, "name": name, "owner_name": owner_name,
            "owner_contact": owner_contact, "grade": grade,
            "location": _point_args(location), "impact_radius_m": impact_radius_m,
            "impact_zone": impact_zone.wkt if impact_zone else None,
        }, decide, explain_conflict=already_registered)

    def update_details(
        self,
        source_id: UUID,
        *,
        actor: Actor,
        name: str | None = None,
        owner_name: str | None = None,
        owner_contact: str | None = None,
        grade: int | None = None,
        location: GeoPoint | None = None,
        impact_radius_m: float | None = None,
        impact_zone: Area | None = None,
        reason: str = "",
        at: datetime | None = None,
        command_id: str | None = None,
    ) -> UUID:
        """Change registry details; what is not given stays. A new radius replaces a zone and
        a new zone replaces a radius."""
        when = self.now(at)
        if impact_radius_m is not None and impact_zone is not None:
            raise InvalidValue("give either an impact radius in metres or an impact zone, "
                               "not both")

        def decide() -> list[HazardSource]:
            source = self.source(source_id)
            radius, zone = source.impact_radius_m, source.impact_zone
            if impact_radius_m is not None or impact_zone is not None:
                radius, zone = impact_radius_m, impact_zone
            source.update_details(
                name=name if name is not None else source.name,
                owner_name=owner_name if owner_name is not None else source.owner_name,
                owner_contact=(owner_contact if owner_contact is not None
                               else source.owner_contact),
                grade=grade if grade is not None else source.grade,
                location=location if location is not None else source.location,
                impact_radius_m=radius, impact_zone=zone, reason=reason, actor=actor, at=when,
            )
            return [source]

        return self.command("hazard.update", actor, command_id, {
            "source_id": source_id, "name": name, "owner_name": owner_name,
            "owner_contact": owner_contact, "grade": grade,
            "location": _point_args(location) if location else None,
            "impact_radius_m": impact_radius_m,
            "impact_zone": impact_zone.wkt if impact_zone else None, "reason": reason,
        }, decide)

    def decommission(self, source_id: UUID, *, reason: str, actor: Actor,
                     at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Take a hazard source out of supervision for good; its open alarms end."""
        when = self.now(at)

        def decide() -> list[HazardSource]:
            source = self.source(source_id)
            source.decommission(reason=reason, actor=actor, at=when)
            return [source]

        return self.command("hazard.decommission", actor, command_id,
                             {"source_id": source_id, "reason": reason}, decide)

    # --- sensors and readings -------------------------------------------------------------

    def add_sensor(
        self,
        source_id: UUID,
        *,
        sensor_id: str,
        kind: str,
        unit: str,
        direction: ThresholdDirection | str,
        warning: float,
        alarm: float,
        actor: Actor,
        deadband: float | None = None,
        label: str = "",
        at: datetime | None = None,
        command_id: str | None = None,
    ) -> UUID:
        """Put a sensor under watch with its warning and alarm thresholds (and the deadband
        that keeps its alarms from flapping; the catalogue's default if not given)."""
        self.catalogue.check_unit(kind, unit)
        direction = parse_enum(ThresholdDirection, direction, "threshold direction")
        band = self.catalogue.alarm_deadband if deadband is None else deadband
        when = self.now(at)

        def decide() -> list[HazardSource]:
            source = self.source(source_id)
            source.add_sensor(sensor_id=sensor_id, kind=kind, unit=unit, direction=direction,
                              warning=warning, alarm=alarm, deadband=band, label=label,
                              actor=actor, at=when)
            return [source]

        return self.command("hazard.add-sensor", actor, command_id, {
            "source_id": source_id, "sensor_id": sensor_id, "kind": kind, "unit": unit,
            "direction": direction, "warning": warning, "alarm": alarm, "deadband": deadband,
            "label": label,
        }, decide)

    def remove_sensor(self, source_id: UUID, *, sensor_id: str, actor: Actor, reason: str = "",
                      at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Take a sensor out of watch; an alarm it had open ends."""
        when = self.now(at)

        def decide() -> list[HazardSource]:
            source = self.source(source_id)
            source.remove_sensor(sensor_id=sensor_id, reason=reason, actor=actor, at=when)
            return [source]

        uuid = self.command("hazard.remove-sensor", actor, command_id,
                             {"source_id": source_id, "sensor_id": sensor_id, "reason": reason},
                             decide)
        self.latest_readings.forget(source_id, sensor_id)
        return uuid

    def record_reading(self, source_id: UUID, sensor_id: str, value: float,
                       at: datetime | None = None, *, actor: Actor) -> ReadingOutcome:
        """Judge one sensor reading (`at`: when it was measured). Saves only a threshold
        crossing (alarm raised, level changed, cleared); any other reading returns the
        sensor's current alarm state without saving anything. A redelivered reading is
        out of order (not after the last crossing), so no command id is needed."""
        check_permitted("hazard.reading", actor)
        measured_at = self.now(at)
        for attempt in range(1, READING_ATTEMPTS + 1):
            source = self.source(source_id)
            outcome = source.observe(sensor_id=sensor_id, value=value, measured_at=measured_at,
                                     actor=actor)
            if outcome.effect.recorded:
                try:
                    self.run_command("hazard.reading", actor=actor, command_id=None, args={
                        "source_id": source_id, "sensor_id": sensor_id, "value": value,
                        "at": measured_at,
                    }, decide=_decided(source))
                except ConcurrencyConflict:
                    if attempt == READING_ATTEMPTS:
                        raise
                    continue
            self.latest_readings.remember(source_id, sensor_id, LatestReading(
                value=float(value), measured_at=measured_at, level=outcome.level,
            ))
            return outcome
        raise AssertionError("unreachable: the last attempt returns or raises")

    def latest_reading(self, source_id: UUID, sensor_id: str) -> LatestReading | None:
        """The latest value this process has seen from the sensor (read-side convenience)."""
        return self.latest_readings.get(source_id, sensor_id)

    # --- alarms -----------------------------------------------------------------------------

    def acknowledge_alarm(self, source_id: UUID, alarm_id: UUID, *, actor: Actor,
                          note: str = "", at: datetime | None = None,
                          command_id: str | None = None) -> UUID:
        """The centre confirms it has seen an alarm."""
        when = self.now(at)

        def decide() -> list[HazardSource]:
            source = self.source(source_id)
            source.acknowledge_alarm(alarm_id=alarm_id, note=note, actor=actor, at=when)
            return [source]

        return self.command("hazard.acknowledge-alarm", actor, command_id,
                             {"source_id": source_id, "alarm_id": alarm_id, "note": note},
                             decide)

    def escalate_alarm(self, source_id: UUID, alarm_id: UUID, *, actor: Actor,
                       incident_id: UUID | None = None, note: str = "",
                       at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Record that an alarm became or joined an incident (created by the incident
        application): by default the incident with the alarm's deterministic id
        (`incident_id_for_alarm`). Repeating it for the same incident changes nothing;
        returns the incident id."""
        when = self.now(at)
        target = incident_id or incident_id_for_alarm(alarm_id)

        def decide() -> list[HazardSource]:
            source = self.source(source_id)
            source.escalate_alarm(alarm_id=alarm_id, incident_id=target, note=note,
                                  actor=actor, at=when)
            return [source]

        self.command("hazard.escalate-alarm", actor, command_id, {
            "source_id": source_id, "alarm_id": alarm_id, "incident_id": incident_id,
            "note": note,
        }, decide)
        return target

    # --- inspections ------------------------------------------------------------------------

    def record_finding(self, source_id: UUID, *, description: str,
                       severity: FindingSeverity | str, rectification_deadline: datetime,
                       actor: Actor, at: datetime | None = None,
                       command_id: str | None = None) -> UUID:
        """Record a hidden danger found on inspection; returns the finding's id."""
        severity = parse_enum(FindingSeverity, severity, "finding severity",
                              "finding severities")
        when = self.now(at)
        finding_id = (uuid5(COMMAND_NAMESPACE, f"hazard-finding:{command_id}") if command_id
                      else uuid4())

        def decide() -> list[HazardSource]:
            source = self.source(source_id)
            source.record_finding(finding_id=finding_id, description=description,
                                  severity=severity,
                                  rectification_deadline=rectification_deadline, actor=actor,
                                  at=when)
            return [source]

        self.command("hazard.record-finding", actor, command_id, {
            "source_id": source_id, "description": description, "severity": severity,
            "rectification_deadline": rectification_deadline,
        }, decide)
        return finding_id

    def rectify_finding(self, source_id: UUID, finding_id: UUID, *, evidence: list[str],
                        actor: Actor, note: str = "", at: datetime | None = None,
                        command_id: str | None = None) -> UUID:
        """Record that a hidden danger was removed, with evidence."""
        when = self.now(at)

        def decide() -> list[HazardSource]:
            source = self.source(source_id)
            source.rectify_finding(finding_id=finding_id, evidence=list(evidence), note=note,
                                   actor=actor, at=when)
            return [source]

        return self.command("hazard.rectify-finding", actor, command_id, {
            "source_id": source_id, "finding_id": finding_id, "evidence": list(evidence),
            "note": note,
        }, decide)


def _point_args(point: GeoPoint) -> list[float]:
    return [point.lon, point.lat]
