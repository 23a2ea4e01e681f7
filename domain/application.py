"""The base of the CityOps applications: idempotent commands, clear conflicts, one clock.

A command from outside carries a client-supplied id. A `CommandReceipt` aggregate, whose id
is derived from that command id, is saved in the same transaction as the events the command
caused: a repeated command changes nothing and answers the same, and two concurrent copies
cannot both record (the second insert of the receipt conflicts).

Receipts are optimistic: a command is decided and saved without looking its receipt up first,
because the receipt's insert is what guarantees it is done once. Only when something goes
wrong is the receipt read: when the save conflicts (a repeat, an id reused for another
command, or a real concurrent change) and when deciding refuses the command (a repeat whose
first run already moved the aggregate must still answer as the first run did).

A `CommandBatch` lets a caller with many independent commands (ingest, a polled batch of
messages) decide them one after another and save them together: one transaction per
application instead of one per command, with a per-command fallback when it conflicts.

A person acts on what they saw: a caller that knows the version of an aggregate its user saw
runs the command inside `expected_versions({id: version})`, and a command that loads that
aggregate at any other version is refused with `StaleVersion`, naming what happened since.
Without it, two dispatchers who opened the same case would both act and the second would
silently act on a case that is no longer what they saw. Only commands are refused: reads in
the block (an access check before the command, the answer after it) see the aggregate as
it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    IntegrityError,
    JSONTranscoder,
    ProcessRecorder,
    Recording,
    Tracking,
)

from cityops.domain.actors import Actor

# Re-exported: the applications and their callers import the clock from here.
from cityops.domain.clock import Clock as Clock  # noqa: PLC0414
from cityops.domain.clock import system_clock as system_clock  # noqa: PLC0414
from cityops.domain.errors import (
    CommandIdReused,
    ConcurrencyConflict,
    DomainError,
    InvalidValue,
    NotFound,
    StaleVersion,
)
from cityops.domain.former_topics import register_former_topics
from cityops.domain.model import CityAggregate
from cityops.domain.permissions import check_permitted
from cityops.domain.transcodings import register_domain_transcodings
from cityops.domain.values import checked_instant

COMMAND_NAMESPACE = uuid5(NAMESPACE_URL, "https://cityops.invalid/commands")
MAX_CLOCK_SKEW = timedelta(minutes=5)
MAX_COMMAND_ID_LENGTH = 200
ACTOR_SCOPE = "by:"
"""The start of a command id scoped to the user who sent it (`actor_scoped_command_id`)."""
MAX_SCOPE_LENGTH = 100
"""What the scope adds to a command id at most (`by:`, a username of up to 64, `:`)."""
MAX_LISTED_CHANGES = 5
"""How many of the changes a user missed a `StaleVersion` names (the rest are counted)."""

A = TypeVar("A", bound=CityAggregate)
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class CommandReceipt(Aggregate):
    """Proof that a command id was handled, and what it did."""

    @staticmethod
    def create_id(command_id: str) -> UUID:
        return uuid5(COMMAND_NAMESPACE, command_id)

    class Recorded(Aggregate.Created):
        command_id: str
        command: str
        fingerprint: str
        aggregate_id: UUID
        actor: Actor

    def __init__(self, command_id: str, command: str, fingerprint: str, aggregate_id: UUID,
                 actor: Actor) -> None:
        self.command_id = command_id
        self.command = command
        self.fingerprint = fingerprint
        self.aggregate_id = aggregate_id
        self.actor = actor


def actor_scoped_command_id(actor: Actor, key: str) -> str:
    """The command id of an idempotency key sent by a user (an HTTP `Idempotency-Key`): the
    key scoped to that user, so that another user's command with the same key is another
    command and never replays the first user's answer (nor lands on an aggregate whose id
    derives from the key). Systems' message ids (ingest) are not scoped: a message is
    redelivered whoever it names as the actor."""
    return f"{ACTOR_SCOPE}{actor.user_id.casefold()}:{key}"


def unscoped_key(command_id: str) -> tuple[str, str] | None:
    """(user, key) of an actor-scoped command id; None for any other command id."""
    if not command_id.startswith(ACTOR_SCOPE):
        return None
    user, sep, key = command_id[len(ACTOR_SCOPE):].partition(":")
    return (user, key) if sep and key else None


def fingerprint(command: str, args: Mapping[str, Any]) -> str:
    """A stable digest of what a command asked for (not who or when), to spot a reused id."""
    payload = json.dumps({"command": command, "args": args}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class CommandOutcome:
    """What running one command came to: its subject, and whether it only repeated a command
    already done (nothing was saved then)."""

    command: str
    subject: UUID
    repeated: bool


_OBSERVED: ContextVar[list[CommandOutcome] | None] = ContextVar("cityops_observed",
                                                                default=None)


@contextmanager
def observed_commands() -> Iterator[list[CommandOutcome]]:
    """Collect the outcome of every command run (in this thread) inside the block: how a
    caller that only sees a command's subject id learns whether it was a repeat, without a
    look-up of its own."""
    outcomes: list[CommandOutcome] = []
    token = _OBSERVED.set(outcomes)
    try:
        yield outcomes
    finally:
        _OBSERVED.reset(token)


def _observe(outcome: CommandOutcome) -> UUID:
    outcomes = _OBSERVED.get()
    if outcomes is not None:
        outcomes.append(outcome)
    return outcome.subject


def _decided(decide: Callable[[], Sequence[Aggregate]]) -> list[Aggregate]:
    """Run a command's `decide`, its loads checked against the versions the user saw."""
    token = _DECIDING.set(True)
    try:
        return list(decide())
    finally:
        _DECIDING.reset(token)


