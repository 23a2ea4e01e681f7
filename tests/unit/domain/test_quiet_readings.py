"""A reading judged without running its command (`HazardSource.quiet_outcome`, what ingest does
for most readings in a batch) gets exactly the judgement the command would give, and only when
the command would record nothing; judged in a batch on the stored state, readings leave the
same events and latest reading as the same readings judged one by one."""

from __future__ import annotations

import random
from copy import deepcopy
from datetime import UTC, datetime, timedelta

from cityops.domain.actors import Actor, Role
from cityops.domain.application import CommandBatch
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.domain.hazards.commands import AddSensor, RecordReading, RegisterHazardSource
from cityops.domain.hazards.source import HazardSource

POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
PLANNER = Actor("planner-li", Role.PLANNER)
GATEWAY = Actor("iot-gateway", Role.SYSTEM)
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def watched_tank(app: HazardSources) -> HazardSource:
    source = app.handle(
        RegisterHazardSource(hazard_type="lpg-depot", source_name="LPG depot",
                             owner_name="Gas Co", owner_contact="+86 25 0000 0001", grade=1,
                             location=GeoPoint(lon=118.79, lat=32.06)),
        CommandContext(actor=PLANNER, at=START, command_id="tank")).subject
    for sensor, direction, warning, alarm in (("gas-1", "high", 20, 40),
                                              ("level-1", "low", 40, 20)):
        app.handle(AddSensor(source_id=source, sensor_id=sensor, kind="gas-concentration",
                             unit="%LEL", direction=direction, warning=warning, alarm=alarm),
                   CommandContext(actor=PLANNER, at=START))
    return app.load(HazardSource, source)


def readings(seed: int, count: int) -> list[tuple[str, float, datetime]]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        # Mostly in order, now and then a late one; values around both thresholds.
        late = rng.random() < 0.1
        at = START + timedelta(minutes=5, seconds=10 * i - (60 if late else 0))
        out.append((rng.choice(("gas-1", "level-1")), rng.choice(
            (5.0, 15.0, 19.9, 20.0, 25.0, 39.0, 40.0, 45.0, 60.0)), at))
    return out


def test_a_quiet_judgement_is_the_commands_judgement_and_only_when_it_records_nothing() -> None:
    app = HazardSources(POPO, catalogue=HazardCatalogue.load(), clock=lambda: START
                        + timedelta(days=1))
    source = watched_tank(app)
    for seed in range(20):
        for sensor, value, at in readings(seed, 40):
            quiet = source.quiet_outcome(sensor_id=sensor, value=value, measured_at=at)
            before = deepcopy(source.__dict__)
            observed = source.observe(sensor_id=sensor, value=value, measured_at=at,
                                      actor=GATEWAY)
            recorded = bool(source.pending_events)
            if quiet is None:
                assert recorded, (sensor, value, at)
            else:
                assert not recorded and quiet == observed
                assert source.__dict__ == before
            source.collect_events()


def test_readings_judged_in_a_batch_leave_what_they_leave_one_by_one() -> None:
    results = []
    for batched in (False, True):
        app = HazardSources(POPO, catalogue=HazardCatalogue.load(),
                            clock=lambda: START + timedelta(days=1))
        source = watched_tank(app).id
        batch: CommandBatch[int] = CommandBatch()
        effects = []
        for n, (sensor, value, at) in enumerate(readings(7, 120)):
            command = RecordReading(source_id=source, sensor_id=sensor, value=value,
                                    measured_at=at)
            if batched:
                context = CommandContext(actor=GATEWAY, batch=batch)
                outcome = batch.stage(n, lambda command=command, context=context,
                                      app=app: app.judge_reading(command, context))
                if n % 25 == 24:
                    assert batch.commit() == []
            else:
                outcome = app.judge_reading(command, CommandContext(actor=GATEWAY))
            effects.append((outcome.effect, outcome.level))
        assert batch.commit() == []
        events = [type(app.mapper.to_domain_event(e)).__qualname__
                  for e in app.recorder.select_notifications(start=None, limit=10_000)]
        latest = {s: app.latest_reading(source, s) for s in ("gas-1", "level-1")}
        results.append((effects, events, latest))
    assert results[0] == results[1]
    assert "HazardSource.AlarmRaised" in results[0][1]
