"""Benchmark: how fast the read models are rebuilt from an event store, against how fast the
same store can merely be read and decoded, on SQLite and on PostgreSQL, in the same run.

The store is a run of simulated demo days (the demo city's inspectors, hotline, sensors,
incidents and resources, each day with its own seed), recorded through the application
commands into SQLite event stores, then copied event for event into PostgreSQL. For each
back end it measures, best of `--repeat` runs:

- raw read: `select_notifications` + `mapper.to_domain_event` over every event (the
  baseline: no projection can be faster than reading its input);
- rebuild: `rebuild()` into a new generation (`cityops projections rebuild`), the rows of a
  batch written once per aggregate with its last state;
- rebuild, one write per event: the same, but every table writes its row after every event
  (what the follower did before batching), to show what the batching buys;
- statistics: the key figures, departments and cells computed from the rebuilt read models
  (they are computed when asked, so their latency at this scale matters).

Usage:
    python bench/projection_rebuild.py                    # about 20,000 events, both stores
    python bench/projection_rebuild.py --events 60000 --store /tmp/city-events
    python bench/projection_rebuild.py --no-postgres

`--store` keeps the generated event stores for later runs (generation takes a while);
PostgreSQL is the dev cluster (`dev/postgres start`), in a database made and dropped here.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from cityops.bootstrap import PROJECTION_NAME, CitySystem, build_system
from cityops.projections.generations import (
    ActiveGenerationStore,
    PostgresGenerations,
    ReadModelGenerations,
    SqliteGenerations,
    rebuild,
)
from cityops.projections.returns import CASE_RETURNS_TABLE, RETURN_COLUMNS
from cityops.projections.statistics import (
    DISPATCH_COLUMNS,
    DISPATCH_TABLE,
    AreaLevel,
    CityStatistics,
)
from cityops.projections.tables import SummaryTable
from cityops.settings import Settings
from cityops.simulator import DemoDay, SimulatedClock, demo_day_start

sys.path.insert(0, str(Path(__file__).parent))
import summary  # bench/summary.py

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRST_DAY = date(2026, 3, 2)
ORDERS_PER_DAY = 1_000_000


# --- the store -----------------------------------------------------------------------------


def event_count(system: CitySystem) -> int:
    """Events in all the system's event stores."""
    return sum(app.recorder.max_notification_id() or 0 for app in system.applications)


def generate(directory: Path, events: int) -> CitySystem:
    """Demo days, one after another on the same stores, until there are `events` events."""
    # The day before the first: every day's start is still ahead of the clock.
    clock = SimulatedClock(datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC)
                           - timedelta(days=1), 0.0)
    system = build_system(Settings(data_dir=directory, run_projections=False), clock=clock)
    day = 0
    while event_count(system) < events:
        start = demo_day_start(system, FIRST_DAY + timedelta(days=day))
        if start <= clock():
            day += 1
            continue
        clock.advance_to(start)
        demo = DemoDay(system, clock, start, seed=1000 + day)
        # Command ids of the demo are numbered per day: number each day apart, so that a
        # day's reports are not taken for repeats of an earlier day's.
        demo._order = day * ORDERS_PER_DAY
        demo.plan()
        demo.run_until(demo.end)
        print(f"  day {day + 1}: {event_count(system):,} events", flush=True)
        day += 1
    return system


def copy_events(source: CitySystem, target: CitySystem) -> None:
    """Every event of every application, inserted into the other system's stores as is."""
    for app, copy in zip(source.applications, target.applications, strict=True):
        start = 0
        while notifications := app.recorder.select_notifications(
                start=start, limit=2000, inclusive_of_start=False):
            start = notifications[-1].id
            copy.recorder.insert_events([
                StoredEvent(originator_id=n.originator_id,
                            originator_version=n.originator_version, topic=n.topic,
                            state=n.state)
                for n in notifications
            ])


# --- measurements --------------------------------------------------------------------------


def raw_read(applications: Sequence[Application[Any]]) -> tuple[int, float]:
    """Read and decode every event of every application: (events, seconds)."""
    started = time.perf_counter()
    count = 0
    for app in applications:
        start = 0
        while notifications := app.recorder.select_notifications(
                start=start, limit=2000, inclusive_of_start=False):
            start = notifications[-1].id
            for notification in notifications:
                app.mapper.to_domain_event(notification)
            count += len(notifications)
    return count, time.perf_counter() - started


