"""Hazard sources: the registry, sensor thresholds, alarms raised only on threshold crossings
(with hysteresis), acknowledgement and escalation, and hidden dangers with deadlines."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.errors import (
    CatalogueError,
    CommandIdReused,
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
)
from cityops.domain.geometry import Area, GeoPoint
from cityops.domain.hazards.application import HazardSources, LatestReading, LatestReadings
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
    AlarmEnd,
    AlarmLevel,
    Finding,
    FindingSeverity,
    HazardSource,
    HazardStatus,
    ReadingEffect,
    Sensor,
    ThresholdDirection,
    alarm_id_for,
    assess,
    finding_overdue,
    incident_id_for_alarm,
    open_alarms,
    overdue_findings,
)

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 09:00 in Asia/Shanghai
CATALOGUE = HazardCatalogue.load()

PLANNER = Actor("planner-1", Role.PLANNER)
GATEWAY = Actor("sensor-gateway", Role.SYSTEM)
DUTY = Actor("duty-1", Role.DISPATCHER)
INSPECTOR = Actor("inspector-1", Role.INSPECTOR)
SAFETY = Actor("safety-1", Role.DEPARTMENT_USER, "emergency-management")
OPERATOR = Actor("op-1", Role.HOTLINE_OPERATOR)
LEADER = Actor("leader-1", Role.LEADER)
DEPOT = GeoPoint(121.50, 31.20)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(clock: Clock) -> HazardSources:
    return HazardSources(POPO, catalogue=CATALOGUE, clock=clock)


def register_depot(app: HazardSources, *, actor: Actor = PLANNER,
                   command_id: str | None = None, **overrides: Any) -> UUID:
    facts: dict[str, Any] = {
        "hazard_type": "lpg-depot", "source_name": "East LPG depot",
        "owner_name": "East Gas Co.", "owner_contact": "Wang Li, +86 21 5555 0101",
        "grade": 2, "location": DEPOT,
    }
    facts.update(overrides)
    return app.handle(RegisterHazardSource(**facts),
                      CommandContext(actor=actor, command_id=command_id)).subject


def add_gas_sensor(app: HazardSources, source_id: UUID, sensor_id: str = "GT-1") -> None:
    app.handle(
        AddSensor(source_id=source_id, sensor_id=sensor_id, kind="gas-concentration", unit="%LEL",
            direction="high", warning=20, alarm=40),
        CommandContext(actor=PLANNER))


def events_stored(app: HazardSources) -> int:
    return int(app.recorder.max_notification_id() or 0)


@pytest.fixture
def depot(app: HazardSources, clock: Clock) -> UUID:
    source_id = register_depot(app)
    add_gas_sensor(app, source_id)
    clock.advance(minutes=1)
    return source_id


def read(app: HazardSources, clock: Clock, source_id: UUID, value: float,
         sensor_id: str = "GT-1") -> ReadingEffect:
    """One reading measured one minute after the previous one."""
    return app.judge_reading(
        RecordReading(source_id=source_id, sensor_id=sensor_id, value=value,
            measured_at=clock.advance(minutes=1)),
        CommandContext(actor=GATEWAY)).effect


# --- scenario --------------------------------------------------------------------------------


def test_a_gas_leak_at_an_lpg_depot_from_registration_to_escalation(
        app: HazardSources, clock: Clock) -> None:
    # The emergency management bureau registers an LPG depot; with no radius or zone given
    # it gets the type's default impact radius.
    source_id = register_depot(app)
    source = app.source(source_id)
    assert source.status is HazardStatus.ACTIVE
    assert source.impact_radius_m == CATALOGUE.hazard_type("lpg-depot").default_impact_radius_m
    assert source.grade == 2

    # A gas detector is put under watch: warning at 20 %LEL, alarm at 40 %LEL.
    add_gas_sensor(app, source_id)
    clock.advance(minutes=1)
    stored = events_stored(app)

    # Normal readings come in at a high rate and record nothing.
    for value in (3.0, 4.5, 5.0, 4.0):
        assert read(app, clock, source_id, value) is ReadingEffect.UNCHANGED
    assert events_stored(app) == stored
    assert app.latest_reading(source_id, "GT-1") == LatestReading(
        value=4.0, measured_at=clock.now, level=AlarmLevel.NORMAL)

    # The concentration reaches the warning threshold: an alarm is raised.
    outcome = app.judge_reading(
        RecordReading(source_id=source_id, sensor_id="GT-1", value=21.0,
            measured_at=clock.advance(minutes=1)),
        CommandContext(actor=GATEWAY))
    assert outcome.effect is ReadingEffect.RAISED
    assert outcome.level is AlarmLevel.WARNING
    assert outcome.alarm is not None
    alarm_id = outcome.alarm.alarm_id
    assert alarm_id == alarm_id_for(source_id, "GT-1", 1)
    assert outcome.alarm.threshold == 20.0
    assert events_stored(app) == stored + 1

    # It hovers just under the threshold, inside the 2 % deadband: no clearing, no flapping.
    for value in (19.8, 20.3, 19.7, 20.1):
        assert read(app, clock, source_id, value) is ReadingEffect.UNCHANGED
    assert events_stored(app) == stored + 1

    # The duty officer acknowledges the warning.
    app.handle(
        AcknowledgeAlarm(source_id=source_id, alarm_id=alarm_id, note="calling the depot"),
        CommandContext(actor=DUTY))
    assert app.source(source_id).alarm(alarm_id).acknowledged

    # The leak grows: the alarm goes to the alarm level, which needs a new acknowledgement.
    assert read(app, clock, source_id, 45.0) is ReadingEffect.LEVEL_CHANGED
    alarm = app.source(source_id).alarm(alarm_id)
    assert (alarm.level, alarm.peak_level, alarm.threshold) == (
        AlarmLevel.ALARM, AlarmLevel.ALARM, 40.0)
    assert not alarm.acknowledged
    assert [a.alarm_id for a in open_alarms(app.source(source_id))] == [alarm_id]

    # The centre escalates the alarm into an incident (created by the incident application).
    incident_id = app.handle(
        RecordAlarmEscalation(source_id=source_id, alarm_id=alarm_id, note="leak confirmed"),
        CommandContext(actor=DUTY)).result
    assert incident_id == incident_id_for_alarm(alarm_id)
    assert app.source(source_id).alarm(alarm_id).incident_id == incident_id

    # The leak is stopped: first back to the warning level (below 40 - 0.8), then cleared
    # below 20 - 0.4.
    assert read(app, clock, source_id, 39.5) is ReadingEffect.UNCHANGED
    assert read(app, clock, source_id, 39.0) is ReadingEffect.LEVEL_CHANGED
    assert read(app, clock, source_id, 19.7) is ReadingEffect.UNCHANGED
    assert read(app, clock, source_id, 19.5) is ReadingEffect.CLEARED
    source = app.source(source_id)
    alarm = source.alarm(alarm_id)
    assert not alarm.is_open
    assert alarm.end is AlarmEnd.BACK_TO_NORMAL
    assert alarm.value == 19.5
    assert alarm.peak_level is AlarmLevel.ALARM
    assert open_alarms(source) == []
    assert source.levels["GT-1"] is AlarmLevel.NORMAL

    # The history of the depot is the list of crossings, not of readings.
    events = list(app.events.get(source_id))
    assert [type(e).__name__ for e in events] == [
        "Registered", "SensorAdded", "AlarmRaised", "AlarmAcknowledged", "AlarmLevelChanged",
        "AlarmEscalated", "AlarmLevelChanged", "AlarmCleared",
    ]
    assert app.repository.get(source_id).summary() == source.summary()


def test_a_second_alarm_on_the_same_sensor_gets_its_own_id(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    read(app, clock, depot, 25)
    read(app, clock, depot, 5)
    outcome = app.judge_reading(
        RecordReading(source_id=depot, sensor_id="GT-1", value=50,
            measured_at=clock.advance(minutes=1)),
        CommandContext(actor=GATEWAY))
    assert outcome.effect is ReadingEffect.RAISED
    assert outcome.level is AlarmLevel.ALARM
    assert outcome.alarm is not None
    assert outcome.alarm.alarm_id == alarm_id_for(depot, "GT-1", 2)
    assert outcome.alarm.threshold == 40.0
    assert app.source(depot).alarm_count == 2


def test_a_reading_returns_the_current_alarm_state_without_saving(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    read(app, clock, depot, 30)
    version = app.source(depot).version
    outcome = app.judge_reading(
        RecordReading(source_id=depot, sensor_id="GT-1", value=31,
            measured_at=clock.advance(minutes=1)),
        CommandContext(actor=GATEWAY))
    assert outcome.effect is ReadingEffect.UNCHANGED
    assert outcome.level is AlarmLevel.WARNING
    assert outcome.alarm is not None and outcome.alarm.is_open
    assert outcome.as_dict()["alarm"]["level"] == "warning"
    assert app.source(depot).version == version


# --- order of readings -----------------------------------------------------------------------


def test_a_reading_older_than_the_last_crossing_is_ignored(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    crossing = clock.advance(minutes=5)
    assert app.judge_reading(
        RecordReading(source_id=depot, sensor_id="GT-1", value=30, measured_at=crossing),
        CommandContext(actor=GATEWAY)).effect is ReadingEffect.RAISED
    version = app.source(depot).version
    late = app.judge_reading(
        RecordReading(source_id=depot, sensor_id="GT-1", value=2,
            measured_at=crossing - timedelta(minutes=1)),
        CommandContext(actor=GATEWAY))
    assert late.effect is ReadingEffect.OUT_OF_ORDER
    assert late.level is AlarmLevel.WARNING
    # A redelivered crossing reading is at the same time as the crossing: also ignored.
    again = app.judge_reading(
        RecordReading(source_id=depot, sensor_id="GT-1", value=30, measured_at=crossing),
        CommandContext(actor=GATEWAY))
    assert again.effect is ReadingEffect.OUT_OF_ORDER
    assert app.source(depot).version == version
    # The cache keeps the newest value it has seen.
    cached = app.latest_reading(depot, "GT-1")
    assert cached is not None and cached.measured_at == crossing


def test_a_crossing_measured_before_an_acknowledgement_is_still_recorded(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    raised = clock.advance(minutes=1)
    outcome = app.judge_reading(
        RecordReading(source_id=depot, sensor_id="GT-1", value=25, measured_at=raised),
        CommandContext(actor=GATEWAY))
    assert outcome.alarm is not None
    clock.advance(minutes=2)
    app.handle(
        AcknowledgeAlarm(source_id=depot, alarm_id=outcome.alarm.alarm_id),
        CommandContext(actor=DUTY))
    # Measured a minute before the acknowledgement, delivered after it.
    measured = clock.now - timedelta(minutes=1)
    assert app.judge_reading(
        RecordReading(source_id=depot, sensor_id="GT-1", value=2, measured_at=measured),
        CommandContext(actor=GATEWAY)).effect is ReadingEffect.CLEARED
    cleared = list(app.events.get(depot))[-1]
    assert isinstance(cleared, HazardSource.AlarmCleared)
    assert cleared.measured_at == measured
    assert cleared.timestamp == clock.now
    assert app.source(depot).alarm(outcome.alarm.alarm_id).ended_at == measured


def test_a_reading_from_the_future_is_refused(app: HazardSources, depot: UUID,
                                              clock: Clock) -> None:
    with pytest.raises(InvalidValue, match="future"):
        app.judge_reading(
            RecordReading(source_id=depot, sensor_id="GT-1", value=5,
                measured_at=clock.now + timedelta(hours=1)),
            CommandContext(actor=GATEWAY))


def test_a_crossing_that_loses_a_race_is_judged_again(
        app: HazardSources, clock: Clock, depot: UUID, monkeypatch: pytest.MonkeyPatch) -> None:
    app.handle(
        AddSensor(source_id=depot, sensor_id="PT-1", kind="pressure", unit="MPa",
            direction="high", warning=1.6, alarm=2.0),
        CommandContext(actor=PLANNER))
    stale = app.source(depot)
    read(app, clock, depot, 30)  # another worker's crossing on GT-1, saved meanwhile
    calls: list[int] = []
    real_load = HazardSources.load_for

    def load_once_stale(self: HazardSources, cls: Any, source_id: UUID,
                        *args: Any) -> Any:
        calls.append(1)
        return stale if len(calls) == 1 else real_load(self, cls, source_id, *args)

    # The handler loads the source through its unit of work: the first load is stale.
    monkeypatch.setattr(HazardSources, "load_for", load_once_stale)
    outcome = app.judge_reading(
        RecordReading(source_id=depot, sensor_id="PT-1", value=2.5,
            measured_at=clock.advance(minutes=1)),
        CommandContext(actor=GATEWAY))
    assert outcome.effect is ReadingEffect.RAISED
    assert len(calls) == 2
    source = real_load(app, HazardSource, depot, None)
    assert {a.sensor_id for a in open_alarms(source)} == {"GT-1", "PT-1"}


# --- hysteresis (pure) -----------------------------------------------------------------------


HIGH = Sensor(sensor_id="GT-1", kind="gas-concentration", unit="%LEL",
              direction=ThresholdDirection.HIGH, warning=20.0, alarm=40.0, deadband=0.02,
              label="", added_at=START)
LOW = Sensor(sensor_id="LT-1", kind="liquid-level", unit="m", direction=ThresholdDirection.LOW,
             warning=2.0, alarm=1.0, deadband=0.05, label="", added_at=START)
N, W, A = AlarmLevel.NORMAL, AlarmLevel.WARNING, AlarmLevel.ALARM


@pytest.mark.parametrize(("sensor", "current", "value", "expected"), [
    (HIGH, N, 19.99, N), (HIGH, N, 20.0, W), (HIGH, N, 40.0, A), (HIGH, N, 1e9, A),
    (HIGH, W, 19.61, W), (HIGH, W, 19.6, W), (HIGH, W, 19.59, N), (HIGH, W, 40.0, A),
    (HIGH, A, 39.2, A), (HIGH, A, 39.19, W), (HIGH, A, 19.6, W), (HIGH, A, 19.5, N),
    (LOW, N, 2.01, N), (LOW, N, 2.0, W), (LOW, N, 1.0, A), (LOW, W, 2.09, W),
    (LOW, W, 2.11, N), (LOW, A, 1.05, A), (LOW, A, 1.06, W), (LOW, A, 3.0, N),
])
def test_levels_are_entered_at_the_threshold_and_left_beyond_the_deadband(
        sensor: Sensor, current: AlarmLevel, value: float, expected: AlarmLevel) -> None:
    assert assess(sensor, current, value) is expected


def test_a_low_level_sensor_raises_when_the_level_falls(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    app.handle(
        AddSensor(source_id=depot, sensor_id="LT-1", kind="liquid-level", unit="m",
            direction="low", warning=2.0, alarm=1.0, deadband=0.05),
        CommandContext(actor=PLANNER))
    assert read(app, clock, depot, 3.0, "LT-1") is ReadingEffect.UNCHANGED
    assert read(app, clock, depot, 0.9, "LT-1") is ReadingEffect.RAISED
    assert read(app, clock, depot, 2.05, "LT-1") is ReadingEffect.LEVEL_CHANGED
    assert read(app, clock, depot, 2.2, "LT-1") is ReadingEffect.CLEARED


# --- sensors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"direction": "high", "warning": 40, "alarm": 20}, "below the alarm"),
    ({"direction": "high", "warning": 20, "alarm": 20}, "below the alarm"),
    ({"direction": "low", "warning": 1, "alarm": 2}, "above the alarm"),
    ({"direction": "sideways"},
     "unknown threshold direction 'sideways'; threshold directions are high, low"),
    ({"kind": "radiation"}, "unknown sensor kind"),
    ({"unit": "ppb"}, "reports in"),
    ({"warning": float("nan")}, "finite"),
    ({"warning": "20"}, "number"),
    ({"deadband": 0.6}, "deadband"),
    ({"deadband": -0.1}, "deadband"),
    ({"sensor_id": "GT 2"}, "spaces"),
    ({"sensor_id": ""}, "sensor id"),
])
def test_inconsistent_sensors_are_refused(app: HazardSources, depot: UUID,
                                          changes: dict[str, Any], message: str) -> None:
    facts: dict[str, Any] = {"sensor_id": "GT-2", "kind": "gas-concentration", "unit": "ppm",
                             "direction": "high", "warning": 20, "alarm": 40}
    facts.update(changes)
    version = app.source(depot).version
    with pytest.raises(InvalidValue, match=message):
        app.handle(AddSensor(source_id=depot, **facts), CommandContext(actor=PLANNER))
    assert app.source(depot).version == version


def test_a_sensor_id_is_unique_on_its_source(app: HazardSources, depot: UUID) -> None:
    with pytest.raises(IllegalTransition, match="already has a sensor 'GT-1'"):
        add_gas_sensor(app, depot)


def test_removing_a_sensor_ends_its_open_alarm(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    read(app, clock, depot, 45)
    alarm_id = alarm_id_for(depot, "GT-1", 1)
    app.handle(
        RemoveSensor(source_id=depot, sensor_id="GT-1", reason="detector replaced"),
        CommandContext(actor=PLANNER))
    source = app.source(depot)
    assert source.alarm(alarm_id).end is AlarmEnd.SENSOR_REMOVED
    assert open_alarms(source) == []
    assert app.latest_reading(depot, "GT-1") is None
    with pytest.raises(NotFound, match="sensor GT-1 does not exist"):
        app.judge_reading(
            RecordReading(source_id=depot, sensor_id="GT-1", value=5,
                measured_at=clock.advance(minutes=1)),
            CommandContext(actor=GATEWAY))
    with pytest.raises(NotFound):
        app.handle(RemoveSensor(source_id=depot, sensor_id="GT-1"), CommandContext(actor=PLANNER))
    # Put back: readings measured before it was added again are not its readings.
    clock.advance(minutes=1)
    add_gas_sensor(app, depot)
    outcome = app.judge_reading(
        RecordReading(source_id=depot, sensor_id="GT-1", value=45,
            measured_at=clock.now - timedelta(seconds=30)),
        CommandContext(actor=GATEWAY))
    assert outcome.effect is ReadingEffect.OUT_OF_ORDER
    assert read(app, clock, depot, 45) is ReadingEffect.RAISED


# --- alarms ----------------------------------------------------------------------------------


def test_an_alarm_is_acknowledged_once(app: HazardSources, clock: Clock, depot: UUID) -> None:
    read(app, clock, depot, 25)
    alarm_id = alarm_id_for(depot, "GT-1", 1)
    app.handle(AcknowledgeAlarm(source_id=depot, alarm_id=alarm_id), CommandContext(actor=DUTY))
    version = app.source(depot).version
    with pytest.raises(IllegalTransition, match="already acknowledged"):
        app.handle(
            AcknowledgeAlarm(source_id=depot, alarm_id=alarm_id),
            CommandContext(actor=DUTY))
    assert app.source(depot).version == version
    # A fall back from alarm to warning keeps the acknowledgement; a rise needs a new one.
    read(app, clock, depot, 45)
    app.handle(AcknowledgeAlarm(source_id=depot, alarm_id=alarm_id), CommandContext(actor=DUTY))
    read(app, clock, depot, 30)
    assert app.source(depot).alarm(alarm_id).acknowledged


def test_an_alarm_that_cleared_unseen_can_still_be_acknowledged_and_escalated(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    read(app, clock, depot, 45)
    read(app, clock, depot, 1)
    alarm_id = alarm_id_for(depot, "GT-1", 1)
    app.handle(AcknowledgeAlarm(source_id=depot, alarm_id=alarm_id), CommandContext(actor=DUTY))
    incident_id = uuid4()
    assert app.handle(
        RecordAlarmEscalation(source_id=depot, alarm_id=alarm_id, incident_id=incident_id),
        CommandContext(actor=DUTY)).result == incident_id
    assert app.source(depot).alarm(alarm_id).incident_id == incident_id


def test_escalating_again_into_the_same_incident_changes_nothing(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    read(app, clock, depot, 45)
    alarm_id = alarm_id_for(depot, "GT-1", 1)
    coordinator = Actor("coordinator", Role.SYSTEM)
    first = app.handle(
        RecordAlarmEscalation(source_id=depot, alarm_id=alarm_id),
        CommandContext(actor=coordinator)).result
    version = app.source(depot).version
    assert app.handle(
        RecordAlarmEscalation(source_id=depot, alarm_id=alarm_id),
        CommandContext(actor=coordinator)).result == first
    assert app.source(depot).version == version
    with pytest.raises(IllegalTransition, match=f"already escalated into incident {first}"):
        app.handle(
            RecordAlarmEscalation(source_id=depot, alarm_id=alarm_id, incident_id=uuid4()),
            CommandContext(actor=DUTY))
    assert app.source(depot).version == version


def test_unknown_alarms_are_not_found(app: HazardSources, depot: UUID) -> None:
    with pytest.raises(NotFound, match="alarm"):
        app.handle(
            AcknowledgeAlarm(source_id=depot, alarm_id=uuid4()),
            CommandContext(actor=DUTY))
    with pytest.raises(NotFound, match="alarm"):
        app.handle(
            RecordAlarmEscalation(source_id=depot, alarm_id=uuid4()),
            CommandContext(actor=DUTY))


def test_open_alarms_lists_alarm_level_first_then_oldest(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    app.handle(
        AddSensor(source_id=depot, sensor_id="PT-1", kind="pressure", unit="MPa",
            direction="high", warning=1.6, alarm=2.0),
        CommandContext(actor=PLANNER))
    app.handle(
        AddSensor(source_id=depot, sensor_id="TT-1", kind="temperature", unit="°C",
            direction="high", warning=50, alarm=70),
        CommandContext(actor=PLANNER))
    read(app, clock, depot, 25)             # GT-1 warning, oldest
    read(app, clock, depot, 1.7, "PT-1")    # PT-1 warning
    read(app, clock, depot, 80, "TT-1")     # TT-1 alarm, newest
    source = app.source(depot)
    assert [a.sensor_id for a in open_alarms(source)] == ["TT-1", "GT-1", "PT-1"]


# --- hidden dangers --------------------------------------------------------------------------


def test_a_hidden_danger_is_recorded_goes_overdue_and_is_rectified(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    deadline = clock.now + timedelta(days=7)
    finding_id = app.handle(
        RecordFinding(source_id=depot, description="corroded valve on tank 2", severity="major",
            rectification_deadline=deadline),
        CommandContext(actor=INSPECTOR)).result
    source = app.source(depot)
    finding = source.finding(finding_id)
    assert finding.severity is FindingSeverity.MAJOR
    assert finding.found_by == INSPECTOR.user_id
    assert not finding_overdue(finding, deadline)
    assert finding_overdue(finding, deadline + timedelta(seconds=1))
    assert overdue_findings(source, deadline + timedelta(days=1)) == [finding]
    assert overdue_findings(source, clock.now) == []

    clock.advance(days=8)
    app.handle(
        RectifyFinding(source_id=depot, finding_id=finding_id, evidence=["photo:valve-new.jpg"],
            note="valve replaced"),
        CommandContext(actor=SAFETY))
    rectified = app.source(depot).finding(finding_id)
    assert rectified.rectified
    assert rectified.evidence == ("photo:valve-new.jpg",)
    assert not finding_overdue(rectified, clock.now)
    with pytest.raises(IllegalTransition, match="already rectified"):
        app.handle(
            RectifyFinding(source_id=depot, finding_id=finding_id, evidence=["x"]),
            CommandContext(actor=SAFETY))


def test_finding_overdue_is_a_pure_function_of_deadline_and_now() -> None:
    finding = Finding(finding_id=uuid4(), description="d", severity=FindingSeverity.GENERAL,
                      rectification_deadline=START, found_at=START - timedelta(days=1),
                      found_by="i")
    assert not finding_overdue(finding, START)
    assert finding_overdue(finding, START + timedelta(microseconds=1))


@pytest.mark.parametrize(("changes", "message"), [
    ({"rectification_deadline": START}, "not after"),
    ({"rectification_deadline": datetime(2026, 4, 1)}, "time zone"),
    ({"description": "  "}, "description"),
    ({"severity": "catastrophic"}, "severity"),
])
def test_bad_findings_are_refused(app: HazardSources, depot: UUID, changes: dict[str, Any],
                                  message: str) -> None:
    facts: dict[str, Any] = {"description": "blocked exit", "severity": "general",
                             "rectification_deadline": START + timedelta(days=3)}
    facts.update(changes)
    with pytest.raises(InvalidValue, match=message):
        app.handle(RecordFinding(source_id=depot, **facts), CommandContext(actor=INSPECTOR))


def test_a_rectification_needs_evidence(app: HazardSources, clock: Clock, depot: UUID) -> None:
    finding_id = app.handle(
        RecordFinding(source_id=depot, description="blocked exit", severity="general",
            rectification_deadline=clock.now + timedelta(days=3)),
        CommandContext(actor=INSPECTOR)).result
    with pytest.raises(InvalidValue, match="evidence"):
        app.handle(
            RectifyFinding(source_id=depot, finding_id=finding_id, evidence=[]),
            CommandContext(actor=SAFETY))
    with pytest.raises(NotFound, match="finding"):
        app.handle(
            RectifyFinding(source_id=depot, finding_id=uuid4(), evidence=["x"]),
            CommandContext(actor=SAFETY))


# --- registry --------------------------------------------------------------------------------


def test_details_are_updated_and_a_zone_replaces_the_radius(
        app: HazardSources, depot: UUID) -> None:
    zone = Area("POLYGON((121.49 31.19, 121.51 31.19, 121.51 31.21, 121.49 31.21, 121.49 31.19))")
    app.handle(
        UpdateHazardSource(source_id=depot, grade=1, impact_zone=zone, reason="capacity doubled"),
        CommandContext(actor=SAFETY))
    source = app.source(depot)
    assert (source.grade, source.impact_radius_m, source.impact_zone) == (1, None, zone)
    assert source.name == "East LPG depot"
    assert source.impacts(GeoPoint(121.505, 31.205))
    assert not source.impacts(GeoPoint(121.52, 31.205))
    app.handle(
        UpdateHazardSource(source_id=depot, impact_radius_m=200),
        CommandContext(actor=SAFETY))
    source = app.source(depot)
    assert (source.impact_radius_m, source.impact_zone) == (200, None)
    assert source.impacts(GeoPoint(121.501, 31.2))
    assert not source.impacts(GeoPoint(121.51, 31.2))
    assert app.repository.get(depot).summary() == source.summary()


@pytest.mark.parametrize(("changes", "message"), [
    ({"grade": 0}, "grade"),
    ({"grade": 5}, "grade"),
    ({"grade": True}, "grade"),
    ({"hazard_type": "volcano"}, "unknown hazard type"),
    ({"source_name": ""}, "name"),
    ({"owner_contact": " "}, "owner contact"),
    ({"impact_radius_m": 0}, "impact radius"),
    ({"impact_radius_m": 100,
      "impact_zone": Area("POLYGON((0 0, 1 0, 1 1, 0 0))")}, "not both"),
])
def test_bad_registrations_are_refused(app: HazardSources, changes: dict[str, Any],
                                       message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        register_depot(app, **changes)
    assert events_stored(app) == 0


def test_decommissioning_ends_open_alarms(app: HazardSources, clock: Clock,
                                          depot: UUID) -> None:
    read(app, clock, depot, 45)
    app.handle(
        DecommissionHazardSource(source_id=depot, reason="depot demolished"),
        CommandContext(actor=SAFETY))
    source = app.source(depot)
    assert source.status is HazardStatus.DECOMMISSIONED
    assert source.alarm(alarm_id_for(depot, "GT-1", 1)).end is AlarmEnd.DECOMMISSIONED
    assert open_alarms(source) == []


COMMANDS_ON_A_DECOMMISSIONED_SOURCE: dict[str, Callable[[HazardSources, UUID, UUID, UUID],
                                                        object]] = {
    "update": lambda app, s, a, f: app.handle(
        UpdateHazardSource(source_id=s, grade=1),
        CommandContext(actor=PLANNER)).subject,
    "decommission": lambda app, s, a, f: app.handle(
        DecommissionHazardSource(source_id=s, reason="again"),
        CommandContext(actor=PLANNER)).subject,
    "add sensor": lambda app, s, a, f: add_gas_sensor(app, s, "GT-9"),
    "remove sensor": lambda app, s, a, f: app.handle(
        RemoveSensor(source_id=s, sensor_id="GT-1"),
        CommandContext(actor=PLANNER)).subject,
    "reading": lambda app, s, a, f: app.judge_reading(
        RecordReading(source_id=s, sensor_id="GT-1", value=99),
        CommandContext(actor=GATEWAY)),
    "acknowledge": lambda app, s, a, f: app.handle(
        AcknowledgeAlarm(source_id=s, alarm_id=a),
        CommandContext(actor=DUTY)).subject,
    "escalate": lambda app, s, a, f: app.handle(
        RecordAlarmEscalation(source_id=s, alarm_id=a),
        CommandContext(actor=DUTY)).subject,
    "record finding": lambda app, s, a, f: app.handle(
        RecordFinding(source_id=s, description="x", severity="general",
            rectification_deadline=START + timedelta(days=30)),
        CommandContext(actor=INSPECTOR)).subject,
    "rectify finding": lambda app, s, a, f: app.handle(
        RectifyFinding(source_id=s, finding_id=f, evidence=["x"]),
        CommandContext(actor=SAFETY)).subject,
}


@pytest.mark.parametrize("command", sorted(COMMANDS_ON_A_DECOMMISSIONED_SOURCE))
def test_a_decommissioned_source_refuses_every_command(
        app: HazardSources, clock: Clock, depot: UUID, command: str) -> None:
    read(app, clock, depot, 45)
    alarm_id = alarm_id_for(depot, "GT-1", 1)
    finding_id = app.handle(
        RecordFinding(source_id=depot, description="x", severity="general",
            rectification_deadline=clock.now + timedelta(days=3)),
        CommandContext(actor=INSPECTOR)).result
    app.handle(
        DecommissionHazardSource(source_id=depot, reason="closed down"),
        CommandContext(actor=SAFETY))
    version = app.source(depot).version
    with pytest.raises(IllegalTransition, match="it is decommissioned") as refused:
        COMMANDS_ON_A_DECOMMISSIONED_SOURCE[command](app, depot, alarm_id, finding_id)
    assert refused.value.kind == "hazard source"
    assert refused.value.aggregate_id == depot
    assert app.source(depot).version == version


# --- commands: idempotency and permissions ---------------------------------------------------


def test_a_repeated_registration_registers_once(app: HazardSources) -> None:
    first = register_depot(app, command_id="reg-1")
    stored = events_stored(app)
    assert register_depot(app, command_id="reg-1") == first
    assert events_stored(app) == stored
    with pytest.raises(CommandIdReused):
        register_depot(app, source_name="West LPG depot", command_id="reg-1")


def test_a_repeated_finding_is_recorded_once(app: HazardSources, clock: Clock,
                                             depot: UUID) -> None:
    finding = RecordFinding(source_id=depot, description="blocked exit", severity="general",
                            rectification_deadline=clock.now + timedelta(days=3))
    context = CommandContext(actor=INSPECTOR, command_id="finding-7")
    first = app.handle(finding, context).result
    assert first == HazardSources.finding_id_for("finding-7")
    version = app.source(depot).version
    assert app.handle(finding, context).repeated
    assert app.source(depot).version == version
    assert list(app.source(depot).findings) == [first]


def test_a_repeated_acknowledgement_command_changes_nothing(
        app: HazardSources, clock: Clock, depot: UUID) -> None:
    read(app, clock, depot, 45)
    alarm_id = alarm_id_for(depot, "GT-1", 1)
    app.handle(
        AcknowledgeAlarm(source_id=depot, alarm_id=alarm_id),
        CommandContext(actor=DUTY, command_id="ack-1"))
    version = app.source(depot).version
    app.handle(
        AcknowledgeAlarm(source_id=depot, alarm_id=alarm_id),
        CommandContext(actor=DUTY, command_id="ack-1"))
    assert app.source(depot).version == version


@pytest.mark.parametrize(("actor", "command"), [
    (INSPECTOR, lambda app, s, a: register_depot(app, actor=INSPECTOR)),
    (OPERATOR, lambda app, s, a: app.judge_reading(
        RecordReading(source_id=s, sensor_id="GT-1", value=1),
        CommandContext(actor=OPERATOR))),
    (SAFETY, lambda app, s, a: app.handle(
        AcknowledgeAlarm(source_id=s, alarm_id=a),
        CommandContext(actor=SAFETY)).subject),
    (INSPECTOR, lambda app, s, a: app.handle(
        RecordAlarmEscalation(source_id=s, alarm_id=a),
        CommandContext(actor=INSPECTOR)).subject),
    (GATEWAY, lambda app, s, a: app.handle(
        AddSensor(source_id=s, sensor_id="GT-2", kind="pressure", unit="MPa", direction="high",
            warning=1, alarm=2),
        CommandContext(actor=GATEWAY)).subject),
    (LEADER, lambda app, s, a: app.handle(
        DecommissionHazardSource(source_id=s, reason="x"),
        CommandContext(actor=LEADER)).subject),
    (OPERATOR, lambda app, s, a: app.handle(
        RecordFinding(source_id=s, description="x", severity="general",
            rectification_deadline=START + timedelta(days=30)),
        CommandContext(actor=OPERATOR)).subject),
])
def test_commands_need_a_permitted_role(
        app: HazardSources, clock: Clock, depot: UUID, actor: Actor,
        command: Callable[[HazardSources, UUID, UUID], object]) -> None:
    read(app, clock, depot, 45)
    stored = events_stored(app)
    with pytest.raises(NotPermitted):
        command(app, depot, alarm_id_for(depot, "GT-1", 1))
    assert events_stored(app) == stored


def test_an_unknown_source_is_not_found(app: HazardSources) -> None:
    with pytest.raises(NotFound, match="hazard source"):
        app.judge_reading(
            RecordReading(source_id=uuid4(), sensor_id="GT-1", value=1),
            CommandContext(actor=GATEWAY))


# --- latest readings cache and catalogue -----------------------------------------------------


def test_the_latest_readings_cache_is_bounded_and_keeps_the_newest() -> None:
    cache = LatestReadings(max_entries=2)
    ids = [uuid4() for _ in range(3)]
    newer = LatestReading(value=2, measured_at=START + timedelta(minutes=1), level=N)
    cache.remember(ids[0], "s", newer)
    cache.remember(ids[0], "s", LatestReading(value=1, measured_at=START, level=N))
    assert cache.get(ids[0], "s") == newer
    cache.remember(ids[1], "s", newer)
    cache.remember(ids[2], "s", newer)
    assert cache.get(ids[0], "s") is None
    assert cache.of_source(ids[2]) == {"s": newer}
    with pytest.raises(InvalidValue):
        LatestReadings(max_entries=0)


def test_the_built_in_hazard_catalogue_has_the_expected_types_and_units() -> None:
    assert {"chemical-plant", "chemical-storage", "gas-station", "lpg-depot", "reservoir-dam",
            "landslide-slope", "deep-excavation"} <= set(CATALOGUE.hazard_types)
    assert CATALOGUE.sensor_kind("gas-concentration").units == ("%LEL", "ppm")
    assert CATALOGUE.check_unit("temperature", "°C") == "°C"
    assert CATALOGUE.alarm_deadband == 0.02


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["hazard_types"].append(dict(d["hazard_types"][0])), "more than once"),
    (lambda d: d["sensor_kinds"][0].update(units=[]), "units"),
    (lambda d: d["sensor_kinds"][0].update(units=["ppm", "ppm"]), "more than once"),
    (lambda d: d.update(alarm_deadband=0.7), "alarm_deadband"),
    (lambda d: d["hazard_types"][0].update(default_impact_radius_m=0), "default_impact_radius"),
    (lambda d: d.update(colour="red"), "colour"),
])
def test_a_bad_hazard_catalogue_is_refused_with_the_place_of_the_error(
        tmp_path: Path, mutate: Callable[[dict[str, Any]], None], message: str) -> None:
    built_in = Path(__file__).resolve().parents[3] / "domain" / "data" / "hazard_types.json"
    data = json.loads(built_in.read_text(encoding="utf-8"))
    mutate(data)
    (tmp_path / "hazard_types.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogueError, match=message):
        HazardCatalogue.load(tmp_path)


def test_a_missing_hazard_catalogue_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="file not found"):
        HazardCatalogue.load(tmp_path)
