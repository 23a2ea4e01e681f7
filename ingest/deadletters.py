"""Dead letters: a message that cannot be applied is set aside with its original bytes and
why, so the worker moves on and nothing is lost. Kafka workers write them to the dead-letter
topic (value = the original bytes, the reason in headers); the embedded queue keeps them in a
table of the read store.

Dead-lettering is at-least-once: a worker killed after writing a dead letter but before
committing the source offset writes it again on restart. (source topic, partition, offset)
identifies the message: the stored table keeps it once; readers of the topic can do the same.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import uuid4

from cityops.storage import ReadStore, schema_transaction

log = logging.getLogger(__name__)

HEADER_PREFIX = "cityops.dead-letter."
DEAD_LETTER_TABLE = "ingest_dead_letters"


@dataclass(frozen=True)
class DeadLetter:
    """A message set aside: where it came from, its original key and bytes, and why."""

    source_topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes | None
    code: str
    """The kind of problem: oversized, malformed, schema-violation, not-found..."""
    reason: str
    """What is wrong, in words a person can act on."""
    error_class: str
    dead_lettered_at: datetime
    worker: str
    message_id: str | None = None
    schema: str | None = None
    letter_id: str = field(default_factory=lambda: uuid4().hex)
    """Unique per dead letter; derived from the source position when there is one, so the
    same message set aside twice is kept once."""

    def __post_init__(self) -> None:
        if self.partition is not None and self.offset is not None:
            object.__setattr__(self, "letter_id",
                               f"{self.source_topic}:{self.partition}:{self.offset}")

    def headers(self) -> list[tuple[str, bytes]]:
        """The Kafka headers that carry everything but the original key and value."""
        fields: dict[str, Any] = {
            "reason": self.reason, "code": self.code, "error-class": self.error_class,
            "source-topic": self.source_topic, "source-partition": self.partition,
            "source-offset": self.offset, "at": self.dead_lettered_at.isoformat(),
            "worker": self.worker, "message-id": self.message_id, "schema": self.schema,
        }
        return [(HEADER_PREFIX + name, str(value).encode("utf-8"))
                for name, value in fields.items() if value is not None]

    @classmethod
    def from_record(cls, key: bytes | None, value: bytes | None,
                    headers: list[tuple[str, bytes]]) -> DeadLetter:
        """Read a dead letter back from a record of the dead-letter topic."""
        fields = {name.removeprefix(HEADER_PREFIX): raw.decode("utf-8")
                  for name, raw in headers if name.startswith(HEADER_PREFIX)}

        def number(name: str) -> int | None:
            return int(fields[name]) if name in fields else None

        return cls(
            source_topic=fields["source-topic"], partition=number("source-partition"),
            offset=number("source-offset"), key=key, value=value, code=fields["code"],
            reason=fields["reason"], error_class=fields["error-class"],
            dead_lettered_at=datetime.fromisoformat(fields["at"]), worker=fields["worker"],
            message_id=fields.get("message-id"), schema=fields.get("schema"),
        )


class DeadLetterSink(Protocol):
    """Where dead letters go; `send` returns only once the dead letter is safely kept."""

    def send(self, letter: DeadLetter) -> None: ...
    def close(self) -> None: ...


class KafkaDeadLetters:
    """Dead letters on the dead-letter topic, acknowledged by all in-sync replicas."""

    def __init__(self, bootstrap_servers: str, topic: str, *, timeout_s: float = 30.0,
                 max_request_bytes: int = 16 * 1024 * 1024) -> None:
        from kafka import KafkaProducer

        self.topic = topic
        self.timeout_s = timeout_s
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers, acks="all", retries=5,
            max_request_size=max_request_bytes, client_id="cityops-ingest-dead-letters",
        )

    def send(self, letter: DeadLetter) -> None:
        from kafka.errors import MessageSizeTooLargeError

        try:
            # Waiting here is what lets the worker commit the source offset afterwards.
            self._producer.send(self.topic, key=letter.key, value=letter.value,
                                headers=letter.headers()).get(timeout=self.timeout_s)
        except MessageSizeTooLargeError:
            # Retrying cannot help and must not block the partition: keep the reason and
            # say how big the value was (the source topic still has it until retention).
            log.error("dead letter from %s@%s is too large for %s; sent without its value",
                      letter.source_topic, letter.offset, self.topic)
            headers = [*letter.headers(), (HEADER_PREFIX + "value-dropped",
                                           str(len(letter.value or b"")).encode())]
            self._producer.send(self.topic, key=letter.key, value=None,
                                headers=headers).get(timeout=self.timeout_s)

    def close(self) -> None:
        self._producer.close(timeout=self.timeout_s)


class StoredDeadLetters:
    """Dead letters in a table of the read store (the embedded default)."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store
        blob = "BYTEA" if store.dialect == "postgres" else "BLOB"
        with schema_transaction(store) as txn:
            txn.execute(
                f"CREATE TABLE IF NOT EXISTS {DEAD_LETTER_TABLE} ("
                "letter_id TEXT PRIMARY KEY, source_topic TEXT NOT NULL, "
                "source_partition INTEGER, source_offset BIGINT, message_key " + blob + ", "
                "message_value " + blob + ", code TEXT NOT NULL, reason TEXT NOT NULL, "
                "error_class TEXT NOT NULL, dead_lettered_at TEXT NOT NULL, "
                "worker TEXT NOT NULL, message_id TEXT, message_schema TEXT)"
            )
            txn.execute(f"CREATE INDEX IF NOT EXISTS {DEAD_LETTER_TABLE}_at_idx "
                        f"ON {DEAD_LETTER_TABLE} (dead_lettered_at)")

    def send(self, letter: DeadLetter) -> None:
        with self.store.transaction() as txn:
            txn.execute(
                f"INSERT INTO {DEAD_LETTER_TABLE} (letter_id, source_topic, source_partition, "
                "source_offset, message_key, message_value, code, reason, error_class, "
                "dead_lettered_at, worker, message_id, message_schema) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (letter_id) DO NOTHING",
                (letter.letter_id, letter.source_topic, letter.partition, letter.offset,
                 letter.key, letter.value, letter.code, letter.reason, letter.error_class,
                 letter.dead_lettered_at.astimezone(UTC).isoformat(), letter.worker,
                 letter.message_id, letter.schema),
            )

    def recent(self, limit: int = 20) -> list[DeadLetter]:
        """The latest dead letters, newest first."""
        with self.store.transaction() as txn:
            txn.execute(
                "SELECT source_topic, source_partition, source_offset, message_key, "
                "message_value, code, reason, error_class, dead_lettered_at, worker, "
                f"message_id, message_schema, letter_id FROM {DEAD_LETTER_TABLE} "
                "ORDER BY dead_lettered_at DESC LIMIT %s",
                (limit,),
            )
            rows = txn.fetchall()
        return [DeadLetter(
            source_topic=r[0], partition=None if r[1] is None else int(r[1]),
            offset=None if r[2] is None else int(r[2]),
            key=bytes(r[3]) if r[3] is not None else None,
            value=bytes(r[4]) if r[4] is not None else None, code=r[5], reason=r[6],
            error_class=r[7], dead_lettered_at=datetime.fromisoformat(r[8]), worker=r[9],
            message_id=r[10], schema=r[11], letter_id=r[12],
        ) for r in rows]

    def count(self) -> int:
        with self.store.transaction() as txn:
            txn.execute(f"SELECT COUNT(*) FROM {DEAD_LETTER_TABLE}")
            row = txn.fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        """The store belongs to the system, which closes it."""


def read_dead_letter_topic(bootstrap_servers: str, topic: str, *,
                           timeout_s: float = 30.0) -> list[DeadLetter]:
    """Every dead letter on the topic now, oldest first per partition (for an operator's
    look, or to replay them once the cause is fixed)."""
    import time

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None,
                             enable_auto_commit=False, client_id="cityops-dead-letter-reader")
    try:
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            raise ValueError(f"there is no topic {topic!r} on the broker")
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + timeout_s
        # Read up to the end offsets taken at the start: a fixed amount, not "until quiet".
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s} s")
            for records in consumer.poll(timeout_ms=500).values():
                letters.extend(DeadLetter.from_record(r.key, r.value, list(r.headers))
                               for r in records)
        return letters
    finally:
        consumer.close(autocommit=False)
