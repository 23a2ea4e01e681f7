"""What `/health` says: `ok`, or `degraded` with the checks that fail and why.

A process checks what it can see: the projections' lag behind each event store (in
notifications, and how long the tracked position has stood still while behind), the
aggregates a projection has set aside, whether ingest's dead letters grew lately, and how
far the feed publishers are behind. The same watches feed the Prometheus metrics
(cityops/metrics.py), so `/health` and `/metrics` never disagree. See docs/operations.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cityops.projections.follower import Follower
    from cityops.settings import Settings

log = logging.getLogger(__name__)

OK = "ok"
DEGRADED = "degraded"

FeedPositions = Mapping[tuple[str, str], tuple[int, int]]
"""(feed, stream) -> (head of the stream's log, position the feed has published)."""


@dataclass(frozen=True)
class Lag:
    """How far a tracked position is behind the head of its log."""

    head: int
    position: int
    seconds: float
    """How long the position has stood still while behind, as this process has seen it (0
    when caught up; it starts at 0 the first time this process sees it behind)."""

    @property
    def events(self) -> int:
        return max(0, self.head - self.position)

    def describe(self) -> str:
        if self.events == 0:
            return "caught up"
        return (f"{self.events} behind (position {self.position}, head {self.head}); "
                f"position unchanged for {self.seconds:.0f} s")


class LagWatch:
    """Remembers, per tracked position, since when it has stood still while behind."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._seen: dict[tuple[str, ...], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def observe(self, key: tuple[str, ...], head: int, position: int) -> Lag:
        now = self._monotonic()
        with self._lock:
            if head <= position:
                self._seen.pop(key, None)
                return Lag(head, position, 0.0)
            seen = self._seen.get(key)
            if seen is None or seen[0] != position:
                # Newly behind, or it moved: the clock of standing still starts now.
                seen = self._seen[key] = (position, now)
            return Lag(head, position, now - seen[1])


class GrowthWatch:
    """How much an ever-growing total (dead letters) grew within the last `window_s`, from
    the samples this process took (each check takes one)."""

    def __init__(self, window_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self._monotonic = monotonic
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def observe(self, total: int) -> int:
        now = self._monotonic()
        with self._lock:
            if self._samples and total < self._samples[-1][1]:
                self._samples.clear()  # the total was reset (counters wiped): start again
            self._samples.append((now, total))
            # Keep the newest sample taken before the window as the baseline.
            while len(self._samples) > 1 and self._samples[1][0] <= now - self.window_s:
                self._samples.popleft()
            return total - self._samples[0][1]


@dataclass(frozen=True)
class HealthLimits:
    """When a check turns `degraded` (settings `CITYOPS_HEALTH_*`)."""

    projection_lag_events: int = 10_000
    projection_lag_s: float = 60.0
    feed_lag_events: int = 10_000
    feed_lag_s: float = 120.0
    dead_letter_window_s: float = 300.0

    @classmethod
    def of(cls, settings: Settings) -> HealthLimits:
        return cls(projection_lag_events=settings.health_projection_lag_events,
                   projection_lag_s=settings.health_projection_lag_s,
                   feed_lag_events=settings.health_feed_lag_events,
                   feed_lag_s=settings.health_feed_lag_s,
                   dead_letter_window_s=settings.health_dead_letter_window_s)


def failing_aggregates(follower: Follower) -> list[Any]:
    """The aggregates `follower` has set aside because their events could not be projected
    (projection isolation: `Follower.failing()`, rows of `projection_failures`); none from
    a follower that cannot set any aside."""
    failing = getattr(follower, "failing", None)
    return list(failing()) if callable(failing) else []


class TrackedProcess(Protocol):
    """A process that follows other streams' logs with tracked positions (the ticket
    follow-up): its lag behind each log counts like a projection's."""

    name: str

    @property
    def upstreams(self) -> Mapping[str, Any]: ...

    def head(self, upstream: str) -> int: ...

    def position(self, upstream: str) -> int: ...


class ProjectionWatch:
    """The projections' (and tracked processes') lag and failing aggregates, as this process
    sees them."""

    def __init__(self, followers: Callable[[], Sequence[Follower]],
                 monotonic: Callable[[], float] = time.monotonic,
                 processes: Callable[[], Sequence[TrackedProcess]] = lambda: ()) -> None:
        self.followers = followers
        self.processes = processes
        self.lag_watch = LagWatch(monotonic)

    def lags(self) -> dict[tuple[str, str], Lag]:
        """(projection, stream) -> its lag."""
        found = {}
        for follower in self.followers():
            key = (follower.projection, follower.application_name)
            # The position first: a head read later can only make the lag look larger.
            position = follower.position()
            found[key] = self.lag_watch.observe(key, follower.head(), position)
        return found

    def process_lags(self) -> dict[tuple[str, str], Lag]:
        """(process, followed stream) -> its lag."""
        found = {}
        for process in self.processes():
            for upstream in process.upstreams:
                key = (process.name, upstream)
                position = process.position(upstream)
                found[key] = self.lag_watch.observe(key, process.head(upstream), position)
        return found

    def failing(self) -> list[Any]:
        return [mark for follower in self.followers() for mark in failing_aggregates(follower)]


