"""The ingest pipeline: one delivered message in, applied or dead-lettered out, the same code
whichever transport delivered it (a Kafka worker or the in-process queue).

Steps: refuse an oversized message unread; decode and validate it against its schema; skip a
message id this process has already applied (a bounded memory, only an optimisation: the
receipts, the domain's ordering rules and the track's key are the guarantee); apply it through
its handler; count what happened. Bad input is dead-lettered with the original bytes and the
reason and never stops the worker. Transient infrastructure failures (database unavailable, a
concurrent write) are retried with backoff, and if they last, the batch reports how far it got
so the transport delivers the rest again later rather than lose or skip it.

Messages come in batches (a poll), and are saved together: each message's command is decided
on its own, in order, and staged in a `CommandBatch`, which saves the staged commands of each
application in one transaction, receipts included (one table lock and one commit for the
batch, instead of one per message); the track rows of position fixes are written together
after it, in one statement, and the latest sensor readings in another. What each message gets
stays exactly what it would get alone: a domain error is dead-lettered at once, for that
message only; a message on an aggregate an earlier one staged is decided on the staged state
(as it would be once that is saved) and saved in the same transaction; one that would read a
staged receipt (the same message id twice) is decided after the batch so far is saved; and
when a batch's save conflicts (a redelivered message, a concurrent writer), nothing of that
application was saved and its messages are applied again one by one, each getting its own
answer (a repeat, a reused id, a retried conflict).

What the batch's commands will load is asked once per batch (`bring_up_to_date`: the stored
versions of all of them, in one query per application), and what a batch saved replaces the
cached copies, so that the next batch finds them as stored. Messages that record no event
(position fixes that only move a little, sensor readings that cross no threshold) are judged
on the stored state without running a command and without copying the aggregate; what they
keep (the track row, the latest reading) is written with the batch.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError

from cityops.domain.application import CommandBatch, StagingOverlap
from cityops.domain.clock import Clock, system_clock
from cityops.domain.errors import (
    CommandIdReused,
    ConcurrencyConflict,
    DomainError,
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
)
from cityops.ingest.catalogue import Message, MessageCatalogue, Rejected
from cityops.ingest.counters import IngestCounters
from cityops.ingest.deadletters import DeadLetter, DeadLetterSink
from cityops.ingest.handlers import (
    HANDLERS,
    Effect,
    Handler,
    IngestTarget,
    JudgedFix,
    aggregate_loaded,
)
from cityops.ingest.prefetch import BatchLookups
from cityops.ingest.topics import Topics
from cityops.ingest.tracks import ResourceTracks, TrackPoint

log = logging.getLogger(__name__)
T = TypeVar("T")


class Outcome(StrEnum):
    """What became of a delivered message."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead-lettered"


@dataclass(frozen=True)
class Delivery:
    """A message as a transport delivered it: where from, and its raw key and value."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int | None = None
    offset: int | None = None


@dataclass(eq=False)
class _Result:
    """One delivery on its way through a batch (compared and hashed by identity)."""

    delivery: Delivery
    message: Message | None = None
    outcome: Outcome | None = None
    effect: Effect | None = None
    """What the handler said, final once the command it staged (if any) is saved."""
    staged: bool = False
    """Its command waits in the batch's `CommandBatch` for the commit."""
    fix: TrackPoint | None = None
    """A judged position fix whose track row the batch still has to write."""


_COUNTER = {Outcome.APPLIED: "applied", Outcome.DUPLICATE: "duplicate",
            Outcome.DEAD_LETTERED: "dead_lettered"}


@dataclass(frozen=True)
class BatchOutcome:
    """What became of a batch: the outcomes of the first deliveries, which are done; if a
    transient failure lasted, why the rest are not (they must be delivered again)."""

    outcomes: list[Outcome]
    stalled: ApplyStalled | None = None

    @property
    def done(self) -> int:
        return len(self.outcomes)


class ApplyStalled(Exception):
    """A message could not be applied for a while for a transient reason (or the worker is
    stopping): it must be delivered again, neither skipped nor dead-lettered."""


# --- the one place where errors become dead letters -----------------------------------------

DEAD_LETTER_CODES: dict[type[Exception], str] = {
    InvalidValue: "invalid-value",
    IllegalTransition: "illegal-transition",
    NotFound: "not-found",
    NotPermitted: "not-permitted",
    CommandIdReused: "message-id-reused",
    DomainError: "refused",
}
"""Domain errors are about the message: it is dead-lettered. `Rejected` errors carry their own
code (oversized, malformed, unknown-schema, schema-violation, wrong-topic)."""

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConcurrencyConflict,
    StoreOperationalError,
    StoreInterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    ConnectionError,
    TimeoutError,
)
"""Failures of the infrastructure, not of the message: retried, never dead-lettered."""


