"""Benchmark: the whole city (every layer) at a random past instant, against the same question
about now, in the same run, over a long simulated history.

The store is a run of simulated demo days (the demo city's inspectors, hotline, sensors,
incidents and moving resources, each day with its own seed), one working day after another,
recorded through the application commands into SQLite event stores, and projected (with
the read models' row versions, projections/history.py). Generation takes minutes per
thousands of events: it is resumable (`--store` keeps the stores and a progress file; a
later run goes on from the last finished day) and the read models are caught up once.

The question (projections/city_at.py, what `cityops history at` prints): for every layer
(grid cases, incidents, plans, hazard sources, hotline tickets, resources, warnings) the
count per state and the newest items, and the key figures with the supervision lights, at
T. Asked `--questions` times at random past instants (T uniform over the stored history),
and as many times about now; p50 and p95 of each.

Usage:
    python bench/time_travel.py                              # 1,000,000 events (long)
    python bench/time_travel.py --events 100000 --store .local/time-travel-store
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from cityops.bootstrap import CitySystem, build_system
from cityops.projections.as_of import first_event_at
from cityops.projections.city_at import city_at
from cityops.settings import Settings
from cityops.simulator import DemoDay, SimulatedClock, demo_day_start

FIRST_DAY = date(2025, 1, 2)
ORDERS_PER_DAY = 1_000_000
PROGRESS = "time-travel-progress.json"


def event_count(system: CitySystem) -> int:
    """Events in all the system's event stores."""
    return sum(app.recorder.max_notification_id() or 0 for app in system.applications)


def generate(directory: Path, events: int) -> tuple[CitySystem, SimulatedClock]:
    """Demo days, one working day after another, until the stores hold `events` events;
    resumes after the last finished day (the progress file in `directory`)."""
    directory.mkdir(parents=True, exist_ok=True)
    progress_file = directory / PROGRESS
    progress = json.loads(progress_file.read_text()) if progress_file.exists() else {"day": 0}
    day = int(progress["day"])
    clock = SimulatedClock(datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC)
                           + timedelta(days=day - 1), 0.0)
    system = build_system(Settings(data_dir=directory, run_projections=False), clock=clock)
    started = time.perf_counter()
    while (count := event_count(system)) < events:
        start = demo_day_start(system, FIRST_DAY + timedelta(days=day))
        if start <= clock():
            day += 1
            continue
        clock.advance_to(start)
        demo = DemoDay(system, clock, start, seed=5000 + day)
        # Command ids of the demo are numbered per day: each day apart.
        demo._order = day * ORDERS_PER_DAY
        demo.plan()
        demo.run_until(demo.end)
        day += 1
        progress_file.write_text(json.dumps({"day": day}))
        count = event_count(system)
        rate = count / max(1e-9, time.perf_counter() - started)
        print(f"  day {day} ({start.date()}): {count:,} events ({rate:,.0f}/s this run)",
              flush=True)
    clock.advance_to(max(clock(), clock() + timedelta(minutes=1)))
    print(f"Projecting the read models (and their row versions) of {count:,} events ...",
          flush=True)
    began = time.perf_counter()
    system.catch_up()
    print(f"  projected in {time.perf_counter() - began:,.1f} s", flush=True)
    return system, clock


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(system: CitySystem, questions: int, seed: int) -> dict[str, Any]:
    """p50/p95 of the whole city at random past instants and now, interleaved."""
    first = first_event_at(system)
    assert first is not None
    now = system.clock()
    rng = random.Random(seed)
    past: list[float] = []
    live: list[float] = []
    sizes: list[int] = []
    city_at(system, None)  # warm the caches of both paths alike
    city_at(system, first + (now - first) / 2)
    for _ in range(questions):
        instant = first + (now - first) * rng.random()
        began = time.perf_counter()
        answer = city_at(system, instant)
        past.append(time.perf_counter() - began)
        sizes.append(sum(layer["total"] for layer in answer["layers"].values()))
        began = time.perf_counter()
        city_at(system, None)
        live.append(time.perf_counter() - began)
    return {"past": past, "now": live, "items_at_t": sizes, "first": first, "now_at": now}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events in the store (whole demo days: a little more)")
    parser.add_argument("--store", type=Path, default=Path(".local/time-travel-store"),
                        help="folder of the stores (kept and resumed)")
    parser.add_argument("--questions", type=int, default=40,
                        help="past instants asked (and as many questions about now)")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    print(f"Store: {args.store}")
    system, _ = generate(args.store, args.events)
    try:
        events = event_count(system)
        result = measure(system, args.questions, args.seed)
    finally:
        system.close()
    past, now = result["past"], result["now"]
    span = result["now_at"] - result["first"]
    print()
    print(f"The whole city (7 layers + key figures), SQLite, {events:,} events over "
          f"{span.days} days ({result['first'].date()} .. {result['now_at'].date()}), "
          f"{args.questions} questions each")
    print(f"  items in the city at T: median {statistics.median(result['items_at_t']):,.0f}")
    for label, values in (("as of a random past T", past), ("now (baseline)", now)):
        print(f"  {label:<24} p50 {percentile(values, 0.5) * 1000:8.1f} ms   "
              f"p95 {percentile(values, 0.95) * 1000:8.1f} ms   "
              f"max {max(values) * 1000:8.1f} ms")
    ratio = percentile(past, 0.95) / percentile(now, 0.95)
    print(f"  p95 past / p95 now: {ratio:.2f} x; target p95 < 1 s: "
          f"{'met' if percentile(past, 0.95) < 1.0 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
