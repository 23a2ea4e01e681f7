"""A long history of a large city for the benchmarks: real events of the domain in the event
stores (every application, every layer), and read models with their row versions built by
the product's own projection (`rebuild`, what `cityops projections rebuild` does).

How it is made, fast:

1. a seed: simulated demo days (`projection_rebuild.generate`: the demo city's inspectors,
   hotline, sensors, incidents and resources through the application commands), cached in
   `.local/bench-history/seed-<events>`; its first working week (Monday's start to the next
   Monday's) is the model week;
2. the model week written week after week into the target store, `per_week` times a week
   (a larger city than the demo's), until the store holds the events asked for. Each copy's
   events are the week's stored events as they are (same topics, same JSON), with
   - every UUID in them (aggregate ids, and ids inside the events: tasks, alarms, receipts,
     warnings' CAP identifiers, photos) mapped to the copy's own (`city_scale.shifted`), so
     each copy's cases, tickets, incidents, warnings, receipts are aggregates of their own;
   - every time in the events (their timestamps, deadlines) moved by whole weeks;
   - the city's standing aggregates (resources, hazard sources, contingency plans and their
     registry) kept: a copy continues them (their week's events after the week's start,
     versions numbered on), once a week, so the fleet and the sensors stay the city's;
3. the read models and their history tables built from zero by `rebuild`; on PostgreSQL
   then `VACUUM (ANALYZE)`, as autovacuum would have done to a store in service.

Each copy is written in one insert per event store, in time order (a week's copies of an
event one after another), so notification order stays time order, as the drills' replay
assumes. The processes across streams are not run: their reactions are among the copied
events. Resource position fixes (the tracks table) are not copied: a resource at T is where
its events put it.

The store is kept, keyed by its size and the seed's: the PostgreSQL database
`cityops_bench_history_<events>_<seed>` on the dev cluster, or the folder
`.local/bench-history/sqlite-<events>-<seed>`; a rerun finds it built, and an interrupted
build resumes (per event store, the weeks written are recorded). `drop_history` removes it.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent))

from city_scale import shifted
from projection_rebuild import FIRST_DAY, event_count, generate
from scratch_database import drop_database, server_url

from cityops.bootstrap import CitySystem, build_system
from cityops.drill_replay import city_timed, event_time
from cityops.projections.generations import rebuild
from cityops.settings import Settings
from cityops.simulator import SimulatedClock, demo_day_start

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".local" / "bench-history"
SEED_EVENTS = 10_000
WEEK = timedelta(days=7)
YEAR_WEEKS = 52
STATE_TABLE = "bench_history_state"
STATE_FILE = "bench-history-state.json"

_UUID = re.compile(rb"(?<![0-9a-f-])(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                   rb"[0-9a-f]{12}|[0-9a-f]{32})(?![0-9a-f-])")
_DATETIME = re.compile(rb'("_type_":\s*"datetime_iso",\s*"_data_":\s*")([^"]+)(")')


def standing_classes() -> set[str]:
    """Topics of the aggregates a city keeps standing (copies continue them)."""
    from cityops.domain.hazards.source import HazardSource
    from cityops.domain.incidents.plans import ContingencyPlan, PlanRegistry
    from cityops.domain.resources.resource import Resource

    return {get_topic(c) for c in (Resource, HazardSource, ContingencyPlan, PlanRegistry)}


# --- the model week ------------------------------------------------------------------------


@dataclass(frozen=True)
class WeekEvent:
    originator_id: uuid.UUID
    version: int
    topic: str
    state: bytes
    standing: bool
    """Of a standing aggregate (resource, hazard source, plan)."""
    repeats: int | None
    """For a standing aggregate's event after the week's start: its number among them
    (a copy continues the aggregate with these); None otherwise."""


@dataclass
class ModelWeek:
    """The seed's first working week, per event store, and what a copy needs to know."""

    start: datetime
    events: dict[str, list[WeekEvent]]
    fixed: set[bytes]
    """Ids (both spellings) of the standing aggregates: never mapped."""
    last_version: dict[uuid.UUID, int] = field(default_factory=dict)
    repeated: dict[uuid.UUID, int] = field(default_factory=dict)
    """Per standing aggregate: its version at the week's end, and its events a copy repeats."""

    @property
    def size(self) -> int:
        return sum(len(events) for events in self.events.values())

    def counts(self) -> tuple[int, int, int]:
        """(events of the accumulating aggregates, of the standing ones, of the standing ones
        a later week repeats): a week's copy of the store writes `per_week` times the first,
        and the second in the first week, the third in later weeks, once."""
        standing = sum(1 for events in self.events.values() for e in events if e.standing)
        return self.size - standing, standing, sum(self.repeated.values())