def is_transient(error: BaseException) -> bool:
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    try:
        from kafka.errors import KafkaError
    except ImportError:  # pragma: no cover - kafka-python is a dependency
        return False
    # Writing a dead letter to the broker can fail for a while (leader moving, broker down).
    return isinstance(error, KafkaError)


def dead_letter_code(error: BaseException) -> str:
    """The code a non-transient error is dead-lettered under."""
    if isinstance(error, Rejected):
        return error.code
    for cls in type(error).__mro__:
        if cls in DEAD_LETTER_CODES:
            return DEAD_LETTER_CODES[cls]
    # Not a domain error: input the schema let through but the code cannot take. Set it
    # aside with its class so that it can be fixed and replayed, instead of stopping.
    return "unexpected-error"


# --- the memory of recent message ids ----------------------------------------------------------


class SeenMessages:
    """Recently applied message ids with their digest, bounded (least recently used goes)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def repeats(self, message: Message) -> bool:
        """True for a message id already applied with the same content. The same id with
        other content is not a repeat: it goes on to be refused where ids are recorded."""
        with self._lock:
            digest = self._entries.get(message.message_id)
            if digest is None:
                return False
            self._entries.move_to_end(message.message_id)
            return digest == message.digest

    def remember(self, message: Message) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._entries[message.message_id] = message.digest
            self._entries.move_to_end(message.message_id)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient failures, within a budget per delivery."""

    first_delay_s: float = 0.05
    max_delay_s: float = 2.0
    budget_s: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay_s, self.first_delay_s * (2 ** (attempt - 1))))


