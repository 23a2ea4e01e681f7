"""Replaying a window of the city's real history into a drill's own stores, on the drill's
own clock.

The events of the live event stores are copied as they were stored (same aggregate ids,
versions, topics and bytes; the drill's stores keep their own hash chains): first every event
up to the window's start (the city as it stood at `from`), as fast as possible, then the
events of (from, to], each when the drill's clock reaches its time (at 1x..100x), or as
fast as possible (`max`: the clock follows the replay). The resources' position fixes of the
window are replayed from the recorded tracks the same way.

Branching. Participants act in the drill as in live work; once an aggregate has an event
in the drill that the history does not have (a participant's command, or what a process did
because of one), the history's later events of that aggregate no longer apply: they are
skipped, and counted (`ReplayProgress.skipped`). The drill's processes across streams act
only on what happens in the drill (`participants_only`): the history already holds what the
live processes did with the replayed events, and it is replayed too.

The runner's position (per live store), its counts and the drill's clock are saved in the
drill's own base store after every batch, so a drill survives a restart (it comes back
paused). A batch replayed again after a crash finds its events already there, byte for byte,
and counts them as replayed, not as a branch.
"""

from __future__ import annotations

import heapq
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, NamedTuple, Protocol
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.utils import resolve_topic

from cityops.bootstrap import CitySystem
from cityops.domain.model import CityAggregate
from cityops.ingest.tracks import TRACK_TABLE, ResourceTracks
from cityops.storage import ReadStore, schema_transaction

log = logging.getLogger(__name__)

BATCH = 500
"""Events taken from the history at once (one insert per event store) at a set speed."""
FAST_BATCH = 5000
"""... and as fast as possible: fewer, larger transactions (a commit costs a disk sync)."""
PAGE = 2000
"""Events read from a live store at once."""
IDLE_WAIT_S = 0.25
"""Longest sleep of a runner waiting for its clock to reach the next event."""
PROGRESS_TABLE = "drill_replay_progress"
_CITY_TIMED: dict[str, bool] = {}


def city_timed(topic: str) -> bool:
    """Whether events of `topic` are stamped with the city's clock (the domain's
    aggregates); a command's receipt or a registry's bookkeeping is stamped by the library
    in real time, and belongs with the events it was saved with, which precede it."""
    timed = _CITY_TIMED.get(topic)
    if timed is None:
        try:
            cls = resolve_topic(topic)
        except Exception:
            cls = None
        timed = isinstance(cls, type) and issubclass(cls, CityAggregate.Event)
        _CITY_TIMED[topic] = timed
    return timed

_TIMESTAMP = re.compile(rb'"timestamp":\s*\{"_type_":\s*"datetime_iso",\s*"_data_":\s*"([^"]+)"')


class DrillClock:
    """A drill's clock: starts at the window's start and runs `speed` times real time
    while the drill runs; stands still while paused; jumps forward when told. With speed
    None (as fast as possible) it follows the replay (`follow`) until the window is
    replayed, then runs at real time."""

    def __init__(self, start: datetime, speed: float | None, *, running: bool = True) -> None:
        self._lock = threading.Lock()
        self._at = start
        self._real = time.monotonic()
        self._speed = speed
        self._running = running
        self._replay_done = False

    def _rate(self) -> float:
        if not self._running:
            return 0.0
        if self._speed is None:
            return 1.0 if self._replay_done else 0.0
        return self._speed

    def __call__(self) -> datetime:
        with self._lock:
            return self._at + timedelta(seconds=(time.monotonic() - self._real) * self._rate())

    def _settle(self) -> None:
        """Fold the time run so far into the anchor (before the rate changes)."""
        now = time.monotonic()
        self._at += timedelta(seconds=(now - self._real) * self._rate())
        self._real = now

    @property
    def speed(self) -> float:
        """Drill seconds per real second now (what `rate_of` and `/clock` report)."""
        with self._lock:
            return self._rate()

    @property
    def nominal_speed(self) -> float | None:
        return self._speed

    @property
    def running(self) -> bool:
        return self._running

    def pause(self) -> None:
        with self._lock:
            self._settle()
            self._running = False

    def resume(self) -> None:
        with self._lock:
            self._settle()
            self._running = True

    def set_speed(self, speed: float | None) -> None:
        with self._lock:
            self._settle()
            self._speed = speed

    def jump_to(self, moment: datetime) -> None:
        with self._lock:
            self._settle()
            self._at = max(self._at, moment)

    def follow(self, moment: datetime) -> None:
        """As fast as possible: the clock is the time of the last event replayed."""
        with self._lock:
            self._settle()
            self._at = max(self._at, moment)

    def replay_done(self) -> None:
        with self._lock:
            self._settle()
            self._replay_done = True


