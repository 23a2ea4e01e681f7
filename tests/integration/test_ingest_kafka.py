"""Ingest from a real Kafka broker into a real PostgreSQL event store: messages produced to
the ingest topics are applied and stored; redelivered messages change nothing; poison
messages go to the dead-letter topic with their original bytes and the reason while the good
messages around them are applied; a database that goes away is waited for, not blamed on the
message.

Each test gets its own database and its own topic namespace; the worker runs in a thread of
the test process (the crash tests run workers as processes).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.application import CommandReceipt
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.case import CaseStatus
from cityops.domain.hazards.commands import AddSensor, RegisterHazardSource
from cityops.domain.hazards.source import AlarmLevel
from cityops.domain.incidents.commands import ReportIncident, VerifyIncident
from cityops.domain.resources.commands import RegisterResource
from cityops.domain.resources.resource import ResourceStatus
from cityops.ingest import messages
from cityops.ingest.cli import app as ingest_cli
from cityops.ingest.composition import build_kafka_worker, ingest_store
from cityops.ingest.counters import CounterTable
from cityops.ingest.deadletters import DeadLetter, read_dead_letter_topic
from cityops.ingest.kafka_worker import KafkaIngestWorker
from cityops.ingest.settings import IngestSettings
from cityops.ingest.topics import IngestStream, Topics, create_topics, delete_topics
from cityops.ingest.tracks import ResourceTracks
from cityops.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

INSPECTOR = Actor("inspector-liu", Role.INSPECTOR)
OPERATOR = Actor("operator-zhao", Role.HOTLINE_OPERATOR)
PLANNER = Actor("planner-li", Role.PLANNER)
DISPATCHER = Actor("dispatcher-wang", Role.DISPATCHER)
GATEWAY = Actor("iot-gateway", Role.SYSTEM)
TRACKER = Actor("vehicle-tracker", Role.SYSTEM)
CREW = Actor("crew-fire12", Role.SYSTEM)
WAIT_S = 60.0


class Lane:
    """One test's ingest: its database, its topics, a producer, and workers in threads."""

    def __init__(self, database_url: str, bootstrap: str, data_dir: Path) -> None:
        self.database_url = database_url
        self.bootstrap = bootstrap
        self.namespace = f"cityops-test-{uuid.uuid4().hex[:10]}"
        self.topics = Topics(self.namespace)
        self.settings = IngestSettings(
            topic_namespace=self.namespace, group_id=f"{self.namespace}-workers",
            session_timeout_ms=6000, stats_interval_s=0.5, retry_budget_s=25.0,
        )
        self.system_settings = Settings(database_url=database_url, data_dir=data_dir,
                                        kafka_bootstrap_servers=bootstrap,
                                        ingest=self.settings)
        create_topics(bootstrap, self.topics)
        self.system = build_system(self.system_settings)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.workers: list[tuple[KafkaIngestWorker, threading.Thread]] = []
        city = self.system.city.map
        self.points = [GeoPoint(lon=float(c.x), lat=float(c.y))
                       for c in city.cells.geometry.iloc[::97].representative_point()]

    def send(self, stream: IngestStream, message: dict[str, Any] | bytes | None, *,
             key: str | None = None) -> Any:
        """Produce one message (keyed by its natural key unless given); returns where it
        landed (topic, partition, offset)."""
        if isinstance(message, dict):
            value: bytes | None = messages.encode(message)
            key = key if key is not None else messages.key_of(message)
        else:
            value = message
        future = self.producer.send(self.topics.name(stream), value=value,
                                    key=key.encode() if key is not None else None)
        return future.get(timeout=30)

    def start_worker(self, group: str | None = None) -> KafkaIngestWorker:
        worker = build_kafka_worker(self.system, self.settings, group_id=group)
        thread = threading.Thread(target=worker.run, name="ingest-worker")
        thread.start()
        self.workers.append((worker, thread))
        assert worker.wait_started(WAIT_S), "the worker did not join its group"
        return worker

    def stop_workers(self) -> None:
        for worker, thread in self.workers:
            worker.stop()
            thread.join(30)
        self.workers.clear()

    def close(self) -> None:
        self.stop_workers()
        self.producer.close()
        self.system.close()
        delete_topics(self.bootstrap, self.topics)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def settled(worker: KafkaIngestWorker) -> int:
    """Messages whose outcome is counted (applied, duplicate or dead-lettered). A message
    is counted as consumed as soon as it is taken, and settled once the batch it came in is
    saved: waiting for `consumed` alone would look at a batch still being saved."""
    total = worker.stats()["counts"]["total"]
    return int(total["applied"] + total["duplicate"] + total["dead_lettered"])


