"""Ingest workers as real processes (`python -m cityops.ingest run`), killed with SIGKILL in
the middle of a stream: nothing is lost and nothing is applied twice.

A producer thread feeds grid-case reports (each with a receipt), position fixes of three
vehicles and readings of one sensor at a steady rate. What the event store holds at the end
is compared with what the same messages do when applied once each, in order, to the same
domain in memory: the same cases, the same recorded positions, the same alarm events.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from kafka import KafkaProducer

from cityops.bootstrap import build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.catalogue import Catalogue
from cityops.domain.geometry import GeoPoint
from cityops.domain.hazards.application import HazardSources
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.domain.resources.application import Resources
from cityops.ingest import messages
from cityops.ingest.composition import ingest_store
from cityops.ingest.counters import CounterTable
from cityops.ingest.deadletters import read_dead_letter_topic
from cityops.ingest.kafka_worker import group_lag
from cityops.ingest.topics import IngestStream, Topics, create_topics, delete_topics
from cityops.ingest.tracks import ResourceTracks
from cityops.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

INSPECTOR = Actor("inspector-liu", Role.INSPECTOR)
PLANNER = Actor("planner-li", Role.PLANNER)
GATEWAY = Actor("iot-gateway", Role.SYSTEM)
TRACKER = Actor("vehicle-tracker", Role.SYSTEM)
CALL_SIGNS = ("FIRE 21", "FIRE 22", "FIRE 23")
READING_CYCLE = (5.0, 15.0, 25.0, 35.0, 45.0, 35.0, 25.0, 15.0)
# Generous: a rebalance under a loaded CI machine can take a while; nothing is timed.
WAIT_S = 180.0
RECEIPT_TOPIC = "cityops.domain.application:CommandReceipt.Recorded"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Stream:
    """The messages of one test, in the order they are produced."""

    reports: list[dict[str, Any]] = field(default_factory=list)
    fixes: list[dict[str, Any]] = field(default_factory=list)
    readings: list[dict[str, Any]] = field(default_factory=list)
    ordered: list[tuple[IngestStream, dict[str, Any]]] = field(default_factory=list)


class Plant:
    """A database, a topic namespace, the reference data, and worker processes."""

    def __init__(self, database_url: str, bootstrap: str, data_dir: Path) -> None:
        self.database_url = database_url
        self.bootstrap = bootstrap
        self.data_dir = data_dir
        self.namespace = f"cityops-test-{uuid.uuid4().hex[:10]}"
        self.topics = Topics(self.namespace)
        self.group = f"{self.namespace}-workers"
        create_topics(bootstrap, self.topics)
        # The test's own system creates every table before workers start (two processes
        # creating the same PostgreSQL table at once collide).
        self.system = build_system(Settings(database_url=database_url, data_dir=data_dir))
        self.store = ingest_store(self.system)
        ResourceTracks(self.store).create_table()
        CounterTable(self.store)
        self.registered_at = datetime.now(UTC) - timedelta(hours=2)
        cells = self.system.city.map.cells.geometry
        self.points = [GeoPoint(lon=float(p.x), lat=float(p.y))
                       for p in cells.iloc[::11].representative_point()]
        for number, call_sign in enumerate(CALL_SIGNS):
            self.system.resources.register_resource(
                kind="fire-engine", name=call_sign, call_sign=call_sign, department="fire",
                home_base=self.points[number], actor=PLANNER, at=self.registered_at)
        self.tank = self.system.hazards.register(
            hazard_type="lpg-depot", name="LPG depot", owner_name="Gas Co",
            owner_contact="+86 25 0000 0001", grade=1, location=self.points[5], actor=PLANNER,
            at=self.registered_at)
        self.system.hazards.add_sensor(self.tank, sensor_id="lpg-1", kind="gas-concentration",
                                       unit="%LEL", direction="high", warning=20, alarm=40,
                                       actor=PLANNER, at=self.registered_at)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def stream(self, reports: int, fixes_per_vehicle: int, readings: int) -> Stream:
        stream = Stream()
        start = datetime.now(UTC) - timedelta(hours=1)
        for i in range(reports):
            stream.reports.append(messages.grid_case_report(
                category=("E0101", "C0105", "E0401")[i % 3], description=f"report {i}",
                location=self.points[(7 + i) % len(self.points)], actor=INSPECTOR))
        for i in range(fixes_per_vehicle):
            for number, call_sign in enumerate(CALL_SIGNS):
                # Each vehicle drives east about 40 m per 4 s fix.
                base = self.points[number]
                stream.fixes.append(messages.resource_position(
                    call_sign=call_sign, measured_at=start + timedelta(seconds=4 * i),
                    position=GeoPoint(lon=base.lon + 0.0004 * i, lat=base.lat),
                    actor=TRACKER))
        for i in range(readings):
            stream.readings.append(messages.hazard_reading(
                source_id=self.tank, sensor_id="lpg-1", value=READING_CYCLE[i % 8],
                measured_at=start + timedelta(seconds=10 * i), actor=GATEWAY))
        # Interleave the three kinds the way they would arrive.
        queues = [(IngestStream.GRID_CASE_REPORTS, list(stream.reports)),
                  (IngestStream.RESOURCE_POSITIONS, list(stream.fixes)),
                  (IngestStream.HAZARD_READINGS, list(stream.readings))]
        while any(q for _, q in queues):
            for kind, queue in queues:
                if queue:
                    stream.ordered.append((kind, queue.pop(0)))
        return stream

    def produce(self, stream: Stream, rate_per_s: float,
                hold: tuple[int, threading.Event] | None = None) -> threading.Thread:
        """Send the stream at a steady rate from a background thread; `hold=(n, gate)`
        sends the first n messages, then waits for `gate` before sending the rest."""

        def run() -> None:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all",
                                     linger_ms=5)
            started = time.monotonic()
            for number, (kind, message) in enumerate(stream.ordered):
                if hold is not None and number == hold[0]:
                    producer.flush()
                    if not hold[1].wait(WAIT_S):
                        break
                    started = time.monotonic() - number / rate_per_s
                due = started + number / rate_per_s
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
                producer.send(self.topics.name(kind), value=messages.encode(message),
                              key=messages.key_of(message).encode())
            producer.flush()
            producer.close()

        thread = threading.Thread(target=run, name="producer")
        thread.start()
        return thread

    def start_worker(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env.update({
            "CITYOPS_DATABASE_URL": self.database_url,
            "CITYOPS_DATA_DIR": str(self.data_dir),
            "CITYOPS_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "CITYOPS_INGEST_TOPIC_NAMESPACE": self.namespace,
            "CITYOPS_INGEST_GROUP_ID": self.group,
            "CITYOPS_INGEST_SESSION_TIMEOUT_MS": "6000",
            "CITYOPS_INGEST_STATS_INTERVAL_S": "0.5",
            # A worker saves what a poll decided together: small polls give a kill many
            # moments between two saves (a worker that starts behind the producer would
            # otherwise take the backlog in two or three saves).
            "CITYOPS_INGEST_POLL_RECORDS": "50",
        })
        log = self.data_dir / f"worker-{len(self.processes) + 1}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            process = subprocess.Popen([sys.executable, "-m", "cityops.ingest", "run"],
                                       env=env, stdout=out, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def owns_partition_of(self, process: subprocess.Popen[bytes], stream: IngestStream) -> bool:
        """Whether a worker's latest assignment (as its log says) includes a partition of
        `stream`'s topic."""
        log = self.logs[self.processes.index(process)]
        owned = [line for line in log.read_text(errors="replace").splitlines()
                 if " now owns " in line]
        return bool(owned) and f"{self.topics.name(stream)}[" in owned[-1]

    def applied_by(self, process: subprocess.Popen[bytes]) -> int:
        """What one worker process has applied so far, by its last counters (its name
        carries its pid)."""
        with self.store.transaction() as txn:
            txn.execute("SELECT worker, applied FROM ingest_counters")
            rows = txn.fetchall()
        return sum(int(n) for worker, n in rows if f":{process.pid}:" in str(worker))

    def receipts(self) -> int:
        with psycopg.connect(self.database_url) as connection:
            row = connection.execute("SELECT count(*) FROM gridcases_events WHERE topic = %s",
                                     (RECEIPT_TOPIC,)).fetchone()
        return int(row[0]) if row else 0

    def caught_up(self, total: int) -> bool:
        lag = group_lag(self.bootstrap, self.group, self.topics.inputs)
        return sum(lag.values()) == 0 and self.end_offsets() == total

    def end_offsets(self) -> int:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
        try:
            partitions = [TopicPartition(t, p) for t in self.topics.inputs
                          for p in consumer.partitions_for_topic(t) or []]
            return sum(consumer.end_offsets(partitions).values())
        finally:
            consumer.close()

    def worker_logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
                         for log in self.logs if log.exists())

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.store.close()
        self.system.close()
        delete_topics(self.bootstrap, self.topics)


