"""Fixtures of the feed integration tests: a city system on a fresh PostgreSQL database (or
the embedded SQLite stores), feed settings with topics of their own on the real broker
(deleted after the test), a real local HTTP server that receives webhooks and checks their
signatures, and readers of committed Kafka messages."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.geometry import GeoPoint
from cityops.feeds.service import FeedService, build_feed_service
from cityops.feeds.settings import FeedSettings
from cityops.settings import Settings

REPLAY_WINDOW_S = 300


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


# --- the city -----------------------------------------------------------------------------


class Cast:
    admin = Actor("root-wu", Role.ADMIN)
    inspector = Actor("insp-wang", Role.INSPECTOR)
    dispatcher = Actor("duty-zhao", Role.DISPATCHER)
    operator = Actor("op-li", Role.HOTLINE_OPERATOR)
    water = Actor("water-chen", Role.DEPARTMENT_USER, "water")

    @staticmethod
    def patroller(system: Any, point: GeoPoint) -> Actor:
        """The inspector who patrols `point`: their report there is not marked as outside
        their cells (one event more)."""
        return Actor(system.city.map.locate(point).inspector_id, Role.INSPECTOR)


@pytest.fixture(scope="session")
def cast() -> Cast:
    return Cast()


@pytest.fixture(scope="session")
def cell_points(demo_city: Any) -> list[tuple[str, GeoPoint]]:
    """A point inside each of the demo city's first 200 grid cells, with the cell code."""
    points = []
    for _, cell in demo_city.map.cells.head(200).iterrows():
        inside = cell.geometry.representative_point()
        points.append((str(cell["code"]), GeoPoint(inside.x, inside.y)))
    return points


@pytest.fixture
def pg_system(fresh_database: str, tmp_path: Path, demo_city: Any) -> Iterator[CitySystem]:
    """A city on a fresh PostgreSQL database, without Kafka (tests that publish to Kafka
    use `pg_kafka_system`)."""
    system = build_system(Settings(database_url=fresh_database, data_dir=tmp_path / "data"),
                          city=demo_city)
    yield system
    system.close()


@pytest.fixture
def pg_kafka_system(fresh_database: str, kafka_bootstrap: str, tmp_path: Path,
                    demo_city: Any) -> Iterator[CitySystem]:
    """A city on a fresh PostgreSQL database, publishing to the test broker."""
    system = build_system(Settings(database_url=fresh_database, data_dir=tmp_path / "data",
                                   kafka_bootstrap_servers=kafka_bootstrap), city=demo_city)
    yield system
    system.close()


@pytest.fixture
def embedded_system(tmp_path: Path, demo_city: Any) -> Iterator[CitySystem]:
    """The embedded default: SQLite files, no Kafka."""
    system = build_system(Settings(data_dir=tmp_path / "embedded"), city=demo_city)
    yield system
    system.close()


@pytest.fixture
def open_feeds() -> Iterator[Callable[..., FeedService]]:
    """Builds feed services (`open_feeds(system, settings)`) and closes them after the test,
    so that a test can stop one and still read its delivery log."""
    opened: list[FeedService] = []

    def build(system: CitySystem, settings: FeedSettings) -> FeedService:
        feeds = build_feed_service(system, settings)
        opened.append(feeds)
        return feeds

    yield build
    for feeds in opened:
        feeds.close()


# --- Kafka --------------------------------------------------------------------------------


@pytest.fixture
def topic_prefix(kafka_admin: KafkaAdminClient) -> Iterator[str]:
    """A topic prefix of this test's own; every topic under it is deleted afterwards."""
    prefix = f"cityops-test-{uuid.uuid4().hex[:10]}.feed"
    yield prefix
    mine = [t for t in kafka_admin.list_topics() if t.startswith(f"{prefix}.")]
    if mine:
        kafka_admin.delete_topics(mine, timeout_ms=30_000, raise_errors=False)


def feed_settings(prefix: str, **overrides: Any) -> FeedSettings:
    """Feed settings for tests: quick polling and short backoff."""
    values: dict[str, Any] = {
        "topic_prefix": prefix, "transactional_id": f"{prefix}-publisher",
        "poll_interval_s": 0.05, "restart_delay_s": 0.2, "webhook_backoff_base_s": 0.2,
        "webhook_backoff_max_s": 1.0, "webhook_max_attempts": 4, "webhook_timeout_s": 5.0,
        # The receivers run on this machine: a loopback destination, allowed explicitly.
        "webhook_allowed_destinations": ["127.0.0.1/32"],
    }
    values.update(overrides)
    return FeedSettings(**values)