def model_week(seed: CitySystem) -> ModelWeek:
    """The first working week of the seed's demo days."""
    start = demo_day_start(seed, FIRST_DAY)
    end = start + WEEK
    standing = standing_classes()
    aggregate_topic: dict[uuid.UUID, str] = {}
    week: dict[str, list[tuple[Any, datetime | None]]] = {}
    for app in seed.applications:
        decode = app.mapper.transcoder.decode
        taken: list[tuple[Any, datetime | None]] = []
        position = 0
        done = False
        while not done and (page := app.recorder.select_notifications(
                start=position, limit=2000, inclusive_of_start=False)):
            position = page[-1].id
            for n in page:
                at = event_time(n.state, decode) if city_timed(n.topic) else None
                if at is not None and at >= end:
                    done = True
                    break
                if n.originator_version == 1:
                    aggregate_topic[n.originator_id] = n.topic.rsplit(".", 1)[0]
                taken.append((n, at))
        week[app.name] = taken
    fixed_ids = {i for i, topic in aggregate_topic.items() if topic in standing}
    result = ModelWeek(start=start, events={}, fixed=set())
    for i in fixed_ids:
        result.fixed.add(str(i).encode())
        result.fixed.add(i.hex.encode())
    for name, taken in week.items():
        events = []
        for n, at in taken:
            is_standing = n.originator_id in fixed_ids
            repeats = None
            if is_standing:
                result.last_version[n.originator_id] = n.originator_version
                if at is not None and at > start and n.originator_version > 1:
                    repeats = result.repeated.get(n.originator_id, 0)
                    result.repeated[n.originator_id] = repeats + 1
            events.append(WeekEvent(n.originator_id, n.originator_version, n.topic,
                                    bytes(n.state), is_standing, repeats))
        result.events[name] = events
    return result


