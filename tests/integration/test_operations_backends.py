"""Operations on both back ends (issue 10): the projection lag in events and seconds while
the projections are stopped, ingest dead letters growing and feeds behind turn `/health`
degraded, read from the SQLite files or from PostgreSQL alike."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cityops.bootstrap import (
    CitySystem,
    Operations,
    StoredDeadLetterCount,
    build_operations,
    build_system,
)
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import ReportCase
from cityops.feeds.service import build_feed_service
from cityops.feeds.streams import Stream
from cityops.feeds.webhooks import OUTBOX_PROJECTION
from cityops.ingest.counters import CounterTable, IngestCounters
from cityops.settings import Settings
from cityops.storage import set_position

INSPECTOR = Actor("insp-ops", Role.INSPECTOR)


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def system(request: pytest.FixtureRequest, tmp_path: Path, demo_city: Any) -> Iterator[CitySystem]:
    """A system whose projections do not run (a stopped projection process)."""
    url = None
    if request.param == "postgres":
        databases = request.getfixturevalue("test_databases")
        url = databases.create("operations")
    built = build_system(Settings(data_dir=tmp_path, database_url=url, database_pool_size=2,
                                  run_projections=False), city=demo_city)
    try:
        yield built
    finally:
        built.close()
        if url is not None:
            databases.drop(url)


def report_case(system: CitySystem) -> None:
    system.grid_cases.handle(
        ReportCase(source="inspector", category="E0502", description="A broken street lamp",
                   location=GeoPoint(118.80, 32.05)),
        CommandContext(actor=INSPECTOR))


def sample(operations: Operations, name: str, **labels: str) -> float:
    text = operations.metrics.exposition().decode()
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    raise AssertionError(f"no sample {name} {labels} in:\n{text}")


def checks(operations: Operations) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in operations.health.report()["checks"]}


def test_projection_lag_in_events_and_seconds_while_projections_are_stopped(
        system: CitySystem) -> None:
    clock = Clock()
    operations = build_operations(system, monotonic=clock)
    grid = {"projection": "cityops-views", "stream": "gridcases"}
    assert sample(operations, "cityops_projection_lag_events", **grid) == 0
    report_case(system)
    report_case(system)
    assert sample(operations, "cityops_projection_lag_events", **grid) >= 2
    assert sample(operations, "cityops_projection_lag_seconds", **grid) == 0
    clock.now += 90
    assert sample(operations, "cityops_projection_lag_seconds", **grid) == 90
    check = checks(operations)["projection gridcases"]
    assert check["status"] == "degraded" and "stuck longer than 60 s" in check["reason"]
    assert checks(operations)["projection incidents"]["status"] == "ok"
    system.catch_up()
    assert sample(operations, "cityops_projection_lag_events", **grid) == 0
    assert sample(operations, "cityops_projection_lag_seconds", **grid) == 0
    assert operations.health.report()["status"] == "ok"


def test_dead_letters_growing_make_health_degraded_until_they_stop(system: CitySystem) -> None:
    clock = Clock()
    dead_letters = StoredDeadLetterCount(system)
    operations = build_operations(system, projections=False, dead_letters=dead_letters,
                                  monotonic=clock)
    operations.on_close.append(dead_letters.close)
    try:
        assert checks(operations)["ingest dead letters"]["status"] == "ok"
        store = system.generations.storage.base()
        try:
            counters = IngestCounters()
            for _ in range(3):
                counters.count("cityops.ingest.grid-case-reports", "dead_lettered")
            CounterTable(store).save("worker-a", counters)
            clock.now += 20
            check = checks(operations)["ingest dead letters"]
            assert check["status"] == "degraded"
            assert check["reason"].startswith("3 new in the last 300 s")
            clock.now += 301
            assert checks(operations)["ingest dead letters"]["status"] == "ok"
        finally:
            store.close()
    finally:
        operations.close()


class StoppedPublisher:
    """A Kafka publisher that committed positions and then stopped (what it mirrors)."""

    def __init__(self, positions: dict[Stream, int]) -> None:
        self._positions = positions

    def positions(self) -> dict[Stream, int]:
        return dict(self._positions)


def test_feeds_behind_make_health_degraded(system: CitySystem) -> None:
    clock = Clock()
    feeds = build_feed_service(system)
    try:
        operations = build_operations(system, projections=False,
                                      feed_positions=feeds.published_positions,
                                      monotonic=clock)
        assert not [name for name in checks(operations) if name.startswith("feed ")]
        report_case(system)
        with feeds.store.transaction() as txn:
            set_position(txn, OUTBOX_PROJECTION, "gridcases", 0)
        feeds._mirror_kafka_positions(StoppedPublisher(dict.fromkeys(Stream, 0)))  # type: ignore[arg-type]
        found = checks(operations)
        assert found["feed webhook grid-cases"]["status"] == "ok"  # first seen behind now
        assert found["feed kafka grid-cases"]["status"] == "ok"
        assert found["feed kafka incidents"]["reason"] == "caught up"
        clock.now += 121
        found = checks(operations)
        for name in ("feed webhook grid-cases", "feed kafka grid-cases"):
            assert found[name]["status"] == "degraded", found[name]
            assert "stuck longer than 120 s" in found[name]["reason"]
        assert operations.health.report()["status"] == "degraded"
        head = system.grid_cases.recorder.max_notification_id() or 0
        with feeds.store.transaction() as txn:
            set_position(txn, OUTBOX_PROJECTION, "gridcases", head)
        feeds._mirror_kafka_positions(StoppedPublisher(  # type: ignore[arg-type]
            {**dict.fromkeys(Stream, 0), Stream.GRID_CASES: head}))
        assert operations.health.report()["status"] == "ok"
    finally:
        feeds.close()


def test_the_projection_process_serves_metrics_and_health_on_its_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {**os.environ, "CITYOPS_DATA_DIR": str(tmp_path / "data")}
    log_path = tmp_path / "projections.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cityops.cli", "projections", "run", "--metrics-port",
             str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    health = httpx.get(f"{base}/health", timeout=2)
                    break
                except httpx.HTTPError:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, \
                    log_path.read_text()
                time.sleep(0.2)
            assert health.status_code == 200
            body = health.json()
            assert set(body["projection_lag"]) == {"gridcases", "incidents", "hazards",
                                                   "hotline", "resources", "warnings"}
            assert {c["name"] for c in body["checks"]} >= {"projection gridcases",
                                                           "failing aggregates"}
            text = httpx.get(f"{base}/metrics", timeout=5).text
            assert 'cityops_projection_lag_events{projection="cityops-views",' \
                   'stream="gridcases"}' in text
            assert "cityops_projection_round_failures_total" in text
        finally:
            process.terminate()
            process.wait(timeout=30)