@dataclass(frozen=True)
class EveryEventWrites:
    """A table that writes its row after every event (the follower before batching): each
    event's rows are collected and written by a batch of their own."""

    inner: Any

    @property
    def table(self) -> str:
        return str(self.inner.table)

    @property
    def aggregate_class(self) -> Any:
        return self.inner.aggregate_class

    def ddl(self, dialect: str) -> list[str]:
        result: list[str] = self.inner.ddl(dialect)
        return result

    def batch(self) -> EveryEventBatch:
        return EveryEventBatch(self.inner)


class EveryEventBatch:
    """The batch of `EveryEventWrites`: one single-event batch per event."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.written: list[Any] = []

    def add(self, event: Any, aggregate: Any) -> None:
        single = self.inner.batch()
        single.add(event, aggregate)
        self.written.append(single)

    def write(self, txn: Any) -> None:
        for single in self.written:
            single.write(txn)


def timed_rebuild(storage: Any, system: CitySystem, *, every_event: bool) -> tuple[int, float]:
    """Rebuild every read model into a fresh generation of `storage`: (events, seconds)."""
    tables = system.generations.tables
    if every_event:
        tables = {app: [EveryEventWrites(t) for t in group] for app, group in tables.items()}
    generations = ReadModelGenerations(storage, tables, PROJECTION_NAME)
    generations.start(system.applications)
    try:
        result = rebuild(generations, drop_old=True, drain_s=0)
        return result.events, result.seconds
    finally:
        generations.close()


def read_every_case(statistics_of: CityStatistics) -> int:
    """The baseline of the statistics: what recomputing them in Python would start with,
    reading and decoding every case's document."""
    with statistics_of.store.transaction() as txn:
        txn.execute("SELECT doc FROM rm_grid_cases")
        # PostgreSQL's driver decodes JSONB itself; SQLite gives text.
        docs = [json.loads(doc) if isinstance(doc, str) else doc for (doc,) in txn.fetchall()]
    return len(docs)


def query_ms(statistics_of: CityStatistics, now: Any) -> dict[str, float]:
    """Median milliseconds of the statistics questions over the rebuilt read models."""
    questions: dict[str, Callable[[], object]] = {
        "read every case (baseline)": lambda: read_every_case(statistics_of),
        "key figures": lambda: statistics_of.key_figures(now),
        "departments": lambda: statistics_of.departments(now),
        "cells": lambda: statistics_of.areas(AreaLevel.CELL, now),
        "districts": lambda: statistics_of.areas(AreaLevel.DISTRICT, now),
    }
    result = {}
    for name, ask in questions.items():
        times = []
        for _ in range(7):
            started = time.perf_counter()
            ask()
            times.append(time.perf_counter() - started)
        result[name] = statistics.median(times) * 1000
    return result


@dataclass
class BackendResult:
    """The measurements on one back end, and their report."""

    name: str
    events: int
    raw: float
    batched: float
    every_event: float
    queries: dict[str, float]

    def report(self) -> list[str]:
        raw_rate = self.events / self.raw
        batched_rate = self.events / self.batched
        every_rate = self.events / self.every_event
        lines = [
            f"{self.name}: {self.events:,} events",
            f"  raw read + decode          {raw_rate:>10,.0f} events/s   (baseline)",
            f"  rebuild, batched writes    {batched_rate:>10,.0f} events/s   "
            f"{batched_rate / raw_rate:5.2f} x raw read",
            f"  rebuild, a write per event {every_rate:>10,.0f} events/s   "
            f"{every_rate / raw_rate:5.2f} x raw read",
            f"  batching speed-up          {batched_rate / every_rate:>10.2f} x",
        ]
        lines += [f"  statistics: {name:<44} {ms:8.1f} ms"
                  for name, ms in self.queries.items()]
        return lines