@pytest.fixture
def plant(fresh_database: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Plant]:
    plant = Plant(fresh_database, kafka_bootstrap, tmp_path)
    yield plant
    plant.close()


def applied_once_each(plant: Plant, stream: Stream) -> dict[str, Any]:
    """What the stream does to the domain when each message is applied exactly once, in
    order: the same applications, in memory."""
    popo = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    catalogue = Catalogue.load()
    resources = Resources(popo, catalogue=catalogue)
    hazards = HazardSources(popo, catalogue=HazardCatalogue.load())
    for number, call_sign in enumerate(CALL_SIGNS):
        resources.register_resource(kind="fire-engine", name=call_sign, call_sign=call_sign,
                                    department="fire", home_base=plant.points[number],
                                    actor=PLANNER, at=plant.registered_at)
    tank = hazards.register(hazard_type="lpg-depot", name="LPG depot", owner_name="Gas Co",
                            owner_contact="+86 25 0000 0001", grade=1,
                            location=plant.points[5], actor=PLANNER, at=plant.registered_at)
    hazards.add_sensor(tank, sensor_id="lpg-1", kind="gas-concentration", unit="%LEL",
                       direction="high", warning=20, alarm=40, actor=PLANNER,
                       at=plant.registered_at)
    from cityops.domain.resources.resource import Resource

    for fix in stream.fixes:
        p = fix["payload"]
        resources.report_position(Resource.create_id(p["call_sign"]),
                                  GeoPoint.from_geojson(p["position"]),
                                  datetime.fromisoformat(fix["occurred_at"]), actor=TRACKER)
    for reading in stream.readings:
        hazards.record_reading(tank, "lpg-1", reading["payload"]["value"],
                               datetime.fromisoformat(reading["occurred_at"]), actor=GATEWAY)
    return {"resources": stored_facts(resources), "hazards": stored_facts(hazards)}


