"""How long a warning takes to go out: from the moment it is issued (the command that sends
the approved warning) to its CAP alert being (1) on the public Atom feed, (2) on the Kafka
warnings topic (read committed) and (3) at a department's webhook receiver, p50 and p99,
against a bare publish of the same document in the same run:

  (1') the document inserted into a table and read back (one commit, no follower);
  (2') the document sent with a bare kafka-python producer (acks=all) and consumed;
  (3') the document POSTed straight to the same receiver.

The pipeline runs as in production: PostgreSQL event stores, the feed loops in threads (the
CAP alert log, the Kafka publisher, the webhook outbox and deliverer) polling every
`--poll` seconds (the product's default: 0.5 s). Warnings are issued one at a time, each
once the previous one has arrived everywhere, so the figures are latencies, not queueing.

Usage (PostgreSQL and Kafka running; CITYOPS_TEST_POSTGRES_URL and
CITYOPS_TEST_KAFKA_BOOTSTRAP name them, else the dev/ scripts are asked):

    python bench/cap_publish.py                    # 40 warnings, poll 0.5 s
    python bench/cap_publish.py --warnings 100 --poll 0.05
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import shapely
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from lxml import etree

from cityops.bootstrap import build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import Area
from cityops.domain.warnings.commands import ApproveWarning, DraftWarning, DrawnArea, IssueWarning
from cityops.domain.warnings.content import WarningText
from cityops.feeds.cap import CAP_MEDIA_TYPE, CAP_NAMESPACE
from cityops.feeds.commands import Subscribe
from cityops.feeds.service import build_feed_service
from cityops.feeds.settings import FeedSettings
from cityops.feeds.streams import Stream
from cityops.feeds.subscription import Delivery, DeliveryKind, SubscriptionFilter
from cityops.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DRAFTER = Actor("duty-zhao", Role.DISPATCHER)
APPROVER = Actor("duty-li", Role.DISPATCHER)
ADMIN = Actor("root-wu", Role.ADMIN)
SECRET = "benchmark-webhook-secret-0123456789"
TIMEOUT_S = 60.0


def kafka_bootstrap() -> str:
    """The broker named by CITYOPS_TEST_KAFKA_BOOTSTRAP, else the dev broker's."""
    if os.environ.get("CITYOPS_TEST_KAFKA_BOOTSTRAP"):
        return os.environ["CITYOPS_TEST_KAFKA_BOOTSTRAP"]
    return subprocess.run([str(REPO_ROOT / "dev" / "kafka"), "bootstrap"], check=True,
                          capture_output=True, text=True).stdout.strip()


def identifier_of(document: bytes) -> str:
    return str(etree.fromstring(document).findtext(f"{{{CAP_NAMESPACE}}}identifier"))