def totals(worker: KafkaIngestWorker) -> dict[str, int]:
    return dict(worker.stats()["counts"]["total"])


def events(application: Any) -> list[tuple[str, UUID]]:
    """Every event an application stored: (event class, aggregate id), in log order."""
    found = []
    start = 1
    while True:
        batch = application.recorder.select_notifications(start=start, limit=1000)
        found += [(n.topic.rsplit(":", 1)[1], n.originator_id) for n in batch]
        if len(batch) < 1000:
            return found
        start = batch[-1].id + 1


def recently(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


@pytest.fixture
def lane(fresh_database: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Lane]:
    lane = Lane(fresh_database, kafka_bootstrap, tmp_path)
    yield lane
    lane.close()


def register_engine(system: CitySystem, call_sign: str, home: GeoPoint) -> UUID:
    return system.resources.handle(
        RegisterResource(kind="fire-engine", resource_name=f"Engine {call_sign}",
            call_sign=call_sign, department="fire", home_base=home),
        CommandContext(actor=PLANNER, at=recently(90))).subject


def watched_tank(system: CitySystem, where: GeoPoint) -> UUID:
    source_id = system.hazards.handle(
        RegisterHazardSource(hazard_type="chemical-storage", source_name="Tank farm 3",
            owner_name="Jinling Chemicals", owner_contact="+86 25 0000 0000", grade=2,
            location=where),
        CommandContext(actor=PLANNER, at=recently(90))).subject
    system.hazards.handle(
        AddSensor(source_id=source_id, sensor_id="tank3-gas", kind="gas-concentration",
            unit="%LEL", direction="high", warning=20, alarm=40),
        CommandContext(actor=PLANNER, at=recently(89)))
    return source_id


def test_produced_messages_are_applied_stored_and_counted(
        lane: Lane, monkeypatch: pytest.MonkeyPatch) -> None:
    system = lane.system
    engine = register_engine(system, "FIRE 12", lane.points[0])
    fire = system.incidents.handle(
        ReportIncident(category="accident-disaster", incident_type="fire", title="Warehouse fire",
            location=lane.points[0], source="inspector"),
        CommandContext(actor=INSPECTOR, at=recently(62))).subject
    system.incidents.handle(
        VerifyIncident(incident_id=fire),
        CommandContext(actor=DISPATCHER, at=recently(61)))
    system.operations.resource_assignments.dispatch(engine, incident_id=fire,
                                                    actor=DISPATCHER, at=recently(60))
    tank = watched_tank(system, lane.points[1])
    reports = [messages.grid_case_report(category=c, description=f"report {i}",
                                         location=lane.points[2 + i], actor=INSPECTOR)
               for i, c in enumerate(["E0101", "C0105", "E0401"])]
    call = messages.hotline_ticket(channel="phone", ticket_type="complaint", topic="noise",
                                   description="Night construction", location=lane.points[6],
                                   caller_phone="+86 25 5555 0199", actor=OPERATOR)
    readings = [messages.hazard_reading(source_id=tank, sensor_id="tank3-gas", value=v,
                                        measured_at=recently(30 - i), actor=GATEWAY)
                for i, v in enumerate([5.0, 12.0, 27.0])]
    fixes = [messages.resource_position(call_sign="FIRE 12", position=lane.points[7 + i],
                                        measured_at=recently(20 - i), actor=TRACKER)
             for i in range(3)]
    en_route = messages.resource_status(call_sign="FIRE 12", status="en-route", actor=CREW)
    for report in reports:
        lane.send(IngestStream.GRID_CASE_REPORTS, report)
    lane.send(IngestStream.HOTLINE_TICKETS, call)
    for reading in readings:
        lane.send(IngestStream.HAZARD_READINGS, reading)
    for fix in fixes:
        lane.send(IngestStream.RESOURCE_POSITIONS, fix)
    lane.send(IngestStream.RESOURCE_STATUS, en_route)

    worker = lane.start_worker()
    wait_for(lambda: settled(worker) == 11, "11 messages")
    assert totals(worker) == {"consumed": 11, "applied": 11, "duplicate": 0,
                              "dead_lettered": 0}

    # Stored: each report is a case with its receipt, saved together.
    for report in reports:
        receipt = system.grid_cases.repository.get(
            CommandReceipt.create_id(report["message_id"]))
        case = system.grid_cases.case(receipt.aggregate_id)
        assert case.status is CaseStatus.REPORTED
        assert case.description == report["payload"]["description"]
    assert [e for e, _ in events(system.grid_cases)].count("GridCase.Reported") == 3
    ticket_receipt = system.hotline.repository.get(CommandReceipt.create_id(call["message_id"]))
    assert system.hotline.ticket(ticket_receipt.aggregate_id).caller_phone == "+86 25 5555 0199"
    assert system.hazards.source(tank).levels["tank3-gas"] is AlarmLevel.WARNING
    assert system.resources.resource(engine).status is ResourceStatus.EN_ROUTE
    store = ingest_store(system)
    try:
        track = ResourceTracks(store).movement(engine)
        assert [p.position for p in track] == lane.points[7:10]
    finally:
        store.close()

    # The read models follow the event store.
    system.catch_up()
    case_ids = [system.grid_cases.repository.get(
        CommandReceipt.create_id(r["message_id"])).aggregate_id for r in reports]
    for case_id, report in zip(case_ids, reports, strict=True):
        row = system.read_models.get("rm_grid_cases", str(case_id))
        assert row is not None
        assert row["category"] == report["payload"]["category"]

    # The counters reach the store, and `cityops ingest status` adds them up.
    lane.stop_workers()
    store = ingest_store(system)
    try:
        counted = CounterTable(store).by_topic()
    finally:
        store.close()
    assert counted[lane.topics.name(IngestStream.GRID_CASE_REPORTS)].applied == 3
    assert counted[lane.topics.name(IngestStream.HAZARD_READINGS)].applied == 3
    for name, value in {
        "CITYOPS_DATABASE_URL": lane.database_url,
        "CITYOPS_KAFKA_BOOTSTRAP_SERVERS": lane.bootstrap,
        "CITYOPS_INGEST_TOPIC_NAMESPACE": lane.namespace,
        "CITYOPS_INGEST_GROUP_ID": lane.settings.group_id,
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(ingest_cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["counts"][lane.topics.name(IngestStream.RESOURCE_POSITIONS)] == {
        "consumed": 3, "applied": 3, "duplicate": 0, "dead_lettered": 0}
    assert set(report["lag"].values()) == {0}


def test_redelivered_messages_change_nothing(lane: Lane) -> None:
    system = lane.system
    engine = register_engine(system, "FIRE 9", lane.points[0])
    reports = [messages.grid_case_report(category="E0101", description=f"garbage {i}",
                                         location=lane.points[1 + i], actor=INSPECTOR)
               for i in range(20)]
    fixes = [messages.resource_position(call_sign="FIRE 9", position=lane.points[30 + i],
                                        measured_at=recently(10 - i), actor=TRACKER)
             for i in range(5)]
    # The producer sends everything twice: the copies land at other offsets.
    for _copy in range(2):
        for report in reports:
            lane.send(IngestStream.GRID_CASE_REPORTS, report)
        for fix in fixes:
            lane.send(IngestStream.RESOURCE_POSITIONS, fix)

    first = lane.start_worker()
    wait_for(lambda: settled(first) == 50, "50 messages")
    assert totals(first) == {"consumed": 50, "applied": 25, "duplicate": 25, "dead_lettered": 0}
    stored_cases = events(system.grid_cases)
    stored_resources = events(system.resources)
    recorded = Counter(name for name, _ in stored_cases)
    # A report and its receipt, per report (and the mark of a report outside the
    # inspector's cells, where it is one).
    assert (recorded["GridCase.Reported"], recorded["CommandReceipt.Recorded"]) == (20, 20)
    lane.stop_workers()

    # A new group reads both topics from the beginning: every message is delivered again,
    # to a worker that remembers nothing.
    again = lane.start_worker(group=f"{lane.namespace}-again")
    wait_for(lambda: settled(again) == 50, "50 messages again")
    assert totals(again) == {"consumed": 50, "applied": 0, "duplicate": 50, "dead_lettered": 0}
    assert events(system.grid_cases) == stored_cases
    assert events(system.resources) == stored_resources
    store = ingest_store(system)
    try:
        assert len(ResourceTracks(store).movement(engine)) == 5
    finally:
        store.close()


def test_poison_messages_are_dead_lettered_with_their_bytes_and_the_reason(lane: Lane) -> None:
    system = lane.system
    register_engine(system, "FIRE 4", lane.points[0])
    reports = IngestStream.GRID_CASE_REPORTS
    good = [messages.grid_case_report(category="E0101", description=f"good {i}",
                                      location=lane.points[1 + i], actor=INSPECTOR)
            for i in range(6)]
    unknown_version = dict(good[0], schema="grid-case-report/7", message_id="m-version")
    unknown_type = dict(good[0], schema="parking-ticket/1", message_id="m-type")
    missing_field = json.loads(json.dumps(good[0]))
    missing_field["message_id"] = "m-missing"
    del missing_field["payload"]["category"]
    reused = dict(messages.grid_case_report(category="E0102", description="other",
                                            location=lane.points[9], actor=INSPECTOR),
                  message_id=good[0]["message_id"])
    oversized = json.dumps(dict(good[0], message_id="m-big",
                                padding="x" * 300_000)).encode()
    no_department = messages.grid_case_handled(case_id=uuid.uuid4(), result="done",
                                               actor=Actor("water-crm", Role.SYSTEM))
    no_department["actor"] = {"user_id": "water-crm", "role": "department-user"}
    poison: list[tuple[IngestStream, Any, str, str | None, str]] = [
        # (topic, message, key, expected code, words of the reason)
        (reports, b"\xff\xfe\x00\x01", "k1", "malformed", "not UTF-8"),
        (reports, b"{\"schema\": \"grid-case-report/1\"", "k2", "malformed", "not valid JSON"),
        (reports, b"[1, 2, 3]", "k3", "malformed", "must be a JSON object"),
        (reports, None, "k4", "malformed", "no value"),
        (reports, oversized, "k5", "oversized", "the limit is 262,144"),
        (reports, unknown_version, "k6", "unknown-schema", "unknown version '7'"),
        (reports, unknown_type, "k7", "unknown-schema", "unknown message type"),
        (reports, missing_field, None, "schema-violation", "'category' is a required"),
        (IngestStream.HAZARD_READINGS, good[1], "k9", "wrong-topic", "is carried by"),
        (reports, messages.grid_case_report(category="X9999", description="?",
                                            location=lane.points[9], actor=INSPECTOR),
         None, "invalid-value", "unknown grid-case category 'X9999'"),
        (reports, messages.grid_case_report(category="E0101", description="Paris",
                                            location=GeoPoint(lon=2.35, lat=48.85),
                                            actor=INSPECTOR),
         None, "invalid-value", "outside the city"),
        (IngestStream.RESOURCE_POSITIONS, messages.resource_position(
            call_sign="FIRE 4", position=GeoPoint(lon=0.0, lat=0.0), measured_at=recently(1),
            actor=TRACKER), None, "invalid-value", "is outside"),
        (IngestStream.RESOURCE_STATUS, messages.resource_status(
            call_sign="FIRE 4", status="on-scene", actor=CREW), None, "illegal-transition",
         "cannot report on scene resource"),
        (IngestStream.RESOURCE_STATUS, messages.resource_status(
            call_sign="GHOST 1", status="en-route", actor=CREW), None, "not-found",
         "does not exist"),
        (IngestStream.DEPARTMENT_REPORTS, no_department, None, "invalid-value",
         "a department user must belong to a department"),
        (reports, reused, None, "message-id-reused", "was already used"),
    ]
    # Good messages first, in the middle and last: none of them waits for the poison.
    lane.send(reports, good[0])
    sent: list[tuple[Any, bytes | None, str | None, str, str]] = []
    for number, (stream, message, key, code, words) in enumerate(poison):
        landed = lane.send(stream, message, key=key)
        value = messages.encode(message) if isinstance(message, dict) else message
        natural = key if key is not None else messages.key_of(message)
        sent.append((landed, value, natural, code, words))
        if number % 5 == 0:
            lane.send(reports, good[1 + number // 5])
    lane.send(reports, good[5])

    worker = lane.start_worker()
    expected = len(poison) + len(good)
    wait_for(lambda: settled(worker) == expected, f"{expected} messages")
    assert totals(worker) == {"consumed": expected, "applied": len(good), "duplicate": 0,
                              "dead_lettered": len(poison)}
    assert [e for e, _ in events(system.grid_cases)].count("GridCase.Reported") == len(good)

    letters = read_dead_letter_topic(lane.bootstrap, lane.topics.dead_letters)
    by_position = {(d.source_topic, d.partition, d.offset): d for d in letters}
    assert len(by_position) == len(letters) == len(poison)
    for landed, value, key, code, words in sent:
        letter: DeadLetter = by_position[(landed.topic, landed.partition, landed.offset)]
        assert letter.value == value, f"{code}: the original bytes are kept"
        assert letter.key == (key.encode() if key is not None else None)
        assert letter.code == code
        assert words in letter.reason, letter.reason
        assert letter.error_class
        assert letter.worker == worker.worker
        assert abs(letter.dead_lettered_at - datetime.now(UTC)) < timedelta(minutes=5)


def test_a_database_that_goes_away_is_waited_for_not_dead_lettered(lane: Lane) -> None:
    system = lane.system
    worker = lane.start_worker()
    first = messages.grid_case_report(category="E0101", description="before",
                                      location=lane.points[1], actor=INSPECTOR)
    lane.send(IngestStream.GRID_CASE_REPORTS, first)
    wait_for(lambda: settled(worker) == 1, "the first message")

    database = lane.database_url.rsplit("/", 1)[1]
    with psycopg.connect(lane.database_url, autocommit=True) as admin:
        # No new connections, and the worker's open ones are cut: the database is gone
        # as far as the worker can tell.
        admin.execute(f'ALTER DATABASE "{database}" CONNECTION LIMIT 0')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))
    during = [messages.grid_case_report(category="E0101", description=f"during {i}",
                                        location=lane.points[2 + i], actor=INSPECTOR)
              for i in range(3)]
    for message in during:
        lane.send(IngestStream.GRID_CASE_REPORTS, message)
    time.sleep(3)
    assert totals(worker)["applied"] == 1, "nothing can be applied without the database"
    with psycopg.connect(lane.database_url.rsplit("/", 1)[0] + "/cityops",
                         autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" CONNECTION LIMIT -1')

    wait_for(lambda: totals(worker)["applied"] == 4, "the messages held up by the outage")
    assert totals(worker)["dead_lettered"] == 0
    for message in during:
        receipt = system.grid_cases.repository.get(
            CommandReceipt.create_id(message["message_id"]))
        assert system.grid_cases.case(receipt.aggregate_id).description == (
            message["payload"]["description"])