def scale_up(store: Any, grid_cases: SummaryTable, cases: int) -> int:
    """Copy the case, dispatch and return rows under new ids until there are about `cases` cases
    (a year of a large city, in the demo days' proportions); returns the number of cases."""
    tables = (
        (grid_cases.table, ["id", *(c.name for c in grid_cases.all_columns), "doc"], "id"),
        (DISPATCH_TABLE, list(DISPATCH_COLUMNS), "case_id"),
        (CASE_RETURNS_TABLE, list(RETURN_COLUMNS), "item_id"),
    )
    with store.transaction() as txn:
        txn.execute(f"SELECT COUNT(*) FROM {grid_cases.table}")
        row = txn.fetchone()
        copies = max(0, cases // max(int(row[0]) if row else 0, 1) - 1)
        for table, names, key in tables:
            txn.execute(f"SELECT {', '.join(names)} FROM {table}")
            rows = txn.fetchall()
            at = names.index(key)
            for copy in range(1, copies + 1):
                txn.executemany(
                    f"INSERT INTO {table} ({', '.join(names)}) "
                    f"VALUES ({', '.join(['%s'] * len(names))})",
                    [[f"{v}-{copy}" if i == at else json.dumps(v) if isinstance(v, dict) else v
                      for i, v in enumerate(r)] for r in rows])
        txn.execute(f"SELECT COUNT(*) FROM {grid_cases.table}")
        row = txn.fetchone()
    return int(row[0]) if row else 0


def measure(name: str, system: CitySystem, storage_for: Callable[[str], Any],
            repeat: int, scale_cases: int) -> BackendResult:
    """Every measurement on the back end of `system`, best of `repeat` runs."""
    events = event_count(system)
    raw = min(raw_read(system.applications)[1] for _ in range(repeat))
    batched = min(timed_rebuild(storage_for(f"batched{i}"), system, every_event=False)[1]
                  for i in range(repeat))
    every = min(timed_rebuild(storage_for(f"every{i}"), system, every_event=True)[1]
                for i in range(repeat))
    # The statistics are asked of a generation built by this code (its indexes included).
    rebuild(system.generations, drop_old=True, drain_s=0)
    now = system.grid_cases.clock()
    statistics_of = CityStatistics(ActiveGenerationStore(system.generations))
    queries = query_ms(statistics_of, now)
    if scale_cases:
        # The same questions at city scale, in a scratch generation of copied rows.
        scratch = ReadModelGenerations(storage_for("scaled"), system.generations.tables,
                                       PROJECTION_NAME)
        scratch.start(system.applications)
        try:
            rebuild(scratch, drop_old=True, drain_s=0)
            grid_cases = next(t for t in system.generations.tables["gridcases"]
                              if isinstance(t, SummaryTable))
            scaled = scale_up(scratch.store(), grid_cases, scale_cases)
            at_scale = query_ms(CityStatistics(ActiveGenerationStore(scratch)), now)
            queries.update({f"{k} @ {scaled:,} cases": v for k, v in at_scale.items()})
        finally:
            scratch.close()
    return BackendResult(name, events, raw, batched, every, queries)


# --- PostgreSQL ----------------------------------------------------------------------------


def postgres_server() -> str:
    """The server of CITYOPS_TEST_POSTGRES_URL, else the dev PostgreSQL cluster, started if
    need be (bench/scratch_database.py)."""
    from scratch_database import server_url

    return server_url()


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def main(argv: Sequence[str] | None = None) -> int:
    """Generate or reuse the store, measure on each back end, print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000,
                        help="events in the store (whole demo days: a little more)")
    parser.add_argument("--store", type=Path, default=None,
                        help="folder of the SQLite event stores (kept; reused if big enough)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement (best)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--scale-cases", type=int, default=100_000,
                        help="also ask the statistics of this many cases (rows copied from "
                        "the store's; 0: skip)")
    summary.add_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)

    scratch = Path(tempfile.mkdtemp(prefix="cityops-bench-"))
    store = args.store or scratch / "events"
    print(f"Event store: {store}")
    system = generate(store, args.events)
    results = []
    try:
        print("Measuring on SQLite ...", flush=True)
        results.append(measure("SQLite", system, lambda label: SqliteGenerations(
            scratch / f"readmodels-{label}"), args.repeat, args.scale_cases))
        if not args.no_postgres:
            server = postgres_server()
            database = f"cityops_bench_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(server, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{database}"')
            url = with_database(server, database)
            try:
                print("Copying the events into PostgreSQL ...", flush=True)
                target = build_system(Settings(database_url=url, run_projections=False),
                                      clock=system.grid_cases.clock, city=system.city)
                copy_events(system, target)
                print("Measuring on PostgreSQL ...", flush=True)
                results.append(measure("PostgreSQL", target, lambda label: PostgresGenerations(
                    url, f"bench_{label}", 4), args.repeat, args.scale_cases))
                target.close()
            finally:
                from scratch_database import drop_database

                drop_database(server, database)
    finally:
        system.close()
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    for result in results:
        print("\n".join(result.report()))
    summary.write(args.summary, "projection_rebuild.py", [summary.Row(
        name=f"rebuild, {r.name}", baseline=f"raw read + decode {r.events / r.raw:,.0f}/s",
        figure=f"{r.events / r.batched:,.0f} events/s", ratio=r.raw / r.batched,
        target=">= 0.5x", met=r.raw / r.batched >= 0.5) for r in results])
    return 0


if __name__ == "__main__":
    sys.exit(main())
