"""The supervision clock: pushes a grid case's light change at the moment it turns yellow or
red, so that dashboards see "case turned red" although no event was recorded.

The light of an open case is a function of its turning points and the time (the
`rm_grid_cases` rows carry `yellow_at`, `red_at`, and `frozen_light` while suspended). The
clock keeps, for each open case turning soon (below), the light its watchers last learned
and the instant that light next changes, in a heap; a background thread sleeps until the
earliest of those instants (converted to real time when the system runs on a faster
simulated clock), re-reads the due rows, and emits a `LightChanged` change to the same
listeners as the followers (the processes that follow the event stores write it to the live
change log, once, by its key). It wakes early when a follower writes grid-case rows (their
new deadlines replace the old turning points), and re-reads the upcoming rows every
`rescan_interval_s` (rows written by other processes, a switch-over of generations). It
only reads: every process with watchers (each web server) runs its own.

It watches the open cases that turn soonest, not every open case: at least `WINDOW_CASES`
turning points of each kind, read in order through the indexes of `yellow_at` and `red_at`,
and every one up to the last of those (the horizon); when the time passes the horizon, it
reads on from there before it looks at any light. Watching all 783,840 open cases of a
store of 1,000,000 took 0.4 GB in every web server and a re-read of 1 s (plus the Python to
match it) every rescan, which stalled the answers of the process around it
(bench/city_scale.py).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cityops.domain.supervision import Light, light_at
from cityops.projections.follower import Change, ChangeListener
from cityops.projections.tables import utc_text
from cityops.storage import ReadStore

log = logging.getLogger(__name__)

TABLE = "rm_grid_cases"
APPLICATION = "gridcases"
EVENT = "LightChanged"
TICK = timedelta(microseconds=1)
MIN_SLEEP_S = 0.005
QUERY_CHUNK = 500
WINDOW_CASES = 2_000
"""Turning points of each kind (yellow, red) read at a time (more where several fall on the
same instant as the last)."""

Points = tuple[datetime, datetime]


def next_turn(points: Points, shown: Light) -> datetime | None:
    """The first instant at which `light_at(points, t)` is no longer `shown` (None once red:
    nothing follows red). The domain's rule: yellow from `yellow_at`, red after `red_at`."""
    yellow_at, red_at = points
    if shown is Light.GREEN:
        return yellow_at if yellow_at <= red_at else red_at + TICK
    if shown is Light.YELLOW:
        return red_at + TICK
    return None


def change_key(case_id: str, light: Light, points: Points | None) -> str:
    """Names one light change: a case reaches a light once for given turning points, and
    every process watching it computes the same name (so the change log keeps it once)."""
    turns = "/".join(p.isoformat() for p in points) if points else "frozen"
    return f"{case_id}/{light.value}/{turns}"


@dataclass(frozen=True)
class WatchedCase:
    """What the clock knows of one open case: its turning points (None while its clock
    stands still), and the light its watchers last learned."""

    points: Points | None
    frozen: Light | None
    shown: Light


