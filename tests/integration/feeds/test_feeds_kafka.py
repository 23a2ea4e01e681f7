"""The Kafka feeds on the real broker and PostgreSQL: commands through the applications ->
events on the city-wide and department topics, filtered by subscription and by sharing
class; and a publisher killed with SIGKILL mid-stream that resumes with no gap and no
duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from kafka import KafkaConsumer, TopicPartition

from cityops.bootstrap import CitySystem
from cityops.domain.commands import CommandContext
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import (
    CloseCase,
    DispatchCase,
    HandleCase,
    RegisterCase,
    ReportCase,
    VerifyCase,
)
from cityops.domain.hotline.commands import AssignTicket, ReceiveTicket
from cityops.domain.incidents.commands import AddSituationReport, ReportIncident, VerifyIncident
from cityops.feeds.commands import (
    Subscribe,
)
from cityops.feeds.kafka_feed import FeedTopics, read_published_positions
from cityops.feeds.service import build_feed_service
from cityops.feeds.streams import Stream
from cityops.feeds.subscription import Delivery, DeliveryKind, SubscriptionFilter

from .conftest import (
    Cast,
    assert_once_and_in_order,
    feed_settings,
    read_committed,
    stream_events,
    wait_until,
)

pytestmark = [pytest.mark.postgres, pytest.mark.kafka]

KAFKA = Delivery(kind=DeliveryKind.KAFKA)
ALL = ["created", "updated", "closed"]
STREAM_AGGREGATES = {Stream.GRID_CASES: ("gridcases", "GridCase"),
                     Stream.INCIDENTS: ("incidents", "Incident"),
                     Stream.HAZARDS: ("hazards", "HazardSource"),
                     Stream.HOTLINE: ("hotline", "HotlineTicket"),
                     Stream.RESOURCES: ("resources", "Resource")}


def subscribe(system_feeds: Any, cast: Cast, department: str, stream: Stream,
              triggers: list[str] = ALL, **filters: Any) -> UUID:
    subscription_id: UUID = system_feeds.subscriptions.subscribe(
        Subscribe(department=department, subscription_name=f"{department} {stream.value}",
            filter=SubscriptionFilter(stream=stream, **filters), triggers=triggers, delivery=KAFKA),
        CommandContext(actor=cast.admin)).subject
    return subscription_id


def close_a_case(system: CitySystem, cast: Cast, case_id: UUID) -> None:
    system.grid_cases.handle(RegisterCase(case_id=case_id), CommandContext(actor=cast.dispatcher))
    system.grid_cases.handle(DispatchCase(case_id=case_id), CommandContext(actor=cast.dispatcher))
    system.grid_cases.handle(
        HandleCase(case_id=case_id, result="cover replaced"),
        CommandContext(actor=cast.water))
    system.grid_cases.handle(
        VerifyCase(case_id=case_id, fixed=True),
        CommandContext(actor=cast.dispatcher))
    system.grid_cases.handle(CloseCase(case_id=case_id), CommandContext(actor=cast.dispatcher))


def test_events_reach_the_city_wide_and_department_topics_as_shared(
        pg_kafka_system: CitySystem, topic_prefix: str, kafka_bootstrap: str, cast: Cast,
        cell_points: list[tuple[str, GeoPoint]]) -> None:
    system = pg_kafka_system
    feeds = build_feed_service(system, feed_settings(topic_prefix))
    police_calls = subscribe(feeds, cast, "police", Stream.HOTLINE)
    water_covers = subscribe(feeds, cast, "water", Stream.GRID_CASES,
                             triggers=["created", "closed"], categories=frozenset({"C0101"}))
    water_tickets = subscribe(feeds, cast, "water", Stream.HOTLINE, own_department=True)
    fire_serious = subscribe(feeds, cast, "fire", Stream.INCIDENTS,
                             levels=frozenset({"I", "II"}))
    _, here = cell_points[10]

    ticket = system.hotline.handle(
        ReceiveTicket(channel="phone", ticket_type="complaint", topic="water-supply",
                      description="no water since morning", caller_name="Zhang San",
                      caller_phone="13812345678", location=here),
        CommandContext(actor=cast.operator, command_id="call-1")).subject
    system.hotline.handle(
        AssignTicket(ticket_id=ticket, department="water"),
        CommandContext(actor=cast.operator))
    witness = system.hotline.handle(
        ReceiveTicket(channel="phone", ticket_type="report", topic="water-supply",
                      description="saw someone break the hydrant", caller_name="Li Si",
                      caller_phone="13900001111", location=here),
        CommandContext(actor=cast.operator, command_id="call-2")).subject
    system.hotline.handle(
        AssignTicket(ticket_id=witness, department="police"),
        CommandContext(actor=cast.operator))
    cover = system.grid_cases.handle(
        ReportCase(source="inspector", category="C0101", description="cover missing",
                   location=here),
        CommandContext(actor=cast.patroller(system, here))).subject
    close_a_case(system, cast, cover)
    lamp = system.grid_cases.handle(
        ReportCase(source="inspector", category="C0105", description="lamp out",
                   location=cell_points[50][1]),
        CommandContext(actor=cast.patroller(system, cell_points[50][1]))).subject
    blaze = system.incidents.handle(
        ReportIncident(category="accident-disaster", incident_type="fire", title="Warehouse fire",
            location=here, source="hotline", level="II"),
        CommandContext(actor=cast.dispatcher)).subject
    system.incidents.handle(
        VerifyIncident(incident_id=blaze),
        CommandContext(actor=cast.dispatcher))
    system.incidents.handle(
        AddSituationReport(incident_id=blaze, text="two hurt", casualties={"injured": 2}),
        CommandContext(actor=cast.dispatcher))
    minor = system.incidents.handle(
        ReportIncident(category="accident-disaster", incident_type="fire", title="Bin fire",
            location=here, source="hotline", level="IV"),
        CommandContext(actor=cast.dispatcher)).subject

    feeds.start()
    try:
        heads = {r.stream: r.head() for r in feeds.readers()}
        wait_until(lambda: feeds.kafka is not None and feeds.kafka.positions() == heads,
                   30, "the Kafka feed to publish every stream to its head")
    finally:
        feeds.close()

    topics = FeedTopics(topic_prefix)
    # City-wide: every event of every stream, once, in order per aggregate, shared fields only.
    for stream, (application, aggregate) in STREAM_AGGREGATES.items():
        messages = read_committed(kafka_bootstrap, topics.stream(stream))
        assert_once_and_in_order(messages)
        assert {m.body["event_id"] for m in messages} == set(
            stream_events(system, application, aggregate))
        for message in messages:
            assert b"Zhang San" not in message.raw and b"13812345678" not in message.raw
            assert "possible_duplicates" not in message.body["data"]
            assert "casualties" not in message.body["data"]
    hotline = read_committed(kafka_bootstrap, topics.stream(Stream.HOTLINE))
    received = next(m.body for m in hotline if m.body["event_type"] == "HotlineTicket.Received")
    assert received["aggregate_id"] == str(ticket) and received["trigger"] == "created"
    assert received["data"]["location"] == {"type": "Point",
                                            "coordinates": [here.lon, here.lat]}
    assert received["actor"] == cast.operator.as_dict()

    # The police, subscribed to the whole stream, get the tickets routed to them (from the
    # assignment on), with the caller's personal data; never water's ticket.
    police = read_committed(kafka_bootstrap, topics.department("police"))
    assert_once_and_in_order(police)
    assert [(m.body["event_type"], m.body["aggregate_id"]) for m in police] == [
        ("HotlineTicket.Assigned", str(witness))]
    assert police[0].body["context"]["caller_name"] == "Li Si"
    assert police[0].body["context"]["caller_phone"] == "13900001111"
    assert police[0].body["context"]["description"] == "saw someone break the hydrant"
    assert police[0].body["subscriptions"] == [str(police_calls)]
    assert "possible_duplicates" not in police[0].body["data"]

    # Water: manhole-cover cases closed after they were dispatched to water (reported, a
    # case is no department's yet); the ticket once it was assigned to water; never the
    # caller's personal data.
    water = read_committed(kafka_bootstrap, topics.department("water"))
    assert_once_and_in_order(water)
    assert sorted((m.body["event_type"], m.body["aggregate_id"]) for m in water) == sorted([
        ("GridCase.Closed", str(cover)), ("HotlineTicket.Assigned", str(ticket))])
    assert str(lamp) not in {m.body["aggregate_id"] for m in water}
    closed = next(m.body for m in water if m.body["event_type"] == "GridCase.Closed")
    assert closed["trigger"] == "closed" and closed["subscriptions"] == [str(water_covers)]
    assert closed["context"]["category"] == "C0101" and closed["context"]["status"] == "closed"
    assigned = next(m for m in water if m.body["event_type"] == "HotlineTicket.Assigned")
    assert assigned.body["subscriptions"] == [str(water_tickets)]
    assert b"Zhang San" not in assigned.raw and b"13812345678" not in assigned.raw

    # Fire: the level II incident with its casualty figures; not the level IV one.
    fire = read_committed(kafka_bootstrap, topics.department("fire"))
    assert_once_and_in_order(fire)
    assert {m.body["aggregate_id"] for m in fire} == {str(blaze)}
    assert str(minor) in {m.body["aggregate_id"]
                          for m in read_committed(kafka_bootstrap,
                                                  topics.stream(Stream.INCIDENTS))}
    report = next(m.body for m in fire if m.body["event_type"] == "Incident.SituationReported")
    assert report["data"]["casualties"] == {"injured": 2}
    assert report["subscriptions"] == [str(fire_serious)]


# --- SIGKILL ---------------------------------------------------------------------------------


class CityTraffic(threading.Thread):
    """Keeps the city busy until stopped: cases reported, registered and dispatched (three
    versions of one aggregate each), and calls with command ids (whose receipts the feed must
    skip)."""

    def __init__(self, system: CitySystem, cast: Cast,
                 points: list[tuple[str, GeoPoint]]) -> None:
        super().__init__(name="city-traffic", daemon=True)
        self.system, self.cast, self.points = system, cast, points
        self.cases = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            i = 0
            while not self.stopping.is_set():
                _, point = self.points[i % len(self.points)]
                case = self.system.grid_cases.handle(
                    ReportCase(source="inspector", category="C0101", description=f"cover {i}",
                               location=point),
                    CommandContext(actor=self.cast.patroller(self.system, point))).subject
                self.system.grid_cases.handle(
                    RegisterCase(case_id=case),
                    CommandContext(actor=self.cast.dispatcher))
                self.system.grid_cases.handle(
                    DispatchCase(case_id=case),
                    CommandContext(actor=self.cast.dispatcher))
                self.cases += 1
                if i % 3 == 0:
                    self.system.hotline.handle(
                        ReceiveTicket(channel="web", ticket_type="report", topic="garbage",
                                      description=f"bins full {i}", location=point),
                        CommandContext(actor=self.cast.operator, command_id=f"web-{i}"))
                i += 1
                self.stopping.wait(0.02)
        except BaseException as error:
            self.error = error


class OpenTransactionWatch:
    """Watches the publisher's transactions through its positions topic (every transaction
    writes one record there): a transaction is open with records on the broker when the high
    watermark (read uncommitted) is past the last stable offset (read committed); a record
    below the last stable offset that read-committed consumers do not see belongs to an
    aborted transaction."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.committed = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                       isolation_level="read_committed")
        self.uncommitted = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self.partition = TopicPartition(topic, 0)

    def stable_offset(self) -> int:
        return int(self.committed.end_offsets([self.partition])[self.partition])

    def open_transaction(self) -> bool:
        high = self.uncommitted.end_offsets([self.partition])[self.partition]
        return bool(high > self.stable_offset())

    def wait_for_open_transaction(self, timeout_s: float) -> None:
        """Return as soon as a transaction is seen open (polled without pause: the window
        between a transaction's data reaching the broker and its commit is short)."""
        deadline = time.monotonic() + timeout_s
        while not self.open_transaction():
            if time.monotonic() > deadline:
                pytest.fail(f"no transaction seen open within {timeout_s:g} s")

    def aborted_records(self) -> int:
        stable = self.stable_offset()
        return (self._count(self.uncommitted, stable)
                - self._count(self.committed, stable))

    def _count(self, consumer: KafkaConsumer, below: int) -> int:
        consumer.assign([self.partition])
        consumer.seek_to_beginning(self.partition)
        count = 0
        while consumer.position(self.partition) < below:
            for records in consumer.poll(timeout_ms=500).values():
                count += sum(1 for r in records if r.offset < below)
        return count

    def close(self) -> None:
        self.committed.close()
        self.uncommitted.close()