class FeedWatch:
    """How far each feed publisher is behind each stream."""

    def __init__(self, positions: Callable[[], FeedPositions],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.positions = positions
        self.lag_watch = LagWatch(monotonic)

    def lags(self) -> dict[tuple[str, str], Lag]:
        """(feed, stream) -> its lag."""
        return {key: self.lag_watch.observe(key, head, position)
                for key, (head, position) in self.positions().items()}


@dataclass(frozen=True)
class Check:
    """One line of the health report."""

    name: str
    ok: bool
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": OK if self.ok else DEGRADED, "reason": self.reason}


class ProcessHealth:
    """The health report of one process, over the watches it has."""

    def __init__(self, limits: HealthLimits, *, projections: ProjectionWatch | None = None,
                 dead_letters: Callable[[], int] | None = None, feeds: FeedWatch | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.projections = projections
        self.dead_letters = dead_letters
        self.dead_letter_growth = GrowthWatch(limits.dead_letter_window_s, monotonic)
        self.feeds = feeds

    def report(self) -> dict[str, Any]:
        """`status` (ok or degraded) and every check with its reason; `projection_lag` (in
        notifications per stream) and `failing_aggregates` as before."""
        checks: list[Check] = []
        body: dict[str, Any] = {}
        if self.projections is not None:
            checks += self._projections(self.projections, body)
        if self.dead_letters is not None:
            checks.append(self._dead_letters(self.dead_letters))
        if self.feeds is not None:
            checks += self._feeds(self.feeds)
        status = OK if all(c.ok for c in checks) else DEGRADED
        return {"status": status, **body, "checks": [c.as_dict() for c in checks]}

    def _projections(self, watch: ProjectionWatch, body: dict[str, Any]) -> list[Check]:
        limits = self.limits
        try:
            lags = watch.lags()
        except Exception as error:
            log.warning("health: cannot read the projections' positions: %s", error)
            return [Check("projections", False, f"cannot read positions: {_said(error)}")]
        body["projection_lag"] = {stream: lag.events for (_, stream), lag in lags.items()}
        body["projection_lag_seconds"] = {stream: round(lag.seconds, 3)
                                          for (_, stream), lag in lags.items()}
        checks = [_lag_check(f"projection {stream}", lag, limits.projection_lag_events,
                             limits.projection_lag_s) for (_, stream), lag in lags.items()]
        try:
            process_lags = watch.process_lags()
        except Exception as error:
            log.warning("health: cannot read the tracked processes' positions: %s", error)
            checks.append(Check("processes", False, f"cannot read positions: {_said(error)}"))
            process_lags = {}
        for (process, stream), lag in process_lags.items():
            # e.g. "ticket_follow_up_lag": {"gridcases": 0, "incidents": 2}
            body.setdefault(f"{process.replace('-', '_')}_lag", {})[stream] = lag.events
            checks.append(_lag_check(f"{process} {stream}", lag, limits.projection_lag_events,
                                     limits.projection_lag_s))
        try:
            failing = watch.failing()
        except Exception as error:
            log.warning("health: cannot read the failing aggregates: %s", error)
            return [*checks, Check("failing aggregates", False,
                                   f"cannot read them: {_said(error)}")]
        body["failing_aggregates"] = [mark.as_dict() for mark in failing]
        if failing:
            named = ", ".join(f"{mark.application} {mark.aggregate_id}" for mark in failing[:5])
            more = f" and {len(failing) - 5} more" if len(failing) > 5 else ""
            checks.append(Check("failing aggregates", False,
                                f"{len(failing)} set aside by the projections: {named}{more}"))
        else:
            checks.append(Check("failing aggregates", True, "none"))
        return checks

    def _dead_letters(self, total: Callable[[], int]) -> Check:
        window = self.limits.dead_letter_window_s
        try:
            count = total()
        except Exception as error:
            log.warning("health: cannot read the ingest counters: %s", error)
            return Check("ingest dead letters", False, f"cannot read them: {_said(error)}")
        grew = self.dead_letter_growth.observe(count)
        if grew > 0:
            return Check("ingest dead letters", False,
                         f"{grew} new in the last {window:.0f} s ({count} in all)")
        return Check("ingest dead letters", True,
                     f"none new in the last {window:.0f} s ({count} in all)")

    def _feeds(self, watch: FeedWatch) -> list[Check]:
        try:
            lags = watch.lags()
        except Exception as error:
            log.warning("health: cannot read the feeds' positions: %s", error)
            return [Check("feeds", False, f"cannot read positions: {_said(error)}")]
        return [_lag_check(f"feed {feed} {stream}", lag, self.limits.feed_lag_events,
                           self.limits.feed_lag_s) for (feed, stream), lag in lags.items()]


def _lag_check(name: str, lag: Lag, max_events: int, max_s: float) -> Check:
    if lag.events > max_events:
        return Check(name, False, f"{lag.describe()}: more than {max_events} behind")
    if lag.seconds > max_s:
        return Check(name, False, f"{lag.describe()}: stuck longer than {max_s:g} s")
    return Check(name, True, lag.describe())


def _said(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:300]
