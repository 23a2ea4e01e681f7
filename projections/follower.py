"""Follows an application's notification log into read-model tables.

One code path for SQLite and PostgreSQL: it polls `select_notifications` after its tracked
position (the SQLite recorder has no subscriptions; PostgreSQL serialises inserts with a table
lock, so notification ids commit in order and polling misses nothing). Each batch of rows and
the new position are written in one transaction; a restart resumes exactly after the last
committed batch.

A follower writes any number of tables per aggregate class (`ProjectedTable`): each collects
its rows for a whole batch (`RowBatch`) and writes them once, before the position.

While it keeps the active generation, a follower also writes the live push's change log
(projections/live_changes.py) in the same transaction: one row per aggregate of the batch.

One aggregate whose events cannot be projected never stops the others: a batch that fails is
projected again one notification at a time (each in a savepoint), the aggregate that fails is
set aside and reported (projections/failures.py), and the position moves on; the aggregate is
tried again later and flows again once it projects.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import eventsourcing.persistence
import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, CanInitAggregate

from cityops.domain.aggregate_states import AggregateStates
from cityops.domain.clock import system_clock
from cityops.projections.failures import (
    FAILURES_DDL,
    FailingAggregate,
    clear_failing,
    describe_error,
    failed_again,
    failing_aggregates,
    mark_failing,
    set_aside,
)
from cityops.projections.tables import utc_text
from cityops.storage import ReadStore, Transaction, schema_transaction, set_position

if TYPE_CHECKING:
    from cityops.projections.live_changes import LiveChangeLog, TouchedItem

log = logging.getLogger(__name__)

BATCH_SIZE = 500
RETRY_FIRST_S = 10.0
"""An aggregate set aside is tried again after this long, then at doubling intervals."""
RETRY_MAX_S = 600.0
IDLE_FAILURE_CHECK_S = 5.0
"""An idle follower looks for retries due (its own, or marks another process made) this
often."""
EVENT_RETRY_BACKLOG = 1_000
"""A new event of an aggregate set aside prompts a retry at once while fewer than this many
of its events wait (a busy one is tried on its schedule: a retry replays them all)."""
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.OperationalError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
    sqlite3.InternalError,
    psycopg.OperationalError, psycopg.InterfaceError, psycopg.ProgrammingError,
    psycopg.InternalError,
    eventsourcing.persistence.OperationalError, eventsourcing.persistence.InterfaceError,
    eventsourcing.persistence.ProgrammingError, eventsourcing.persistence.InternalError,
    ConnectionError, TimeoutError, MemoryError,
)
"""Failures of the stores rather than of one aggregate's events: the round is given up and
tried again whole (setting aside every aggregate it touches would be wrong)."""


@dataclass(frozen=True)
class Change:
    """What a batch changed, for live push: table, aggregate id, and its log position."""

    projection: str
    application: str
    table: str
    aggregate_id: str
    position: int
    event: str
    light: str | None = None
    """For a `LightChanged` change pushed by the supervision clock: the case's new light."""
    previous_light: str | None = None
    """For a `LightChanged` change: the light watchers knew before."""
    key: str | None = None
    """For a `LightChanged` change: names that one change (case, light, turning points), the
    same in every process that sees it, so that it is written to the change log once."""
    at: datetime | None = None
    """For a `LightChanged` change: when the clock saw it."""


ChangeListener = Callable[[Sequence[Change]], None]


class RowBatch(Protocol):
    """The rows one table collects from one batch of notifications."""

    def add(self, event: Any, aggregate: Any) -> None:
        """Take one event and the aggregate just after it (evolved in place: read what is
        needed now, or keep the object to read its last state at `write`)."""

    def write(self, txn: Transaction) -> None:
        """Write the collected rows in the batch's transaction."""


class ProjectedTable(Protocol):
    """A read-model table derived from the states of one aggregate class."""

    @property
    def table(self) -> str: ...

    @property
    def aggregate_class(self) -> type[Aggregate]: ...

    def ddl(self, dialect: str) -> list[str]: ...

    def batch(self) -> RowBatch: ...


