"""Generations of the read models, so that they can be rebuilt from zero without downtime.

A generation is the whole projection under a new name: its own tables (a SQLite file
`readmodels-g<N>.sqlite` beside the event stores, or a PostgreSQL schema `<base>_g<N>`) and its
own tracking positions. A small registry in the base store (`projection_generations`) says
which generation serves reads. A rebuild creates generation N+1 and replays every event
store into it while generation N keeps serving and its followers keep following; once N+1
has caught up with the heads, one transaction makes it the active generation. Readers ask the
registry at most every `refresh_interval_s` and switch on their next query; projection
processes switch their followers the same way. The old generation is kept for a grace period
(readers that have not yet noticed still get answers), then dropped.

Separate files or schemas rather than renamed tables keep every table's SQL, indexes and
PostGIS columns the same in every generation: only the connection differs.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import psycopg
from eventsourcing.application import Application
from psycopg import sql

from cityops.domain.clock import system_clock
from cityops.projections.follower import ChangeListener, Follower, ProjectedTable
from cityops.projections.live_changes import LiveChangeLog
from cityops.storage import (
    PostgresReadStore,
    ReadStore,
    SqliteReadStore,
    positions,
    schema_transaction,
)

log = logging.getLogger(__name__)

REGISTRY_DDL = (
    """CREATE TABLE IF NOT EXISTS projection_generations (
        generation INTEGER PRIMARY KEY,
        state TEXT NOT NULL,
        schema_digest TEXT NOT NULL,
        created_at TEXT NOT NULL,
        activated_at TEXT,
        retired_at TEXT,
        dropped_at TEXT
    )""",
    # At most one generation serves and at most one is being built, whatever runs at once.
    "CREATE UNIQUE INDEX IF NOT EXISTS projection_generations_one_active "
    "ON projection_generations (state) WHERE state = 'active'",
    "CREATE UNIQUE INDEX IF NOT EXISTS projection_generations_one_building "
    "ON projection_generations (state) WHERE state = 'building'",
)

DEFAULT_GRACE_PERIOD = timedelta(minutes=10)
REBUILD_BATCH_SIZE = 2000


class GenerationState(StrEnum):
    """Where a generation is in its life: built, serving, replaced, gone."""

    BUILDING = "building"
    ACTIVE = "active"
    RETIRED = "retired"
    """Replaced by a newer generation; kept for the grace period, then dropped."""
    DROPPED = "dropped"


class GenerationError(Exception):
    """A generation operation that cannot be done (the message says why)."""


@dataclass(frozen=True)
class GenerationRecord:
    """One generation as the registry knows it."""

    number: int
    state: GenerationState
    schema_digest: str
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    dropped_at: datetime | None


class GenerationStorage(Protocol):
    """Where generations live: opens, locates and drops a generation's store."""

    dialect: str

    def base(self) -> ReadStore:
        """The store of the registry (not part of any generation)."""

    def open(self, generation: int) -> ReadStore: ...

    def location(self, generation: int) -> str:
        """Where the generation's tables are, for people (a file or a schema)."""

    def drop(self, generation: int) -> None: ...


class SqliteGenerations:
    """Each generation in its own SQLite file beside the registry's."""

    dialect = "sqlite"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def base(self) -> ReadStore:
        return SqliteReadStore(self.data_dir / "readmodels.sqlite")

    def path(self, generation: int) -> Path:
        return self.data_dir / f"readmodels-g{generation}.sqlite"

    def open(self, generation: int) -> ReadStore:
        return SqliteReadStore(self.path(generation))

    def location(self, generation: int) -> str:
        return str(self.path(generation))

    def drop(self, generation: int) -> None:
        path = self.path(generation)
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            file.unlink(missing_ok=True)


class PostgresGenerations:
    """Each generation in its own schema (`<base schema>_g<N>`, PostGIS from `public`)."""

    dialect = "postgres"

    def __init__(self, url: str, schema: str | None, pool_size: int) -> None:
        self.url = url
        self.schema = schema
        self.pool_size = pool_size

    def base(self) -> ReadStore:
        return PostgresReadStore(self.url, self.schema, self.pool_size)

    def schema_of(self, generation: int) -> str:
        return f"{self.schema or 'readmodels'}_g{generation}"

    def open(self, generation: int) -> ReadStore:
        return PostgresReadStore(self.url, self.schema_of(generation), self.pool_size)

    def location(self, generation: int) -> str:
        return f"schema {self.schema_of(generation)}"

    def drop(self, generation: int) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(self.schema_of(generation))))