@dataclass(frozen=True)
class Layout:
    """How many copies of the model week, and how many a week, make the store."""

    per_week: int
    weeks: int

    @classmethod
    def for_events(cls, week: ModelWeek, events: int) -> Layout:
        """At least `events` events over at least a year: as many copies a week as fit in
        52 weeks, then the weeks needed."""
        accumulating, standing, repeated = week.counts()
        per_week = max(1, (events // YEAR_WEEKS - repeated) // max(1, accumulating))
        weeks, total = 1, per_week * accumulating + standing
        while total < events:
            weeks += 1
            total += per_week * accumulating + repeated
        return cls(per_week, weeks)


class WeekCopier:
    """The events of copy `number` of week `week` of the model week, ready to insert."""

    def __init__(self, model: ModelWeek, layout: Layout) -> None:
        self.model = model
        self.layout = layout

    def events(self, store: str, week: int) -> list[StoredEvent]:
        """Week `week`'s events of one event store, every copy of it, in time order."""
        out: list[StoredEvent] = []
        per_week = self.layout.per_week
        for event in self.model.events[store]:
            for copy in range(per_week):
                code = week * per_week + copy
                if event.standing:
                    stored = self._standing(event, week, copy, code)
                    if stored is not None:
                        out.append(stored)
                    continue
                out.append(StoredEvent(
                    originator_id=uuid.UUID(shifted(str(event.originator_id), code)),
                    originator_version=event.version, topic=event.topic,
                    state=self._state(event, code, week)))
        return out

    def _standing(self, event: WeekEvent, week: int, copy: int, code: int,
                  ) -> StoredEvent | None:
        if copy != 0:
            return None  # one fleet, one set of sensors and plans
        if week == 0:
            version = event.version
        elif event.repeats is None:
            return None  # set-up, once
        else:
            aggregate = event.originator_id
            version = (self.model.last_version[aggregate]
                       + (week - 1) * self.model.repeated[aggregate] + event.repeats + 1)
        return StoredEvent(originator_id=event.originator_id, originator_version=version,
                           topic=event.topic, state=self._state(event, code, week))

    def _state(self, event: WeekEvent, code: int, week: int) -> bytes:
        if code == 0:
            return event.state
        fixed = self.model.fixed

        def new_id(match: re.Match[bytes]) -> bytes:
            text = match.group(0)
            if text in fixed:
                return text
            moved = shifted(text.decode(), code)
            return (moved if b"-" in text else uuid.UUID(moved).hex).encode()

        state = _UUID.sub(new_id, event.state)
        if week:
            delta = week * WEEK

            def later(match: re.Match[bytes]) -> bytes:
                at = datetime.fromisoformat(match.group(2).decode()) + delta
                return match.group(1) + at.isoformat().encode() + match.group(3)

            state = _DATETIME.sub(later, state)
        return state


# --- the kept store --------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryStore:
    """Where a history is kept: a PostgreSQL database or a folder of SQLite files."""

    backend: str
    events: int
    seed_events: int = SEED_EVENTS

    @property
    def key(self) -> str:
        return f"{self.events}_{self.seed_events}"

    @property
    def folder(self) -> Path:
        """The SQLite files (or, on PostgreSQL, the settings' data folder)."""
        return CACHE / f"{self.backend}-{self.key.replace('_', '-')}"

    @property
    def database(self) -> str:
        return f"cityops_bench_history_{self.key}"

    def url(self) -> str | None:
        if self.backend != "postgres":
            return None
        return urlunsplit(urlsplit(server_url())._replace(path=f"/{self.database}"))

    def settings(self) -> Settings:
        url = self.url()
        if url is None:
            return Settings(data_dir=self.folder, run_projections=False)
        return Settings(database_url=url, data_dir=self.folder, run_projections=False,
                        database_pool_size=4)

    def ensure(self) -> None:
        """The database or folder exists."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.backend != "postgres":
            return
        server = server_url()
        with psycopg.connect(server, autocommit=True) as admin:
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                 (self.database,)).fetchone():
                admin.execute(sql.SQL("CREATE DATABASE {}").format(
                    sql.Identifier(self.database)))

    def load_state(self) -> dict[str, Any]:
        if self.backend != "postgres":
            path = self.folder / STATE_FILE
            return json.loads(path.read_text()) if path.exists() else {}
        url = self.url()
        assert url is not None
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} "
                               "(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = connection.execute(f"SELECT value FROM {STATE_TABLE} WHERE key = 'state'"
                                     ).fetchone()
        return json.loads(row[0]) if row else {}

    def save_state(self, state: dict[str, Any]) -> None:
        text = json.dumps(state)
        if self.backend != "postgres":
            (self.folder / STATE_FILE).write_text(text)
            return
        url = self.url()
        assert url is not None
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"INSERT INTO {STATE_TABLE} VALUES ('state', %s) "
                               "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                               (text,))

    def vacuum(self) -> None:
        """On PostgreSQL, what autovacuum does to a store that has run a while (the
        visibility map that index-only scans need, the planner's statistics): a store
        just written is measured as it would be in service."""
        url = self.url()
        if url is None:
            return
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("VACUUM (ANALYZE)")

    def drop(self) -> None:
        if self.backend == "postgres":
            drop_database(server_url(), self.database)
        shutil.rmtree(self.folder, ignore_errors=True)


def seed_system(seed_events: int = SEED_EVENTS) -> CitySystem:
    """The seed's demo days (generated once, cached)."""
    folder = CACHE / f"seed-{seed_events}"
    if (folder / "gridcases.sqlite").exists():
        system = build_system(Settings(data_dir=folder, run_projections=False))
        if event_count(system) >= seed_events:
            return system
        system.close()
        shutil.rmtree(folder)
    print(f"Seed: simulated demo days into {folder} (about {seed_events:,} events) ...",
          flush=True)
    return generate(folder, seed_events)


def _now_of(state: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(state["now"])


def open_history(store: HistoryStore,
                 say: Callable[[str], None] = lambda s: print(s, flush=True),
                 ) -> CitySystem:
    """The history's system (its clock stopped at the history's end), building what is not
    built yet."""
    store.ensure()
    state = store.load_state()
    if state.get("projected"):
        say(f"History: {store.backend} store {store.database if store.url() else store.folder}"
            f" found built ({state['events']:,} events, {state['weeks']} weeks)")
        system = build_system(store.settings(), clock=SimulatedClock(_now_of(state), 0.0))
        rebuilt = system.generations.rebuilt_on_start
        if rebuilt is not None:
            say(f"History: its read models were built with other table definitions than this "
                f"code's; starting projected them again: {rebuilt.events:,} events in "
                f"{rebuilt.seconds:,.0f} s ({rebuilt.events_per_second:,.0f}/s)")
            store.vacuum()
        return system
    seed = seed_system(store.seed_events)
    try:
        model = model_week(seed)
        layout = Layout.for_events(model, store.events)
        if state.get("layout", [layout.per_week, layout.weeks]) != [layout.per_week,
                                                                    layout.weeks]:
            raise RuntimeError(f"{store} was begun with another layout: drop it first")
        now = model.start + layout.weeks * WEEK
        state.update(layout=[layout.per_week, layout.weeks], weeks=layout.weeks,
                     now=now.isoformat(), written=state.get("written", {}))
        say(f"History: model week of {model.size:,} events from {model.start:%Y-%m-%d}; "
            f"{layout.per_week} copies a week for {layout.weeks} weeks into {store.backend}")
        system = build_system(store.settings(), clock=SimulatedClock(now, 0.0),
                              city=seed.city)
    finally:
        seed.close()
    try:
        write_weeks(system, WeekCopier(model, layout), store, state, say)
        state["events"] = event_count(system)
        say(f"History: projecting {state['events']:,} events (rebuild of every read model "
            "and its row versions) ...")
        began = time.perf_counter()
        result = rebuild(system.generations, drop_old=True, drain_s=0)
        say(f"  projected {result.events:,} events in {time.perf_counter() - began:,.0f} s "
            f"({result.events / max(1e-9, time.perf_counter() - began):,.0f}/s)")
        store.vacuum()
        state["projected"] = True
        store.save_state(state)
    except BaseException:
        system.close()
        raise
    return system


def write_weeks(system: CitySystem, copier: WeekCopier, store: HistoryStore,
                state: dict[str, Any], say: Callable[[str], None]) -> None:
    """Every week not yet written, store by store (resuming where a run stopped)."""
    written: dict[str, int] = state["written"]
    began = time.perf_counter()
    count = 0
    for week in range(copier.layout.weeks):
        for app in system.applications:
            if written.get(app.name, 0) > week:
                continue
            events = copier.events(app.name, week)
            if events:
                app.recorder.insert_events(events)  # one transaction: a week, all or nothing
            count += len(events)
            written[app.name] = week + 1
            store.save_state(state)
        if week % 5 == 4 or week == copier.layout.weeks - 1:
            rate = count / max(1e-9, time.perf_counter() - began)
            say(f"  week {week + 1}/{copier.layout.weeks}: {count:,} events written "
                f"({rate:,.0f}/s)")


@contextmanager
def history(backend: str, events: int, seed_events: int = SEED_EVENTS,
            ) -> Iterator[CitySystem]:
    """The history's system for the time of a block."""
    system = open_history(HistoryStore(backend, events, seed_events))
    try:
        yield system
    finally:
        system.close()