def start_publisher(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "cityops.feeds.cli", "run"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


KILLS = 2
MAX_FREEZES = 200
FROZEN_CHECK_S = 0.3
BATCH = 100


def test_a_publisher_killed_mid_stream_resumes_with_no_gap_and_no_duplicate(
        pg_kafka_system: CitySystem, fresh_database: str, topic_prefix: str,
        kafka_bootstrap: str, cast: Cast, cell_points: list[tuple[str, GeoPoint]],
        tmp_path: Path) -> None:
    system = pg_kafka_system
    # What piles up while the publisher is frozen or down goes out in large transactions,
    # whose first records reach the broker well before their commit: a window to kill in.
    settings = feed_settings(topic_prefix, batch_size=BATCH)
    feeds = build_feed_service(system, settings)
    # The command centre's own system: every case is in its scope.
    subscribe(feeds, cast, "command-centre", Stream.GRID_CASES)
    feeds.close()
    env = {**os.environ, "CITYOPS_DATABASE_URL": fresh_database,
           "CITYOPS_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
           "CITYOPS_DATA_DIR": str(tmp_path / "publisher"),
           "CITYOPS_FEEDS_TOPIC_PREFIX": topic_prefix,
           "CITYOPS_FEEDS_TRANSACTIONAL_ID": settings.transactional_id,
           "CITYOPS_FEEDS_BATCH_SIZE": str(BATCH), "CITYOPS_FEEDS_POLL_INTERVAL_S": "0.05"}
    log = tmp_path / "publisher.log"
    topics = FeedTopics(topic_prefix)

    def committed() -> dict[Stream, int]:
        return read_published_positions(kafka_bootstrap, topics, settings.transactional_id)

    def heads() -> dict[Stream, int]:
        return {Stream.GRID_CASES: system.grid_cases.recorder.max_notification_id() or 0,
                Stream.HOTLINE: system.hotline.recorder.max_notification_id() or 0}

    traffic = CityTraffic(system, cast, cell_points)
    traffic.start()
    publisher = start_publisher(env, log)
    wait_until(lambda: committed()[Stream.GRID_CASES] > 0, 60,
               f"the publisher's first commit\n{log.read_text()}")
    watch = OpenTransactionWatch(kafka_bootstrap, topics.positions)
    kills = freezes = 0
    try:
        # Catch the publisher with a transaction open on the broker: freeze it at once
        # (SIGSTOP), and if the transaction is still open a moment later (it was not already
        # committing), SIGKILL it there; else let it go on and try again.
        while kills < KILLS:
            watch.wait_for_open_transaction(60)
            publisher.send_signal(signal.SIGSTOP)
            freezes += 1
            time.sleep(FROZEN_CHECK_S)
            if not watch.open_transaction():
                publisher.send_signal(signal.SIGCONT)
                assert freezes < MAX_FREEZES, "never caught a transaction open"
                continue
            publisher.send_signal(signal.SIGKILL)
            publisher.wait(10)
            kills += 1
            assert committed()[Stream.GRID_CASES] < heads()[Stream.GRID_CASES], "mid-stream"
            stable = watch.stable_offset()
            publisher = start_publisher(env, log)
            # Its start aborts what the killed one left open, moving the stable offset.
            wait_until(lambda s=stable: watch.stable_offset() > s,  # type: ignore[misc]
                       60, f"the restarted publisher to take over\n{log.read_text()}")
        # The killed transactions' records are on the broker, aborted: read-committed
        # consumers never see them.
        aborted = watch.aborted_records()
        traffic.stopping.set()
        traffic.join(30)
        assert traffic.error is None, traffic.error
        final_heads = heads()
        wait_until(lambda: all(committed()[s] == h for s, h in final_heads.items()), 60,
                   f"the restarted publisher to catch up\n{log.read_text()}")
        publisher.send_signal(signal.SIGTERM)
        assert publisher.wait(30) == 0, log.read_text()
    finally:
        traffic.stopping.set()
        watch.close()
        if publisher.poll() is None:
            publisher.kill()
            publisher.wait(10)
    assert aborted >= KILLS  # each kill left at least its position record behind

    cases = read_committed(kafka_bootstrap, topics.stream(Stream.GRID_CASES))
    assert_once_and_in_order(cases)
    expected_cases = stream_events(system, "gridcases", "GridCase")
    assert len(expected_cases) == 3 * traffic.cases
    assert sorted(m.body["event_id"] for m in cases) == sorted(expected_cases)
    calls = read_committed(kafka_bootstrap, topics.stream(Stream.HOTLINE))
    assert_once_and_in_order(calls)
    assert sorted(m.body["event_id"] for m in calls) == sorted(
        stream_events(system, "hotline", "HotlineTicket"))
    centre = read_committed(kafka_bootstrap, topics.department("command-centre"))
    assert_once_and_in_order(centre)
    assert sorted(m.body["event_id"] for m in centre) == sorted(expected_cases)
    assert Counter(m.body["event_type"] for m in cases) == Counter(
        {"GridCase.Reported": traffic.cases, "GridCase.Registered": traffic.cases,
         "GridCase.Dispatched": traffic.cases})