def _now_text() -> str:
    # Real time on purpose: a generation's stamps are the operator's record of a rebuild,
    # which happens in real time whatever clock the city runs on.
    return system_clock().isoformat()


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class GenerationRegistry:
    """The registry of generations, in the base store; every change is one transaction."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def create(self) -> None:
        """Create the registry table (idempotent)."""
        with schema_transaction(self.store) as txn:
            for statement in REGISTRY_DDL:
                txn.execute(statement)

    def records(self) -> list[GenerationRecord]:
        """Every generation ever registered, oldest first."""
        with self.store.transaction() as txn:
            txn.execute("SELECT generation, state, schema_digest, created_at, activated_at, "
                        "retired_at, dropped_at FROM projection_generations ORDER BY generation")
            rows = txn.fetchall()
        return [GenerationRecord(int(r[0]), GenerationState(r[1]), str(r[2]),
                                 datetime.fromisoformat(r[3]), _moment(r[4]), _moment(r[5]),
                                 _moment(r[6]))
                for r in rows]

    def record(self, number: int) -> GenerationRecord:
        """One generation's record (a clear error if there is none)."""
        for record in self.records():
            if record.number == number:
                return record
        raise GenerationError(f"there is no generation {number}")

    def _in_state(self, state: GenerationState) -> int | None:
        with self.store.transaction() as txn:
            txn.execute("SELECT generation FROM projection_generations WHERE state = %s",
                        (state.value,))
            row = txn.fetchone()
        return int(row[0]) if row else None

    def active(self) -> int | None:
        """The generation serving reads, if any."""
        return self._in_state(GenerationState.ACTIVE)

    def building(self) -> int | None:
        """The generation a rebuild is building, if any."""
        return self._in_state(GenerationState.BUILDING)

    def ensure_active(self, digest: str) -> int:
        """The active generation; on the very first start, generation 1 (empty: the
        followers fill it from zero). Safe when several processes start at once."""
        with self.store.transaction() as txn:
            txn.execute(
                "INSERT INTO projection_generations (generation, state, schema_digest, "
                "created_at, activated_at) SELECT 1, 'active', %s, %s, %s WHERE NOT EXISTS "
                "(SELECT 1 FROM projection_generations) ON CONFLICT DO NOTHING",
                (digest, _now_text(), _now_text()),
            )
        active = self.active()
        if active is None:
            raise GenerationError(
                "no read-model generation is active; run `cityops projections rebuild` "
                "to build one")
        return active

    def begin(self, digest: str) -> int:
        """Register a new generation being built (numbers are never reused)."""
        with self.store.transaction() as txn:
            txn.execute("SELECT COALESCE(MAX(generation), 0) FROM projection_generations")
            row = txn.fetchone()
            number = int(row[0] if row else 0) + 1
            txn.execute(
                "INSERT INTO projection_generations (generation, state, schema_digest, "
                "created_at) VALUES (%s, 'building', %s, %s)",
                (number, digest, _now_text()),
            )
        return number

    def activate(self, number: int) -> int | None:
        """Make the generation being built the active one, retiring the active one, in one
        transaction; returns the retired generation."""
        with self.store.transaction() as txn:
            txn.execute("SELECT generation, state FROM projection_generations "
                        "WHERE state IN ('active', 'building') ORDER BY generation")
            states = {int(n): str(s) for n, s in txn.fetchall()}
            if states.get(number) != GenerationState.BUILDING.value:
                raise GenerationError(f"generation {number} is not being built; it cannot "
                                      "be switched to")
            previous = next((n for n, s in states.items() if s == "active"), None)
            now = _now_text()
            txn.execute("UPDATE projection_generations SET state = 'retired', retired_at = %s "
                        "WHERE state = 'active'", (now,))
            txn.execute("UPDATE projection_generations SET state = 'active', activated_at = %s "
                        "WHERE generation = %s", (now, number))
        return previous

    def mark_dropped(self, number: int) -> None:
        """Record that a generation's tables are gone (never the active one)."""
        with self.store.transaction() as txn:
            txn.execute("UPDATE projection_generations SET state = 'dropped', dropped_at = %s "
                        "WHERE generation = %s AND state <> 'active'", (_now_text(), number))