def stored_facts(application: Any) -> dict[UUID, list[tuple[str, int, str]]]:
    """Every event after set-up, per aggregate (the order that partitions keep): event
    class, version, and when it happened."""
    facts: dict[UUID, list[tuple[str, int, str]]] = {}
    for notification in application.recorder.select_notifications(start=1, limit=1_000_000):
        event = application.mapper.to_domain_event(notification)
        name = type(event).__qualname__
        if name.endswith(("Registered", "SensorAdded")):
            continue
        facts.setdefault(event.originator_id, []).append(
            (name, event.originator_version, event.timestamp.isoformat()))
    return facts


def check_exactly_once(plant: Plant, stream: Stream) -> None:
    """Every message applied once: one case and one receipt per report, one track row per
    fix, and the same position and alarm events as an uninterrupted run."""
    system = plant.system
    cases = Counter(type(system.grid_cases.mapper.to_domain_event(n)).__qualname__
                    for n in system.grid_cases.recorder.select_notifications(
                        start=1, limit=1_000_000))
    # The stream's inspector patrols no cell of the map: each report is marked as outside
    # the inspector's cells, once.
    assert cases == {"GridCase.Reported": len(stream.reports),
                     "GridCase.ReportedOutsideAssignedCells": len(stream.reports),
                     "CommandReceipt.Recorded": len(stream.reports)}
    for report in stream.reports:
        from cityops.domain.application import CommandReceipt

        assert system.grid_cases.exists(CommandReceipt.create_id(report["message_id"]))
    track = ResourceTracks(plant.store).movement()
    assert len(track) == len(stream.fixes)
    assert {p.message_id for p in track} == {f["message_id"] for f in stream.fixes}
    expected = applied_once_each(plant, stream)
    assert stored_facts(system.resources) == expected["resources"]
    # One hazard source each (registered without a command id: the ids differ).
    assert list(stored_facts(system.hazards).values()) == list(expected["hazards"].values())
    assert read_dead_letter_topic(plant.bootstrap, plant.topics.dead_letters) == []


