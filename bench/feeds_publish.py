"""Feed publishing throughput: events per second from the PostgreSQL event store to the Kafka
feed topics (read the log, follow each aggregate, match subscriptions, apply the sharing
catalogue, write JSON, send in Kafka transactions with the positions), against two
baselines measured in the same run on the same machine and services:

  (a) reading and decoding the same events (`select_notifications` +
      `mapper.to_domain_event`): no publisher can be faster than reading its input;
  (b) the raw kafka-python send rate of the same number of messages of the same size
      (idempotent producer, acks=all, no transactions), flushed.

Every event goes to its city-wide topic and, through a subscription, to a department topic:
two messages per event, in both the pipeline and baseline (b). The pipeline's result is
checked (its positions reach the log's head) before its rate is reported.

Usage (services from `dev/postgres start` and `dev/kafka start`):

    python bench/feeds_publish.py                   # 15,000 events (5,000 grid cases)
    python bench/feeds_publish.py --events 30000 --batch 500
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import DispatchCase, RegisterCase, ReportCase
from cityops.feeds.commands import (
    Subscribe,
)
from cityops.feeds.events import StreamReader, encode
from cityops.feeds.kafka_feed import FeedTopics, KafkaFeedPublisher
from cityops.feeds.service import build_feed_service
from cityops.feeds.settings import FeedSettings
from cityops.feeds.sharing import Recipient
from cityops.feeds.streams import STREAMS, Stream
from cityops.feeds.subscription import Delivery, DeliveryKind, SubscriptionFilter
from cityops.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
INSPECTOR = Actor("insp-wang", Role.INSPECTOR)
DISPATCHER = Actor("duty-zhao", Role.DISPATCHER)
ADMIN = Actor("root-wu", Role.ADMIN)


def kafka_bootstrap() -> str:
    """The broker of CITYOPS_TEST_KAFKA_BOOTSTRAP (one already running), else the dev
    broker, started if need be."""
    import os

    if os.environ.get("CITYOPS_TEST_KAFKA_BOOTSTRAP"):
        return os.environ["CITYOPS_TEST_KAFKA_BOOTSTRAP"]
    subprocess.run([str(REPO_ROOT / "dev" / "kafka"), "start"], check=True,
                   capture_output=True)
    return subprocess.run([str(REPO_ROOT / "dev" / "kafka"), "bootstrap"], check=True,
                          capture_output=True, text=True).stdout.strip()


def record_cases(system: CitySystem, cases: int) -> float:
    """Report, register and dispatch `cases` grid cases; returns the seconds it took."""
    cells = system.city.map.cells
    points = [cells.iloc[i].geometry.representative_point() for i in range(min(500, len(cells)))]
    started = time.perf_counter()
    for i in range(cases):
        point = points[i % len(points)]
        case = system.grid_cases.handle(
            ReportCase(source="inspector", category="C0101", description=f"cover {i}",
                       location=GeoPoint(point.x, point.y)),
            CommandContext(actor=INSPECTOR)).subject
        system.grid_cases.handle(RegisterCase(case_id=case), CommandContext(actor=DISPATCHER))
        system.grid_cases.handle(DispatchCase(case_id=case), CommandContext(actor=DISPATCHER))
    return time.perf_counter() - started


def read_and_decode(system: CitySystem) -> tuple[int, float]:
    """Baseline (a): every event of the log read and decoded."""
    app = system.grid_cases
    started = time.perf_counter()
    position, count = 0, 0
    while True:
        notifications = app.recorder.select_notifications(start=position, limit=1000,
                                                          inclusive_of_start=False)
        if not notifications:
            break
        for notification in notifications:
            app.mapper.to_domain_event(notification)
            count += 1
        position = notifications[-1].id
    return count, time.perf_counter() - started


def sample_message_size(system: CitySystem, feeds: Any) -> int:
    reader = StreamReader(STREAMS[Stream.GRID_CASES], system.grid_cases)
    events = reader.read(0, 300).events
    sizes = [len(encode(e.message(feeds.catalogue, Recipient.city_wide()))) for e in events]
    return sum(sizes) // len(sizes)


def raw_sends(bootstrap: str, topic: str, messages: int, size: int) -> float:
    """Baseline (b): seconds to send and flush `messages` messages of `size` bytes."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    payload = b"x" * size
    keys = [uuid.uuid4().hex.encode() for _ in range(1000)]
    try:
        producer.send(topic, key=b"warm-up", value=payload).get(timeout=30)
        started = time.perf_counter()
        for i in range(messages):
            producer.send(topic, key=keys[i % len(keys)], value=payload)
        producer.flush()
        return time.perf_counter() - started
    finally:
        producer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=15_000)
    parser.add_argument("--batch", type=int, default=200)
    import summary  # bench/summary.py (bench/ is on the path when run)

    summary.add_option(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from scratch_database import scratch_database

    bootstrap = kafka_bootstrap()
    prefix = f"cityops-bench-{uuid.uuid4().hex[:8]}.feed"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    cases = args.events // 3
    with scratch_database("feeds") as url, tempfile.TemporaryDirectory() as data_dir:
        system = build_system(Settings(database_url=url, data_dir=Path(data_dir),
                                       kafka_bootstrap_servers=bootstrap))
        feeds = build_feed_service(system, FeedSettings(topic_prefix=prefix,
                                                        transactional_id=f"{prefix}-bench",
                                                        batch_size=args.batch))
        try:
            feeds.subscriptions.subscribe(
                Subscribe(department="water", subscription_name="every case",
                    filter=SubscriptionFilter(stream=Stream.GRID_CASES),
                    triggers=[
                    "created", "updated", "closed"],
                    delivery=Delivery(kind=DeliveryKind.KAFKA)),
                CommandContext(actor=ADMIN))
            took = record_cases(system, cases)
            events = cases * 3
            print(f"recorded {events} events ({cases} grid cases) in {took:.1f} s")

            decoded, decode_s = read_and_decode(system)
            assert decoded == events, (decoded, events)
            size = sample_message_size(system, feeds)
            admin.create_topics({f"{prefix}.raw": {"num_partitions": 3}},
                                wait_for_metadata=True)
            raw_s = raw_sends(bootstrap, f"{prefix}.raw", 2 * events, size)

            publisher = KafkaFeedPublisher(
                feeds.readers(), feeds.catalogue, feeds.book, system.city.map,
                bootstrap=bootstrap, topics=FeedTopics(prefix),
                transactional_id=f"{prefix}-bench", batch_size=args.batch)
            publisher.start()
            head = system.grid_cases.recorder.max_notification_id()
            started = time.perf_counter()
            transactions = 0
            while publisher.publish_round():
                transactions += 1
            publish_s = time.perf_counter() - started
            assert publisher.positions()[Stream.GRID_CASES] == head
            assert publisher.published == 2 * events, publisher.published
            publisher.close()
        finally:
            feeds.close()
            system.close()
            mine = [t for t in admin.list_topics() if t.startswith(prefix)]
            admin.delete_topics(mine, raise_errors=False)
            admin.close()

    decode_rate = events / decode_s
    raw_rate = events / raw_s
    publish_rate = events / publish_s
    slower = min(decode_rate, raw_rate)
    print(f"message size (city-wide, average): {size} bytes; two messages per event")
    print(f"(a) read + decode the log:        {decode_rate:10,.0f} events/s")
    print(f"(b) raw kafka-python sends:       {raw_rate:10,.0f} events/s "
          f"({2 * raw_rate:,.0f} messages/s)")
    print(f"feed publisher (batch {args.batch}, {transactions} transactions): "
          f"{publish_rate:,.0f} events/s")
    print(f"publisher / slower baseline:      {publish_rate / slower:10.0%}")
    summary.write(args.summary, "feeds_publish.py", [summary.Row(
        name=f"{events:,} events", baseline=f"read + decode {decode_rate:,.0f}/s; raw sends "
        f"{raw_rate:,.0f} events/s", figure=f"{publish_rate:,.0f} events/s",
        ratio=publish_rate / slower, ratio_text=f"{publish_rate / slower:.0%} of slower")])


if __name__ == "__main__":
    main()