@dataclass
class ReplayProgress:
    """How far a drill's replay has come (saved in the drill's own store)."""

    positions: dict[str, int] = field(default_factory=dict)
    """The last live notification taken, per event store."""
    replayed: int = 0
    skipped: int = 0
    """History events not replayed because the drill had branched from them."""
    branched: set[str] = field(default_factory=set)
    """Aggregates on which the drill has branched from the history."""
    fixes: int = 0
    """Resource position fixes replayed."""
    track_cursor: str | None = None
    """The measured time of the last fix replayed (fixed-width UTC text)."""
    drill_time: str | None = None
    window_replayed: bool = False
    injects: int = 0
    """Scenario injects delivered."""

    def as_json(self) -> str:
        return json.dumps({"positions": self.positions, "replayed": self.replayed,
                           "skipped": self.skipped, "branched": sorted(self.branched),
                           "fixes": self.fixes, "track_cursor": self.track_cursor,
                           "drill_time": self.drill_time,
                           "window_replayed": self.window_replayed, "injects": self.injects})

    @classmethod
    def from_json(cls, text: str) -> ReplayProgress:
        data = json.loads(text)
        return cls(positions={str(k): int(v) for k, v in data["positions"].items()},
                   replayed=int(data["replayed"]), skipped=int(data["skipped"]),
                   branched=set(data["branched"]), fixes=int(data["fixes"]),
                   track_cursor=data["track_cursor"], drill_time=data["drill_time"],
                   window_replayed=bool(data["window_replayed"]),
                   injects=int(data.get("injects", 0)))


class ProgressStore:
    """The runner's progress, one row in the drill's own base store."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store
        with schema_transaction(store) as txn:
            txn.execute(f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} ("
                        "name TEXT PRIMARY KEY, progress TEXT NOT NULL)")

    def load(self) -> ReplayProgress | None:
        with self.store.transaction() as txn:
            txn.execute(f"SELECT progress FROM {PROGRESS_TABLE} WHERE name = 'replay'")
            row = txn.fetchone()
        return ReplayProgress.from_json(str(row[0])) if row else None

    def save(self, progress: ReplayProgress) -> None:
        with self.store.transaction() as txn:
            txn.execute(f"INSERT INTO {PROGRESS_TABLE} (name, progress) VALUES ('replay', %s) "
                        "ON CONFLICT (name) DO UPDATE SET progress = excluded.progress",
                        (progress.as_json(),))


class Exercise(Protocol):
    """What a scenario adds to a drill as it runs (an exercise of `domain/exercises/`):
    the drill runner calls it after every step with the drill's clock."""

    def deliver_due(self, system: CitySystem, drill_time: datetime) -> int:
        """Deliver the injects due up to `drill_time` (through the drill system's ingest
        and command paths); returns how many were delivered."""

    def measure(self, system: CitySystem, drill_time: datetime) -> list[dict[str, Any]]:
        """The objectives as measured from the drill's own events so far (met / missed /
        pending, with what they were measured from).

        An exercise may also answer `next_due_at(system) -> datetime | None` (when its next
        inject is due): a replay as fast as possible then stops there, delivers it, and goes
        on."""


def event_time(state: bytes, decode: Callable[[bytes], Any]) -> datetime:
    """The time of a stored event: read from its bytes where they spell it the usual way,
    else decoded."""
    found = _TIMESTAMP.search(state)
    if found is not None:
        return datetime.fromisoformat(found.group(1).decode())
    stamp = decode(state)["timestamp"]
    return stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp))


class HistoryEvent(NamedTuple):
    """One stored event of the history, with its city time (a tuple: made 100,000s of
    times in a replay)."""

    at: datetime
    store: str
    position: int
    event: StoredEvent
    """The live notification itself (a stored event: inserted into the drill as it is)."""


def history(application: Application[Any], after: int, until: datetime,
            ) -> Iterator[HistoryEvent]:
    """A live store's events after notification `after`, in notification order, up to the
    first one later than `until`."""
    recorder = application.recorder
    decode = application.mapper.transcoder.decode
    name = application.name
    start = after
    last = datetime.min.replace(tzinfo=UTC)
    while True:
        page = recorder.select_notifications(start=start, limit=PAGE, inclusive_of_start=False)
        for notification in page:
            if not city_timed(notification.topic):
                at = last
            else:
                at = last = event_time(notification.state, decode)
            if at > until:
                return
            yield HistoryEvent(at, name, notification.id, notification)
        if len(page) < PAGE:
            return
        start = page[-1].id


