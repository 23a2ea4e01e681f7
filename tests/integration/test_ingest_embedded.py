"""The embedded default and the operator's commands: without a broker the same validation,
dedupe, apply and dead-letter code runs from an in-process queue on the SQLite stores; a
backlog file is checked line by line before anything is sent, then sent keyed by each
message's natural key (or applied in-process without Kafka)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from typer.testing import CliRunner

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.application import CommandReceipt
from cityops.domain.geometry import GeoPoint
from cityops.domain.resources.resource import Resource
from cityops.ingest import messages
from cityops.ingest.cli import app as ingest_cli
from cityops.ingest.composition import build_embedded_ingest, ingest_store
from cityops.ingest.counters import CounterTable
from cityops.ingest.deadletters import StoredDeadLetters
from cityops.ingest.pipeline import Outcome
from cityops.ingest.settings import IngestSettings
from cityops.ingest.topics import IngestStream, Topics, create_topics, delete_topics
from cityops.ingest.tracks import ResourceTracks
from cityops.settings import Settings

INSPECTOR = Actor("inspector-liu", Role.INSPECTOR)
PLANNER = Actor("planner-li", Role.PLANNER)
TRACKER = Actor("vehicle-tracker", Role.SYSTEM)
TOPICS = Topics()


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[CitySystem]:
    """The embedded system: SQLite event stores and read models in a folder."""
    system = build_system(Settings(data_dir=tmp_path / "data"))
    yield system
    system.close()


def points(system: CitySystem, every: int = 131) -> list[GeoPoint]:
    cells = system.city.map.cells.geometry.iloc[::every].representative_point()
    return [GeoPoint(lon=float(p.x), lat=float(p.y)) for p in cells]


def test_the_in_process_queue_applies_dedupes_and_dead_letters_like_a_worker(
        embedded: CitySystem) -> None:
    where = points(embedded)
    engine = embedded.resources.register_resource(
        kind="ambulance", name="Ambulance 3", call_sign="AMB 3", department="health",
        home_base=where[0], actor=PLANNER, at=datetime.now(UTC) - timedelta(hours=1))
    ingest = build_embedded_ingest(embedded, IngestSettings()).start()
    report = messages.grid_case_report(category="E0101", description="garbage",
                                       location=where[1], actor=INSPECTOR)
    fix = messages.resource_position(call_sign="AMB 3", position=where[2],
                                     measured_at=datetime.now(UTC) - timedelta(minutes=1),
                                     actor=TRACKER)
    reports = TOPICS.name(IngestStream.GRID_CASE_REPORTS)
    ingest.submit(reports, report)
    ingest.submit(reports, report)  # a repeat
    ingest.submit(reports, b"\x89PNG\r\n")  # a photo sent to the wrong place
    ingest.submit(reports, messages.grid_case_report(
        category="E0101", description="in the river", location=GeoPoint(lon=0.0, lat=0.0),
        actor=INSPECTOR))
    ingest.submit(TOPICS.name(IngestStream.RESOURCE_POSITIONS), fix)
    ingest.submit("somebody.elses.topic", report)
    assert ingest.wait_until_processed(60)
    ingest.stop()
    assert ingest.outcomes == {Outcome.APPLIED: 2, Outcome.DUPLICATE: 1,
                               Outcome.DEAD_LETTERED: 3}

    receipt = embedded.grid_cases.repository.get(CommandReceipt.create_id(report["message_id"]))
    assert embedded.grid_cases.case(receipt.aggregate_id).description == "garbage"
    store = ingest_store(embedded)
    try:
        letters = {d.offset: d for d in StoredDeadLetters(store).recent()}
        assert (letters[2].code, letters[2].value) == ("malformed", b"\x89PNG\r\n")
        assert letters[3].code == "invalid-value"
        assert "outside the city" in letters[3].reason
        assert (letters[5].code, letters[5].source_topic) == ("wrong-topic",
                                                              "somebody.elses.topic")
        assert [p.position for p in ResourceTracks(store).movement(engine)] == [where[2]]
        counted = CounterTable(store).by_topic()[reports]
        assert (counted.consumed, counted.applied, counted.duplicate,
                counted.dead_lettered) == (4, 1, 1, 2)
    finally:
        store.close()
    assert Resource.create_id("AMB 3") == engine


def write_lines(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.write_text("\n".join(json.dumps(line) if isinstance(line, dict) else line
                              for line in lines) + "\n", encoding="utf-8")
    return path


def test_a_backlog_file_is_checked_line_by_line_and_applied_in_process_without_kafka(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded: CitySystem) -> None:
    where = points(embedded)
    good = [messages.grid_case_report(category="C0105", description=f"lamp {i}",
                                      location=where[3 + i], actor=INSPECTOR)
            for i in range(3)]
    bad_category = dict(good[0], payload={"category": "C0105"}, message_id="m-2")
    backlog = write_lines(tmp_path / "backlog.jsonl", [
        good[0], "", "{broken", bad_category, good[1], good[2]])
    monkeypatch.delenv("CITYOPS_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("CITYOPS_DATABASE_URL", raising=False)
    monkeypatch.setenv("CITYOPS_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    refused = runner.invoke(ingest_cli, ["produce", str(backlog), "--topic",
                                         "grid-case-reports"])
    assert refused.exit_code == 1
    assert "line 3: the message is not valid JSON" in refused.output
    assert "line 4: grid-case-report/1: payload: 'description' is a required" in (
        refused.output)
    assert "2 of 5 lines are invalid: nothing sent" in refused.output
    for message in good:
        assert not embedded.grid_cases.exists(CommandReceipt.create_id(message["message_id"]))

    loaded = runner.invoke(ingest_cli, ["produce", str(backlog), "--topic",
                                        "grid-case-reports", "--skip-invalid"])
    assert loaded.exit_code == 0, loaded.output
    assert "applied in-process from cityops.ingest.grid-case-reports: applied 3, " \
           "duplicate 0, dead-lettered 0" in loaded.output
    for message in good:
        assert embedded.grid_cases.exists(CommandReceipt.create_id(message["message_id"]))

    wrong_topic = runner.invoke(ingest_cli, ["produce", str(backlog), "--topic", "parking"])
    assert wrong_topic.exit_code == 2
    assert "unknown ingest topic 'parking'" in wrong_topic.output


@pytest.mark.kafka
def test_a_backlog_is_sent_keyed_by_each_aggregate_and_topics_are_created_once(
        kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        demo_city: Any) -> None:
    namespace = f"cityops-test-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("CITYOPS_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("CITYOPS_INGEST_TOPIC_NAMESPACE", namespace)
    runner = CliRunner()
    topics = Topics(namespace)
    backlog = write_lines(tmp_path / "empty.jsonl", [])
    no_topic = runner.invoke(ingest_cli, ["produce", str(backlog), "--topic", "hazard-readings"])
    assert no_topic.exit_code == 2
    assert f"the broker has no topic {namespace}.hazard-readings: create the ingest topics " \
           "with `cityops ingest topics create`" in no_topic.output
    try:
        created = runner.invoke(ingest_cli, ["topics", "create", "--partitions", "2"])
        assert created.exit_code == 0, created.output
        assert created.output.count(": created") == 7
        again = runner.invoke(ingest_cli, ["topics", "create"])
        assert again.output.count(": exists") == 7

        centre = demo_city.map.cells.geometry.iloc[500].representative_point()
        start = datetime.now(UTC) - timedelta(minutes=30)
        fixes = [messages.resource_position(
            call_sign=("FIRE 1", "FIRE 2")[i % 2], actor=TRACKER,
            position=GeoPoint(lon=float(centre.x), lat=float(centre.y)),
            measured_at=start + timedelta(seconds=i)) for i in range(6)]
        backlog = write_lines(tmp_path / "fixes.jsonl", list(fixes))
        sent = runner.invoke(ingest_cli, ["produce", str(backlog), "--topic",
                                          "resource-positions"])
        assert sent.exit_code == 0, sent.output
        assert f"sent 6 messages to {namespace}.resource-positions" in sent.output
        by_key = read_topic(kafka_bootstrap, topics.name(IngestStream.RESOURCE_POSITIONS))
        # Keyed by call sign: each vehicle's fixes in one partition, in order.
        assert sorted(by_key) == [b"FIRE 1", b"FIRE 2"]
        for call_sign, records in by_key.items():
            assert len({partition for partition, _ in records}) == 1
            assert [json.loads(v)["payload"]["call_sign"] for _, v in records] == [
                call_sign.decode()] * 3
            assert [json.loads(v)["occurred_at"] for _, v in records] == sorted(
                json.loads(v)["occurred_at"] for _, v in records)

        rekeyed = runner.invoke(ingest_cli, ["produce", str(backlog), "--topic",
                                             "resource-positions", "--key-field", "schema"])
        assert rekeyed.exit_code == 0, rekeyed.output
        assert b"resource-position/1" in read_topic(
            kafka_bootstrap, topics.name(IngestStream.RESOURCE_POSITIONS))
    finally:
        delete_topics(kafka_bootstrap, topics)


def read_topic(bootstrap: str, topic: str) -> dict[bytes, list[tuple[int, bytes]]]:
    """Every record of a topic by key: (partition, value) in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: dict[bytes, list[tuple[int, bytes]]] = {}
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    found.setdefault(record.key, []).append((record.partition, record.value))
        return found
    finally:
        consumer.close()


def test_create_topics_is_idempotent_on_the_broker(kafka_bootstrap: str) -> None:
    topics = Topics(f"cityops-test-{uuid.uuid4().hex[:10]}")
    try:
        assert set(create_topics(kafka_bootstrap, topics, partitions=2).values()) == {True}
        assert set(create_topics(kafka_bootstrap, topics, partitions=2).values()) == {False}
    finally:
        delete_topics(kafka_bootstrap, topics)
