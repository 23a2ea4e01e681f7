"""Counters of what ingest did, per topic: consumed, applied, duplicate, dead-lettered.

Each worker counts in memory (`stats()`), logs them periodically and writes them to a small
table of the read store under its own worker name, so `cityops ingest status` can add up
every worker's counts across processes.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from cityops.domain.clock import system_clock
from cityops.storage import ReadStore, schema_transaction

COUNTER_TABLE = "ingest_counters"
COUNTS = ("consumed", "applied", "duplicate", "dead_lettered")


@dataclass
class TopicCounts:
    """The counts of one topic."""

    consumed: int = 0
    applied: int = 0
    duplicate: int = 0
    dead_lettered: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTS}

    def add(self, other: TopicCounts) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class IngestCounters:
    """Thread-safe counts per topic of one worker."""

    _topics: dict[str, TopicCounts] = field(default_factory=lambda: defaultdict(TopicCounts))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, topic: str, what: str) -> None:
        if what not in COUNTS:
            raise ValueError(f"unknown counter {what!r}")
        with self._lock:
            counts = self._topics[topic]
            setattr(counts, what, getattr(counts, what) + 1)

    def snapshot(self) -> dict[str, TopicCounts]:
        with self._lock:
            return {topic: TopicCounts(**c.as_dict()) for topic, c in self._topics.items()}

    def total(self) -> TopicCounts:
        total = TopicCounts()
        for counts in self.snapshot().values():
            total.add(counts)
        return total

    def stats(self) -> dict[str, dict[str, int]]:
        """Counts per topic, plus `total`."""
        result = {topic: c.as_dict() for topic, c in sorted(self.snapshot().items())}
        result["total"] = self.total().as_dict()
        return result


class CounterTable:
    """The counters of every worker, in the read store."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store
        with schema_transaction(store) as txn:
            txn.execute(
                f"CREATE TABLE IF NOT EXISTS {COUNTER_TABLE} ("
                "worker TEXT NOT NULL, topic TEXT NOT NULL, consumed BIGINT NOT NULL, "
                "applied BIGINT NOT NULL, duplicate BIGINT NOT NULL, "
                "dead_lettered BIGINT NOT NULL, updated_at TEXT NOT NULL, "
                "PRIMARY KEY (worker, topic))"
            )

    def save(self, worker: str, counters: IngestCounters) -> None:
        """Write a worker's current counts (they only grow, so the latest write wins)."""
        now = system_clock().isoformat()  # an operator's gauge: real time
        rows = [(worker, topic, c.consumed, c.applied, c.duplicate, c.dead_lettered, now)
                for topic, c in counters.snapshot().items()]
        if not rows:
            return
        with self.store.transaction() as txn:
            txn.executemany(
                f"INSERT INTO {COUNTER_TABLE} (worker, topic, consumed, applied, duplicate, "
                "dead_lettered, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (worker, topic) DO UPDATE SET consumed = excluded.consumed, "
                "applied = excluded.applied, duplicate = excluded.duplicate, "
                "dead_lettered = excluded.dead_lettered, updated_at = excluded.updated_at",
                rows,
            )

    def by_topic(self) -> dict[str, TopicCounts]:
        """Every worker's counts added up per topic."""
        with self.store.transaction() as txn:
            txn.execute(
                "SELECT topic, SUM(consumed), SUM(applied), SUM(duplicate), "
                f"SUM(dead_lettered) FROM {COUNTER_TABLE} GROUP BY topic ORDER BY topic"
            )
            rows = txn.fetchall()
        return {r[0]: TopicCounts(int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}

    def workers(self) -> list[tuple[str, str]]:
        """Each worker with when it last wrote its counts, latest first."""
        with self.store.transaction() as txn:
            txn.execute(f"SELECT worker, MAX(updated_at) FROM {COUNTER_TABLE} "
                        "GROUP BY worker ORDER BY MAX(updated_at) DESC")
            return [(str(r[0]), str(r[1])) for r in txn.fetchall()]
