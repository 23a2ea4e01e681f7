"""Benchmark: the whole city (every layer) at a random past instant, against the same question
about now, in the same run, over a history of at least a year of a large city.

The store (bench/city_history.py): real events of the domain in the event stores, at least
`--events` of them over at least a year (a demo-day seed's working week, copied week after
week under new ids and times, several copies a week: a city larger than the demo's), the
read models and their row versions (projections/history.py) built by the product's own
projection (`rebuild`). It is built once per size and kept (on PostgreSQL the database
`cityops_bench_history_<events>_<seed>`, on SQLite a folder under .local/bench-history/):
a rerun measures at once; `--drop` removes it.

The question (projections/city_at.py, what `cityops history at` prints): for every layer
(grid cases, incidents, plans, hazard sources, hotline tickets, resources, warnings) the
count per state and the newest items, and the key figures with the supervision lights, at
T. Asked `--questions` times at random past instants (T uniform over the stored history),
each followed by the same question about now (the baseline); p50 and p95 of each, and the
ratio of the p95s. Target (issue 12): p95 at a past instant under 1 s.

Usage:
    python bench/time_travel.py                                  # 1,000,000 events, PostgreSQL
    python bench/time_travel.py --backends postgres,sqlite --events 1000000
    python bench/time_travel.py --events 20000 --questions 10    # a quick check
    python bench/time_travel.py --events 1000000 --drop          # remove the kept store
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import summary
from city_history import SEED_EVENTS, HistoryStore, open_history
from projection_rebuild import event_count

from cityops.bootstrap import CitySystem
from cityops.projections.as_of import first_event_at
from cityops.projections.city_at import city_at

TARGET_S = 1.0


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


def load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def report(backend: str, events: int, result: dict[str, Any], questions: int) -> list[str]:
    past, now = result["past"], result["now"]
    span = result["now_at"] - result["first"]
    lines = [f"The whole city (7 layers + key figures), {backend}, {events:,} events over "
             f"{span.days} days ({result['first'].date()} .. {result['now_at'].date()}), "
             f"{questions} questions each",
             f"  items in the city at T: median "
             f"{sorted(result['items_at_t'])[len(result['items_at_t']) // 2]:,}"]
    for label, values in (("as of a random past T", past), ("now (baseline)", now)):
        lines.append(f"  {label:<24} p50 {percentile(values, 0.5) * 1000:8.1f} ms   "
                     f"p95 {percentile(values, 0.95) * 1000:8.1f} ms   "
                     f"max {max(values) * 1000:8.1f} ms")
    ratio = percentile(past, 0.95) / percentile(now, 0.95)
    lines.append(f"  p95 past / p95 now: {ratio:.2f} x; target p95 < {TARGET_S:.0f} s: "
                 f"{'met' if percentile(past, 0.95) < TARGET_S else 'MISSED'}")
    return lines


def summary_row(backend: str, events: int, result: dict[str, Any]) -> summary.Row:
    past, now = percentile(result["past"], 0.95), percentile(result["now"], 0.95)
    return summary.Row(
        name=f"{backend}, {events:,} events",
        baseline=f"now: p50 {percentile(result['now'], 0.5) * 1000:.0f}, "
                 f"p95 {now * 1000:.0f} ms",
        figure=f"past T: p50 {percentile(result['past'], 0.5) * 1000:.0f}, "
               f"p95 {past * 1000:.0f} ms",
        ratio=past / now, ratio_text=f"p95 {past / now:.2f}x",
        target=f"p95 < {TARGET_S * 1000:.0f} ms", met=past < TARGET_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="events in the store (whole weeks: a little more)")
    parser.add_argument("--backends", default="postgres",
                        help="comma-separated: postgres, sqlite (default postgres)")
    parser.add_argument("--seed-events", type=int, default=SEED_EVENTS,
                        help="events of the demo-day seed whose first week is copied")
    parser.add_argument("--questions", type=int, default=40,
                        help="past instants asked (and as many questions about now)")
    parser.add_argument("--seed", type=int, default=12, help="of the random instants")
    parser.add_argument("--drop", action="store_true", help="remove the kept stores and stop")
    summary.add_option(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - {"postgres", "sqlite"}
    if unknown:
        parser.error(f"unknown back end(s) {', '.join(sorted(unknown))}: postgres, sqlite")
    if args.drop:
        for backend in backends:
            HistoryStore(backend, args.events, args.seed_events).drop()
            print(f"dropped the {backend} store of {args.events:,} events")
        return 0
    lines: list[str] = []
    rows: list[summary.Row] = []
    for backend in backends:
        system: CitySystem = open_history(HistoryStore(backend, args.events, args.seed_events))
        try:
            events = event_count(system)
            print(f"Measuring {backend} ({events:,} events); load average {load()} ...",
                  flush=True)
            began = time.perf_counter()
            result = measure(system, args.questions, args.seed)
            took = time.perf_counter() - began
        finally:
            system.close()
        part = [*report(backend, events, result, args.questions),
                f"  measured in {took:.0f} s; load average after: {load()}"]
        print("\n".join(part), flush=True)
        lines += part
        rows.append(summary_row(backend, events, result))
    print()
    print("\n".join(lines))
    summary.write(args.summary, "time_travel.py", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