class Follower:
    """Keeps the tables of one application up to date with its notification log."""

    def __init__(self, projection: str, application: Application[Any],
                 tables: Sequence[ProjectedTable], store: ReadStore) -> None:
        self.projection = projection
        self.application = application
        self.tables = {t.table: t for t in tables}
        self._by_class: dict[type[Aggregate], list[ProjectedTable]] = {}
        for table in tables:
            self._by_class.setdefault(table.aggregate_class, []).append(table)
        self.store = store
        self.states = AggregateStates(application)
        self.listeners: list[ChangeListener] = []
        self.live: LiveChangeLog | None = None
        """The change log of the live push, written in each batch's transaction; set while
        this follower keeps the active generation (a rebuild's follower has none)."""
        self._quiet_until = float("-inf")
        """While idle, the marks of aggregates set aside are read at most this often (the
        first round reads them at once)."""
        self._next_retry: dict[str, float] = {}
        """When (monotonic) each aggregate set aside is due to be tried again; one not
        listed is due now (so a restarted process tries them all at once)."""

    @property
    def application_name(self) -> str:
        return self.application.name

    @property
    def logs(self) -> frozenset[str]:
        """The application whose log it follows."""
        return frozenset((self.application.name,))

    @property
    def records_in(self) -> frozenset[str]:
        """A read model records no events."""
        return frozenset()

    def create_tables(self, *, indexes: bool = True) -> None:
        """Create the tables and tracking rows (idempotent); without `indexes`, the tables'
        secondary indexes are left for `create_indexes` (a rebuild writes every row first)."""
        from cityops.storage import TRACKING_DDL

        with schema_transaction(self.store) as txn:
            txn.execute(TRACKING_DDL)
            txn.execute(FAILURES_DDL)
            for table in self.tables.values():
                for statement in table.ddl(self.store.dialect):
                    if indexes or not is_secondary_index(statement):
                        txn.execute(statement)
            # A position row from the start, so that the row lock taken by `process_batch`
            # always has a row to lock: two processes following the same tables then take
            # turns and never apply the same notifications twice.
            txn.execute(
                "INSERT INTO projection_positions (projection, application, position) "
                "VALUES (%s, %s, 0) ON CONFLICT (projection, application) DO NOTHING",
                (self.projection, self.application_name),
            )

    def create_indexes(self) -> None:
        """Create the tables' secondary indexes (idempotent): what `create_tables` left out
        without `indexes`."""
        with schema_transaction(self.store) as txn:
            for table in self.tables.values():
                for statement in table.ddl(self.store.dialect):
                    if is_secondary_index(statement):
                        txn.execute(statement)

    def position(self) -> int:
        with self.store.transaction() as txn:
            return self._position(txn, lock=False)

    def _position(self, txn: Any, *, lock: bool) -> int:
        suffix = " FOR UPDATE" if lock and self.store.dialect == "postgres" else ""
        txn.execute(
            "SELECT position FROM projection_positions WHERE projection = %s "
            f"AND application = %s{suffix}",
            (self.projection, self.application_name),
        )
        row = txn.fetchone()
        return int(row[0]) if row else 0

    def head(self) -> int:
        """The last position of the application's log (0 when it is empty)."""
        return self.application.recorder.max_notification_id() or 0

    def catch_up(self, limit: int | None = None) -> int:
        """Process everything recorded so far (or up to `limit` notifications); returns how
        many notifications were processed."""
        done = 0
        while limit is None or done < limit:
            processed = self.process_batch(BATCH_SIZE if limit is None
                                           else min(BATCH_SIZE, limit - done))
            if processed == 0:
                break
            done += processed
        return done

    def process_batch(self, size: int = BATCH_SIZE) -> int:
        """Project the next notifications (at most `size`) and move the position past them;
        returns how many. An aggregate whose events cannot be projected is set aside
        (projections/failures.py) and the others are written: one bad event never stops
        the read model."""
        try:
            return self._process_batch(size, isolate=False)
        except INFRASTRUCTURE_ERRORS:
            raise  # the store or the database: the whole round is retried
        except Exception as error:
            log.warning("projection %s on %s: a batch failed (%s); projecting it one event "
                        "at a time to set aside what fails", self.projection,
                        self.application_name, describe_error(error))
            self.reset()
            return self._process_batch(size, isolate=True)

    def _process_batch(self, size: int, *, isolate: bool) -> int:
        """One batch in one transaction: everything at once, or (`isolate`) each
        notification in a savepoint of its own, so that the one that fails is found and its
        aggregate set aside; then the retries of aggregates set aside earlier."""
        changes: list[Change] = []
        with self.store.transaction() as txn:
            start = self._position(txn, lock=True)
            notifications = self.application.recorder.select_notifications(
                start=start, limit=size, inclusive_of_start=False
            )
            if not notifications and time.monotonic() < self._quiet_until:
                return 0  # idle, and no retry due: not even the marks are read
            failing = failing_aggregates(txn, self.projection, self.application_name)
            if not notifications and not self._retries_due(failing):
                self._quiet_until = time.monotonic() + IDLE_FAILURE_CHECK_S
                return 0
            now = self._now()
            last = notifications[-1].id if notifications else start
            passed_over: dict[str, int] = {}
            """Events of aggregates set aside: the highest version in this batch."""
            failed_now: dict[str, tuple[int, int, int, str]] = {}
            """Aggregates that fail in this batch: first version, last version, position,
            error."""
            whole = _Writing(self)
            for notification in notifications:
                key = str(notification.originator_id)
                version = notification.originator_version or 0
                if key in failing:
                    passed_over[key] = max(passed_over.get(key, 0), version)
                    continue
                if key in failed_now:
                    first, _, position, error_text = failed_now[key]
                    failed_now[key] = (first, version, position, error_text)
                    continue
                if not isolate:
                    whole.add(self.application.mapper.to_domain_event(notification),
                              notification.id)
                    continue
                one = _Writing(self)
                try:
                    with _savepoint(txn):
                        one.add(self.application.mapper.to_domain_event(notification),
                                notification.id)
                        one.write(txn, now)
                except INFRASTRUCTURE_ERRORS:
                    raise
                except Exception as error:
                    self.states.forget(UUID(key))
                    failed_now[key] = (version, version, notification.id,
                                       describe_error(error))
                    log.error("projection %s on %s: aggregate %s set aside at notification "
                              "%d (version %d): %s", self.projection, self.application_name,
                              key, notification.id, version,
                              describe_error(error))
                    continue
                changes += one.changes
            if not isolate:
                whole.write(txn, now)
                changes += whole.changes
            stamp = utc_text(now) or ""
            for key, (first, to_version, position, error_text) in failed_now.items():
                mark_failing(txn, self.projection, self.application_name, key,
                             from_version=first, to_version=to_version, position=position,
                             error=error_text, now=stamp)
                self._next_retry[key] = time.monotonic() + RETRY_FIRST_S
            for key, mark in failing.items():
                changes += self._retry(txn, mark, passed_over.get(key), now, last)
            set_position(txn, self.projection, self.application_name, last)
        for listener in self.listeners:
            try:
                listener(changes)
            except Exception:  # a broken listener must not stop the read model
                log.exception("change listener failed")
        return len(notifications)

    # --- aggregates set aside -------------------------------------------------------------

    def failing(self) -> list[FailingAggregate]:
        """The aggregates this follower has set aside (for /health and the operators)."""
        with self.store.transaction() as txn:
            return list(failing_aggregates(txn, self.projection,
                                           self.application_name).values())

    def _retries_due(self, failing: dict[str, FailingAggregate]) -> bool:
        now = time.monotonic()
        return any(self._next_retry.get(key, now) <= now for key in failing)

    def _retry(self, txn: Transaction, mark: FailingAggregate, newest: int | None,
               now: datetime, position: int) -> list[Change]:
        """Project an aggregate set aside, from its first unprojected event to the newest
        one passed (its own savepoint); on success its mark is cleared. Tried when due, and
        when a new event of it came (the fix may be that event), unless its backlog is
        long: a busy aggregate then waits for its turn."""
        key = mark.aggregate_id
        to_version = max(mark.to_version, newest or 0)
        clock = time.monotonic()
        due = self._next_retry.get(key, clock) <= clock
        prompted = newest is not None and to_version - mark.from_version < EVENT_RETRY_BACKLOG
        if not due and not prompted:
            if newest is not None:
                set_aside(txn, mark, to_version)
            return []
        writing = _Writing(self)
        aggregate_id = UUID(key)
        try:
            with _savepoint(txn):
                self.states.forget(aggregate_id)
                for event in self.application.events.get(
                        aggregate_id, gt=mark.from_version - 1, lte=to_version):
                    writing.add(event, position)
                writing.write(txn, now)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as error:
            self.states.forget(aggregate_id)
            failed_again(txn, mark, to_version=to_version, error=describe_error(error),
                         now=utc_text(now) or "")
            attempts = mark.attempts + 1
            self._next_retry[key] = clock + min(RETRY_MAX_S,
                                                RETRY_FIRST_S * 2.0 ** (attempts - 1))
            log.warning("projection %s on %s: aggregate %s still fails (attempt %d): %s",
                        self.projection, self.application_name, key, attempts,
                        describe_error(error))
            return []
        clear_failing(txn, mark)
        self._next_retry.pop(key, None)
        log.info("projection %s on %s: aggregate %s projected again after %d failed "
                 "attempts", self.projection, self.application_name, key, mark.attempts)
        return writing.changes

    def _now(self) -> datetime:
        """The application's time (a simulated clock in the demo), for grid-case lights."""
        clock = getattr(self.application, "clock", None)
        # An application without a clock of its own (none of the city's) keeps real time.
        return clock() if callable(clock) else system_clock()

    @staticmethod
    def _touch(touched: dict[tuple[str, str], TouchedItem], live: LiveChangeLog, table: str,
               aggregate: Aggregate, event: Any) -> None:
        from cityops.projections.live_changes import TouchedItem

        key = (table, str(aggregate.id))
        item = touched.get(key)
        if item is None:
            item = touched[key] = TouchedItem(live.tables[table], str(aggregate.id))
        item.events.append(type(event).__name__)
        item.at = event.timestamp

    def _tables_for(self, event: Any) -> list[ProjectedTable]:
        topic_class = None
        if isinstance(event, CanInitAggregate):
            from eventsourcing.utils import resolve_topic

            topic_class = resolve_topic(event.originator_topic)
        else:
            cached = self.states.known(event.originator_id)
            if cached is not None:
                topic_class = type(cached)
            else:
                owner = type(event).__qualname__.split(".")[0]
                topic_class = next(
                    (cls for cls in self._by_class if cls.__name__ == owner), None
                )
        if topic_class is None:
            return []
        return self._by_class.get(topic_class, [])

    def reset(self) -> None:
        """Forget cached state (used before a rebuild)."""
        self.states.clear()