def _same_stored(recorder: Any, event: StoredEvent) -> bool | None:
    """Whether `recorder` holds `event` byte for byte (None: it has no event at that
    version)."""
    found = recorder.select_events(event.originator_id, gt=event.originator_version - 1,
                                   lte=event.originator_version, limit=1)
    if not found:
        return None
    return bool(found[0].topic == event.topic and bytes(found[0].state) == bytes(event.state))


def participants_only(drill: CitySystem, live: CitySystem,
                      replayed: Callable[[UUID, int], bool]) -> None:
    """Make the drill's processes across streams act only on what happens in the drill:
    an event copied from the history is skipped (what the live process did with it is in the
    history, and is replayed too). `replayed` answers for the events this runner copied;
    after a restart an event is recognised by being the live one, byte for byte."""
    live_apps = {a.name: a for a in live.applications}
    for process in drill.processes:
        for name, upstream in list(process.upstreams.items()):
            live_app = live_apps.get(name)
            if live_app is None:
                continue

            def guarded(event: Any, tracking: Tracking, policy: Any = upstream.policy,
                        live_recorder: Any = live_app.recorder,
                        drill_recorder: Any = upstream.application.recorder) -> bool:
                oid, version = event.originator_id, event.originator_version
                if replayed(oid, version):
                    return False
                mine = drill_recorder.select_events(oid, gt=version - 1, lte=version, limit=1)
                if mine and _same_stored(live_recorder, mine[0]):
                    return False
                return bool(policy(event, tracking))

            process.upstreams[name] = replace(upstream, policy=guarded)


