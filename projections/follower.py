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
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, CanInitAggregate

from cityops.domain.clock import system_clock
from cityops.projections.store import ReadStore, Transaction, schema_transaction, set_position

if TYPE_CHECKING:
    from cityops.projections.live_changes import LiveChangeLog, TouchedItem

log = logging.getLogger(__name__)

BATCH_SIZE = 500
AGGREGATE_CACHE_SIZE = 20_000


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
        self._cache: OrderedDict[UUID, Aggregate] = OrderedDict()
        self.listeners: list[ChangeListener] = []
        self.live: LiveChangeLog | None = None
        """The change log of the live push, written in each batch's transaction; set while
        this follower keeps the active generation (a rebuild's follower has none)."""

    @property
    def application_name(self) -> str:
        return self.application.name

    def create_tables(self) -> None:
        from cityops.projections.store import TRACKING_DDL

        with schema_transaction(self.store) as txn:
            txn.execute(TRACKING_DDL)
            for table in self.tables.values():
                for statement in table.ddl(self.store.dialect):
                    txn.execute(statement)
            # A position row from the start, so that the row lock taken by `process_batch`
            # always has a row to lock: two processes following the same tables then take
            # turns and never apply the same notifications twice.
            txn.execute(
                "INSERT INTO projection_positions (projection, application, position) "
                "VALUES (%s, %s, 0) ON CONFLICT (projection, application) DO NOTHING",
                (self.projection, self.application_name),
            )

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
        changes: list[Change] = []
        with self.store.transaction() as txn:
            start = self._position(txn, lock=True)
            notifications = self.application.recorder.select_notifications(
                start=start, limit=size, inclusive_of_start=False
            )
            if not notifications:
                return 0
            batches: dict[str, RowBatch] = {}
            telling = bool(self.listeners)  # a rebuild has no one to tell
            live = self.live
            touched: dict[tuple[str, str], TouchedItem] = {}
            for notification in notifications:
                event = self.application.mapper.to_domain_event(notification)
                tables = self._tables_for(event)
                if not tables:
                    continue
                aggregate = self._evolve(event)
                for table in tables:
                    batch = batches.get(table.table)
                    if batch is None:
                        batch = batches[table.table] = table.batch()
                    batch.add(event, aggregate)
                    if live is not None and table.table in live.tables:
                        self._touch(touched, live, table.table, aggregate, event)
                    if telling:
                        changes.append(Change(
                            projection=self.projection,
                            application=self.application_name,
                            table=table.table,
                            aggregate_id=str(aggregate.id),
                            position=notification.id,
                            event=type(event).__name__,
                        ))
            if live is not None and touched:
                now = self._now()
                items = list(touched.values())
                # What subscriptions knew of the items, read before the rows are replaced.
                previous = live.previous(txn, items, now)
                for batch in batches.values():
                    batch.write(txn)
                live.record_batch(txn, items, previous, now, self.store.dialect)
            else:
                for batch in batches.values():
                    batch.write(txn)
            set_position(txn, self.projection, self.application_name, notifications[-1].id)
        for listener in self.listeners:
            try:
                listener(changes)
            except Exception:  # a broken listener must not stop the read model
                log.exception("change listener failed")
        return len(notifications)

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
            cached = self._cache.get(event.originator_id)
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

    def _evolve(self, event: Any) -> Aggregate:
        """The aggregate after `event`, from the cache or the repository (on a cache miss)."""
        if isinstance(event, CanInitAggregate):
            aggregate = event.mutate(None)
        else:
            aggregate = self._cache.pop(event.originator_id, None)
            if aggregate is None or aggregate.version != event.originator_version - 1:
                aggregate = self.application.repository.get(
                    event.originator_id, version=event.originator_version - 1
                )
            aggregate = event.mutate(aggregate)
        assert aggregate is not None
        self._cache[aggregate.id] = aggregate
        if len(self._cache) > AGGREGATE_CACHE_SIZE:
            self._cache.popitem(last=False)
        return aggregate

    def reset(self) -> None:
        """Forget cached state (used before a rebuild)."""
        self._cache.clear()


class LogFollower(Protocol):
    """What `FollowerThread` runs: a read-model `Follower`, or a process that follows other
    logs the same way (the hotline's `TicketFollowUp`)."""

    @property
    def projection(self) -> str: ...

    @property
    def application_name(self) -> str: ...

    def process_batch(self) -> int:
        """Follow the next batch; how much was done (0: nothing new)."""

    def reset(self) -> None:
        """Forget cached state after a failed batch."""


class FollowerThread(threading.Thread):
    """Runs followers in the background until stopped; woken early after a local save.

    `followers` may be a function giving the followers to run now: the read models' active
    generation can change while the thread runs (a rebuild switched over).
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
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        round_began = float("-inf")
        while not self._stopping.is_set():
            early = round_began + self.min_round_interval - time.monotonic()
            if early > 0 and self._stopping.wait(early):
                break
            round_began = time.monotonic()
            self._wake.clear()
            busy = False
            try:
                followers = self._followers()
            except Exception:
                self.failures += 1
                log.exception("cannot tell which projections to follow; retrying")
                followers = []
            for follower in followers:
                try:
                    busy |= follower.process_batch() > 0
                except Exception:
                    self.failures += 1
                    log.exception("projection %s failed on %s; retrying",
                                  follower.projection, follower.application_name)
                    follower.reset()
            if not busy:
                self._wake.wait(self.poll_interval)
