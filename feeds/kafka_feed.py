"""Publishes the domain events of every stream to Kafka: a city-wide topic per stream and a
topic per department, exactly once, in order per aggregate.

Topics (with the default prefix `cityops.feed`):

- `cityops.feed.<stream>`: every event of the stream, with the fields shared unconditionally;
- `cityops.feed.department.<code>`: the events the department's Kafka subscriptions want,
  with the fields shared with that department (one message per event, listing the matching
  subscriptions);
- `cityops.feed.warnings`: the public warnings as CAP 1.2 alert documents (XML, not JSON;
  header `content-type: application/cap+xml`), and `cityops.feed.department.<code>.warnings`
  the alerts a department's subscriptions want (docs/cap.md);
- `cityops.feed.publisher-positions`: the publisher's own bookkeeping (compacted).

Messages are keyed by aggregate id, so the events of one aggregate land in one partition in
the order of their versions.

How a restart resumes with no gap and no duplicate
--------------------------------------------------
The position of each stream (the id of the last notification of its application's log that
was published) is stored in Kafka itself, in the compacted positions topic, and it is
written in the same Kafka transaction as the messages it accounts for:

1. read up to `batch_size` notifications of each stream after its position;
2. `begin_transaction()`; send one position record per stream (key
   `<transactional id>/<stream>`, value the new position), then every message of the batch
   (inside a transaction the order does not matter: all of it commits or none);
3. `commit_transaction()`: the messages and the positions become visible together, or,
   if the process dies before the commit, not at all.

On start, `init_transactions()` with the same transactional id fences any older instance
and aborts the transaction a killed one left open; the publisher then reads the positions
topic from the beginning up to its last stable offset with `isolation_level=read_committed`
and continues after the last committed position. A batch that was cut off is published
again in full, and consumers reading with `isolation_level='read_committed'` (as feed
consumers must) never see the aborted copy: every event appears exactly once. Consumers
reading uncommitted data may see aborted messages; `event_id` lets them deduplicate.

The event store's log has no gaps to fear: PostgreSQL inserts take a table lock, so
notification ids commit in order and polling after a position misses nothing (the same
argument as the read-model followers).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, ProducerFencedError, TopicAlreadyExistsError

from cityops.domain.clock import system_clock
from cityops.domain.ports import GridLocator
from cityops.feeds.events import FeedItem, LogBatch, LogReader, encode
from cityops.feeds.routing import route
from cityops.feeds.sharing import Recipient, SharingCatalogue
from cityops.feeds.streams import Stream
from cityops.feeds.subscriptions import SubscriptionBook

log = logging.getLogger(__name__)

POSITIONS_SUFFIX = "publisher-positions"
DRILL_HEADER = "cityops-drill"
"""The Kafka header of every message a drill's feed publishes: the drill's id (live
messages have no such header)."""


class FeedPublisherError(Exception):
    """The Kafka feed cannot go on (broker unreachable, positions unreadable)."""


class PublisherFenced(FeedPublisherError):
    """Another publisher with the same transactional id took over: this one must stop."""


@dataclass(frozen=True)
class FeedTopics:
    """The names of the feed topics under one prefix."""

    prefix: str

    def stream(self, stream: Stream) -> str:
        return f"{self.prefix}.{stream.value}"

    def department(self, code: str, stream: Stream | None = None) -> str:
        """A department's topic; its warnings (CAP XML, not JSON) have a topic of their
        own."""
        if stream is Stream.WARNINGS:
            return f"{self.prefix}.department.{code}.{Stream.WARNINGS.value}"
        return f"{self.prefix}.department.{code}"

    @property
    def positions(self) -> str:
        return f"{self.prefix}.{POSITIONS_SUFFIX}"


def position_key(transactional_id: str, stream: Stream) -> bytes:
    return f"{transactional_id}/{stream.value}".encode()


def read_published_positions(bootstrap: str, topics: FeedTopics, transactional_id: str,
                             *, timeout_s: float = 30.0) -> dict[Stream, int]:
    """The last committed position of each stream (0 for a stream never published), read
    from the positions topic with a read-committed consumer up to its last stable offset."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                             enable_auto_commit=False, group_id=None,
                             request_timeout_ms=int(timeout_s * 1000) + 5000)
    positions = dict.fromkeys(Stream, 0)
    wanted = {position_key(transactional_id, s): s for s in Stream}
    try:
        partitions = consumer.partitions_for_topic(topics.positions)
        if not partitions:
            return positions
        assigned = [TopicPartition(topics.positions, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        ends = consumer.end_offsets(assigned)
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in assigned):
            if time.monotonic() > deadline:
                raise FeedPublisherError(
                    f"could not read {topics.positions} to its end within {timeout_s:g} s")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    stream = wanted.get(record.key)
                    if stream is not None and record.value is not None:
                        positions[stream] = int(json.loads(record.value)["position"])
    finally:
        consumer.close()
    return positions


def delete_topics(bootstrap: str, topics: FeedTopics, *, timeout_s: float = 30.0) -> list[str]:
    """Delete every topic under `topics.prefix` (a deleted drill's feed, positions
    included); returns the names deleted."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap,
                             request_timeout_ms=int(timeout_s * 1000),
                             client_id="cityops-feed-topics-removal")
    try:
        mine = sorted(t for t in admin.list_topics() if t.startswith(f"{topics.prefix}."))
        if mine:
            admin.delete_topics(mine, timeout_ms=int(timeout_s * 1000))
        return mine
    finally:
        admin.close()


class KafkaFeedPublisher:
    """Publishes the streams' events to the feed topics in Kafka transactions that also
    record the published positions (see the module docstring)."""

    def __init__(self, readers: Sequence[LogReader], catalogue: SharingCatalogue,
                 book: SubscriptionBook, locator: GridLocator | None, *, bootstrap: str,
                 topics: FeedTopics, transactional_id: str, batch_size: int = 200,
                 partitions: int = 3, replication_factor: int = -1,
                 timeout_s: float = 30.0, drill: str | None = None) -> None:
        """`drill`: the drill whose feed this is (None: live); its messages carry the
        `cityops-drill` header."""
        self.readers = list(readers)
        self.catalogue = catalogue
        self.book = book
        self.locator = locator
        self.bootstrap = bootstrap
        self.topics = topics
        self.transactional_id = transactional_id
        self.batch_size = batch_size
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.timeout_s = timeout_s
        self.drill = drill
        self._producer: KafkaProducer | None = None
        self._positions: dict[Stream, int] = {}
        self._known_topics: set[str] = set()
        self.published = 0
        """Messages committed by this instance (all topics)."""

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Create missing topics, take over the transactional id, read the positions."""
        self.ensure_topics([self.topics.stream(r.stream) for r in self.readers],
                           partitions=self.partitions)
        self.ensure_topics([self.topics.positions], partitions=1,
                           configs={"cleanup.policy": "compact"})
        timeout_ms = int(self.timeout_s * 1000)
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, transactional_id=self.transactional_id,
            client_id=f"{self.transactional_id}-publisher", acks="all", linger_ms=5,
            max_block_ms=timeout_ms, request_timeout_ms=timeout_ms,
            transaction_timeout_ms=max(60_000, timeout_ms * 2),
        )
        try:
            # Fences an older instance and aborts what a killed one left open; only then are
            # the committed positions final.
            producer.init_transactions()
        except Exception:
            producer.close(timeout=1)
            raise
        self._producer = producer
        committed = read_published_positions(
            self.bootstrap, self.topics, self.transactional_id, timeout_s=self.timeout_s)
        self._positions = {r.stream: committed[r.stream] for r in self.readers}
        log.info("Kafka feed publisher %s resumes after %s", self.transactional_id,
                 {s.value: p for s, p in self._positions.items()})

    def close(self) -> None:
        if self._producer is not None:
            with suppress(Exception):
                self._producer.close(timeout=5)
            self._producer = None
        for reader in self.readers:
            reader.forget()

    def positions(self) -> dict[Stream, int]:
        """The positions committed by this instance (after `start`)."""
        return dict(self._positions)

    # --- publishing --------------------------------------------------------------------------

    def publish_round(self) -> int:
        """Publish one batch of every stream in one transaction; returns how many
        notifications it covered (0: nothing new)."""
        producer = self._producer
        if producer is None:
            raise FeedPublisherError("the publisher is not started")
        batches: list[LogBatch] = []
        for reader in self.readers:
            batch = reader.read(self._positions.get(reader.stream, 0), self.batch_size)
            if batch.read:
                batches.append(batch)
        if not batches:
            return 0
        subscriptions = self.book.current()
        outgoing: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []
        for batch in batches:
            for event in batch.events:
                outgoing.extend(self._messages(event, subscriptions))
        self.ensure_topics(sorted({topic for topic, *_ in outgoing}), partitions=self.partitions)
        try:
            producer.begin_transaction()
            now = system_clock().isoformat()  # when the feed committed: real time
            for batch in batches:
                producer.send(self.topics.positions,
                              key=position_key(self.transactional_id, batch.stream),
                              value=encode({"stream": batch.stream.value,
                                            "position": batch.last, "committed_at": now}))
            for topic, key, value, headers in outgoing:
                producer.send(topic, key=key, value=value, headers=headers)
            producer.commit_transaction()
        except ProducerFencedError as error:
            raise PublisherFenced(
                f"another feed publisher with transactional id {self.transactional_id!r} "
                "took over; this one stops") from error
        except Exception:
            with suppress(Exception):
                producer.abort_transaction()
            for reader in self.readers:
                reader.forget()
            raise
        for batch in batches:
            self._positions[batch.stream] = batch.last
        self.published += len(outgoing)
        return sum(batch.read for batch in batches)

    def _messages(self, event: FeedItem,
                  subscriptions: Sequence[Any]) -> list[tuple[str, bytes, bytes,
                                                            list[tuple[str, bytes]]]]:
        headers = [("cityops-event-type", event.event_type.encode()),
                   ("cityops-event-id", event.event_id.encode()),
                   ("content-type", event.content_type.encode())]
        if self.drill is not None:
            headers.append((DRILL_HEADER, self.drill.encode()))
        messages = []
        city_wide = event.payload(self.catalogue, Recipient.city_wide())
        if city_wide is not None:
            messages.append((self.topics.stream(event.stream), event.key, city_wide, headers))
        routes = route(event, subscriptions, self.locator, self.catalogue)
        for department, subscription_ids in sorted(routes.departments.items()):
            body = event.payload(self.catalogue, Recipient.department_feed(department),
                                 {"department": department,
                                  "subscriptions": sorted(subscription_ids)})
            if body is not None:
                messages.append((self.topics.department(department, event.stream), event.key,
                                 body, headers))
        return messages

    # --- topics ------------------------------------------------------------------------------

    def ensure_topics(self, names: Collection[str], *, partitions: int,
                      configs: dict[str, str] | None = None) -> None:
        """Create the topics that do not exist yet (the broker does not create them)."""
        missing = [n for n in names if n not in self._known_topics]
        if not missing:
            return
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                 request_timeout_ms=int(self.timeout_s * 1000),
                                 client_id=f"{self.transactional_id}-admin")
        try:
            existing = set(admin.list_topics())
            to_create = {
                name: {"num_partitions": partitions,
                       "replication_factor": self.replication_factor,
                       "configs": dict(configs or {})}
                for name in missing if name not in existing
            }
            if to_create:
                try:
                    admin.create_topics(to_create, timeout_ms=int(self.timeout_s * 1000),
                                        wait_for_metadata=True)
                except TopicAlreadyExistsError:
                    # Another process created one meanwhile; the others of the request may
                    # not have been created, so create what is still missing.
                    existing = set(admin.list_topics())
                    rest = {n: o for n, o in to_create.items() if n not in existing}
                    if rest:
                        admin.create_topics(rest, timeout_ms=int(self.timeout_s * 1000),
                                            wait_for_metadata=True)
                log.info("created feed topics %s", ", ".join(sorted(to_create)))
        except KafkaError as error:
            raise FeedPublisherError(f"cannot create feed topics {missing}: {error}") from error
        finally:
            admin.close()
        self._known_topics.update(missing)