def _ran(outcome: CommandOutcome, aggregates: Sequence[Aggregate] = ()) -> UUID:
    """A command ran (or repeated): its aggregates' expected versions are fulfilled."""
    _fulfil_expectations([outcome.subject, *(a.id for a in aggregates)])
    return _observe(outcome)


_EXPECTED_VERSIONS: ContextVar[dict[UUID, int] | None] = ContextVar(
    "cityops_expected_versions", default=None)
_DECIDING: ContextVar[bool] = ContextVar("cityops_deciding", default=False)
"""Whether a command is deciding: its loads are the ones checked against the versions seen."""


@contextmanager
def expected_versions(versions: Mapping[UUID, int]) -> Iterator[None]:
    """Run the block's commands only on the versions of these aggregates that the user saw:
    a command that loads one of them at another version raises `StaleVersion`.

    An expectation lasts until a command on that aggregate has run (the user's own change is
    no news to them, so reading the result afterwards is not refused). The block replaces
    the expectations of an enclosing block. Being a context variable, it follows the code
    into threads started with a copy of the context (as web frameworks run sync handlers).
    """
    checked: dict[UUID, int] = {}
    for aggregate_id, version in versions.items():
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidValue(
                f"the version seen of {aggregate_id} must be a whole number from 1, "
                f"not {version!r}")
        checked[aggregate_id] = version
    token = _EXPECTED_VERSIONS.set(checked)
    try:
        yield
    finally:
        _EXPECTED_VERSIONS.reset(token)


def _fulfil_expectations(ids: Sequence[UUID]) -> None:
    """A command on these aggregates has run: later loads in the block see its result."""
    expected = _EXPECTED_VERSIONS.get()
    if expected:
        for aggregate_id in ids:
            expected.pop(aggregate_id, None)


def _describe_change(event: Any) -> str:
    """One event as a user who missed it is told: what, by whom, when."""
    actor = getattr(event, "actor", None)
    by = f" by {actor.user_id}" if isinstance(actor, Actor) else ""
    at = event.timestamp.astimezone(UTC)
    return f"{type(event).__name__}{by} at {at:%Y-%m-%d %H:%M:%S} UTC"


class StagingOverlap(Exception):
    """A command staged in a batch would read or write an aggregate (or a receipt) that an
    earlier command of the batch changed and has not saved yet, or is the second command of
    one unit: nothing of it was staged. Commit the batch, then run the unit again."""


@dataclass(eq=False)
class _StagedCommand(Generic[K]):
    """One unit's command, decided and waiting for its application's save."""

    key: K
    application: CityApplication
    events: list[Any]
    """Taken from the aggregates when staged, so that a commit retried after a transient
    failure saves them again (a save drains an aggregate's pending events)."""
    ids: frozenset[UUID]
    after_saved: list[Callable[[], object]] = field(default_factory=list)


_STAGING: ContextVar[CommandBatch[Any] | None] = ContextVar("cityops_staging", default=None)


