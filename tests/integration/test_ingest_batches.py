"""A batch of ingest messages on the real stores (SQLite and PostgreSQL): what records events is
saved together, each message keeping the answer it would get alone; a bad message is
dead-lettered alone and leaves nothing half-written; a worker that dies in the middle of
saving a batch and is restarted (the batch delivered again, as Kafka does for offsets not
committed) ends with exactly what a run without the crash stores; and a message that records
no event writes no event and is still done (its offset goes to the consumer's commit).

Runs the pipeline as the workers do, without a broker: the batch is what one poll hands over.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import pytest
from kafka import TopicPartition

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.application import COMMAND_NAMESPACE, CommandReceipt
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.hazards.commands import AddSensor, RegisterHazardSource
from cityops.domain.resources.commands import DispatchResource, RegisterResource
from cityops.domain.resources.resource import Resource
from cityops.ingest import messages
from cityops.ingest.composition import build_pipeline, ingest_store
from cityops.ingest.deadletters import StoredDeadLetters
from cityops.ingest.kafka_worker import KafkaIngestWorker
from cityops.ingest.pipeline import Delivery, IngestPipeline, Outcome
from cityops.ingest.settings import IngestSettings
from cityops.ingest.topics import IngestStream, Topics
from cityops.ingest.tracks import ResourceTracks
from cityops.settings import Settings

INSPECTOR = Actor("inspector-liu", Role.INSPECTOR)
OPERATOR = Actor("operator-wu", Role.HOTLINE_OPERATOR)
PLANNER = Actor("planner-li", Role.PLANNER)
DISPATCHER = Actor("dispatcher-zhao", Role.DISPATCHER)
GATEWAY = Actor("iot-gateway", Role.SYSTEM)
TRACKER = Actor("vehicle-tracker", Role.SYSTEM)
TOPICS = Topics()
BACK_ENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SOURCE_COMMAND = "batches-test-source"


class Crash(BaseException):
    """The worker process dies here (nothing after it runs; not an error it handles)."""


@dataclass
class Site:
    """One back end's stores, and systems opened on them (a restart opens another)."""

    settings: Settings
    start: datetime

    def open(self) -> CitySystem:
        return build_system(self.settings)


@pytest.fixture(params=BACK_ENDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Site]]:
    """A maker of new, empty sites on the back end, each set up with two fire engines (one
    dispatched) and a watched gas tank, all registered an hour and a half ago."""
    made: list[str] = []
    count = iter(range(100))

    def make() -> Site:
        if request.param == "sqlite":
            settings = Settings(data_dir=tmp_path / f"site-{next(count)}")
        else:
            url = request.getfixturevalue("test_databases").create("batches")
            made.append(url)
            settings = Settings(database_url=url)
        site = Site(settings, datetime.now(UTC) - timedelta(minutes=80))
        system = site.open()
        try:
            set_up(system, site.start - timedelta(minutes=10))
        finally:
            system.close()
        return site

    yield make
    for url in made:
        request.getfixturevalue("test_databases").drop(url)


def set_up(system: CitySystem, at: datetime) -> None:
    home = city_points(system)[0]
    for n in (1, 2):
        system.resources.handle(
            RegisterResource(kind="fire-engine", resource_name=f"Engine {n}",
                             call_sign=f"FIRE {n}", department="fire", home_base=home),
            CommandContext(actor=PLANNER, at=at, command_id=f"batches-engine-{n}"))
    system.resources.handle(
        DispatchResource(resource_id=Resource.create_id("FIRE 1"), incident_id=UUID(int=7)),
        CommandContext(actor=DISPATCHER, at=at + timedelta(minutes=1),
                       command_id="batches-dispatch"))
    source = system.hazards.handle(
        RegisterHazardSource(hazard_type="chemical-storage", source_name="Tank farm",
                             owner_name="Gas Co", owner_contact="+86 25 0000 0000", grade=2,
                             location=home),
        CommandContext(actor=PLANNER, at=at, command_id=SOURCE_COMMAND)).subject
    system.hazards.handle(
        AddSensor(source_id=source, sensor_id="gas-1", kind="gas-concentration", unit="%LEL",
                  direction="high", warning=20, alarm=40),
        CommandContext(actor=PLANNER, at=at, command_id="batches-sensor"))