def schema_digest(tables: Mapping[str, Sequence[ProjectedTable]], dialect: str) -> str:
    """A digest of every table's definition: a generation built by other code has another."""
    statements = [s for group in tables.values() for t in group for s in t.ddl(dialect)]
    return hashlib.sha256("\n".join(sorted(statements)).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class FollowerProgress:
    """How far one follower is: its position, the head of its event store, and the lag."""

    application: str
    position: int
    head: int

    @property
    def lag(self) -> int:
        """Notifications recorded but not yet projected."""
        return max(0, self.head - self.position)


class Generation:
    """One generation opened in this process: its store and a follower per application."""

    def __init__(self, number: int, store: ReadStore, followers: list[Follower]) -> None:
        self.number = number
        self.store = store
        self.followers = followers

    def create_tables(self, *, indexes: bool = True) -> None:
        """Create the generation's tables and tracking rows (idempotent); without `indexes`
        their secondary indexes wait for `create_indexes`."""
        for follower in self.followers:
            follower.create_tables(indexes=indexes)

    def create_indexes(self) -> None:
        """Create the secondary indexes of the generation's tables (idempotent)."""
        for follower in self.followers:
            follower.create_indexes()

    def go_live(self, live_changes: LiveChangeLog) -> None:
        """From now on, its followers write the live change log (it serves reads)."""
        for follower in self.followers:
            follower.live = live_changes

    def catch_up(self) -> int:
        """Follow every event store to its head now; how many notifications."""
        return sum(follower.catch_up() for follower in self.followers)

    def progress(self) -> list[FollowerProgress]:
        """Each follower's position, head and lag."""
        return [FollowerProgress(f.application_name, f.position(), f.head())
                for f in self.followers]

    def close(self) -> None:
        self.store.close()


class ReadModelGenerations:
    """The read models of one deployment across their generations, as one process sees them:
    the active generation for reads and following, and the operations of a rebuild."""

    def __init__(self, storage: GenerationStorage,
                 tables: Mapping[str, Sequence[ProjectedTable]], projection: str, *,
                 refresh_interval_s: float = 1.0,
                 grace_period: timedelta = DEFAULT_GRACE_PERIOD) -> None:
        self.storage = storage
        self.tables = tables
        self.applications: dict[str, Application[Any]] = {}
        self.projection = projection
        self.refresh_interval_s = refresh_interval_s
        self.grace_period = grace_period
        self.digest = schema_digest(tables, storage.dialect)
        # One list of listeners per application, shared by that application's followers in
        # every generation: a listener added to a follower survives a switch-over.
        self._listeners: dict[str, list[ChangeListener]] = {name: [] for name in tables}
        self.registry = GenerationRegistry(storage.base())
        self._lock = threading.RLock()
        self._active: Generation | None = None
        self._checked_at = 0.0
        self._retiring: list[tuple[Generation, float]] = []
        self._last_housekeeping = 0.0
        self.rebuilt_on_start: RebuildResult | None = None
        """The rebuild `start` made because the active generation was built with other table
        definitions (an upgrade of the code); None when none was needed."""
        self.live_changes: LiveChangeLog | None = None
        """The change log of the live push: its table is in every generation; only the
        followers of the active generation write it (a rebuild's replay does not)."""
        self.on_open: list[Callable[[ReadStore], object]] = []
        """Run on a generation's store when this process opens it, after its tables are
        created (reference data that is not derived from events, such as the city's
        layers)."""

    def start(self, applications: Sequence[Application[Any]]) -> None:
        """Follow these applications' event stores: create the registry and open the active
        generation (generation 1 on the very first start)."""
        unknown = {app.name for app in applications} - set(self.tables)
        if unknown:
            raise GenerationError(f"no read-model tables for {', '.join(sorted(unknown))}")
        self.applications = {app.name: app for app in applications}
        self.registry.create()
        number = self.registry.ensure_active(self.digest)
        if self.registry.record(number).schema_digest != self.digest:
            # This code's tables cannot be read or written in the old ones (a column they
            # lack): the read models are derived, so the new ones are built from the events
            # first. On PostgreSQL processes start one after another (the start-up lock):
            # the first builds, the next find the new generation serving.
            log.warning("read-model generation %d was built with other table definitions "
                        "than this code's: building a new generation from the event stores "
                        "before serving", number)
            # An unfinished build of yet other code is of no use to this code: start over.
            building = self.registry.building()
            replace = (building is not None
                       and self.registry.record(building).schema_digest != self.digest)
            result = rebuild(self, generation=self.begin_rebuild(restart=replace))
            log.warning("read-model generation %d serves reads now (%d events in %.1f s); "
                        "generation %d is dropped after its grace period", result.generation,
                        result.events, result.seconds, number)
            self.rebuilt_on_start = result
            return
        with self._lock:
            self._active = self.open(number)
            self._checked_at = time.monotonic()

    def listeners(self, application: str) -> list[ChangeListener]:
        """The listeners told of every batch written from `application`'s events."""
        return self._listeners.setdefault(application, [])

    def listen(self, listener: ChangeListener) -> None:
        """Tell `listener` of every batch written, from any application."""
        for listeners in self._listeners.values():
            if listener not in listeners:
                listeners.append(listener)

    def open(self, number: int, *, live: bool = True, indexes: bool = True) -> Generation:
        """Open generation `number` in this process (creating its tables if missing); with
        `live` its followers write the live change log; without `indexes` the tables'
        secondary indexes are not created yet (a generation being built)."""
        store = self.storage.open(number)
        followers = []
        for name, app in self.applications.items():
            follower = Follower(self.projection, app, list(self.tables.get(name, ())), store)
            follower.listeners = self.listeners(name)
            followers.append(follower)
        generation = Generation(number, store, followers)
        generation.create_tables(indexes=indexes)
        if self.live_changes is not None:
            self.live_changes.create(store)
            if live:
                generation.go_live(self.live_changes)
        for prepare in self.on_open:
            prepare(store)
        return generation

    def active(self) -> Generation:
        """The generation serving reads now (asks the registry at most every
        `refresh_interval_s`). Opening a newly active generation happens outside the lock:
        meanwhile queries keep getting the previous one, which is still there."""
        with self._lock:
            now = time.monotonic()
            current = self._active
            if current is not None and now - self._checked_at < self.refresh_interval_s:
                return current
            self._checked_at = now  # one thread asks; the others use `current` meanwhile
        number = self.registry.active()
        if number is None:
            raise GenerationError("no read-model generation is active")
        if current is not None and current.number == number:
            with self._lock:
                self._close_retired(now)
            return current
        opened = self.open(number)
        with self._lock:
            if self._active is not None and self._active.number == number:
                opened.close()  # another thread switched first
                return self._active
            previous, self._active = self._active, opened
            if previous is not None:
                log.info("read models switched from generation %d to %d",
                         previous.number, number)
                self._retiring.append((previous, now))
            self._close_retired(now)
            return opened

    def refresh(self) -> Generation:
        """Ask the registry now which generation serves (instead of within the refresh
        interval)."""
        with self._lock:
            self._checked_at = float("-inf")
        return self.active()

    def _close_retired(self, now: float) -> None:
        # A replaced generation's store stays open a little while for queries in flight.
        drain = max(30.0, 10 * self.refresh_interval_s)
        keep = []
        for generation, since in self._retiring:
            if now - since >= drain:
                generation.close()
            else:
                keep.append((generation, since))
        self._retiring = keep

    def store(self) -> ReadStore:
        """The store serving reads now."""
        return self.active().store

    def followers(self) -> list[Follower]:
        """The followers of the active generation."""
        return self.active().followers

    def following(self) -> list[Follower]:
        """What a projection process runs now: the active generation's followers (it
        follows a switch-over); retired generations past their grace period are dropped."""
        followers = self.followers()
        now = time.monotonic()
        if now - self._last_housekeeping >= 60.0:
            self._last_housekeeping = now
            try:
                self.drop_expired()
            except Exception:
                log.exception("could not drop expired read-model generations")
        return followers

    # --- rebuild ------------------------------------------------------------------------

    def begin_rebuild(self, *, restart: bool = False) -> Generation:
        """The generation to build: a new one, or the unfinished one an interrupted rebuild
        left (it resumes where it stopped), unless `restart` drops that one first."""
        building = self.registry.building()
        if building is not None and restart:
            self.drop(building, force=True)
            building = None
        if building is None:
            try:
                building = self.registry.begin(self.digest)
            except (sqlite3.IntegrityError, psycopg.errors.UniqueViolation):
                raise GenerationError("another rebuild has just started a generation; "
                                      "run this one again to resume it") from None
        elif self.registry.record(building).schema_digest != self.digest:
            raise GenerationError(
                f"generation {building} is being built by other code (other table "
                "definitions); rebuild with --restart to start over")
        # Its secondary indexes are created once its rows are written (`rebuild`).
        return self.open(building, live=False, indexes=False)

    def switch_to(self, generation: Generation) -> int | None:
        """Make `generation` the one serving reads (atomically); returns the one retired."""
        previous = self.registry.activate(generation.number)
        if self.live_changes is not None:
            generation.go_live(self.live_changes)
        with self._lock:
            old = self._active
            self._active = generation
            self._checked_at = time.monotonic()
            if old is not None and old is not generation:
                self._retiring.append((old, self._checked_at))
        return previous

    def drop(self, number: int, *, force: bool = False) -> None:
        """Drop a generation's tables and tracking; never the active one, and the one being
        built only with `force` (a rebuild may be running)."""
        record = self.registry.record(number)
        if record.state is GenerationState.ACTIVE:
            raise GenerationError(f"generation {number} serves reads; it cannot be dropped")
        if record.state is GenerationState.BUILDING and not force:
            raise GenerationError(f"generation {number} is being built; stop the rebuild or "
                                  "rebuild with --restart")
        with self._lock:
            for generation, since in list(self._retiring):
                if generation.number == number:
                    generation.close()
                    self._retiring.remove((generation, since))
        self.storage.drop(number)
        self.registry.mark_dropped(number)
        log.info("dropped read-model generation %d", number)

    def drop_expired(self, grace_period: timedelta | None = None) -> list[int]:
        """Drop the retired generations retired longer than the grace period ago."""
        limit = system_clock() - (self.grace_period if grace_period is None
                                     else grace_period)
        dropped = []
        for record in self.registry.records():
            if (record.state is GenerationState.RETIRED and record.retired_at is not None
                    and record.retired_at <= limit):
                self.drop(record.number)
                dropped.append(record.number)
        return dropped

    def progress_of(self, number: int) -> list[FollowerProgress]:
        """Positions, heads and lag of a generation's followers (opened if need be)."""
        active = self._active
        if active is not None and active.number == number:
            return active.progress()
        store = self.storage.open(number)
        try:
            tracked = positions(store, self.projection)
        finally:
            store.close()
        return [FollowerProgress(name, tracked.get(name, 0),
                                 app.recorder.max_notification_id() or 0)
                for name, app in self.applications.items()]

    def close(self) -> None:
        with self._lock:
            if self._active is not None:
                self._active.close()
                self._active = None
            for generation, _ in self._retiring:
                generation.close()
            self._retiring = []
        self.registry.store.close()


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild did."""

    generation: int
    retired: int | None
    dropped: int | None
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        """The rebuild's rate over all the event stores."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


ProgressCallback = Callable[[int, int], None]
"""Told (events done, events to do) as a rebuild goes."""


def rebuild(generations: ReadModelGenerations, *, generation: Generation | None = None,
            drop_old: bool = False, batch_size: int = REBUILD_BATCH_SIZE,
            progress: ProgressCallback | None = None,
            drain_s: float | None = None) -> RebuildResult:
    """Build a new generation (or finish `generation`, from `begin_rebuild`) from zero while
    the active one keeps serving, catch up with the heads, switch over atomically, and (with
    `drop_old`) drop the old generation once readers have had time to notice the switch
    (`drain_s`, by default a few refresh intervals)."""
    if generation is None:
        generation = generations.begin_rebuild()
    started = time.perf_counter()
    done = sum(p.position for p in generation.progress())
    first = done

    def total() -> int:
        return sum(f.head() for f in generation.followers)

    target = total()
    if progress:
        progress(done, target)
    # Passes until one finds nothing new: the heads move while the build runs.
    while True:
        moved = 0
        for follower in generation.followers:
            while True:
                processed = follower.process_batch(batch_size)
                if processed == 0:
                    break
                moved += processed
                done += processed
                if progress:
                    target = max(target, done)
                    progress(done, target)
        if moved == 0:
            break
        target = total()
    # Built over the rows written, before it serves a read.
    generation.create_indexes()
    retired = generations.switch_to(generation)
    # What was recorded between the last pass and the switch (the projection processes,
    # now following this generation, would catch it up as well).
    done += generation.catch_up()
    if progress:
        progress(done, max(target, done))
    seconds = time.perf_counter() - started
    dropped = None
    if drop_old and retired is not None:
        time.sleep(drain_s if drain_s is not None else 3 * generations.refresh_interval_s)
        generations.drop(retired)
        dropped = retired
    return RebuildResult(generation=generation.number, retired=retired, dropped=dropped,
                         events=done - first, seconds=seconds)


class ActiveGenerationStore:
    """A read store that is always the active generation's: whoever holds it (read models,
    spatial queries, statistics) follows a switch-over without knowing of generations."""

    def __init__(self, generations: ReadModelGenerations) -> None:
        self.generations = generations
        self.dialect = generations.storage.dialect

    def transaction(self) -> Any:
        return self.generations.store().transaction()

    def reading(self) -> Any:
        return self.generations.store().reading()

    def close(self) -> None:
        """Close every store of every generation opened by this process."""
        self.generations.close()
