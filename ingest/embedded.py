"""The embedded transport: without Kafka, messages are put on an in-process queue and one
thread feeds them to the same pipeline (validation, dedupe, apply, dead letters) as a Kafka
worker. The demo's simulator and `cityops ingest produce` without a broker use it.

Nothing here survives the process: the queue is in memory, like the demo it serves. A
message whose apply keeps failing for a transient reason is retried, never dropped.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any

from cityops.ingest.counters import CounterTable
from cityops.ingest.pipeline import Delivery, IngestPipeline, Outcome

log = logging.getLogger(__name__)

STALL_PAUSE_S = 1.0
BATCH_SIZE = 500


class InProcessIngest:
    """An in-process queue of messages and the thread that applies them in order."""

    def __init__(self, pipeline: IngestPipeline, *, capacity: int = 10_000,
                 counter_table: CounterTable | None = None,
                 stats_interval_s: float = 10.0) -> None:
        self.pipeline = pipeline
        self.counter_table = counter_table
        self.stats_interval_s = stats_interval_s
        self._queue: queue.Queue[Delivery | None] = queue.Queue(maxsize=capacity)
        self._sequence = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.outcomes: dict[Outcome, int] = dict.fromkeys(Outcome, 0)

    @property
    def worker(self) -> str:
        return self.pipeline.worker

    def submit(self, topic: str, value: bytes | Mapping[str, Any],
               key: bytes | str | None = None) -> None:
        """Queue one message (a JSON document or its bytes); blocks while the queue is full,
        which slows a producer down to what the pipeline can apply."""
        if self._stopping.is_set():
            raise RuntimeError("the in-process ingest queue is stopped")
        raw = value if isinstance(value, bytes) else json.dumps(value).encode("utf-8")
        raw_key = key.encode("utf-8") if isinstance(key, str) else key
        # The position in this process's queue stands in for the offset (for dead letters).
        # No partition: positions start again with each process, so they must not identify
        # a dead letter (one with a partition and offset is kept once per position).
        self._queue.put(Delivery(topic=topic, value=raw, key=raw_key, partition=None,
                                 offset=next(self._sequence)))

    def start(self) -> InProcessIngest:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="cityops-ingest",
                                            daemon=True)
            self._thread.start()
        return self

    def wait_until_processed(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is applied or dead-lettered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._queue.all_tasks_done.wait(remaining)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Apply what is queued, then stop the thread."""
        if self._thread is None:
            return
        self.wait_until_processed(timeout)
        self._stopping.set()
        self.pipeline.stop()
        self._queue.put(None)
        self._thread.join(timeout)
        self._thread = None
        self._save_counters()
        self.pipeline.close()

    def stats(self) -> dict[str, Any]:
        return {"worker": self.worker, "queued": self._queue.qsize(),
                "counts": self.pipeline.counters.stats()}

    def _run(self) -> None:
        last_report = time.monotonic()
        while True:
            first = self._queue.get()
            batch = [first]
            # Whatever else is waiting goes in the same batch (its fixes' track rows are
            # written together).
            while first is not None and len(batch) < BATCH_SIZE:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                deliveries = [d for d in batch if d is not None]
                if deliveries:
                    self._apply(deliveries)
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return
            if time.monotonic() - last_report >= self.stats_interval_s:
                last_report = time.monotonic()
                self._save_counters()

    def _apply(self, deliveries: list[Delivery]) -> None:
        while deliveries:
            done = self.pipeline.process_batch(deliveries)
            for outcome in done.outcomes:
                self.outcomes[outcome] += 1
            deliveries = deliveries[done.done:]
            if done.stalled is None:
                return
            if self._stopping.is_set():
                log.error("stopping with %d messages not applied: %s", len(deliveries),
                          done.stalled)
                return
            log.warning("%d messages not applied yet (%s); trying again", len(deliveries),
                        done.stalled)
            self._stopping.wait(STALL_PAUSE_S)

    def _save_counters(self) -> None:
        if self.counter_table is None:
            return
        try:
            self.counter_table.save(self.worker, self.pipeline.counters)
        except Exception as error:  # counters must never stop ingest
            log.warning("could not save ingest counters: %s", error)
