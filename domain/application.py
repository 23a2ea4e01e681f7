"""The base of the CityOps applications: commands run once, on what their user saw, against
one clock.

How a command runs is told in `domain/commands.py` (route -> command value -> handler ->
events -> receipt); this module holds the machinery of steps 3 and 4: `CityApplication.handle`
(the entry point of one application), the `UnitOfWork` a handler loads through, the
`CommandReceipt` and the `CommandBatch`.

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
application instead of one per command, with a per-command fallback when it conflicts. The
caller passes it in the command's context (`CommandContext.batch`).

A person acts on what they saw: a caller that knows the version of an aggregate its user saw
puts it in the command's context (`CommandContext.seen_versions`), and a handler that loads
that aggregate (`UnitOfWork.load`) at any other version is refused with `StaleVersion`,
naming what happened since. Without it, two dispatchers who opened the same case would both
act and the second would silently act on a case that is no longer what they saw. Only the
command's own loads are checked: reads around it (an access check before the command, the
answer after it) see the aggregate as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast, runtime_checkable
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    ApplicationRecorder,
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
from cityops.domain.commands import (
    HANDLED_COMMAND,
    Command,
    CommandContext,
)

# Re-exported: they were defined here before commands were values.
from cityops.domain.commands import CommandOutcome as CommandOutcome  # noqa: PLC0414
from cityops.domain.commands import fingerprint as fingerprint  # noqa: PLC0414
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

    @classmethod
    def record(cls, command_id: str, command: str, fingerprint: str, aggregate_id: UUID,
               actor: Actor, at: datetime) -> CommandReceipt:
        """The receipt of a command handled at `at` (the application's clock, as its
        events: not the wall clock, which a drill or the demo does not run on)."""
        return cls._create(cls.Recorded, id=cls.create_id(command_id), timestamp=at,
                           command_id=command_id, command=command, fingerprint=fingerprint,
                           aggregate_id=aggregate_id, actor=actor)


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


def _describe_change(event: Any) -> str:
    """One event as a user who missed it is told: what, by whom, when."""
    actor = getattr(event, "actor", None)
    by = f" by {actor.user_id}" if isinstance(actor, Actor) else ""
    at = event.timestamp.astimezone(UTC)
    return f"{type(event).__name__}{by} at {at:%Y-%m-%d %H:%M:%S} UTC"


@runtime_checkable
class StoredVersions(Protocol):
    """An event store that tells the latest stored version of many aggregates at once (the
    recorders of `cityops.event_chain`)."""

    def latest_versions(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, int]: ...


class StagingOverlap(Exception):
    """A command staged in a batch would read an aggregate (or a receipt) that an earlier
    command of the batch changed and has not saved yet in a way that cannot build on the
    staged state (a receipt, an existence check, a past version), would write an aggregate
    it did not load from the batch, or is the second command of one unit: nothing of it was
    staged. Commit the batch, then run the unit again."""


@dataclass(eq=False)
class _StagedCommand(Generic[K]):
    """One unit's command, decided and waiting for its application's save."""

    key: K
    application: CityApplication
    events: list[Any]
    """Taken from the aggregates when staged, so that a commit retried after a transient
    failure saves them again (a save drains an aggregate's pending events)."""
    objects: dict[UUID, Aggregate]
    """The aggregates as this command left them: what a later command of the batch that
    loads one of them builds on."""
    after_saved: list[Callable[[], object]] = field(default_factory=list)

    @property
    def ids(self) -> frozenset[UUID]:
        return frozenset(self.objects)


class CommandBatch(Generic[K]):
    """Commands of many independent units (say, the messages of one polled batch) decided one
    after another and saved together: one transaction per application for all of them, where
    each would otherwise take the event store's table lock and commit on its own.

    A unit is a callable run by `stage(key, run)`; it may run at most one command, with this
    batch in its context (`CommandContext.batch`). That command is decided at once (its
    domain errors reach the unit at once, as without a batch) and its aggregates and receipt
    are kept for `commit()`. A later unit that loads an aggregate an earlier one staged
    decides on the staged state (a copy of it), exactly as it would after that was saved,
    and its events follow the earlier ones in the same save; a unit that would read a staged
    receipt (a command id already in the batch), ask whether a staged aggregate exists, or
    write one it did not load raises `StagingOverlap` before deciding anything, and the owner
    commits, then runs the unit again. A conflict on commit saves nothing of that
    application: `commit()` returns the keys of its units (those that built on another's
    staged state included), for the owner to run again one by one, in order (where each gets
    its own, exact, answer: a repeat, a reused id, a conflict).
    """

    def __init__(self) -> None:
        self._staged: list[_StagedCommand[K]] = []
        self._keys: set[K] = set()
        self._latest: dict[tuple[CityApplication, UUID], Aggregate] = {}
        """(application, aggregate id) of everything staged, with the aggregate as the last
        command that staged it left it: asked on every load."""
        self._built_on: set[tuple[CityApplication, UUID]] = set()
        """What the current unit loaded from the staged state (it may stage those again)."""
        self._conflicted: list[K] = []
        self._brought_up_to_date: set[tuple[CityApplication, UUID]] = set()
        """Cached aggregates already brought up to date (fast-forwarded) in this batch and
        not saved since: loaded again, they are taken from the cache without asking the
        store (see `CityApplication.load_for`)."""
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
        self._current, self._current_command = key, None
        self._built_on = set()
        try:
            return run()
        except BaseException:
            if self._current_command is not None:
                self._forget([self._current_command])
            raise
        finally:
            self._current, self._current_command = None, None
            self._built_on = set()

    def holds(self, application: CityApplication, aggregate_id: UUID) -> bool:
        """Whether a staged, unsaved command of `application` changes `aggregate_id`."""
        return (application, aggregate_id) in self._latest

    def check_not_staged(self, application: CityApplication, aggregate_id: UUID) -> None:
        """Raise `StagingOverlap` if `aggregate_id` has changes staged here, not saved."""
        if self.holds(application, aggregate_id):
            raise StagingOverlap(f"{aggregate_id} has changes staged in the batch, not saved")

    def staged_state(self, application: CityApplication,
                     aggregate_id: UUID) -> Aggregate | None:
        """The aggregate as the staged commands left it (None: nothing staged changes it),
        shared: to be read, never changed."""
        return self._latest.get((application, aggregate_id))

    def load_staged(self, application: CityApplication,
                    aggregate_id: UUID) -> Aggregate | None:
        """A copy of the aggregate as the staged commands left it, for the current unit's
        command to build on (None: nothing staged changes it)."""
        staged = self._latest.get((application, aggregate_id))
        if staged is None:
            return None
        if self._current is None:
            raise StagingOverlap(f"{aggregate_id} has changes staged in the batch, not saved")
        self._built_on.add((application, aggregate_id))
        return deepcopy(staged)

    def builds_on_staged(self, application: CityApplication) -> bool:
        """Whether the current unit loaded something of `application` from the staged
        state: then its command is staged even if it records nothing, so that it is decided
        again if that state is never saved."""
        return any(app is application for app, _ in self._built_on)

    def is_up_to_date(self, application: CityApplication, aggregate_id: UUID) -> bool:
        """Whether the application's cached copy of `aggregate_id` was brought up to date
        from the store in this batch and not saved since."""
        return (application, aggregate_id) in self._brought_up_to_date

    def brought_up_to_date(self, application: CityApplication, aggregate_id: UUID) -> None:
        """The application's cached copy of `aggregate_id` is now as stored."""
        self._brought_up_to_date.add((application, aggregate_id))

    def _forget(self, gone: list[_StagedCommand[K]]) -> None:
        leaving = set(gone)
        for staged in gone:
            self._keys.discard(staged.key)
            # Saved (or conflicted): the cached copy is behind the store now.
            self._brought_up_to_date.difference_update(
                (staged.application, i) for i in staged.ids)
        self._staged = [s for s in self._staged if s not in leaving]
        # What the remaining commands left (several may have staged one aggregate).
        self._latest = {(s.application, i): o for s in self._staged
                        for i, o in s.objects.items()}

    def add(self, application: CityApplication, objects: Sequence[Aggregate],
            after_saved: Sequence[Callable[[], object]] = ()) -> None:
        """Stage the current unit's command: these aggregates (and receipt) of
        `application`, saved by `commit()`, which then calls `after_saved`."""
        if self._current_command is not None:
            raise StagingOverlap("a unit of a batch runs one command; this one runs another")
        ids = [o.id for o in objects]
        if any(self.holds(application, i) and (application, i) not in self._built_on
               for i in ids):
            raise StagingOverlap(f"an earlier command of the batch changes one of {sorted(ids)}")
        if self._current is None:
            raise RuntimeError("a command is staged only by a unit of the batch (stage())")
        events = [e for o in objects for e in o.collect_events()]
        staged = _StagedCommand(self._current, application, events,
                                {o.id: o for o in objects}, list(after_saved))
        self._staged.append(staged)
        self._keys.add(staged.key)
        self._latest.update(((application, o.id), o) for o in objects)
        self._current_command = staged

    def after_current_saved(self, callback: Callable[[], object]) -> bool:
        """Defer `callback` to the commit of the current unit's command (False: the unit has
        staged nothing, so there is nothing to wait for): what the unit's caller does once
        its command is stored (ingest follows a resource's leaving into its incident)."""
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
            events = [e for s in group for e in s.events]
            try:
                if events:
                    application.save(*events)
            except IntegrityError:
                self._conflicted += [s.key for s in group]
                self._forget(group)
                continue
            saved = {i: o for s in group for i, o in s.objects.items()}
            self._forget(group)
            application.cache_saved(saved.values())
            for staged in group:
                for callback in staged.after_saved:
                    callback()
        conflicted, self._conflicted = self._conflicted, []
        return conflicted


class UnitOfWork:
    """One command's decision as its handler sees it: the aggregates it loads (each checked
    against the version its user saw, and against what the command's batch holds unsaved),
    who acts and when. The handler returns the aggregates it changed; the application saves
    them together (see `CityApplication.handle`)."""

    def __init__(self, application: CityApplication, context: CommandContext,
                 now: datetime) -> None:
        self.application = application
        self.context = context
        self.now = now
        """When the command happens: the context's time if it gave one (checked), else the
        application's clock."""
        self.explain_conflict: Callable[[], None] | None = None
        self.after_saved_callbacks: list[Callable[[], object]] = []
        self.result: object = None
        """What the handler answers besides the aggregates it changed (`CommandOutcome.result`):
        a judgement, the id of something new inside its subject."""

    @property
    def actor(self) -> Actor:
        return self.context.actor

    @property
    def command_id(self) -> str | None:
        return self.context.command_id

    def load(self, cls: type[A], aggregate_id: UUID) -> A:
        """The aggregate as stored, of the expected class (`NotFound` in its words), and at
        the version the user saw if they said (`StaleVersion` otherwise)."""
        aggregate = self.application.load_for(cls, aggregate_id, self.context.batch)
        self.application.check_seen_version(aggregate, self.context.seen_versions)
        return aggregate

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether any event of `aggregate_id` is stored."""
        return self.application.exists_for(aggregate_id, self.context.batch)

    def on_conflict(self, explain: Callable[[], None]) -> None:
        """When saving conflicts and no receipt explains it, call `explain`: it raises the
        clearer domain error if there is one (a new aggregate whose id is taken), else
        returns and the conflict is reported as a `ConcurrencyConflict`."""
        self.explain_conflict = explain

    def after_saved(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the command is saved (at once, or after its batch's commit):
        for in-process caches that must only learn what is stored."""
        self.after_saved_callbacks.append(callback)


Handler = Callable[[Command, UnitOfWork], Sequence[Aggregate]]


class CityApplication(Application[UUID]):
    """An event-sourced application of one bounded context of CityOps.

    Its commands are handled by its methods marked `@handles(CommandClass)`: one handler per
    command class, found by `handle`."""

    command_handlers: ClassVar[Mapping[type[Command], str]] = {}
    """Name of the method that handles each command class (collected from `@handles`)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = dict(cls.command_handlers)
        for attribute, value in vars(cls).items():
            command = getattr(value, HANDLED_COMMAND, None)
            if command is None:
                continue
            if found.get(command, attribute) != attribute:
                raise TypeError(f"{cls.__qualname__} has two handlers of {command.name}: "
                                f"{found[command]} and {attribute}")
            found[command] = attribute
        cls.command_handlers = found

    runs_processes = False
    """Whether processes across streams change this application's aggregates: its store is
    then a process recorder, where they track their positions (`save_tracked`,
    `cityops.domain.processes`)."""

    def construct_recorder(self) -> ApplicationRecorder:
        if self.runs_processes:
            return self.factory.process_recorder()
        return super().construct_recorder()

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
        """Load an aggregate of the expected class, or raise `NotFound` in its words (a
        read: a command's handler loads through its `UnitOfWork`)."""
        return self.load_for(cls, aggregate_id, None, version)

    def load_for(self, cls: type[A], aggregate_id: UUID, batch: CommandBatch[Any] | None,
                 version: int | None = None, *, copy: bool = True) -> A:
        """Load an aggregate for a command staged in `batch` (or for none): as the batch's
        staged commands left it when they changed it (a past version of it is refused with
        `StagingOverlap`), and taken from the cache when the batch already brought it up to
        date."""
        if batch is not None:
            if version is None:
                staged = batch.load_staged(self, aggregate_id)
                if staged is not None:
                    if not isinstance(staged, cls):
                        raise NotFound(cls.KIND, aggregate_id)
                    return staged
            batch.check_not_staged(self, aggregate_id)
        try:
            aggregate: Aggregate | None = None
            if batch is not None and version is None:
                aggregate = self._cached_in_batch(batch, aggregate_id, copy=copy)
            if aggregate is None:
                aggregate = cast(Aggregate, self.repository.get(
                    aggregate_id, version=version, deepcopy_from_cache=copy))
                if batch is not None and version is None and self.repository.cache:
                    batch.brought_up_to_date(self, aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(cls.KIND, aggregate_id) from None
        if not isinstance(aggregate, cls):
            raise NotFound(cls.KIND, aggregate_id)
        return aggregate

    def bring_up_to_date(self, aggregate_ids: Iterable[UUID], batch: CommandBatch[Any]) -> None:
        """Ask once, for the aggregates a batch's commands will load, which cached copies
        are as stored (the stored version is the cached one), and mark them brought up to
        date in `batch`: their first load in the batch then asks the store nothing, where
        each would otherwise be fast-forwarded with a query of its own. Those behind, or not
        cached, are loaded as usual. (Decided as of this look, as within a batch anyway: a
        concurrent writer makes the batch's save conflict.)"""
        cache = self.repository.cache
        if not cache or not self.repository.fastforward:
            return
        cached: dict[UUID, int] = {}
        for aggregate_id in set(aggregate_ids):
            if batch.is_up_to_date(self, aggregate_id) or batch.holds(self, aggregate_id):
                continue
            try:
                aggregate = cache.get(aggregate_id)
            except KeyError:
                continue
            if isinstance(aggregate, Aggregate):
                cached[aggregate_id] = aggregate.version
        if not cached:
            return
        stored = self._stored_versions(sorted(cached, key=str))
        for aggregate_id, version in cached.items():
            if stored.get(aggregate_id) == version:
                batch.brought_up_to_date(self, aggregate_id)

    def cache_saved(self, aggregates: Iterable[Aggregate]) -> None:
        """Aggregates a batch has just saved, as they are now stored, replace their cached
        copies (those that have one: nothing new is cached), so that the next batch finds
        them as stored instead of bringing each up to date with a query. The library keeps
        the copy it had when it fast-forwards on load; a batch's last state of an aggregate
        is exactly what it stored."""
        cache = self.repository.cache
        if not cache:
            return
        for aggregate in aggregates:
            try:
                cache.get(aggregate.id)
            except KeyError:
                continue
            if not aggregate.pending_events:
                cache.put(aggregate.id, aggregate)

    def _stored_versions(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The latest stored version of each of these aggregates, in one query, when the
        event store can say (`StoredVersions`: CityOps' own recorders); else empty, and
        they are loaded as usual."""
        recorder = self.recorder
        if not isinstance(recorder, StoredVersions):
            return {}
        return recorder.latest_versions(aggregate_ids)

    def peek(self, cls: type[A], aggregate_id: UUID, batch: CommandBatch[Any] | None) -> A:
        """The aggregate as stored, for a judgement that records nothing (a reading that
        crosses no threshold): the cached copy itself, brought up to date from the store
        once per batch, not the deep copy a command gets; or, when the batch holds changes
        of it unsaved, the state they leave (a judgement on it must be staged too, see
        `CommandBatch.add`). The caller must not change it; it holds `stored_state_lock`
        while it reads. A command that may record events loads through its `UnitOfWork`."""
        staged = batch.staged_state(self, aggregate_id) if batch is not None else None
        if staged is not None:
            if not isinstance(staged, cls):
                raise NotFound(cls.KIND, aggregate_id)
            return staged
        return self.load_for(cls, aggregate_id, batch, copy=False)

    @contextmanager
    def stored_state_lock(self, aggregate_id: UUID) -> Iterator[None]:
        """Hold off other threads' bringing the cached copy of `aggregate_id` up to date
        (the library's fast-forward lock) while a peeked copy is read."""
        repository = self.repository
        lock = repository._use_fastforward_lock(aggregate_id)
        try:
            with lock:
                yield
        finally:
            repository._disuse_fastforward_lock(aggregate_id)

    def check_seen_version(self, aggregate: CityAggregate,
                           seen_versions: Mapping[UUID, int]) -> None:
        """Raise `StaleVersion` if the user saw another version of `aggregate` than it has
        (nothing when they said nothing about it). Handlers' loads check it by themselves
        (`UnitOfWork.load`); a command of several steps (across streams) calls this on its
        subject before its first step, so that no step is done on a stale view."""
        if aggregate.id not in seen_versions:
            return
        seen, current = seen_versions[aggregate.id], aggregate.version
        if seen == current:
            return
        changes: tuple[str, ...] = ()
        if seen < current:
            changes = tuple(_describe_change(e) for e in self.events.get(
                aggregate.id, gt=seen, lte=current, limit=MAX_LISTED_CHANGES))
        raise StaleVersion(aggregate.KIND, aggregate.id, seen=seen, current=current,
                           changes=changes, unlisted=max(0, current - seen - len(changes)))

    def _cached_in_batch(self, batch: CommandBatch[Any], aggregate_id: UUID, *,
                         copy: bool = True) -> Aggregate | None:
        """An aggregate this batch already brought up to date from the store, from the cache
        (a copy, as the library hands out, unless a peek asks for the cached one itself),
        without asking the store again: the commands of
        one batch are decided as of its first look. That is safe because saving is
        optimistic: if another process changed the aggregate meanwhile, the batch's save of
        a decision made on the older state conflicts and its command is run again on its
        own, on the current state; a decision that saved nothing was right when it was
        looked at, a moment before."""
        if not batch.is_up_to_date(self, aggregate_id) or not self.repository.cache:
            return None
        try:
            cached = self.repository.cache.get(aggregate_id)
        except KeyError:
            return None
        if not isinstance(cached, Aggregate):
            return None
        return deepcopy(cached) if copy and self.repository.deepcopy_from_cache else cached

    def exists(self, aggregate_id: UUID) -> bool:
        """Whether any event of `aggregate_id` is stored (one indexed read, nothing decoded)."""
        return self.exists_for(aggregate_id, None)

    def exists_for(self, aggregate_id: UUID, batch: CommandBatch[Any] | None) -> bool:
        """`exists`, for a command staged in `batch` (`StagingOverlap` while it holds
        changes of the aggregate unsaved)."""
        if batch is not None:
            batch.check_not_staged(self, aggregate_id)
        return bool(self.recorder.select_events(aggregate_id, limit=1))

    # --- commands -----------------------------------------------------------------------

    @classmethod
    def handled_commands(cls) -> frozenset[type[Command]]:
        """The command classes this application handles."""
        return frozenset(cls.command_handlers)

    def handle(self, command: Command, context: CommandContext) -> CommandOutcome:
        """Run `command` for `context`: the entry point of this application's commands.

        Checks that the actor's role may issue the command's class, then runs its handler
        with a `UnitOfWork` and saves the aggregates the handler returns together with the
        command's receipt, in one transaction (or stages them in the context's batch). The
        outcome names the first aggregate the handler returned (the command's subject); a
        repeated command answers what its first run did, with `repeated` set."""
        method = type(self).command_handlers.get(type(command))
        if method is None:
            raise TypeError(f"{type(self).__name__} has no handler of {type(command).__name__}")
        check_permitted(type(command), context.actor)
        handler: Handler = getattr(self, method)
        outcome, _ = self._execute(command.name, command.fingerprint(), context,
                                   lambda uow: handler(command, uow))
        return outcome

    def _execute(self, command: str, digest: str, context: CommandContext,
                 decide: Callable[[UnitOfWork], Sequence[Aggregate]],
                 ) -> tuple[CommandOutcome, list[UUID]]:
        """Decide and save one command (see `handle`); also returns the ids of the aggregates
        it changed (its subject alone when it only repeated)."""
        command_id = context.command_id
        batch = context.batch
        uow = UnitOfWork(self, context, self.now(context.at))
        receipt_id = None
        if command_id is not None:
            if not isinstance(command_id, str) or not command_id.strip():
                raise InvalidValue("command id must be a non-empty string")
            scoped = unscoped_key(command_id)
            limit = MAX_COMMAND_ID_LENGTH + (MAX_SCOPE_LENGTH if scoped else 0)
            if len(command_id) > limit:
                raise InvalidValue(f"command id is longer than {MAX_COMMAND_ID_LENGTH} chars")
            receipt_id = CommandReceipt.create_id(command_id)
            if scoped is not None:
                earlier_unscoped = self._unscoped_receipt(*scoped, batch=batch)
                if earlier_unscoped is not None:
                    repeat = self._repeat(earlier_unscoped, scoped[1], command, digest)
                    return repeat, [repeat.subject]

        try:
            aggregates = list(decide(uow))
        except DomainError:
            # Refused on the current state. A repeat whose first run moved the aggregate on
            # is refused too, yet must answer as the first run did: ask the receipt.
            if receipt_id is not None and command_id is not None:
                earlier = self._receipt(receipt_id, batch)
                if earlier is not None:
                    repeat = self._repeat(earlier, command_id, command, digest)
                    return repeat, [repeat.subject]
            raise
        if not aggregates:
            raise AssertionError(f"command {command} decided nothing")
        subject = aggregates[0]
        done = CommandOutcome(command, subject.id, repeated=False, result=uow.result)
        changed = [a.id for a in aggregates]
        if (command_id is None and not any(a.pending_events for a in aggregates)
                and not (batch is not None and batch.builds_on_staged(self))):
            # Nothing happened (a repeat that the aggregate itself recognised, a reading that
            # crosses no threshold): do not take the event store's write lock for an empty
            # save. What is stored is what the handler saw, so its callbacks run. (Decided
            # on a batch's unsaved state, it is staged, events or not: if that state is
            # never saved, it is decided again.)
            for callback in uow.after_saved_callbacks:
                callback()
            return done, changed
        to_save: list[Aggregate] = list(aggregates)
        if command_id is not None:
            to_save.append(
                CommandReceipt.record(
                    command_id=command_id,
                    command=command,
                    fingerprint=digest,
                    aggregate_id=subject.id,
                    actor=context.actor,
                    at=uow.now,
                )
            )
        if batch is not None:
            # Saved by the batch's commit; a conflict there sends the unit back to be run
            # again on its own, without the batch.
            batch.add(self, to_save, uow.after_saved_callbacks)
            return done, changed
        try:
            self.save(*to_save)
        except IntegrityError:
            if receipt_id is not None and command_id is not None:
                earlier = self._receipt(receipt_id, None)
                if earlier is not None:
                    repeat = self._repeat(earlier, command_id, command, digest)
                    return repeat, [repeat.subject]
            if uow.explain_conflict is not None:
                uow.explain_conflict()
            kind = getattr(subject, "KIND", type(subject).__name__)
            raise ConcurrencyConflict(kind, subject.id, command) from None
        for callback in uow.after_saved_callbacks:
            callback()
        if self.repository.cache and not self.repository.fastforward:
            return done, changed  # the library caches the saved object itself: not ours
        return replace(done, subject_state=subject), changed

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

    def _receipt(self, receipt_id: UUID, batch: CommandBatch[Any] | None) -> CommandReceipt | None:
        if batch is not None:
            batch.check_not_staged(self, receipt_id)
        try:
            # Receipts never change: read from the store, not the aggregate cache.
            receipt: Aggregate = self.repository.get(receipt_id, version=1)
        except AggregateNotFoundError:
            return None
        assert isinstance(receipt, CommandReceipt)
        return receipt

    def _unscoped_receipt(self, user: str, key: str, *,
                          batch: CommandBatch[Any] | None) -> CommandReceipt | None:
        """The receipt of the same user's same key from before keys were scoped by user
        (stored under the bare key): a command sent before an upgrade and retried after it
        (a phone's outbox) is a repeat, not a second command. Only that user's own: another
        user's receipt under the bare key is another command."""
        earlier = self._receipt(CommandReceipt.create_id(key), batch)
        if earlier is None or earlier.actor.user_id.casefold() != user:
            return None
        return earlier

    @staticmethod
    def _repeat(earlier: CommandReceipt, command_id: str, command: str,
                digest: str) -> CommandOutcome:
        if earlier.fingerprint != digest:
            raise CommandIdReused(command_id, earlier.command, command)
        return CommandOutcome(command, earlier.aggregate_id, repeated=True)