class LogFollower(Protocol):
    """What `FollowerThread` runs: a read-model `Follower`, or a process that follows other
    logs the same way (the hotline's `TicketFollowUp`)."""

    @property
    def projection(self) -> str: ...

    @property
    def application_name(self) -> str: ...

    @property
    def logs(self) -> frozenset[str]:
        """The applications whose logs it follows (by application name)."""

    @property
    def records_in(self) -> frozenset[str]:
        """The applications it records events in, as it follows (a process across
        streams: its downstream): their followers have work in the same round."""

    def process_batch(self) -> int:
        """Follow the next batch; how much was done (0: nothing new)."""

    def reset(self) -> None:
        """Forget cached state after a failed batch."""


class _Writing:
    """The rows, live-log entries and listener changes of one unit of work (a whole batch,
    one notification, or the replay of an aggregate set aside), written together."""

    def __init__(self, follower: Follower) -> None:
        self.follower = follower
        self.batches: dict[str, RowBatch] = {}
        self.touched: dict[tuple[str, str], TouchedItem] = {}
        self.changes: list[Change] = []
        self.telling = bool(follower.listeners)  # a rebuild has no one to tell

    def add(self, event: Any, position: int) -> None:
        """Take one event (recorded at notification `position`)."""
        follower = self.follower
        tables = follower._tables_for(event)
        if not tables:
            return
        aggregate = follower.states.after(event)
        live = follower.live
        for table in tables:
            batch = self.batches.get(table.table)
            if batch is None:
                batch = self.batches[table.table] = table.batch()
            batch.add(event, aggregate)
            if live is not None and table.table in live.tables:
                follower._touch(self.touched, live, table.table, aggregate, event)
            if self.telling:
                self.changes.append(Change(
                    projection=follower.projection,
                    application=follower.application_name,
                    table=table.table,
                    aggregate_id=str(aggregate.id),
                    position=position,
                    event=type(event).__name__,
                ))

    def write(self, txn: Transaction, now: datetime) -> None:
        """Write the collected rows (and the live change log) in `txn`."""
        live = self.follower.live
        if live is not None and self.touched:
            items = list(self.touched.values())
            # What subscriptions knew of the items, read before the rows are replaced.
            previous = live.previous(txn, items, now)
            for batch in self.batches.values():
                batch.write(txn)
            live.record_batch(txn, items, previous, now, self.follower.store.dialect)
        else:
            for batch in self.batches.values():
                batch.write(txn)


