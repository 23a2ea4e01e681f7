"""The Kafka transport: a consumer-group member that feeds the ingest pipeline.

At-least-once delivery plus idempotent apply gives an effect of exactly once:

- offsets are committed by hand (`enable_auto_commit=False`), after each polled batch, and
  only up to the last message that was applied or dead-lettered, never beyond (the worker's
  counters are saved just before, so they cover every committed message);
- a worker killed at any point leaves its partitions at the last commit: the messages after
  it are delivered again (to it or to another worker) and change nothing the second time;
- on a rebalance, what was processed and not yet committed is committed on revocation (the
  batch loop commits before every poll, and rebalances happen inside `poll`, so that is a
  safety net for a commit that failed);
- a message that keeps failing for a transient reason is not skipped: its partition is
  rewound to it and it is tried again after the next poll.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from cityops.ingest.counters import CounterTable
from cityops.ingest.pipeline import Delivery, IngestPipeline

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500
FETCH_OVERHEAD_BYTES = 64 * 1024


def worker_name() -> str:
    """A name for this worker process, unique across restarts (it labels its counters)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"


class KafkaIngestWorker:
    """Consumes the ingest topics in a consumer group and applies every message once in
    effect; several workers of one group share the partitions."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        *,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str],
        counter_table: CounterTable | None = None,
        max_poll_records: int = 500,
        session_timeout_ms: int = 10_000,
        stats_interval_s: float = 10.0,
    ) -> None:
        if not topics:
            raise ValueError("a worker needs at least one topic")
        self.pipeline = pipeline
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.topics = list(topics)
        self.counter_table = counter_table
        self.max_poll_records = max_poll_records
        self.session_timeout_ms = session_timeout_ms
        self.stats_interval_s = stats_interval_s
        self._stop = threading.Event()
        self._started = threading.Event()
        # Next offset to commit per partition: processed (applied or dead-lettered) and not
        # yet committed. The rebalance listener may run on the client's IO thread.
        self._pending: dict[Any, int] = {}
        self._pending_lock = threading.Lock()
        self._assignment: set[Any] = set()
        self._consumer: Any = None
        self._last_report = time.monotonic()

    @property
    def worker(self) -> str:
        return self.pipeline.worker

    def stop(self) -> None:
        """Finish the message in hand, commit, leave the group (from any thread or a signal
        handler)."""
        self._stop.set()
        self.pipeline.stop()

    def wait_started(self, timeout: float) -> bool:
        """Wait until the consumer has joined (tests and the benchmark start workers in
        threads)."""
        return self._started.wait(timeout)

    def stats(self) -> dict[str, Any]:
        """What this worker has done, per topic, and the partitions it owns now."""
        return {
            "worker": self.worker,
            "group": self.group_id,
            "assigned": sorted(f"{tp.topic}[{tp.partition}]" for tp in self._assignment),
            "counts": self.pipeline.counters.stats(),
        }

    def run(self) -> None:
        """Consume until `stop()`; the last processed offsets are committed on the way out."""
        max_bytes = self.pipeline.max_message_bytes
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            client_id=self.worker,
            enable_auto_commit=False,
            # A new group starts at the beginning: ingest never skips a backlog.
            auto_offset_reset="earliest",
            max_poll_records=self.max_poll_records,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.session_timeout_ms // 4),
            # An oversized message must still be fetched, to be dead-lettered.
            max_partition_fetch_bytes=max(1024 * 1024, 2 * max_bytes + FETCH_OVERHEAD_BYTES),
        )
        self._consumer = consumer
        consumer.subscribe(topics=self.topics, listener=_CommitProcessedOnRevoke(self))
        log.info("ingest worker %s joining group %s on %s", self.worker, self.group_id,
                 ", ".join(self.topics))
        try:
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
                if consumer.assignment():
                    self._started.set()
                self._process(consumer, batch)
                if batch:
                    # Counted before committed: a worker killed after an offset commit has
                    # counted every message up to it (the next worker counts the rest).
                    self._save_counters()
                self._commit(consumer)
                self._report_if_due()
        finally:
            try:
                self._commit(consumer)
            finally:
                consumer.close(autocommit=False)
                self._consumer = None
                self._report(final=True)
                self.pipeline.close()

    def _process(self, consumer: Any, batch: dict[Any, list[Any]]) -> None:
        """Apply a poll's records as one batch (what they decide is saved together), each
        partition's records in their order, then note per partition how far it is done."""
        if self._stop.is_set() or not batch:
            return
        polled = [(partition, records) for partition, records in batch.items() if records]
        done = self.pipeline.process_batch([
            Delivery(topic=r.topic, value=r.value, key=r.key, partition=r.partition,
                     offset=r.offset)
            for _, records in polled for r in records
        ])
        # The batch is done from its first record up to `done.done`: whole partitions, then
        # a part of the one it stalled in; the partitions after that did nothing.
        start = 0
        for partition, records in polled:
            finished = min(len(records), max(0, done.done - start))
            start += len(records)
            if finished:
                with self._pending_lock:
                    self._pending[partition] = records[finished - 1].offset + 1
            if finished < len(records):
                # Not skipped: the partition goes back to the first message not done, which
                # comes again with the next poll.
                first = records[finished]
                log.warning("%s[%d]@%d not applied yet: %s", first.topic, first.partition,
                            first.offset, done.stalled)
                consumer.seek(partition, first.offset)

    def _take_pending(self, partitions: set[Any] | None = None) -> dict[Any, Any]:
        with self._pending_lock:
            chosen = {tp: off for tp, off in self._pending.items()
                      if partitions is None or tp in partitions}
            for tp in chosen:
                del self._pending[tp]
        return {tp: OffsetAndMetadata(off, "", -1) for tp, off in chosen.items()}

    def _commit(self, consumer: Any) -> None:
        offsets = self._take_pending()
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets)
        except KafkaError as error:
            # Lost the partitions (a rebalance) or the coordinator: these messages will be
            # delivered again and change nothing. Keep them for a later try meanwhile.
            log.warning("offset commit failed (%s); those messages may come again", error)
            with self._pending_lock:
                for tp, meta in offsets.items():
                    self._pending.setdefault(tp, meta.offset)

    def _on_revoked(self, revoked: set[Any]) -> None:
        offsets = self._take_pending(set(revoked))
        if offsets and self._consumer is not None:
            # The listener runs inside poll(), possibly on the client's IO thread where a
            # blocking commit is not allowed: commit asynchronously, ahead of the rejoin.
            log.info("committing %d partitions on revocation", len(offsets))
            self._consumer.commit_async(offsets=offsets)
        self._assignment -= set(revoked)

    def _on_assigned(self, assigned: set[Any]) -> None:
        self._assignment |= set(assigned)
        log.info("ingest worker %s now owns %s", self.worker,
                 ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in self._assignment))
                 or "nothing")

    def _on_lost(self, lost: set[Any]) -> None:
        # Evicted: the partitions may already be someone else's; a commit would be refused.
        self._take_pending(set(lost))
        self._assignment -= set(lost)

    def _report_if_due(self) -> None:
        if time.monotonic() - self._last_report >= self.stats_interval_s:
            self._report(final=False)

    def _report(self, *, final: bool) -> None:
        self._last_report = time.monotonic()
        total = self.pipeline.counters.total()
        log.info("ingest %s%s: consumed %d, applied %d, duplicate %d, dead-lettered %d",
                 self.worker, " (stopping)" if final else "", total.consumed, total.applied,
                 total.duplicate, total.dead_lettered)
        self._save_counters()

    def _save_counters(self) -> None:
        if self.counter_table is not None:
            try:
                self.counter_table.save(self.worker, self.pipeline.counters)
            except Exception as error:  # counters must never stop ingest
                log.warning("could not save ingest counters: %s", error)


def group_lag(bootstrap_servers: str, group_id: str, topics: Sequence[str]) -> dict[str, int]:
    """How many messages of each topic the group has not committed yet (0: caught up)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=group_id,
                             enable_auto_commit=False, client_id="cityops-ingest-lag")
    try:
        lag: dict[str, int] = {}
        for topic in topics:
            partitions = [TopicPartition(topic, p)
                          for p in sorted(consumer.partitions_for_topic(topic) or [])]
            if not partitions:
                continue
            ends = consumer.end_offsets(partitions)
            lag[topic] = sum(ends[tp] - (consumer.committed(tp) or 0) for tp in partitions)
        return lag
    finally:
        consumer.close(autocommit=False)


class _CommitProcessedOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was processed before partitions go to another worker."""

    def __init__(self, worker: KafkaIngestWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.worker._on_revoked(set(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.worker._on_assigned(set(assigned))

    def on_partitions_lost(self, lost: Any) -> None:
        self.worker._on_lost(set(lost))
