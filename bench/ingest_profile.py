"""Where an ingest worker's time goes, per message kind: the messages of a mix are put
through the pipeline without Kafka (as `ingest_throughput.py --direct` does), one kind at a
time, in batches as a worker polls them, and the cost per message of each kind is printed,
with the functions that take most of it (cProfile) when asked.

Each kind runs on its own fresh PostgreSQL database set up like the benchmark's (resources,
hazard sources), after a warm-up batch of its own, so that one kind's figures do not carry
another's work. The cost of merely consuming a message is not in these figures (it is the
raw consume rate of `ingest_throughput.py`, a few microseconds a message).

    python bench/ingest_profile.py                         # realistic mix, 6,000 messages
    python bench/ingest_profile.py --messages 20000 --top 25
    python bench/ingest_profile.py --kinds resource-position/1 --top 40
    python bench/ingest_profile.py --messages 20000 --whole          # the mix in its order
    python bench/ingest_profile.py --messages 20000 --whole --mix reports
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_throughput import Workload, dev, fresh_database, raw_insert_rates

from cityops.bootstrap import build_system
from cityops.ingest import messages
from cityops.ingest.composition import build_pipeline, ingest_store
from cityops.ingest.deadletters import StoredDeadLetters
from cityops.ingest.pipeline import Delivery
from cityops.ingest.settings import IngestSettings
from cityops.ingest.topics import Topics
from cityops.settings import Settings

SORT = "tottime"


def run_kind(server: str, workload: Workload, batch: list[Any], batch_size: int,
             top: int) -> tuple[float, float, Counter[str], str]:
    """µs per message of `batch` (one kind), in wall time and in this process's CPU time
    (the worker's own cost: wall time also holds the database's, and the machine's other
    work), the outcomes, and the profile's top lines."""
    settings = IngestSettings(topic_namespace="cityops-profile")
    topics = Topics(settings.topic_namespace)
    with fresh_database(server) as database_url:
        system = build_system(Settings(database_url=database_url,
                                       data_dir=Path("/tmp/cityops-bench")))
        try:
            workload.set_up(system)
            store = ingest_store(system)
            pipeline = build_pipeline(system, settings, store, StoredDeadLetters(store),
                                      worker="profile")
            deliveries = [Delivery(topic=topics.name(stream), value=messages.encode(m),
                                   partition=0, offset=offset)
                          for offset, (stream, m) in enumerate(batch)]
            # A warm-up batch (caches, prepared statements), not counted.
            warm, measured = deliveries[:batch_size], deliveries[batch_size:]
            pipeline.process_batch(warm)
            outcomes: Counter[str] = Counter()
            profiler = cProfile.Profile() if top else None
            started, cpu_started = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            for offset in range(0, len(measured), batch_size):
                done = pipeline.process_batch(measured[offset:offset + batch_size])
                if done.stalled is not None:
                    raise done.stalled
                outcomes.update(o.value for o in done.outcomes)
            if profiler is not None:
                profiler.disable()
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            pipeline.close()
        finally:
            system.close()
    text = ""
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(SORT).print_stats(top)
        text = out.getvalue()
    count = max(1, len(measured))
    return elapsed / count * 1e6, cpu / count * 1e6, outcomes, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--mix", choices=("reports", "realistic"), default="realistic")
    parser.add_argument("--batch", type=int, default=500, help="messages per batch (a poll)")
    parser.add_argument("--kinds", help="comma-separated schemas (default: every kind)")
    parser.add_argument("--top", type=int, default=0,
                        help="profile, and print this many functions by own time per kind")
    parser.add_argument("--whole", action="store_true",
                        help="also the whole mix in its order, against the raw psycopg "
                             "insert of as many rows, one per transaction, in the same run")
    parser.add_argument("--postgres", help="server URL (default: dev/postgres url)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    server = args.postgres or dev("postgres", "url")
    with fresh_database(server) as database_url:
        system = build_system(Settings(database_url=database_url,
                                       data_dir=Path("/tmp/cityops-bench")))
        workload = Workload(args.messages, args.mix, system.city)
        workload.set_up(system)
        everything = workload.generate()
        system.close()
    kinds = Counter(m["schema"] for _, m in everything)
    chosen = args.kinds.split(",") if args.kinds else sorted(kinds, key=lambda k: -kinds[k])
    print(f"ingest cost per message kind ({args.mix} mix of {args.messages:,}, batches of "
          f"{args.batch}, PostgreSQL, no Kafka; the first batch of each kind is a warm-up)")
    if args.whole:
        wall, cpu, outcomes, profile = run_kind(server, workload, everything, args.batch,
                                                args.top)
        with fresh_database(server) as database_url:
            single, _ = raw_insert_rates(database_url,
                                         [messages.encode(m) for _, m in everything])
        print(f"  whole mix, in order         {1e6 / wall:8,.0f} msg/s ({wall:.1f} µs wall, "
              f"{cpu:.1f} µs CPU a message: "
              f"{', '.join(f'{n} {o}' for o, n in sorted(outcomes.items()))})")
        print(f"  raw psycopg insert, 1/txn   {single:8,.0f} rows/s   "
              f"ratio {1e6 / wall / single:.1%}")
        if profile:
            print(profile)
        return
    for kind in chosen:
        batch = [(s, m) for s, m in everything if m["schema"] == kind]
        if len(batch) <= args.batch:
            print(f"  {kind:<24} only {len(batch)} messages: skipped (need > one batch)")
            continue
        wall, cpu, outcomes, profile = run_kind(server, workload, batch, args.batch, args.top)
        print(f"  {kind:<24} {wall:8.1f} µs/message wall, {cpu:6.1f} µs CPU  "
              f"({len(batch) - args.batch:,} measured: "
              f"{', '.join(f'{n} {o}' for o, n in sorted(outcomes.items()))})")
        if profile:
            print(profile)


if __name__ == "__main__":
    main()