class Arrivals:
    """When each identifier was seen where (monotonic seconds)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    def note(self, where: str, identifier: str) -> None:
        with self.changed:
            self.seen.setdefault((where, identifier), time.perf_counter())
            self.changed.notify_all()

    def wait(self, keys: list[tuple[str, str]]) -> dict[str, float]:
        deadline = time.monotonic() + TIMEOUT_S
        with self.changed:
            while not all(k in self.seen for k in keys):
                if not self.changed.wait(max(0.0, deadline - time.monotonic())):
                    missing = [k for k in keys if k not in self.seen]
                    raise SystemExit(f"timed out waiting for {missing}")
            return {where: self.seen[(where, ident)] for where, ident in keys}


def receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            where = "bare-webhook" if self.path.endswith("/bare") else "webhook"
            arrivals.note(where, identifier_of(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def consume(bootstrap: str, topic: str, where: str, arrivals: Arrivals,
            stop: threading.Event) -> threading.Thread:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                             isolation_level="read_committed", auto_offset_reset="earliest",
                             enable_auto_commit=False, fetch_max_wait_ms=10)

    def run() -> None:
        try:
            while not stop.is_set():
                for records in consumer.poll(timeout_ms=50).values():
                    for record in records:
                        arrivals.note(where, identifier_of(record.value))
        finally:
            consumer.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def texts(n: int) -> tuple[WarningText, ...]:
    return (WarningText(language="zh-CN", headline=f"燃气泄漏 {n}", description="燃气泄漏。",
                        instruction="请远离。"),
            WarningText(language="en-US", headline=f"Gas leak {n}", description="A gas leak.",
                        instruction="Keep away."))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warnings", type=int, default=40)
    parser.add_argument("--poll", type=float, default=0.5,
                        help="the feed loops' poll interval (CITYOPS_FEEDS_POLL_INTERVAL_S)")
    import summary  # bench/summary.py (bench/ is on the path when run)

    summary.add_option(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from scratch_database import scratch_database  # bench/ is on the path when run
    bootstrap = kafka_bootstrap()
    prefix = f"cityops-bench-{uuid.uuid4().hex[:8]}.feed"
    bare_topic = f"{prefix}.bare-warnings"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics({bare_topic: {"num_partitions": 1, "replication_factor": -1}})
    arrivals = Arrivals()
    http_server = receiver(arrivals)
    host, port = http_server.server_address[:2]
    stop = threading.Event()
    try:
        with scratch_database("cap") as url, tempfile.TemporaryDirectory() as data_dir:
            system = build_system(Settings(database_url=url, data_dir=Path(data_dir),
                                           kafka_bootstrap_servers=bootstrap))
            desk = system.warnings
            feeds = build_feed_service(system, FeedSettings(
                topic_prefix=prefix, transactional_id=f"{prefix}-publisher",
                poll_interval_s=args.poll, webhook_allowed_destinations=["127.0.0.1/32"]),
                warnings=desk)
            feeds.subscriptions.subscribe(Subscribe(
                department="fire", subscription_name="fire warnings",
                filter=SubscriptionFilter(stream=Stream.WARNINGS), triggers=("created",),
                delivery=Delivery(kind=DeliveryKind.WEBHOOK,
                                  url=f"http://{host!s}:{port}/cap", secret=SECRET)),
                CommandContext(actor=ADMIN))
            feeds.start()
            consumers = [consume(bootstrap, f"{prefix}.warnings", "kafka", arrivals, stop),
                         consume(bootstrap, bare_topic, "bare-kafka", arrivals, stop)]
            feed_watch = threading.Thread(target=watch_feed, args=(feeds, arrivals, stop),
                                          daemon=True)
            feed_watch.start()
            time.sleep(3)  # consumers assigned, topics created
            cells = system.city.map.cells
            pipeline: dict[str, list[float]] = {"feed": [], "kafka": [], "webhook": []}
            bare: dict[str, list[float]] = {"feed": [], "kafka": [], "webhook": []}
            producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
            table = BareTable(url)
            try:
                for n in range(args.warnings):
                    point = cells.iloc[(n * 37) % len(cells)].geometry.representative_point()
                    zone = Area(wkt=shapely.box(point.x - 0.003, point.y - 0.003,
                                                point.x + 0.003, point.y + 0.003).wkt)
                    warning_id = desk.handle(DraftWarning(
                        texts=texts(n), expires=system.clock() + timedelta(hours=6),
                        contact="12345", level="orange", category="accident-disaster",
                        event_type="gas-leak", area=DrawnArea(polygons=(zone,))),
                            CommandContext(actor=DRAFTER)).subject
                    desk.handle(ApproveWarning(warning_id=warning_id),
                                CommandContext(actor=APPROVER))
                    started = time.perf_counter()
                    desk.handle(IssueWarning(warning_id=warning_id), CommandContext(actor=DRAFTER))
                    identifier = desk.notices(warning_id)[-1].identifier
                    seen = arrivals.wait([(w, identifier) for w in pipeline])
                    for where, at in seen.items():
                        pipeline[where].append(at - started)
                    document = feeds.cap_alerts.alert(identifier).document  # type: ignore[union-attr]
                    bare["feed"].append(table.publish(document))
                    started = time.perf_counter()
                    producer.send(bare_topic, value=document)
                    producer.flush()
                    bare["kafka"].append(
                        arrivals.wait([("bare-kafka", identifier)])["bare-kafka"] - started)
                    started = time.perf_counter()
                    post(host, port, document)
                    bare["webhook"].append(
                        arrivals.wait([("bare-webhook", identifier)])["bare-webhook"]
                        - started)
            finally:
                producer.close()
                table.close()
                stop.set()
                for thread in consumers:
                    thread.join(timeout=5)
                feeds.close()
                system.close()
            report(args, pipeline, bare)
    finally:
        http_server.shutdown()
        mine = [t for t in admin.list_topics() if t.startswith(f"{prefix}.")]
        if mine:
            admin.delete_topics(mine)
        admin.close()


def watch_feed(feeds: Any, arrivals: Arrivals, stop: threading.Event) -> None:
    """Polls what `GET /cap/alerts.atom` lists (the same query) every 5 ms."""
    while not stop.is_set():
        for alert in feeds.cap_alerts.current(feeds.system.clock()):
            arrivals.note("feed", alert.identifier)
        time.sleep(0.005)


class BareTable:
    """Baseline (1'): the document written in one commit and read back."""

    def __init__(self, url: str) -> None:
        self.connection = psycopg.connect(url, autocommit=True)
        self.connection.execute("CREATE TABLE bare_alerts (identifier TEXT PRIMARY KEY, "
                                "document TEXT NOT NULL)")

    def publish(self, document: bytes) -> float:
        identifier = identifier_of(document)
        started = time.perf_counter()
        self.connection.execute("INSERT INTO bare_alerts VALUES (%s, %s)",
                                (identifier, document.decode()))
        row = self.connection.execute("SELECT document FROM bare_alerts WHERE identifier = %s",
                                      (identifier,)).fetchone()
        assert row is not None
        return time.perf_counter() - started

    def close(self) -> None:
        self.connection.close()


def post(host: str, port: int, document: bytes) -> None:
    """Baseline (3'): the document POSTed straight to the receiver."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("POST", "/cap/bare", body=document,
                           headers={"Content-Type": CAP_MEDIA_TYPE})
        connection.getresponse().read()
    finally:
        connection.close()


def report(args: argparse.Namespace, pipeline: dict[str, list[float]],
           bare: dict[str, list[float]]) -> None:
    line: Callable[[list[float]], str] = lambda values: (  # noqa: E731
        f"p50 {percentile(values, 0.5) * 1000:8.1f} ms  p99 {percentile(values, 0.99) * 1000:8.1f}"
        f" ms  mean {statistics.fmean(values) * 1000:8.1f} ms")
    print(f"{args.warnings} warnings issued one at a time; feed loops poll every {args.poll} s")
    for where in ("feed", "kafka", "webhook"):
        print(f"issue -> {where:8s} {line(pipeline[where])}")
        print(f"bare    {where:8s} {line(bare[where])}   "
              f"(p50 ratio {percentile(pipeline[where], 0.5) / percentile(bare[where], 0.5):.0f}x)")
    import summary

    summary.write(args.summary, "cap_publish.py", [summary.Row(
        name=f"issue -> {where}",
        baseline=f"bare p50 {percentile(bare[where], 0.5) * 1000:.1f}, "
                 f"p99 {percentile(bare[where], 0.99) * 1000:.1f} ms",
        figure=f"p50 {percentile(pipeline[where], 0.5) * 1000:.1f}, "
               f"p99 {percentile(pipeline[where], 0.99) * 1000:.1f} ms",
        ratio=percentile(pipeline[where], 0.5) / percentile(bare[where], 0.5),
        ratio_text=f"p50 {percentile(pipeline[where], 0.5) / percentile(bare[where], 0.5):.0f}x")
        for where in ("feed", "kafka", "webhook")])


if __name__ == "__main__":
    main()