def is_secondary_index(statement: str) -> bool:
    """Whether a statement of a table's DDL creates a secondary index: one no write needs
    (writes find rows by the primary key; a unique index stays with the table, as `ON
    CONFLICT` needs it), which a rebuild creates once its rows are written: building an
    index over the rows at the end costs a fraction of keeping it up to date row by row
    (each history row version updated about ten)."""
    return statement.lstrip().upper().startswith("CREATE INDEX")


_savepoints = itertools.count(1)


@contextmanager
def _savepoint(txn: Transaction) -> Iterator[None]:
    """A savepoint in `txn` (SQLite and PostgreSQL alike): what the block wrote is undone if
    it raises, and the transaction goes on."""
    name = f"cityops_unit_{next(_savepoints)}"
    txn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        txn.execute(f"ROLLBACK TO SAVEPOINT {name}")
        txn.execute(f"RELEASE SAVEPOINT {name}")
        raise
    txn.execute(f"RELEASE SAVEPOINT {name}")


class FollowerThread(threading.Thread):
    """Runs followers in the background until stopped; woken early after a save.

    `followers` may be a function giving the followers to run now: the read models' active
    generation can change while the thread runs (a rebuild switched over).

    A wake may say which applications' logs moved (PostgreSQL's NOTIFY names the event
    store): the round it starts runs only the followers of those logs, those with work left
    from the round before, those new to the thread, and the followers of what a process
    records in once it did work. Under a stream of reports that is one or two followers a
    round instead of every follower and process asking its store for nothing. A wake that
    does not say (a save in this process), and at least one round every `poll_interval`,
    run every follower: a notification only saves waiting, and the aggregates set aside are
    tried again in those rounds.
    """

    def __init__(self, followers: Sequence[LogFollower] | Callable[[], Sequence[LogFollower]],
                 poll_interval: float, min_round_interval: float = 0.0) -> None:
        super().__init__(name="cityops-projections", daemon=True)
        self._followers: Callable[[], Sequence[LogFollower]]
        if callable(followers):
            self._followers = followers
        else:
            fixed = list(followers)
            self._followers = lambda: fixed
        self.poll_interval = poll_interval
        self.min_round_interval = min_round_interval
        """A wake that comes sooner than this after the last round began waits for the rest:
        under a stream of commits (one notification each) the rounds take whole bursts as
        one batch instead of one commit each; an idle follower still answers at once."""
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._moved_lock = threading.Lock()
        self._moved: set[str] | None = None
        """The logs said to have moved since the last round began (None: not said, or
        some wake did not say: every follower runs)."""
        self.failures = 0
        self.rounds = 0
        """Rounds run."""
        self.runs = 0
        """Followers run, over all rounds (every follower each round before the wakes
        named their logs)."""
        self._unfinished: set[LogFollower] = set()
        """The followers that did work (or failed) in the last round they ran: they may
        have more (a batch holds at most so many notifications), and run again next round."""
        self._known: set[LogFollower] = set()
        """The followers of the last round (a new one runs in its first round). The objects,
        not their ids: an id can be reused once a generation's followers are gone."""

    def wake(self, logs: Iterable[str] | None = None) -> None:
        """Start a round soon: of the followers of `logs` (application names), or of every
        follower when it is not known which logs moved."""
        with self._moved_lock:
            if logs is None:
                self._moved = None
            elif self._moved is not None:
                self._moved.update(logs)
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        round_began = float("-inf")
        whole_round_began = float("-inf")
        while not self._stopping.is_set():
            early = round_began + self.min_round_interval - time.monotonic()
            if early > 0 and self._stopping.wait(early):
                break
            round_began = time.monotonic()
            self._wake.clear()
            with self._moved_lock:
                moved, self._moved = self._moved, set()
            if moved is None or round_began - whole_round_began >= self.poll_interval:
                whole_round_began = round_began
                moved = None
            try:
                followers = self._followers()
            except Exception:
                self.failures += 1
                log.exception("cannot tell which projections to follow; retrying")
                followers = []
            if not self.run_round(followers, moved):
                # Until the next wake, or the next round of every follower at the latest.
                self._wake.wait(max(0.0, whole_round_began + self.poll_interval
                                    - time.monotonic()))

    def run_round(self, followers: Sequence[LogFollower], moved: set[str] | None) -> bool:
        """One round over `followers`: every one (`moved` None), or those of the `moved`
        logs, those with work left, those new to the thread and, once a process did work,
        the followers of the application it records in; whether any did work."""
        self.rounds += 1
        busy = False
        moved = None if moved is None else set(moved)
        for follower in followers:
            if not (moved is None or follower in self._unfinished
                    or follower not in self._known or not moved.isdisjoint(follower.logs)):
                continue
            self.runs += 1
            try:
                processed = follower.process_batch()
            except Exception:
                self.failures += 1
                log.exception("projection %s failed on %s; retrying",
                              follower.projection, follower.application_name)
                follower.reset()
                self._unfinished.add(follower)  # tried again next round
                continue
            if processed > 0:
                busy = True
                self._unfinished.add(follower)
                if moved is not None:
                    moved |= follower.records_in
            else:
                self._unfinished.discard(follower)
        self._known = set(followers)
        self._unfinished &= self._known
        return busy