def test_a_worker_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
        plant: Plant) -> None:
    stream = plant.stream(reports=600, fixes_per_vehicle=100, readings=120)
    total = len(stream.ordered)
    first = plant.start_worker()
    producer = plant.produce(stream, rate_per_s=400)
    seed = random.randrange(1_000_000)
    kill_at = random.Random(seed).randint(len(stream.reports) // 5,
                                          len(stream.reports) * 3 // 5)
    wait_for(lambda: plant.receipts() >= kill_at, f"{kill_at} reports applied")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    applied_at_kill = plant.receipts()
    assert applied_at_kill < len(stream.reports), f"killed too late (seed {seed})"

    second = plant.start_worker()
    producer.join(WAIT_S)
    wait_for(lambda: plant.caught_up(total), "the restarted worker to catch up")
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0, plant.worker_logs()
    check_exactly_once(plant, stream)


def test_two_workers_share_the_partitions_and_a_rebalance_loses_and_duplicates_nothing(
        plant: Plant) -> None:
    stream = plant.stream(reports=900, fixes_per_vehicle=120, readings=150)
    total = len(stream.ordered)
    first = plant.start_worker()
    # The stream waits after its first part until the second worker owns partitions: each
    # worker then has messages of its own to apply, however long a worker takes to start
    # (seconds on a loaded machine, longer than a fixed-rate stream lasts).
    second_joined = threading.Event()
    producer = plant.produce(stream, rate_per_s=150, hold=(60, second_joined))
    wait_for(lambda: plant.receipts() >= 20, "the stream to start")
    second = plant.start_worker()  # joins the group: the partitions are shared out again
    wait_for(lambda: plant.owns_partition_of(second, IngestStream.GRID_CASE_REPORTS),
             "the second worker to own a partition of the reports")
    second_joined.set()
    wait_for(lambda: plant.applied_by(second) > 0 and plant.applied_by(first) > 0,
             "both workers to apply messages side by side")
    assert first.poll() is None
    wait_for(lambda: plant.receipts() >= len(stream.reports) // 2, "half the reports")
    first.send_signal(signal.SIGKILL)  # its partitions go to the other after the session
    first.wait(10)
    producer.join(WAIT_S)
    wait_for(lambda: plant.caught_up(total), "the surviving worker to catch up")
    survivor = plant.processes[1]
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(30) == 0, plant.worker_logs()

    check_exactly_once(plant, stream)
    # The counters are a report, not the guarantee (that is checked above): a worker killed
    # with SIGKILL loses the counts it had not written yet, so only the survivor's, written
    # when it stopped, can be relied on, and it consumed at least what it applied.
    counters = CounterTable(plant.store).by_topic().values()
    assert sum(c.consumed for c in counters) >= sum(c.applied for c in counters) > 0