class CommandBatch(Generic[K]):
    """Commands of many independent units (say, the messages of one polled batch) decided one
    after another and saved together: one transaction per application for all of them, where
    each would otherwise take the event store's table lock and commit on its own.

    A unit is a callable run by `stage(key, run)`; it may run at most one command. That
    command is decided at once (its domain errors reach the unit at once, as without a batch)
    and its aggregates and receipt are kept for `commit()`. Every decision is made on saved
    state: a unit that reads or writes what an earlier unit staged raises `StagingOverlap`
    before deciding anything, and the owner commits, then runs the unit again. A conflict on
    commit saves nothing of that application: `commit()` returns the keys of its units, for
    the owner to run again one by one (where each gets its own, exact, answer: a repeat, a
    reused id, a conflict).
    """

    def __init__(self) -> None:
        self._staged: list[_StagedCommand[K]] = []
        self._keys: set[K] = set()
        self._held: set[tuple[CityApplication, UUID]] = set()
        """(application, aggregate id) of everything staged: asked on every load."""
        self._conflicted: list[K] = []
        self._brought_up_to_date: set[tuple[CityApplication, UUID]] = set()
        """Cached aggregates already brought up to date (fast-forwarded) in this batch and
        not saved since: loaded again, they are taken from the cache without asking the
        store (see `CityApplication.load`)."""
        self._current: K | None = None
        self._current_command: _StagedCommand[K] | None = None

    def __len__(self) -> int:
        return len(self._staged)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def stage(self, key: K, run: Callable[[], T]) -> T:
        """Run the unit `run`, its command (if any) staged under `key` rather than saved.
        If `run` raises, nothing of it stays staged."""
        if key in self:
            raise ValueError(f"unit {key!r} is already staged in this batch")
        token = _STAGING.set(self)
        self._current, self._current_command = key, None
        try:
            return run()
        except BaseException:
            if self._current_command is not None:
                self._forget([self._current_command])
            raise
        finally:
            self._current, self._current_command = None, None
            _STAGING.reset(token)

    def holds(self, application: CityApplication, aggregate_id: UUID) -> bool:
        """Whether a staged, unsaved command of `application` changes `aggregate_id`."""
        return (application, aggregate_id) in self._held

    def _forget(self, gone: list[_StagedCommand[K]]) -> None:
        for staged in gone:
            self._keys.discard(staged.key)
            self._held.difference_update((staged.application, i) for i in staged.ids)
            # Saved (or conflicted): the cached copy is behind the store now.
            self._brought_up_to_date.difference_update(
                (staged.application, i) for i in staged.ids)
        leaving = set(gone)
        self._staged = [s for s in self._staged if s not in leaving]

    def _add(self, application: CityApplication, objects: list[Aggregate]) -> None:
        if self._current_command is not None:
            raise StagingOverlap("a unit of a batch runs one command; this one runs another")
        ids = frozenset(o.id for o in objects)
        if any(self.holds(application, i) for i in ids):
            raise StagingOverlap(f"an earlier command of the batch changes one of {sorted(ids)}")
        assert self._current is not None
        events = [e for o in objects for e in o.collect_events()]
        staged = _StagedCommand(self._current, application, events, ids)
        self._staged.append(staged)
        self._keys.add(staged.key)
        self._held.update((application, i) for i in ids)
        self._current_command = staged

    def _after_saved(self, callback: Callable[[], object]) -> bool:
        """Defer `callback` to the commit of the current unit's command (False: the unit has
        staged nothing, so there is nothing to wait for)."""
        if self._current_command is None:
            return False
        self._current_command.after_saved.append(callback)
        return True

    def commit(self) -> list[K]:
        """Save what is staged, one transaction per application (in the order the
        applications were first staged to), and return the keys of the units whose
        application's save conflicted (nothing of those was saved: run them again one by
        one). A transient failure propagates and leaves unsaved what it stopped; calling
        `commit()` again saves the rest."""
        while self._staged:
            application = self._staged[0].application
            group = [s for s in self._staged if s.application is application]
            try:
                application.save(*(e for s in group for e in s.events))
            except IntegrityError:
                self._conflicted += [s.key for s in group]
                self._forget(group)
                continue
            self._forget(group)
            for staged in group:
                for callback in staged.after_saved:
                    callback()
        conflicted, self._conflicted = self._conflicted, []
        return conflicted


