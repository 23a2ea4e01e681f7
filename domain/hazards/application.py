"""The hazard-source application: the handlers of the commands of the registry of hazard
sources, their sensors and thresholds, the alarms raised by threshold crossings, and
inspection findings (the commands themselves, as values: `domain/hazard_commands.py`).

Readings arrive at a high rate and most of them change nothing: `record_reading` saves only
when a reading crosses a threshold (see `hazard`). The latest value of every sensor is kept in
`latest_readings`, a small in-process cache: a read-side convenience for this process only
(lost on restart, not shared between workers, never used to decide anything); the read model
keeps the latest readings for everyone.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4, uuid5

from cityops.domain.application import (
    COMMAND_NAMESPACE,
    CityApplication,
    Clock,
    UnitOfWork,
    system_clock,
)
from cityops.domain.commands import CommandContext, handles
from cityops.domain.errors import ConcurrencyConflict, InvalidValue, NotFound
from cityops.domain.geometry import Area
from cityops.domain.hazards.catalogue import HazardCatalogue
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
from cityops.domain.hazards.source import (
    AlarmLevel,
    HazardSource,
    ReadingOutcome,
    incident_id_for_alarm,
)
from cityops.domain.permissions import check_permitted

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

    # --- command handlers (run through `handle`, see `domain/commands.py`) ----------------

    @handles(RegisterHazardSource)
    def register(self, command: RegisterHazardSource, uow: UnitOfWork) -> list[HazardSource]:
        """A hazard source enters the registry; without a radius or zone it gets its type's
        default impact radius. Its id derives from the command id (a repeated registration
        lands on the same source)."""
        self.catalogue.hazard_type(command.hazard_type)
        radius = self._impact(command.hazard_type, command.impact_radius_m,
                              command.impact_zone)
        source_id = (uuid5(COMMAND_NAMESPACE, f"hazard-source:{uow.command_id}")
                     if uow.command_id else uuid4())

        def already_registered() -> None:
            # The new source's first event conflicts on save when its id is taken.
            if self.exists(source_id):
                self.source(source_id).refuse("register", "it is already registered")

        uow.on_conflict(already_registered)
        return [HazardSource.register(
            source_id=source_id, hazard_type=command.hazard_type, name=command.source_name,
            owner_name=command.owner_name, owner_contact=command.owner_contact,
            grade=command.grade, location=command.location, impact_radius_m=radius,
            impact_zone=command.impact_zone, actor=uow.actor, at=uow.now,
        )]

    @handles(UpdateHazardSource)
    def update_details(self, command: UpdateHazardSource,
                       uow: UnitOfWork) -> list[HazardSource]:
        """Registry details change; what is not given stays. A new radius replaces a zone
        and a new zone replaces a radius."""
        source = uow.load(HazardSource, command.source_id)
        radius, zone = source.impact_radius_m, source.impact_zone
        if command.impact_radius_m is not None or command.impact_zone is not None:
            radius, zone = command.impact_radius_m, command.impact_zone
        source.update_details(
            name=command.source_name if command.source_name is not None else source.name,
            owner_name=(command.owner_name if command.owner_name is not None
                        else source.owner_name),
            owner_contact=(command.owner_contact if command.owner_contact is not None
                           else source.owner_contact),
            grade=command.grade if command.grade is not None else source.grade,
            location=command.location if command.location is not None else source.location,
            impact_radius_m=radius, impact_zone=zone, reason=command.reason, actor=uow.actor,
            at=uow.now,
        )
        return [source]

    @handles(DecommissionHazardSource)
    def decommission(self, command: DecommissionHazardSource,
                     uow: UnitOfWork) -> list[HazardSource]:
        """A hazard source leaves supervision for good; its open alarms end."""
        source = uow.load(HazardSource, command.source_id)
        source.decommission(reason=command.reason, actor=uow.actor, at=uow.now)
        return [source]

    # --- sensors and readings -------------------------------------------------------------

    @handles(AddSensor)
    def add_sensor(self, command: AddSensor, uow: UnitOfWork) -> list[HazardSource]:
        """A sensor is put under watch with its warning and alarm thresholds (and the
        deadband that keeps its alarms from flapping; the catalogue's default if not given)."""
        self.catalogue.check_unit(command.kind, command.unit)
        band = self.catalogue.alarm_deadband if command.deadband is None else command.deadband
        source = uow.load(HazardSource, command.source_id)
        source.add_sensor(sensor_id=command.sensor_id, kind=command.kind, unit=command.unit,
                          direction=command.direction, warning=command.warning,
                          alarm=command.alarm, deadband=band, label=command.label,
                          actor=uow.actor, at=uow.now)
        return [source]

    @handles(RemoveSensor)
    def remove_sensor(self, command: RemoveSensor, uow: UnitOfWork) -> list[HazardSource]:
        """A sensor is taken out of watch; an alarm it had open ends."""
        source = uow.load(HazardSource, command.source_id)
        source.remove_sensor(sensor_id=command.sensor_id, reason=command.reason,
                             actor=uow.actor, at=uow.now)
        uow.after_saved(lambda: self.latest_readings.forget(command.source_id,
                                                            command.sensor_id))
        return [source]

    @handles(RecordReading)
    def record_reading(self, command: RecordReading, uow: UnitOfWork) -> list[HazardSource]:
        """One sensor reading is judged (measured at `measured_at`, default now). Only a
        threshold crossing (alarm raised, level changed, cleared) records an event; the
        judgement (`ReadingOutcome`) is the command's result. A redelivered reading is out
        of order (not after the last crossing), so no command id is needed."""
        measured_at = self.now(command.measured_at) if command.measured_at else uow.now
        source = uow.load(HazardSource, command.source_id)
        outcome = source.observe(sensor_id=command.sensor_id, value=command.value,
                                 measured_at=measured_at, actor=uow.actor)
        uow.result = outcome
        latest = LatestReading(value=float(command.value), measured_at=measured_at,
                               level=outcome.level)
        uow.after_saved(lambda: self.latest_readings.remember(
            command.source_id, command.sensor_id, latest))
        return [source]

    def judge_reading(self, command: RecordReading, context: CommandContext) -> ReadingOutcome:
        """Handle a reading and answer its judgement. Readings of several sensors of one
        source may cross at the same moment in several workers: a crossing that loses the
        race is judged again against the winner's state.

        In a batch (ingest), a reading is first judged on the stored state without running
        the command: one that records nothing (no threshold crossed, or out of order), as
        most readings, costs neither a copy of the source nor a save; the rest run the
        command, whose judgement is the same."""
        quiet = self._quiet_reading(command, context) if context.batch is not None else None
        if quiet is not None:
            return quiet
        for attempt in range(1, READING_ATTEMPTS + 1):
            try:
                outcome = self.handle(command, context)
            except ConcurrencyConflict:
                if attempt == READING_ATTEMPTS:
                    raise
                continue
            assert isinstance(outcome.result, ReadingOutcome)
            return outcome.result
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _quiet_reading(self, command: RecordReading,
                       context: CommandContext) -> ReadingOutcome | None:
        """The outcome of a reading that records nothing, judged on the stored state and
        remembered as the sensor's latest; None when the command must run (a crossing, a
        refusal, or a source with changes staged in the batch)."""
        check_permitted(RecordReading, context.actor)
        batch = context.batch
        measured_at = self.now(command.measured_at or context.at)
        unsaved = batch is not None and batch.holds(self, command.source_id)
        try:
            source = self.peek(HazardSource, command.source_id, batch)
        except NotFound:
            return None
        with self.stored_state_lock(command.source_id):
            outcome = source.quiet_outcome(sensor_id=command.sensor_id, value=command.value,
                                           measured_at=measured_at)
        if outcome is None:
            return None
        latest = LatestReading(value=float(command.value), measured_at=measured_at,
                               level=outcome.level)

        def remember() -> None:
            self.latest_readings.remember(command.source_id, command.sensor_id, latest)

        if unsaved and batch is not None:
            # Judged on a crossing the batch holds unsaved: staged (with no event) beside
            # it, so that it is judged again if that crossing is never saved.
            batch.add(self, [], [remember])
        else:
            remember()
        return outcome

    def latest_reading(self, source_id: UUID, sensor_id: str) -> LatestReading | None:
        """The latest value this process has seen from the sensor (read-side convenience)."""
        return self.latest_readings.get(source_id, sensor_id)

    # --- alarms -----------------------------------------------------------------------------

    @handles(AcknowledgeAlarm)
    def acknowledge_alarm(self, command: AcknowledgeAlarm,
                          uow: UnitOfWork) -> list[HazardSource]:
        """The centre confirms it has seen an alarm."""
        source = uow.load(HazardSource, command.source_id)
        source.acknowledge_alarm(alarm_id=command.alarm_id, note=command.note,
                                 actor=uow.actor, at=uow.now)
        return [source]

    @handles(RecordAlarmEscalation)
    def escalate_alarm(self, command: RecordAlarmEscalation,
                       uow: UnitOfWork) -> list[HazardSource]:
        """It is recorded that an alarm became or joined an incident (reported or linked by
        the incident application from this event: `processes.incident_escalations`): by
        default the incident with the alarm's deterministic id (`incident_id_for_alarm`),
        the command's result. Repeating it for the same incident changes nothing."""
        target = command.incident_id or incident_id_for_alarm(command.alarm_id)
        source = uow.load(HazardSource, command.source_id)
        source.escalate_alarm(
            alarm_id=command.alarm_id, incident_id=target, note=command.note, actor=uow.actor,
            at=uow.now,
            new_incident=None if command.new_incident is None else command.new_incident.as_fact())
        uow.result = target
        return [source]

    # --- inspections ------------------------------------------------------------------------

    @staticmethod
    def finding_id_for(command_id: str | None) -> UUID:
        """The id of the finding a command records: derived from its command id (a repeat
        lands on the same finding), else new."""
        return (uuid5(COMMAND_NAMESPACE, f"hazard-finding:{command_id}") if command_id
                else uuid4())

    @handles(RecordFinding)
    def record_finding(self, command: RecordFinding, uow: UnitOfWork) -> list[HazardSource]:
        """A hidden danger found on inspection is recorded (its id: `finding_id_for`, the
        command's result)."""
        finding_id = self.finding_id_for(uow.command_id)
        source = uow.load(HazardSource, command.source_id)
        source.record_finding(finding_id=finding_id, description=command.description,
                              severity=command.severity,
                              rectification_deadline=command.rectification_deadline,
                              actor=uow.actor, at=uow.now)
        uow.result = finding_id
        return [source]

    @handles(RectifyFinding)
    def rectify_finding(self, command: RectifyFinding, uow: UnitOfWork) -> list[HazardSource]:
        """It is recorded that a hidden danger was removed, with evidence."""
        source = uow.load(HazardSource, command.source_id)
        source.rectify_finding(finding_id=command.finding_id, evidence=list(command.evidence),
                               note=command.note, actor=uow.actor, at=uow.now)
        return [source]


