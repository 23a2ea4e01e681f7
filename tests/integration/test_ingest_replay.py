"""Dead letters replayed once their cause is fixed, on a real broker and PostgreSQL: a report
of a category the catalogue did not have yet, a fix of a vehicle not registered yet, and a
malformed message. After the fixes, `cityops ingest dead-letters replay` applies the first
two through the same pipeline and records that the third failed again; a second replay leaves
the finished ones alone; a message applied meanwhile is a repeat that changes nothing.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.application import CommandReceipt
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.resources.commands import RegisterResource
from cityops.domain.resources.resource import Resource
from cityops.ingest import messages
from cityops.ingest.cli import app as ingest_cli
from cityops.ingest.composition import build_kafka_worker, ingest_store
from cityops.ingest.deadletters import read_dead_letter_topic
from cityops.ingest.replay import ReplayLedger
from cityops.ingest.settings import IngestSettings
from cityops.ingest.topics import IngestStream, Topics, create_topics, delete_topics
from cityops.ingest.tracks import ResourceTracks
from cityops.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

INSPECTOR = Actor("inspector-liu", Role.INSPECTOR)
PLANNER = Actor("planner-li", Role.PLANNER)
TRACKER = Actor("vehicle-tracker", Role.SYSTEM)
NEW_CATEGORY = "E0999"
WAIT_S = 60.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def catalogue_with_new_category(folder: Path) -> Path:
    """The shipped reference data, with one more grid-case category (what an operator does
    when the field starts reporting a kind of case the city did not list)."""
    shipped = resources.files("cityops.domain") / "data"
    folder.mkdir()
    for entry in shipped.iterdir():
        if entry.name.endswith(".json"):
            shutil.copyfile(str(entry), folder / entry.name)
    path = folder / "case_categories.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    model = dict(next(c for c in document["categories"] if c["code"] == "E0101"))
    model.update(code=NEW_CATEGORY, name="Abandoned shared bicycles")
    document["categories"].append(model)
    path.write_text(json.dumps(document), encoding="utf-8")
    return folder


class Scene:
    """A database, a topic namespace, and the environment a `cityops` command reads."""

    def __init__(self, database_url: str, bootstrap: str, data_dir: Path) -> None:
        self.bootstrap = bootstrap
        self.database_url = database_url
        self.data_dir = data_dir
        self.namespace = f"cityops-test-{uuid.uuid4().hex[:10]}"
        self.topics = Topics(self.namespace)
        self.settings = IngestSettings(
            topic_namespace=self.namespace, group_id=f"{self.namespace}-workers",
            stats_interval_s=0.5)
        create_topics(bootstrap, self.topics)
        self.system = build_system(Settings(database_url=database_url, data_dir=data_dir,
                                            kafka_bootstrap_servers=bootstrap,
                                            ingest=self.settings))
        self.store = ingest_store(self.system)
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        cells = self.system.city.map.cells.geometry.iloc[::97].representative_point()
        self.points = [GeoPoint(lon=float(c.x), lat=float(c.y)) for c in cells]

    def send(self, stream: IngestStream, message: dict[str, Any] | bytes,
             key: str = "k") -> None:
        value = messages.encode(message) if isinstance(message, dict) else message
        if isinstance(message, dict):
            key = messages.key_of(message)
        self.producer.send(self.topics.name(stream), value=value,
                           key=key.encode()).get(timeout=30)

    def apply_with_a_worker(self, system: CitySystem, expected: int) -> dict[str, int]:
        """Run a worker until `expected` messages are settled; its counts."""
        worker = build_kafka_worker(system, self.settings)
        thread = threading.Thread(target=worker.run, name="ingest-worker")
        thread.start()
        try:
            def settled() -> bool:
                total = worker.pipeline.counters.total()
                return total.applied + total.duplicate + total.dead_lettered >= expected
            wait_for(settled, f"{expected} messages settled")
        finally:
            worker.stop()
            thread.join(30)
        return worker.pipeline.counters.total().as_dict()

    def env(self, catalogue_dir: Path | None = None) -> dict[str, str]:
        env = {"CITYOPS_DATABASE_URL": self.database_url,
               "CITYOPS_DATA_DIR": str(self.data_dir),
               "CITYOPS_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
               "CITYOPS_INGEST_TOPIC_NAMESPACE": self.namespace}
        if catalogue_dir is not None:
            env["CITYOPS_CATALOGUE_DIR"] = str(catalogue_dir)
        return env

    def close(self) -> None:
        self.store.close()
        self.producer.close()
        self.system.close()
        delete_topics(self.bootstrap, self.topics)


@pytest.fixture
def scene(fresh_database: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Scene]:
    scene = Scene(fresh_database, kafka_bootstrap, tmp_path)
    yield scene
    scene.close()


def replay(scene: Scene, monkeypatch: pytest.MonkeyPatch, *args: str,
           catalogue_dir: Path | None = None) -> Any:
    for name, value in scene.env(catalogue_dir).items():
        monkeypatch.setenv(name, value)
    return CliRunner().invoke(ingest_cli, ["dead-letters", "replay", *args])


def test_dead_letters_are_replayed_once_their_cause_is_fixed(
        scene: Scene, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    start = datetime.now(UTC) - timedelta(minutes=30)
    new_kind = messages.grid_case_report(
        category=NEW_CATEGORY, description="Six bicycles dumped on the pavement",
        location=scene.points[3], actor=INSPECTOR, occurred_at=start)
    unknown_vehicle = messages.resource_position(
        call_sign="FIRE 99", position=scene.points[4], actor=TRACKER,
        measured_at=start + timedelta(seconds=5))
    known = messages.grid_case_report(
        category="E0101", description="Overflowing bin", location=scene.points[5],
        actor=INSPECTOR, occurred_at=start)
    scene.send(IngestStream.GRID_CASE_REPORTS, new_kind)
    scene.send(IngestStream.RESOURCE_POSITIONS, unknown_vehicle)
    scene.send(IngestStream.GRID_CASE_REPORTS, b'{"schema": "grid-case-report/1", ')
    scene.send(IngestStream.GRID_CASE_REPORTS, known)
    counts = scene.apply_with_a_worker(scene.system, expected=4)
    assert (counts["applied"], counts["dead_lettered"]) == (1, 3)
    letters = read_dead_letter_topic(scene.bootstrap, scene.topics.dead_letters)
    assert sorted(d.code for d in letters) == ["invalid-value", "malformed", "not-found"]

    # Nothing is fixed yet: a dry run lists all three, and changes nothing.
    dry = replay(scene, monkeypatch, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "3 to replay, 0 already replayed" in dry.output
    assert ReplayLedger(scene.store).outcomes() == {}

    # The causes are fixed: the vehicle is registered, the category is in the catalogue.
    scene.system.resources.handle(
        RegisterResource(kind="fire-engine", resource_name="Engine 99", call_sign="FIRE 99",
            department="fire", home_base=scene.points[4]),
        CommandContext(actor=PLANNER, at=start - timedelta(hours=1)))
    catalogue = catalogue_with_new_category(tmp_path / "catalogue")
    first = replay(scene, monkeypatch, catalogue_dir=catalogue)
    assert first.exit_code == 1, first.output  # the malformed one failed again
    assert "applied 2, duplicate 0, failed-again 1" in first.output
    assert "malformed -> failed-again (malformed:" in first.output
    # The report's receipt is recorded under its original message id.
    assert scene.system.grid_cases.exists(CommandReceipt.create_id(new_kind["message_id"]))
    track = ResourceTracks(scene.store).movement()
    assert [p.message_id for p in track] == [unknown_vehicle["message_id"]]
    assert track[0].resource_id == Resource.create_id("FIRE 99")
    outcomes = ReplayLedger(scene.store).outcomes()
    assert sorted((o, n) for o, n, _ in outcomes.values()) == [
        ("applied", 1), ("applied", 1), ("failed-again", 1)]

    # A second replay only tries the one that failed, and says so.
    events_before = len(scene.system.grid_cases.recorder.select_notifications(1, 10_000))
    second = replay(scene, monkeypatch, catalogue_dir=catalogue)
    assert "applied 0, duplicate 0, failed-again 1" in second.output
    assert "2 already replayed before" in second.output
    assert sorted(n for _, n, _ in ReplayLedger(scene.store)
                  .outcomes().values()) == [1, 1, 2]
    assert len(scene.system.grid_cases.recorder.select_notifications(1, 10_000)) \
        == events_before


def test_a_replayed_message_that_was_applied_meanwhile_changes_nothing(
        scene: Scene, monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime.now(UTC) - timedelta(minutes=20)
    fix = messages.resource_position(call_sign="FIRE 98", position=scene.points[6],
                                     actor=TRACKER, measured_at=start)
    scene.send(IngestStream.RESOURCE_POSITIONS, fix)
    assert scene.apply_with_a_worker(scene.system, expected=1)["dead_lettered"] == 1
    # The vehicle is registered and its tracker sends the same fix again (same message id):
    # a worker applies it. The dead letter is now stale.
    scene.system.resources.handle(
        RegisterResource(kind="fire-engine", resource_name="Engine 98", call_sign="FIRE 98",
            department="fire", home_base=scene.points[6]),
        CommandContext(actor=PLANNER, at=start - timedelta(hours=1)))
    scene.send(IngestStream.RESOURCE_POSITIONS, fix)
    assert scene.apply_with_a_worker(scene.system, expected=1)["applied"] == 1
    store = scene.store
    assert len(ResourceTracks(store).movement()) == 1
    resource_events = len(scene.system.resources.recorder.select_notifications(1, 10_000))

    done = replay(scene, monkeypatch, "--topic", "resource-positions", "--reason", "not-found")
    assert done.exit_code == 0, done.output
    assert "applied 0, duplicate 1" in done.output
    assert len(ResourceTracks(store).movement()) == 1
    assert len(scene.system.resources.recorder.select_notifications(1, 10_000)) \
        == resource_events
    # Filters that match nothing replay nothing.
    none = replay(scene, monkeypatch, "--reason", "no such reason")
    assert none.exit_code == 0 and "applied 0" in none.output