@dataclass(frozen=True)
class FeedMessage:
    topic: str
    partition: int
    offset: int
    key: bytes
    raw: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw)
        return parsed


def read_committed(bootstrap: str, topic: str, *, timeout_s: float = 30.0) -> list[FeedMessage]:
    """Every committed message of `topic`, partition by partition in offset order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                             enable_auto_commit=False, group_id=None)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not assigned:
            return []
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        found: list[FeedMessage] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in assigned):
            if time.monotonic() > deadline:
                pytest.fail(f"could not read {topic} to its end")
            for tp, records in consumer.poll(timeout_ms=500).items():
                found.extend(FeedMessage(tp.topic, tp.partition, r.offset, r.key, r.value,
                                         tuple(r.headers or ()))
                             for r in records)
        return sorted(found, key=lambda m: (m.partition, m.offset))
    finally:
        consumer.close()


def stream_events(system: CitySystem, application: str, aggregate: str) -> list[str]:
    """The event ids of one aggregate class in an application's log, read straight from the
    notification table (independently of the feed code)."""
    app = next(a for a in system.applications if a.name == application)
    ids = []
    for notification in app.recorder.select_notifications(start=1, limit=1_000_000):
        if f":{aggregate}." in notification.topic:
            ids.append(f"{notification.originator_id}:{notification.originator_version}")
    return ids


def assert_once_and_in_order(messages: list[FeedMessage]) -> None:
    """Each event once; one aggregate's events in one partition, in version order."""
    ids = [m.body["event_id"] for m in messages]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates, f"published more than once: {sorted(duplicates)[:5]}"
    partition_of: dict[str, int] = {}
    last_version: dict[str, int] = {}
    for message in messages:
        body = message.body
        aggregate = body["aggregate_id"]
        assert message.key == aggregate.encode()
        assert partition_of.setdefault(aggregate, message.partition) == message.partition
        assert body["version"] > last_version.get(aggregate, 0), f"{aggregate} out of order"
        last_version[aggregate] = body["version"]


# --- webhooks -----------------------------------------------------------------------------


@dataclass
class Received:
    """One request that reached the receiver, and what it answered."""

    headers: dict[str, str]
    body: bytes
    arrived: float
    signature_ok: bool
    status: int

    @property
    def message(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class WebhookReceiver:
    """A department's system on a real local HTTP server: checks each request's signature
    and timestamp itself (HMAC-SHA256 of "<timestamp>." + body), and can be told to fail
    the next requests, to answer every request with one status, or to hold requests until
    released."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.failures_left = 0
        self.failure_status = 503
        self.always: int | None = None
        self.released = threading.Event()
        self.released.set()
        self.holding = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.answer(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/cityops/events"

    def signature_ok(self, headers: dict[str, str], body: bytes) -> bool:
        timestamp = headers.get("X-CityOps-Timestamp", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > REPLAY_WINDOW_S:
            return False
        expected = hmac.new(self.secret.encode(), f"{timestamp}.".encode() + body,
                            hashlib.sha256).hexdigest()
        return hmac.compare_digest(f"sha256={expected}",
                                   headers.get("X-CityOps-Signature", ""))

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        arrived = time.monotonic()
        ok = self.signature_ok(headers, body)
        if ok and not self.released.is_set():
            with self.lock:
                self.holding += 1
            self.released.wait(60)
            with self.lock:
                self.holding -= 1
        with self.lock:
            if not ok:
                status = 401
            elif self.failures_left > 0:
                self.failures_left -= 1
                status = self.failure_status
            else:
                status = self.always or 200
            self.requests.append(Received(headers, body, arrived, ok, status))
        return status

    def fail_next(self, count: int, status: int = 503) -> None:
        with self.lock:
            self.failures_left, self.failure_status = count, status

    def hold(self) -> None:
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.status == 200]

    def all_requests(self) -> list[Received]:
        with self.lock:
            return list(self.requests)

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[Callable[[str], WebhookReceiver]]:
    """Starts receivers on free local ports; all are shut down after the test."""
    started: list[WebhookReceiver] = []

    def start(secret: str) -> WebhookReceiver:
        receiver = WebhookReceiver(secret)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.close()