def city_points(system: CitySystem) -> list[GeoPoint]:
    cells = system.city.map.cells.geometry.iloc[::97].representative_point()
    return [GeoPoint(lon=float(p.x), lat=float(p.y)) for p in cells]


def tank(system: CitySystem) -> UUID:
    """The watched tank's id (derived from the command id that registered it)."""
    return uuid5(COMMAND_NAMESPACE, f"hazard-source:{SOURCE_COMMAND}")


def pipeline_of(system: CitySystem) -> IngestPipeline:
    store = ingest_store(system)
    return build_pipeline(system, IngestSettings(), store, StoredDeadLetters(store),
                          worker="batches-test")


def delivered(batch: list[tuple[IngestStream, dict[str, Any] | bytes]]) -> list[Delivery]:
    return [Delivery(topic=TOPICS.name(stream),
                     value=m if isinstance(m, bytes) else messages.encode(m),
                     partition=0, offset=offset)
            for offset, (stream, m) in enumerate(batch)]


def mixed_batch(system: CitySystem, start: datetime
                ) -> list[tuple[IngestStream, dict[str, Any] | bytes]]:
    """Reports, calls, two engines' fixes and statuses, and readings that raise, change and
    clear an alarm, interleaved as one poll hands them over (several messages on one
    aggregate each: later ones build on what earlier ones staged)."""
    where = city_points(system)
    source = tank(system)
    out: list[tuple[IngestStream, dict[str, Any] | bytes]] = []
    readings = (5.0, 25.0, 26.0, 45.0, 44.0, 10.0, 8.0, 30.0)
    for i in range(8):
        at = start + timedelta(seconds=20 * i)
        out.append((IngestStream.GRID_CASE_REPORTS, messages.grid_case_report(
            category=("E0101", "C0105")[i % 2], description=f"report {i}",
            location=where[1 + i], actor=INSPECTOR, occurred_at=at)))
        out.append((IngestStream.RESOURCE_POSITIONS, messages.resource_position(
            call_sign="FIRE 2", actor=TRACKER, measured_at=at,
            # Every other fix 300 m on (recorded), the others a metre off (only tracked).
            position=GeoPoint(lon=where[0].lon + 0.003 * (i // 2) + 0.00001 * (i % 2),
                              lat=where[0].lat))))
        out.append((IngestStream.HAZARD_READINGS, messages.hazard_reading(
            source_id=source, sensor_id="gas-1", value=readings[i], measured_at=at,
            actor=GATEWAY)))
        if i in (2, 5):
            out.append((IngestStream.HOTLINE_TICKETS, messages.hotline_ticket(
                channel="phone", ticket_type="complaint", topic="noise",
                description=f"call {i}", location=where[12 + i], actor=OPERATOR,
                occurred_at=at)))
        if i in (3, 4):
            out.append((IngestStream.RESOURCE_STATUS, messages.resource_status(
                call_sign="FIRE 1", status=("en-route", "on-scene")[i - 3], actor=TRACKER,
                occurred_at=at)))
    return out


def stored(system: CitySystem) -> dict[str, Any]:
    """What the stores hold, in terms that do not depend on when commands ran: per
    aggregate the classes of its events in order; the track's fixes; the latest reading."""
    events: dict[str, Counter[tuple[UUID, tuple[str, ...]]]] = {}
    for application in (system.grid_cases, system.hotline, system.hazards, system.resources):
        streams: dict[UUID, list[str]] = {}
        for n in application.recorder.select_notifications(start=None, limit=100_000):
            streams.setdefault(n.originator_id, []).append(n.topic.rsplit(":", 1)[1])
        events[application.name] = Counter((i, tuple(t)) for i, t in streams.items())
    store = ingest_store(system)
    try:
        track = sorted((str(p.resource_id), p.measured_at.isoformat(), p.message_id)
                       for p in ResourceTracks(store).movement())
    finally:
        store.close()
    latest = system.hazards.latest_readings.get(tank(system), "gas-1")
    return {"events": events, "track": track,
            "latest": (latest.value, latest.level) if latest else None}


def receipt_of(system: CitySystem, message: dict[str, Any]) -> bool:
    receipt = CommandReceipt.create_id(message["message_id"])
    return any(app.exists(receipt) for app in (system.grid_cases, system.hotline,
                                                system.resources))


# --- a bad message in a batch ------------------------------------------------------------------


def test_a_batch_with_failing_messages_saves_the_others_and_dead_letters_each_alone(
        site: Callable[[], Site]) -> None:
    here = site()
    system = here.open()
    try:
        pipeline = pipeline_of(system)
        where = city_points(system)
        at = here.start

        def report(text: str, location: GeoPoint, seconds: int) -> dict[str, Any]:
            return messages.grid_case_report(category="E0101", description=text,
                                             location=location, actor=INSPECTOR,
                                             occurred_at=at + timedelta(seconds=seconds))

        good = [report("first", where[1], 1), report("second", where[2], 2),
                report("third", where[3], 9)]
        outside = report("in the sea", GeoPoint(lon=0.0, lat=0.0), 3)
        ghost = messages.resource_status(call_sign="GHOST 9", status="en-route",
                                         actor=TRACKER, occurred_at=at + timedelta(seconds=4))
        en_route = messages.resource_status(call_sign="FIRE 1", status="en-route",
                                            actor=TRACKER, occurred_at=at + timedelta(seconds=5))
        on_scene = messages.resource_status(call_sign="FIRE 1", status="on-scene",
                                            actor=TRACKER, occurred_at=at + timedelta(seconds=6))
        # En route again once on scene: refused by the resource's rules, decided on what
        # the two commands before it on the same engine staged in the batch.
        skipped = messages.resource_status(call_sign="FIRE 1", status="en-route",
                                           actor=TRACKER, occurred_at=at + timedelta(seconds=7))
        reused = dict(good[0], payload=dict(good[0]["payload"], description="other text"))
        batch: list[tuple[IngestStream, dict[str, Any] | bytes]] = [
            (IngestStream.GRID_CASE_REPORTS, good[0]),
            (IngestStream.GRID_CASE_REPORTS, outside),
            (IngestStream.RESOURCE_STATUS, ghost),
            (IngestStream.RESOURCE_STATUS, en_route),
            (IngestStream.GRID_CASE_REPORTS, b'{"schema": "grid-case-report/1", oops'),
            (IngestStream.RESOURCE_STATUS, on_scene),
            (IngestStream.RESOURCE_STATUS, skipped),
            (IngestStream.GRID_CASE_REPORTS, good[1]),
            (IngestStream.GRID_CASE_REPORTS, reused),
            (IngestStream.GRID_CASE_REPORTS, good[2]),
        ]
        before = stored(system)
        done = pipeline.process_batch(delivered(batch))
        assert done.stalled is None
        ok, out = Outcome.APPLIED, Outcome.DEAD_LETTERED
        assert done.outcomes == [ok, out, out, ok, out, ok, out, ok, out, ok]

        letters = {(letter.offset, letter.code)
                   for letter in StoredDeadLetters(ingest_store(system)).recent(10)}
        assert letters == {(1, "invalid-value"), (2, "not-found"), (4, "malformed"),
                           (6, "illegal-transition"), (8, "message-id-reused")}
        # The good messages are saved, each once, with its receipt...
        for message in (*good, en_route, on_scene):
            assert receipt_of(system, message), message["payload"]
        after = stored(system)
        cases = after["events"]["gridcases"] - before["events"]["gridcases"]
        assert sum(1 for (_, kinds) in cases.elements() if kinds[0] == "GridCase.Reported") == 3
        assert sum(cases.values()) == 6  # three cases, three receipts
        engine = Resource.create_id("FIRE 1")
        assert system.resources.resource(engine).status.value == "on-scene"
        # ...and nothing of the bad ones: no receipt, no case, no event on the engine.
        for message in (outside, ghost, skipped):
            assert not receipt_of(system, message)
        assert not system.grid_cases.exists(
            uuid5(COMMAND_NAMESPACE, f"grid-case:{outside['message_id']}"))
        resource_events = after["events"]["resources"] - before["events"]["resources"]
        assert sum(1 for (_, kinds) in resource_events.elements()
                   if kinds[0].startswith("CommandReceipt")) == 2
        pipeline.close()
    finally:
        system.close()


# --- a crash in the middle of a batch ----------------------------------------------------------


CRASH_POINTS = ["first save", "second save", "third save", "track", "latest readings"]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_a_worker_that_dies_mid_batch_and_is_restarted_stores_exactly_a_clean_run(
        site: Callable[[], Site], crash_at: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clean, crashed = site(), site()

    system = clean.open()
    try:
        batch = mixed_batch(system, clean.start)
        pipeline = pipeline_of(system)
        assert pipeline.process_batch(delivered(batch)).stalled is None
        pipeline.close()
        expected = stored(system)
    finally:
        system.close()

    system = crashed.open()
    saves = Counter[str]()
    try:
        pipeline = pipeline_of(system)
        saving = {"first save": 1, "second save": 2, "third save": 3}.get(crash_at)
        for application in (system.grid_cases, system.hotline, system.hazards,
                            system.resources):
            real = application.save

            def save(*objects: Any, real: Any = real, **kwargs: Any) -> Any:
                saves["save"] += 1
                if saves["save"] == saving:
                    raise Crash(crash_at)
                return real(*objects, **kwargs)

            monkeypatch.setattr(application, "save", save)
        target = pipeline.target
        if crash_at == "track":
            monkeypatch.setattr(target.tracks, "record_many",
                                lambda points: (_ for _ in ()).throw(Crash(crash_at)))
        if crash_at == "latest readings":
            assert target.lookups is not None
            monkeypatch.setattr(target.lookups, "flush",
                                lambda: (_ for _ in ()).throw(Crash(crash_at)))
        with pytest.raises(Crash):
            pipeline.process_batch(delivered(batch))
        assert saves["save"] >= (saving or 1)
    finally:
        monkeypatch.undo()
        system.close()

    # Restarted: new processes on the same stores; the offsets were not committed, so the
    # whole batch comes again.
    system = crashed.open()
    try:
        pipeline = pipeline_of(system)
        done = pipeline.process_batch(delivered(batch))
        assert done.stalled is None and done.done == len(batch)
        assert Outcome.DEAD_LETTERED not in done.outcomes
        pipeline.close()
        assert stored(system) == expected
        assert expected["events"]["hazards"]  # the readings raised and cleared an alarm
        alarm_events = [kinds for (_, kinds) in expected["events"]["hazards"].elements()]
        assert any("HazardSource.AlarmRaised" in kinds and "HazardSource.AlarmCleared" in kinds
                   for kinds in alarm_events)
        assert len(expected["track"]) == 8
    finally:
        system.close()


# --- messages that record no event ---------------------------------------------------------------


def event_positions(system: CitySystem) -> dict[str, int | None]:
    return {app.name: app.recorder.max_notification_id()
            for app in (system.grid_cases, system.hotline, system.hazards, system.resources)}


class Consumer:
    """What the worker asks of a Kafka consumer while it processes a poll."""

    def __init__(self) -> None:
        self.sought: list[tuple[Any, int]] = []

    def seek(self, partition: Any, offset: int) -> None:
        self.sought.append((partition, offset))


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def test_messages_that_record_no_event_write_none_and_their_offsets_are_committed(
        site: Callable[[], Site]) -> None:
    here = site()
    system = here.open()
    try:
        pipeline = pipeline_of(system)
        where = city_points(system)
        at = here.start
        first_fix = messages.resource_position(call_sign="FIRE 2", actor=TRACKER,
                                               position=where[0], measured_at=at)
        report = messages.grid_case_report(category="E0101", description="garbage",
                                           location=where[1], actor=INSPECTOR,
                                           occurred_at=at)
        assert pipeline.process_batch(delivered([
            (IngestStream.RESOURCE_POSITIONS, first_fix),
            (IngestStream.GRID_CASE_REPORTS, report)])).outcomes == [Outcome.APPLIED] * 2
        positions = event_positions(system)

        # Quiet readings, fixes that only wander, and the same report again (a redelivery).
        quiet: list[tuple[IngestStream, dict[str, Any] | bytes]] = []
        for i in range(1, 6):
            quiet.append((IngestStream.HAZARD_READINGS, messages.hazard_reading(
                source_id=tank(system), sensor_id="gas-1", value=5.0 + i,
                measured_at=at + timedelta(seconds=i), actor=GATEWAY)))
            quiet.append((IngestStream.RESOURCE_POSITIONS, messages.resource_position(
                call_sign="FIRE 2", actor=TRACKER, measured_at=at + timedelta(seconds=i),
                position=GeoPoint(lon=where[0].lon + 0.00001 * i, lat=where[0].lat))))
        quiet.append((IngestStream.GRID_CASE_REPORTS, report))
        records = [Record(d.topic, 0, 100 + n, None, d.value or b"")
                   for n, d in enumerate(delivered(quiet))]
        worker = KafkaIngestWorker(restarted := pipeline_of(system), bootstrap_servers="unused",
                                   group_id="batches-test", topics=TOPICS.inputs)
        polled: dict[Any, list[Record]] = {}
        for record in records:
            polled.setdefault(TopicPartition(record.topic, 0), []).append(record)
        consumer = Consumer()
        worker._process(consumer, polled)  # the worker's own poll step

        assert event_positions(system) == positions  # not one event written
        assert consumer.sought == []  # nothing handed back
        committed = worker._take_pending()  # what the next commit sends
        assert {tp.topic: meta.offset for tp, meta in committed.items()} == {
            TOPICS.name(IngestStream.HAZARD_READINGS): 109,
            TOPICS.name(IngestStream.RESOURCE_POSITIONS): 110,
            TOPICS.name(IngestStream.GRID_CASE_REPORTS): 111,
        }
        counts = restarted.counters.total()
        assert (counts.consumed, counts.applied, counts.duplicate) == (11, 10, 1)
        # What they do keep is kept: every fix in the track, the latest reading.
        assert len(stored(system)["track"]) == 6
        latest = system.hazards.latest_readings.get(tank(system), "gas-1")
        assert latest is not None and latest.value == 10.0
        restarted.close()
        pipeline.close()
    finally:
        system.close()


def test_the_batches_messages_are_kept_in_order_per_key(site: Callable[[], Site]) -> None:
    """Readings of one source in one batch raise, raise further and clear an alarm in the
    order they came, as they would one by one."""
    here = site()
    system = here.open()
    try:
        pipeline = pipeline_of(system)
        at = here.start
        values = (25.0, 45.0, 10.0, 30.0)
        done = pipeline.process_batch(delivered([
            (IngestStream.HAZARD_READINGS, messages.hazard_reading(
                source_id=tank(system), sensor_id="gas-1", value=v,
                measured_at=at + timedelta(seconds=i), actor=GATEWAY))
            for i, v in enumerate(values)]))
        assert done.outcomes == [Outcome.APPLIED] * 4
        kinds = [n.topic.rsplit(".", 1)[1] for n in system.hazards.recorder.select_notifications(
            start=None, limit=100) if "Alarm" in n.topic]
        assert kinds == ["AlarmRaised", "AlarmLevelChanged", "AlarmCleared", "AlarmRaised"]
        pipeline.close()
    finally:
        system.close()