class CityApplication(Application[UUID]):
    """An event-sourced application of one bounded context of CityOps."""

    def __init__(self, env: Mapping[str, str] | None = None, *, clock: Clock = system_clock):
        super().__init__(env=dict(env) if env is not None else None)
        self.clock = clock

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_domain_transcodings(transcoder)
        register_former_topics()

    # --- time -------------------------------------------------------------------------

    def now(self, at: datetime | None = None) -> datetime:
        """When a command happened: the client's time if given (checked), else our clock."""
        current = self.clock()
        if at is None:
            return current
        checked_instant("time", at)
        if at - current > MAX_CLOCK_SKEW:
            raise InvalidValue(f"time {at.isoformat()} is in the future")
        return at.astimezone(UTC)

    # --- loading ------------------------------------------------------------------------

    def load(self, cls: type[A], aggregate_id: UUID, version: int | None = None) -> A:
        """Load an aggregate of the expected class, or raise `NotFound` in its words."""
        self._check_not_staged(aggregate_id)
        batch = _STAGING.get()
        try:
            aggregate: Aggregate | None = None
            if batch is not None and version is None:
                aggregate = self._cached_in_batch(batch, aggregate_id)
            if aggregate is None:
                aggregate = self.repository.get(aggregate_id, version=version)
                if batch is not None and version is None and self.repository.cache:
                    batch._brought_up_to_date.add((self, aggregate_id))
        except AggregateNotFoundError:
            raise NotFound(cls.KIND, aggregate_id) from None
        if not isinstance(aggregate, cls):
            raise NotFound(cls.KIND, aggregate_id)
        if version is None and _DECIDING.get():
            self.require_seen_version(aggregate)
        return aggregate

    def require_seen_version(self, aggregate: CityAggregate) -> None:
        """Raise `StaleVersion` if the user saw another version of `aggregate` (when one is
        expected in this context, see `expected_versions`). Commands check their loads by
        themselves; a command of several steps (across streams) calls this on its subject
        before its first step, so that no step is done on a stale view."""
        expected = _EXPECTED_VERSIONS.get()
        if not expected or aggregate.id not in expected:
            return
        seen, current = expected[aggregate.id], aggregate.version
        if seen == current:
            return
        changes: tuple[str, ...] = ()
        if seen < current:
            changes = tuple(_describe_change(e) for e in self.events.get(
                aggregate.id, gt=seen, lte=current, limit=MAX_LISTED_CHANGES))
        raise StaleVersion(aggregate.KIND, aggregate.id, seen=seen, current=current,
                           changes=changes, unlisted=max(0, current - seen - len(changes)))

    def _cached_in_batch(self, batch: CommandBatch[Any], aggregate_id: UUID) -> Aggregate | None:
        """An aggregate this batch already brought up to date from the store, from the cache
        (a copy, as the library hands out), without asking the store again: the commands of
        one batch are decided as of its first look. That is safe because saving is
        optimistic: if another process changed the aggregate meanwhile, the batch's save of
        a decision made on the older state conflicts and its command is run again on its
        own, on the current state; a decision that saved nothing was right when it was
        looked at, a moment before."""
        if (self, aggregate_id) not in batch._brought_up_to_date or not self.repository.cache:
            return None
        try:
            cached = self.repository.cache.get(aggregate_id)
        except KeyError:
            return None
        if not isinstance(cached, Aggregate):
            return None
        return deepcopy(cached) if self.repository.deepcopy_from_cache else cached

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether any event of `aggregate_id` is stored (one indexed read, nothing decoded)."""
        self._check_not_staged(aggregate_id)
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    def _check_not_staged(self, aggregate_id: UUID) -> None:
        batch = _STAGING.get()
        if batch is not None and batch.holds(self, aggregate_id):
            raise StagingOverlap(f"{aggregate_id} has changes staged in the batch, not saved")

    def after_saved(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the command just run is saved: now, or, when it was staged in
        a batch, after the batch's commit saved it (for in-process caches that must only
        learn what is stored)."""
        batch = _STAGING.get()
        if batch is None or not batch._after_saved(callback):
            callback()

    # --- commands -----------------------------------------------------------------------

    def command(self, command: str, actor: Actor, command_id: str | None,
                args: Mapping[str, Any], decide: Callable[[], Sequence[Aggregate]], *,
                explain_conflict: Callable[[], None] | None = None) -> UUID:
        """Run a command after checking that the actor's role may issue it."""
        check_permitted(command, actor)
        return self.run_command(command, actor=actor, command_id=command_id, args=args,
                                decide=decide, explain_conflict=explain_conflict)

    def run_command(
        self,
        command: str,
        *,
        actor: Actor,
        command_id: str | None,
        args: Mapping[str, Any],
        decide: Callable[[], Sequence[Aggregate]],
        explain_conflict: Callable[[], None] | None = None,
    ) -> UUID:
        """Run `decide` (which loads aggregates and calls their methods), then save all the
        aggregates it returns together with the command's receipt, in one transaction (or
        stage them in the `CommandBatch` the caller runs this in).

        Returns the id of the first aggregate `decide` returned (the command's subject); a
        repeated command returns what its first run returned. `explain_conflict` is called
        when the save conflicts and no receipt explains it: it raises the clearer domain
        error when there is one (a new aggregate whose id is already taken), else returns
        and the conflict is reported as a `ConcurrencyConflict`.
        """
        receipt_id = None
        digest = fingerprint(command, args)
        if command_id is not None:
            if not isinstance(command_id, str) or not command_id.strip():
                raise InvalidValue("command id must be a non-empty string")
            scoped = unscoped_key(command_id)
            limit = MAX_COMMAND_ID_LENGTH + (MAX_SCOPE_LENGTH if scoped else 0)
            if len(command_id) > limit:
                raise InvalidValue(f"command id is longer than {MAX_COMMAND_ID_LENGTH} chars")
            receipt_id = CommandReceipt.create_id(command_id)
            if scoped is not None:
                earlier_unscoped = self._unscoped_receipt(*scoped)
                if earlier_unscoped is not None:
                    return _ran(self._repeat(earlier_unscoped, scoped[1], command, digest))

        try:
            aggregates = _decided(decide)
        except DomainError:
            # Refused on the current state. A repeat whose first run moved the aggregate on
            # is refused too, yet must answer as the first run did: ask the receipt.
            if receipt_id is not None and command_id is not None:
                earlier = self._receipt(receipt_id)
                if earlier is not None:
                    return _ran(self._repeat(earlier, command_id, command, digest))
            raise
        if not aggregates:
            raise AssertionError(f"command {command} decided nothing")
        subject = aggregates[0]
        if command_id is None and not any(a.pending_events for a in aggregates):
            # Nothing happened (a repeat that the aggregate itself recognised): do not take
            # the event store's write lock for an empty save.
            return _ran(CommandOutcome(command, subject.id, repeated=False), aggregates)
        to_save: list[Aggregate] = list(aggregates)
        if command_id is not None:
            to_save.append(
                CommandReceipt(
                    command_id=command_id,
                    command=command,
                    fingerprint=digest,
                    aggregate_id=subject.id,
                    actor=actor,
                )
            )
        batch = _STAGING.get()
        if batch is not None:
            # Saved by the batch's commit; a conflict there sends the unit back to be run
            # again on its own, through the path below.
            batch._add(self, to_save)
            return _ran(CommandOutcome(command, subject.id, repeated=False), aggregates)
        try:
            self.save(*to_save)
        except IntegrityError:
            if receipt_id is not None and command_id is not None:
                earlier = self._receipt(receipt_id)
                if earlier is not None:
                    return _ran(self._repeat(earlier, command_id, command, digest))
            if explain_conflict is not None:
                explain_conflict()
            kind = getattr(subject, "KIND", type(subject).__name__)
            raise ConcurrencyConflict(kind, subject.id, command) from None
        return _ran(CommandOutcome(command, subject.id, repeated=False), aggregates)

    def save_tracked(self, *aggregates: Aggregate, tracking: Tracking) -> list[Recording[UUID]]:
        """Save what a process decided on a notification of another application together
        with that notification's position (`tracking`), in one transaction: the library's
        process-application recording (`EventSourcedProjection.process_event`). Another
        save at a position not after the tracked one raises `IntegrityError`, so a process
        that restarts, or runs twice, never applies a notification twice. Needs a process
        recorder (see `HotlineTickets.construct_recorder`)."""
        if not isinstance(self.recorder, ProcessRecorder):
            raise TypeError(f"{self.name} has no process recorder to track positions in")
        processing_event = ProcessingEvent[UUID](tracking=tracking)
        processing_event.collect_events(*aggregates)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    def _receipt(self, receipt_id: UUID) -> CommandReceipt | None:
        self._check_not_staged(receipt_id)
        try:
            # Receipts never change: read from the store, not the aggregate cache.
            receipt: Aggregate = self.repository.get(receipt_id, version=1)
        except AggregateNotFoundError:
            return None
        assert isinstance(receipt, CommandReceipt)
        return receipt

    def _unscoped_receipt(self, user: str, key: str) -> CommandReceipt | None:
        """The receipt of the same user's same key from before keys were scoped by user
        (stored under the bare key): a command sent before an upgrade and retried after it
        (a phone's outbox) is a repeat, not a second command. Only that user's own: another
        user's receipt under the bare key is another command."""
        earlier = self._receipt(CommandReceipt.create_id(key))
        if earlier is None or earlier.actor.user_id.casefold() != user:
            return None
        return earlier

    @staticmethod
    def _repeat(earlier: CommandReceipt, command_id: str, command: str,
                digest: str) -> CommandOutcome:
        if earlier.fingerprint != digest:
            raise CommandIdReused(command_id, earlier.command, command)
        return CommandOutcome(command, earlier.aggregate_id, repeated=True)
