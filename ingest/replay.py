"""Replaying dead letters once their cause is fixed (a category added to the catalogue, a
resource registered that did not exist yet): each is submitted again, with its original bytes,
through the same ingest pipeline (validation, dedupe, the message's command).

The original message id stays the command id, so replaying a message that was applied in the
meantime changes nothing (its receipt answers). A ledger in the ingest store records what each
replay came to: applied or a repeat (finished: a later replay leaves it alone) or failed again,
with the new reason (a later replay tries it again). The dead letters themselves are kept as
they were: the ledger says which of them are done.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cityops.domain.clock import system_clock
from cityops.ingest.deadletters import DeadLetter
from cityops.ingest.pipeline import Delivery, IngestPipeline, Outcome
from cityops.storage import ReadStore, schema_transaction

LEDGER_TABLE = "ingest_dead_letter_replays"
REPLAY_BATCH = 500


class ReplayOutcome(StrEnum):
    """What replaying one dead letter came to."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    """Nothing to do: it had been applied in the meantime (its message id has a receipt),
    or it is a reading or fix older than what is known."""
    FAILED_AGAIN = "failed-again"
    NOT_REPLAYED = "not-replayed"
    """A transient failure lasted (the database is down): try the replay again later."""

    @property
    def finished(self) -> bool:
        return self in (ReplayOutcome.APPLIED, ReplayOutcome.DUPLICATE)


@dataclass(frozen=True)
class Replayed:
    """One dead letter and what its replay came to (the new reason if it failed again)."""

    letter: DeadLetter
    outcome: ReplayOutcome
    code: str | None = None
    reason: str | None = None


class _CapturedDeadLetters:
    """The replay pipeline's dead-letter sink: a message that fails again is recorded in the
    ledger with its new reason, not set aside a second time."""

    def __init__(self) -> None:
        self.letters: dict[int, DeadLetter] = {}

    def send(self, letter: DeadLetter) -> None:
        assert letter.offset is not None
        self.letters[letter.offset] = letter

    def close(self) -> None:
        """Nothing to release."""


def matching(letters: Iterable[DeadLetter], *, topics: Sequence[str] | None = None,
             reason: str | None = None, since: datetime | None = None) -> list[DeadLetter]:
    """The dead letters from one of `topics`, whose code is `reason` or whose reason text
    contains it, set aside at or after `since`; each source message once, oldest first."""
    if since is not None and since.tzinfo is None:
        raise ValueError(f"--since {since.isoformat()} needs a time zone (e.g. Z or +08:00)")
    wanted = reason.lower() if reason else None
    chosen: dict[str, DeadLetter] = {}
    for letter in letters:
        if topics and letter.source_topic not in topics:
            continue
        if wanted and letter.code != wanted and wanted not in letter.reason.lower():
            continue
        if since is not None and letter.dead_lettered_at < since:
            continue
        # Set aside twice (a worker killed before its offset commit): the first one counts.
        chosen.setdefault(letter.letter_id, letter)
    return sorted(chosen.values(), key=lambda d: (d.dead_lettered_at, d.source_topic,
                                                  d.partition or 0, d.offset or 0))


class ReplayLedger:
    """Which dead letters were replayed, when, how often, and with what outcome."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store
        with schema_transaction(store) as txn:
            txn.execute(
                f"CREATE TABLE IF NOT EXISTS {LEDGER_TABLE} ("
                "letter_id TEXT PRIMARY KEY, source_topic TEXT NOT NULL, "
                "source_partition INTEGER, source_offset BIGINT, message_id TEXT, "
                "first_code TEXT NOT NULL, outcome TEXT NOT NULL, code TEXT, reason TEXT, "
                "attempts INTEGER NOT NULL, replayed_at TEXT NOT NULL)"
            )

    def finished(self) -> set[str]:
        """The letter ids whose replay was applied (or found nothing left to do)."""
        with self.store.transaction() as txn:
            txn.execute(f"SELECT letter_id FROM {LEDGER_TABLE} WHERE outcome IN (%s, %s)",
                        (ReplayOutcome.APPLIED.value, ReplayOutcome.DUPLICATE.value))
            return {str(row[0]) for row in txn.fetchall()}

    def outcomes(self) -> dict[str, tuple[str, int, str | None]]:
        """letter id -> (latest outcome, attempts, latest reason)."""
        with self.store.transaction() as txn:
            txn.execute(f"SELECT letter_id, outcome, attempts, reason FROM {LEDGER_TABLE}")
            return {str(r[0]): (str(r[1]), int(r[2]), r[3]) for r in txn.fetchall()}

    def record(self, results: Sequence[Replayed]) -> None:
        """Record what replays came to (one transaction)."""
        # Real time on purpose: the operator's ledger of replays, as its dead letters.
        now = system_clock().isoformat()
        with self.store.transaction() as txn:
            for result in results:
                if result.outcome is ReplayOutcome.NOT_REPLAYED:
                    continue
                letter = result.letter
                txn.execute(
                    f"INSERT INTO {LEDGER_TABLE} (letter_id, source_topic, source_partition, "
                    "source_offset, message_id, first_code, outcome, code, reason, attempts, "
                    "replayed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s) "
                    "ON CONFLICT (letter_id) DO UPDATE SET outcome = excluded.outcome, "
                    "code = excluded.code, reason = excluded.reason, replayed_at = "
                    f"excluded.replayed_at, attempts = {LEDGER_TABLE}.attempts + 1",
                    (letter.letter_id, letter.source_topic, letter.partition, letter.offset,
                     letter.message_id, letter.code, result.outcome.value, result.code,
                     result.reason, now),
                )


def replay(letters: Sequence[DeadLetter], ledger: ReplayLedger,
           pipeline_of: Callable[[_CapturedDeadLetters], IngestPipeline]) -> list[Replayed]:
    """Replay `letters` (those the ledger has not finished) through a pipeline built by
    `pipeline_of(sink)`, in order, and record the outcomes in the ledger."""
    finished = ledger.finished()
    todo = [letter for letter in letters if letter.letter_id not in finished]
    if not todo:
        return []
    sink = _CapturedDeadLetters()
    pipeline = pipeline_of(sink)
    results: list[Replayed] = []
    # Each delivery gets its place in this replay as its offset: that is how a new dead
    # letter is matched back to the letter it replays.
    numbered = list(zip(itertools.count(), todo, strict=False))
    try:
        for start in range(0, len(numbered), REPLAY_BATCH):
            chunk = numbered[start:start + REPLAY_BATCH]
            done = pipeline.process_batch([
                Delivery(topic=letter.source_topic, value=letter.value, key=letter.key,
                         partition=None, offset=number) for number, letter in chunk])
            batch: list[Replayed] = []
            for (number, letter), outcome in zip(chunk, done.outcomes, strict=False):
                if outcome is Outcome.DEAD_LETTERED:
                    again = sink.letters[number]
                    batch.append(Replayed(letter, ReplayOutcome.FAILED_AGAIN, again.code,
                                          again.reason))
                else:
                    batch.append(Replayed(letter, ReplayOutcome(outcome.value)))
            reason = str(done.stalled) if done.stalled is not None else None
            batch += [Replayed(letter, ReplayOutcome.NOT_REPLAYED, "stalled", reason)
                      for _, letter in chunk[done.done:]]
            ledger.record(batch)
            results += batch
            if done.stalled is not None:
                results += [Replayed(letter, ReplayOutcome.NOT_REPLAYED, "stalled", reason)
                            for _, letter in numbered[start + len(chunk):]]
                break
    finally:
        pipeline.close()
    return results