def _time(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class SupervisionClock:
    """Emits `LightChanged` changes when open grid cases reach their turning points."""

    def __init__(self, stores: Callable[[], ReadStore], clock: Callable[[], datetime],
                 listeners: list[ChangeListener], *, projection: str,
                 position: Callable[[], int] | None = None,
                 rescan_interval_s: float = 30.0) -> None:
        self._stores = stores
        self.clock = clock
        self.listeners = listeners
        self.projection = projection
        self._position = position or (lambda: 0)
        self.rescan_interval_s = rescan_interval_s
        self._watched: dict[str, WatchedCase] = {}
        self._heap: list[tuple[datetime, str]] = []
        self._horizon: datetime | None = None
        """Every turning point up to this instant is watched (None: every one there is)."""
        self._changed: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._rescanned_at: float | None = None
        self.failures = 0

    # --- what the thread does, callable directly (tests, one-off checks) ---------------

    def rescan(self) -> None:
        """Re-read the open cases that turn soonest: new ones are watched, changed turning
        points replace the old (their light then is what watchers see); the others are
        forgotten, except those due already (`check` tells them)."""
        now = self.clock()
        self._reach(now)
        rows, horizon = self._upcoming(now)
        with self._lock:
            seen = set()
            for row in rows:
                seen.add(row[0])
                self._update(row, now)
            for case_id in set(self._watched) - seen:
                due = self._due_at(self._watched[case_id])
                if due is None or due > now:
                    del self._watched[case_id]
            self._horizon = horizon

    def refresh(self, case_ids: Iterable[str]) -> None:
        """Re-read these cases (a follower has just written their rows)."""
        ids = list(dict.fromkeys(case_ids))
        if not ids:
            return
        now = self.clock()
        self._reach(now)
        rows = self._read_ids(ids)
        with self._lock:
            found = set()
            for row in rows:
                found.add(row[0])
                if row[4]:
                    self._update(row, now)
                else:
                    self._watched.pop(row[0], None)
            for case_id in set(ids) - found:
                self._watched.pop(case_id, None)

    def tick(self, *, rescan: bool = False) -> list[Change]:
        """One round of the thread's work: re-read the rows followers have written since the
        last round (and the cases turning soonest, with `rescan`), then emit what is due."""
        if rescan:
            self.rescan()
        with self._lock:
            changed, self._changed = self._changed, set()
        self.refresh(changed)
        return self.check()

    def check(self) -> list[Change]:
        """Emit the light changes due by now; returns them."""
        now = self.clock()
        self._reach(now)
        due: list[str] = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                at, case_id = heapq.heappop(self._heap)
                watched = self._watched.get(case_id)
                if watched is not None and self._due_at(watched) == at:
                    due.append(case_id)
        if not due:
            return []
        # The rows are read again: an event may have changed a case since it was scheduled.
        rows = self._read_ids(due)
        position = self._position()
        changes = []
        with self._lock:
            for case_id in set(due) - {row[0] for row in rows}:
                self._watched.pop(case_id, None)
            for row in rows:
                case_id, points, frozen = row[0], self._points(row), self._frozen(row)
                watched = self._watched.get(case_id)
                if not row[4]:
                    self._watched.pop(case_id, None)
                    continue
                if watched is None or watched.points != points or watched.frozen != frozen:
                    self._update(row, now)  # changed by an event: its own change told it
                    continue
                current = light_at(points, now) if points else watched.shown
                if current is not watched.shown:
                    changes.append(Change(projection=self.projection, application=APPLICATION,
                                          table=TABLE, aggregate_id=case_id, position=position,
                                          event=EVENT, light=current.value,
                                          previous_light=watched.shown.value,
                                          key=change_key(case_id, current, points), at=now))
                self._watch(case_id, WatchedCase(points, frozen, current))
        if changes:
            self._emit(changes)
        return changes

    def next_due(self) -> datetime | None:
        """The earliest instant a watched case changes light."""
        with self._lock:
            while self._heap:
                at, case_id = self._heap[0]
                watched = self._watched.get(case_id)
                if watched is not None and self._due_at(watched) == at:
                    return at
                heapq.heappop(self._heap)
        return None

    @property
    def watching(self) -> int:
        """How many open cases the clock holds (those turning soonest)."""
        with self._lock:
            return len(self._watched)

    def next_wake(self) -> datetime | None:
        """When to look again: the earliest turning point watched, or the horizon."""
        due = self.next_due()
        horizon = self._horizon
        if due is None or horizon is None:
            return due or horizon
        return min(due, horizon)

    def shown(self, case_id: str) -> Light | None:
        """The light watchers of this case last learned (None: not an open case). A case not
        held (not turning before the horizon, red, or standing still) shows what its row
        says now: nothing has changed it since it was last told."""
        self._reach(self.clock())
        with self._lock:
            watched = self._watched.get(case_id)
        if watched is not None:
            return watched.shown
        # Not turning soon: its light now, what its row says and nothing has changed since.
        rows = self._read_ids([case_id])
        if not rows or not rows[0][4]:
            return None
        return self._light_of(rows[0], self.clock())

    # --- listening and the thread ---------------------------------------------------------

    def on_changes(self, changes: Sequence[Change]) -> None:
        """A follower's listener: note the grid cases it wrote and wake the thread (it is
        called on the follower's thread, so it only takes note)."""
        ids = [c.aggregate_id for c in changes if c.table == TABLE and c.event != EVENT]
        if ids:
            with self._lock:
                self._changed.update(ids)
            self._wake.set()

    def start(self) -> None:
        """Listen to the followers and run the clock's thread."""
        if self._thread is None:
            if self.on_changes not in self.listeners:
                self.listeners.append(self.on_changes)
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="cityops-supervision",
                                            daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look again now (after the clock jumped, for instance)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the thread and stop listening."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.on_changes in self.listeners:
            self.listeners.remove(self.on_changes)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                now_real = time.monotonic()
                rescan = (self._rescanned_at is None
                          or now_real - self._rescanned_at >= self.rescan_interval_s)
                if rescan:
                    self._rescanned_at = now_real
                self.tick(rescan=rescan)
            except Exception:
                self.failures += 1
                log.exception("supervision clock failed; retrying")
            self._wake.wait(self.sleep_seconds())

    def sleep_seconds(self) -> float:
        """Real seconds until the next turning point or the next rescan, whichever first."""
        until_rescan = self.rescan_interval_s
        if self._rescanned_at is not None:
            until_rescan = max(0.0, self._rescanned_at + self.rescan_interval_s
                               - time.monotonic())
        due = self.next_wake()
        if due is None:
            return max(MIN_SLEEP_S, until_rescan)
        # A simulated clock says how fast it runs; at speed 0 it only moves when told, and
        # whoever moves it wakes us (or the rescan does).
        speed = float(getattr(self.clock, "speed", 1.0))
        if speed <= 0:
            return max(MIN_SLEEP_S, until_rescan)
        wait = (due - self.clock()).total_seconds() / speed
        return max(MIN_SLEEP_S, min(wait, until_rescan))

    # --- internals ----------------------------------------------------------------------

    def _emit(self, changes: list[Change]) -> None:
        for listener in list(self.listeners):
            if listener == self.on_changes:
                continue
            try:
                listener(changes)
            except Exception:  # a broken listener must not stop the clock
                log.exception("change listener failed")

    def _upcoming(self, start: datetime, *, after: bool = False
                  ) -> tuple[list[tuple[Any, ...]], datetime | None]:
        """The rows of the open cases whose clocks run and that turn yellow or red from
        `start` on (`after`: whose `yellow_at` or `red_at` is later than `start`, those up
        to it having been read), the soonest `WINDOW_CASES` of each kind (and any tied with
        the last), and the horizon up to which they are all of them (None: there are no
        more). The horizon is always later than `start` when `after`: many cases turning
        at one instant never hold it still."""
        rows: dict[str, tuple[Any, ...]] = {}
        horizons: list[datetime] = []
        with self._stores().transaction() as txn:
            # Red comes one tick after `red_at`: a case at `red_at` = start - TICK turns now.
            bounds = ((("yellow_at", ">", start), ("red_at", ">", start)) if after else
                      (("yellow_at", ">=", start), ("red_at", ">=", start - TICK)))
            for column, comparison, since in bounds:
                where = (f"is_open = %s AND frozen_light IS NULL "
                         f"AND {column} {comparison} %s")
                params: list[Any] = [True, utc_text(since)]
                txn.execute(f"SELECT {column} FROM {TABLE} WHERE {where} "
                            f"ORDER BY {column} LIMIT 1 OFFSET %s", [*params, WINDOW_CASES - 1])
                last = txn.fetchone()
                if last is not None:
                    where += f" AND {column} <= %s"
                    params.append(last[0])
                    horizons.append(datetime.fromisoformat(last[0]))
                txn.execute(f"SELECT id, yellow_at, red_at, frozen_light, is_open FROM {TABLE} "
                            f"WHERE {where}", params)
                rows.update((row[0], tuple(row)) for row in txn.fetchall())
        return list(rows.values()), min(horizons) if horizons else None

    def _reach(self, now: datetime) -> None:
        """Read on until the horizon is past `now`, before anything takes the light of a row
        at `now` (a case turning between the horizon and now is then told by `check`)."""
        while self._horizon is not None and now > self._horizon:
            self._read_on()

    def _read_on(self) -> None:
        """Watch the cases turning after the horizon (the time has passed it): their light
        at the horizon is what watchers learned, every turn until then having been told."""
        horizon = self._horizon
        if horizon is None:
            return
        rows, further = self._upcoming(horizon, after=True)
        with self._lock:
            for row in rows:
                self._update(row, horizon)
            self._horizon = further

    def _read(self, where: str, params: list[Any]) -> list[tuple[Any, ...]]:
        with self._stores().transaction() as txn:
            txn.execute(f"SELECT id, yellow_at, red_at, frozen_light, is_open FROM {TABLE} "
                        f"WHERE {where}", params)
            return [tuple(row) for row in txn.fetchall()]

    def _read_ids(self, ids: list[str]) -> list[tuple[Any, ...]]:
        rows = []
        for start in range(0, len(ids), QUERY_CHUNK):
            chunk = ids[start:start + QUERY_CHUNK]
            rows += self._read(f"id IN ({', '.join(['%s'] * len(chunk))})", chunk)
        return rows

    @staticmethod
    def _points(row: tuple[Any, ...]) -> Points | None:
        yellow_at, red_at = _time(row[1]), _time(row[2])
        return (yellow_at, red_at) if yellow_at and red_at else None

    @staticmethod
    def _frozen(row: tuple[Any, ...]) -> Light | None:
        return Light(row[3]) if row[3] else None

    def _update(self, row: tuple[Any, ...], now: datetime) -> None:
        """Watch a case as its row says now (lock held). Unchanged turning points keep the
        light watchers learned, so a change that is due is still emitted by `check`."""
        case_id, points, frozen = row[0], self._points(row), self._frozen(row)
        watched = self._watched.get(case_id)
        if watched is not None and watched.points == points and watched.frozen == frozen:
            return
        shown = self._light_of(row, now)
        if shown is None:
            self._watched.pop(case_id, None)
            return
        self._watch(case_id, WatchedCase(points, frozen, shown))

    @classmethod
    def _light_of(cls, row: tuple[Any, ...], at: datetime) -> Light | None:
        """The light a case's row shows at `at` (None: no light, its clock never ran)."""
        points = cls._points(row)
        return cls._frozen(row) or (light_at(points, at) if points else None)

    def _watch(self, case_id: str, watched: WatchedCase) -> None:
        due = self._due_at(watched)
        if due is None:
            # Red, or standing still: nothing to tell until an event changes it (`shown`
            # reads its row meanwhile).
            self._watched.pop(case_id, None)
            return
        self._watched[case_id] = watched
        heapq.heappush(self._heap, (due, case_id))
        if len(self._heap) > 4 * len(self._watched) + 1024:
            # Replaced turning points stay in the heap until they are due: compact it.
            self._heap = [(at, cid) for cid, w in self._watched.items()
                          if (at := self._due_at(w)) is not None]
            heapq.heapify(self._heap)

    @staticmethod
    def _due_at(watched: WatchedCase) -> datetime | None:
        if watched.frozen is not None or watched.points is None:
            return None
        return next_turn(watched.points, watched.shown)