class DrillReplay(threading.Thread):
    """The runner of one drill: replays its window into its system at its clock's pace,
    in a thread of its own, until stopped."""

    def __init__(self, *, drill_id: UUID, live: CitySystem, system: CitySystem,
                 clock: DrillClock, window_from: datetime, window_to: datetime,
                 progress_store: ProgressStore, progress: ReplayProgress | None = None,
                 exercise: Exercise | None = None) -> None:
        super().__init__(name=f"cityops-drill-{drill_id.hex[:8]}", daemon=True)
        self.drill_id = drill_id
        self.live = live
        self.system = system
        self.clock = clock
        self.window_from = window_from
        self.window_to = window_to
        self.progress_store = progress_store
        self.progress = progress or ReplayProgress()
        self.exercise = exercise
        self.objectives: list[dict[str, Any]] = []
        self.failure: str | None = None
        self.started = 0.0
        self.replayed_in: float | None = None
        """Seconds from the runner's start until the window was replayed (this run)."""
        self._wake = threading.Condition()
        self._stopping = False
        self._copied: set[tuple[UUID, int]] = set()
        self._targets = {a.name: a for a in system.applications}
        self._sources = [a for a in live.applications if a.name in self._targets]
        self._live_tracks = ResourceTracks(live.generations.storage.base())
        self._drill_tracks = ResourceTracks(progress_store.store)
        self._drill_tracks.create_table()
        self._tracks_seen = False
        participants_only(system, live, self.copied)

    # --- steering (any thread) -----------------------------------------------------------

    def copied(self, originator_id: UUID, version: int) -> bool:
        return (originator_id, version) in self._copied

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def stop(self, timeout: float = 30.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
        self._live_tracks.store.close()

    # --- the loop ------------------------------------------------------------------------

    def _merged(self) -> Iterator[HistoryEvent]:
        streams = [history(app, self.progress.positions.get(app.name, 0), self.window_to)
                   for app in self._sources]
        return heapq.merge(*streams, key=attrgetter("at"))

    def run(self) -> None:
        self.started = time.monotonic()
        try:
            self._run()
        except Exception as error:
            log.exception("drill %s: the replay stopped", self.drill_id)
            self.failure = f"{type(error).__name__}: {error}"

    def _run(self) -> None:
        pending: HistoryEvent | None = None
        merged = self._merged() if not self.progress.window_replayed else iter(())
        while True:
            with self._wake:
                if self._stopping:
                    return
                if not self.clock.running:
                    self._wake.wait(IDLE_WAIT_S)
                    continue
            now = self.clock()
            as_fast_as_possible = self.clock.nominal_speed is None
            # As fast as possible, the replay still stops where the scenario's next inject
            # is due, so that it goes in at its time among the replayed events.
            stop = self._next_inject(now) if as_fast_as_possible else None
            due: list[HistoryEvent] = []
            if pending is not None and (pending.at <= now or (
                    as_fast_as_possible and (stop is None or pending.at <= stop))):
                due.append(pending)
                pending = None
            size = FAST_BATCH if as_fast_as_possible else BATCH
            while pending is None and len(due) < size:
                following = next(merged, None)
                if following is None:
                    break
                if stop is not None and following.at > stop:
                    pending = following
                elif as_fast_as_possible or following.at <= max(now, self.window_from):
                    due.append(following)
                else:
                    pending = following
            if due:
                if as_fast_as_possible:
                    self.clock.follow(max(due[-1].at, self.window_from))
                self._replay(due)
            if stop is not None and pending is not None and pending.at > stop:
                self.clock.follow(stop)
                self._step()
                continue
            elif pending is None and not self.progress.window_replayed:
                self.replayed_in = time.monotonic() - self.started
                self.progress.window_replayed = True
                self.clock.replay_done()
            self._step()
            if due:
                continue
            with self._wake:
                if self._stopping:
                    return
                wait = IDLE_WAIT_S
                if pending is not None:
                    speed = self.clock.speed or 1.0
                    wait = min(IDLE_WAIT_S, max(0.0, (pending.at - self.clock()).total_seconds()
                                                / speed))
                if wait > 0:
                    self._wake.wait(wait)

    def _next_inject(self, now: datetime) -> datetime | None:
        """When the scenario's next inject is due, if it is still ahead of the clock."""
        next_due_at = getattr(self.exercise, "next_due_at", None)
        if next_due_at is None:
            return None
        due: datetime | None = next_due_at(self.system)
        return due if due is not None and due > now else None

    def _step(self) -> None:
        """After each batch: the tracks, the scenario, the saved progress, the projections."""
        now = self.clock()
        self._replay_fixes(min(now, self.window_to))
        if self.exercise is not None:
            self.progress.injects += self.exercise.deliver_due(self.system, now)
            self.objectives = self.exercise.measure(self.system, now)
        self.progress.drill_time = now.isoformat()
        self.progress_store.save(self.progress)
        self.system.wake_projections()

    def _replay(self, due: Sequence[HistoryEvent]) -> None:
        by_store: dict[str, list[HistoryEvent]] = {}
        for item in due:
            by_store.setdefault(item.store, []).append(item)
        for store, items in by_store.items():
            self._insert(self._targets[store], items)
            self.progress.positions[store] = items[-1].position

    def _insert(self, target: Application[Any], items: list[HistoryEvent]) -> None:
        branched = self.progress.branched
        keep = items
        if branched:
            keep = [i for i in items if str(i.event.originator_id) not in branched]
            self.progress.skipped += len(items) - len(keep)
            if not keep:
                return
        # The live recorders answer ids as UUIDs: kept as they are (no conversion per event).
        self._copied.update((i.event.originator_id, i.event.originator_version)  # type: ignore[misc]
                            for i in keep)
        try:
            target.recorder.insert_events([i.event for i in keep])
            self.progress.replayed += len(keep)
            return
        except IntegrityError:
            pass
        # Something in the batch is in the drill already: one by one, to tell a batch
        # replayed before a crash (the same bytes) from a branch (a participant's event).
        for item in keep:
            oid = str(item.event.originator_id)
            if oid in branched:
                self.progress.skipped += 1
                continue
            try:
                target.recorder.insert_events([item.event])
                self.progress.replayed += 1
            except IntegrityError:
                if _same_stored(target.recorder, item.event):
                    self.progress.replayed += 1
                else:
                    branched.add(oid)
                    self.progress.skipped += 1

    def _live_has_tracks(self) -> bool:
        """Whether live has a track table yet (made by the first ingest worker); it is
        only read, never made here."""
        if not self._tracks_seen:
            store = self._live_tracks.store
            with store.transaction() as txn:
                if store.dialect == "sqlite":
                    txn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                                "name = %s", (TRACK_TABLE,))
                    self._tracks_seen = txn.fetchone() is not None
                else:
                    txn.execute("SELECT to_regclass(%s)", (TRACK_TABLE,))
                    row = txn.fetchone()
                    self._tracks_seen = row is not None and row[0] is not None
        return self._tracks_seen

    def _replay_fixes(self, until: datetime) -> None:
        cursor = self.progress.track_cursor
        since = self.window_from if cursor is None else datetime.fromisoformat(cursor)
        if until <= since and cursor is not None:
            return
        if not self._live_has_tracks():
            return
        fixes = [f for f in self._live_tracks.movement(since=since, until=until)
                 if cursor is None or f.measured_at.astimezone(UTC) > since]
        if not fixes:
            return
        self._drill_tracks.record_many(fixes)
        self.progress.fixes += len(fixes)
        last = max(f.measured_at for f in fixes).astimezone(UTC)
        self.progress.track_cursor = last.isoformat(timespec="microseconds")