class IngestPipeline:
    """Validates, deduplicates, applies or dead-letters delivered messages, and counts."""

    def __init__(
        self,
        target: IngestTarget,
        *,
        dead_letters: DeadLetterSink,
        topics: Topics,
        worker: str,
        catalogue: MessageCatalogue | None = None,
        counters: IngestCounters | None = None,
        max_message_bytes: int = 256 * 1024,
        seen_capacity: int = 100_000,
        retry: RetryPolicy | None = None,
        handlers: dict[str, Handler] | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.target = target
        # Stamps dead letters: real time, the operators' log (`dead-letters replay --since`).
        self.clock = clock
        self.dead_letters = dead_letters
        self.topics = topics
        self.worker = worker
        self.catalogue = catalogue or MessageCatalogue.load()
        self.counters = counters or IngestCounters()
        self.max_message_bytes = max_message_bytes
        self.seen = SeenMessages(seen_capacity)
        self.retry = retry or RetryPolicy()
        self.handlers = handlers if handlers is not None else HANDLERS
        missing = set(self.catalogue.types) - set(self.handlers)
        if missing:
            raise ValueError(f"no handler for message types {sorted(missing)}")
        self.stopping = threading.Event()
        self.on_close: list[Callable[[], object]] = []
        """Run by `close()` (the composition hangs the stores it opened here)."""

    def close(self) -> None:
        """Release the dead-letter sink and whatever the composition opened for this
        pipeline (the transport calls it when it stops)."""
        try:
            self.dead_letters.close()
        finally:
            for release in self.on_close:
                release()

    def stop(self) -> None:
        """Ask a retrying delivery to give up (as `ApplyStalled`) so the worker can stop."""
        self.stopping.set()

    def process(self, delivery: Delivery) -> Outcome:
        """Apply or dead-letter one delivery; raises only `ApplyStalled`."""
        done = self.process_batch([delivery])
        if done.stalled is not None:
            raise done.stalled
        return done.outcomes[0]

    def process_batch(self, deliveries: Sequence[Delivery]) -> BatchOutcome:
        """Apply or dead-letter deliveries in order (one partition's share of a poll).

        Each message is decided on its own, as its command requires, and what they decide is
        saved together (see the module's docstring); then the track rows of the position
        fixes are written, in one statement. The outcome says how many deliveries, from the
        first, are done: all of them unless a transient failure lasted, and then the rest
        must be delivered again."""
        results: list[_Result] = []
        staged: CommandBatch[_Result] = CommandBatch()
        stalled: ApplyStalled | None = None
        # First every delivery is validated (bad input dead-lettered at once), so that what
        # the valid ones will look up can be fetched for all of them together.
        for delivery in deliveries:
            if self.stopping.is_set():
                stalled = ApplyStalled("the worker is stopping")
                break
            self.counters.count(delivery.topic, "consumed")
            result = _Result(delivery)
            try:
                self._parse(result)
            except ApplyStalled as error:
                stalled = error
                break
            results.append(result)
        lookups = self.target.lookups
        parsed = [r.message for r in results if r.outcome is None and r.message is not None]
        if lookups is not None:
            self._begin_lookups(lookups, parsed)
        self._bring_up_to_date(parsed, staged)
        try:
            for index, result in enumerate(results):
                if result.outcome is not None:
                    continue
                try:
                    if not self._handle(result, staged):
                        # It reads what an earlier message staged: save that first, then
                        # decide this one on the saved state.
                        self._commit(staged, results)
                        assert result.message is not None
                        if self.seen.repeats(result.message):
                            # The same message, earlier in this batch, is saved now.
                            result.outcome = Outcome.DUPLICATE
                        elif not self._handle(result, staged):
                            # Not stageable even alone (it runs more than one command).
                            self._handle(result, None)
                except ApplyStalled as error:
                    stalled = error
                    del results[index:]
                    break
            try:
                # Also after a stall: what was staged before it is saved if the store lets us.
                self._commit(staged, results)
            except ApplyStalled as error:
                stalled = stalled or error
            if lookups is not None:
                try:
                    self._with_retries(lookups.flush, "write the latest sensor readings")
                except ApplyStalled as error:
                    # The readings not written come again (a repeated reading is written
                    # again, nothing else): from the first reading on, nothing is done.
                    stalled = stalled or error
                    readings = [i for i, r in enumerate(results)
                                if r.message is not None and r.message.type.type
                                == "hazard-reading"]
                    if readings:
                        del results[readings[0]:]
        finally:
            if lookups is not None:
                lookups.end()
        fixes = [r for r in results if r.fix is not None]
        if fixes:
            try:
                written = self._with_retries(
                    lambda: self.target.tracks.record_many([r.fix for r in fixes if r.fix]),
                    f"write {len(fixes)} track fixes")
            except ApplyStalled as error:
                # No row was written (one transaction): from the first fix on, everything
                # comes again; what was applied before the fix is done.
                stalled = error
                results = results[:results.index(fixes[0])]
            else:
                for result in fixes:
                    assert result.fix is not None and result.message is not None
                    key = ResourceTracks.key_of(result.fix)
                    # A fix sent twice in one batch is written once: the first one counts.
                    result.outcome = Outcome.APPLIED if key in written else Outcome.DUPLICATE
                    written.discard(key)
                    self.seen.remember(result.message)
        for result in results:
            assert result.outcome is not None
            self.counters.count(result.delivery.topic, _COUNTER[result.outcome])
        return BatchOutcome([r.outcome for r in results if r.outcome], stalled)

    def _begin_lookups(self, lookups: BatchLookups, messages: list[Message]) -> None:
        """Fetch what the batch's commands look up; if that fails, each command looks its
        own up (and meets the failure there, where it is retried)."""
        try:
            lookups.begin(messages)
        except Exception as error:  # an optimisation must not stop ingest
            lookups.end()
            log.warning("could not fetch the batch's look-ups (%s: %s); each message looks "
                        "up its own", type(error).__name__, error)

    def _bring_up_to_date(self, messages: list[Message], staged: CommandBatch[_Result]) -> None:
        """Ask each application once which of the aggregates the batch's commands will load
        are cached as stored, so that loading them asks the store nothing; if that fails,
        each is brought up to date when it is loaded (and meets the failure there)."""
        wanted: dict[Any, list[UUID]] = {}
        for message in messages:
            loaded = aggregate_loaded(message, self.target)
            if loaded is not None:
                wanted.setdefault(loaded[0], []).append(loaded[1])
        for application, ids in wanted.items():
            try:
                application.bring_up_to_date(ids, staged)
            except Exception as error:  # an optimisation must not stop ingest
                log.warning("could not ask %s for the versions of the batch's aggregates "
                            "(%s: %s); each is brought up to date when loaded",
                            application.name, type(error).__name__, error)

    def _parse(self, result: _Result) -> bool:
        """Validate and deduplicate one delivery; False when that already decided its
        outcome (dead-lettered, or a repeat this process remembers)."""
        delivery = result.delivery
        try:
            result.message = self.catalogue.parse(
                delivery.value, stream=self.topics.stream_of(delivery.topic),
                max_bytes=self.max_message_bytes)
        except (Rejected, InvalidValue) as error:
            result.outcome = self._dead_letter(delivery, error, None)
            return False
        if self.seen.repeats(result.message):
            result.outcome = Outcome.DUPLICATE
            return False
        return True

    def _handle(self, result: _Result, staged: CommandBatch[_Result] | None) -> bool:
        """Apply a parsed message through its handler, its command staged in `staged` (or,
        without a batch, saved at once); a domain error dead-letters it. False when it could
        not be staged (it reads or writes what the batch holds unsaved): nothing was done.
        Raises only `ApplyStalled`."""
        message = result.message
        assert message is not None
        handler = self.handlers[message.schema]
        result.effect, result.fix, result.staged = None, None, False

        def run() -> Effect | JudgedFix:
            if staged is None:
                return handler(message, self.target, None)
            return staged.stage(result, lambda: handler(message, self.target, staged))

        try:
            effect = self._with_retries(run, f"apply {message.schema} {message.message_id}")
        except ApplyStalled:
            raise
        except StagingOverlap:
            return False
        except Exception as error:
            result.outcome = self._dead_letter(result.delivery, error, message)
            return True
        if isinstance(effect, JudgedFix):
            result.fix = effect.point
            effect = Effect.APPLIED
        result.effect = effect
        result.staged = staged is not None and result in staged
        if not result.staged:
            self._settle(result)
        return True

    def _settle(self, result: _Result) -> None:
        """A message whose command is saved: remember it and give it its outcome (a fix's
        outcome waits for its track row)."""
        if result.fix is not None:
            return
        assert result.message is not None and result.effect is not None
        self.seen.remember(result.message)
        result.outcome = (Outcome.APPLIED if result.effect is Effect.APPLIED
                          else Outcome.DUPLICATE)

    def _commit(self, staged: CommandBatch[_Result], results: list[_Result]) -> None:
        """Save the staged commands (retrying transient failures), settle their messages and
        apply again, one by one, those of an application whose save conflicted. When this
        fails for good, `results` is cut before the first message not done and
        `ApplyStalled` is raised."""
        if not len(staged):
            return
        waiting = [r for r in results if r.staged]
        try:
            conflicted = set(self._with_retries(staged.commit,
                                                f"save {len(waiting)} staged commands"))
        except ApplyStalled:
            del results[results.index(waiting[0]):]
            raise
        for result in waiting:
            result.staged = False
            if result not in conflicted:
                self._settle(result)
                continue
            try:
                self._handle(result, None)
            except ApplyStalled:
                del results[results.index(result):]
                raise

    def _with_retries(self, action: Callable[[], T], what: str) -> T:
        """Run `action`, retrying transient failures with backoff within the budget."""
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return action()
            except Exception as error:
                if not is_transient(error):
                    raise
                attempt += 1
                delay = self.retry.delay(attempt)
                spent = time.monotonic() - started
                if spent + delay > self.retry.budget_s or self.stopping.is_set():
                    raise ApplyStalled(f"{what}: still failing after {attempt} attempts in "
                                       f"{spent:.1f} s: {error}") from error
                log.warning("%s failed (%s: %s); retry %d in %.2f s", what,
                            type(error).__name__, error, attempt, delay)
                if self.stopping.wait(delay):
                    raise ApplyStalled(f"{what}: stopping while retrying") from error

    def _dead_letter(self, delivery: Delivery, error: Exception,
                     message: Message | None) -> Outcome:
        letter = DeadLetter(
            source_topic=delivery.topic, partition=delivery.partition, offset=delivery.offset,
            key=delivery.key, value=delivery.value, code=dead_letter_code(error),
            reason=str(error) or type(error).__name__, error_class=type(error).__name__,
            dead_lettered_at=self.clock(), worker=self.worker,
            message_id=message.message_id if message else None,
            schema=message.schema if message else None,
        )
        if letter.code == "unexpected-error":
            log.error("unexpected error applying %s at %s[%s]@%s: dead-lettered",
                      letter.schema, delivery.topic, delivery.partition, delivery.offset,
                      exc_info=error)
        else:
            log.info("dead letter from %s[%s]@%s: %s: %s", delivery.topic, delivery.partition,
                     delivery.offset, letter.code, letter.reason)

        self._with_retries(lambda: self.dead_letters.send(letter),
                           f"dead-letter {delivery.topic}@{delivery.offset}")
        return Outcome.DEAD_LETTERED
