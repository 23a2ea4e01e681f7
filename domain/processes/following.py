"""The machinery every process across streams shares: follow other applications' logs from
positions tracked in the process's own application, and act on their events.

It is the eventsourcing library's process-application pattern (a follower with a tracked
position; see EVENTSOURCING.md): a process belongs to the application whose aggregates it
changes (its *downstream*), follows the logs of the applications whose events trigger it
(its *upstreams*), and keeps its position in each log in the downstream's process recorder
(`Tracking(<upstream>, <notification id>)`). What the process records for a notification is
saved with that position in one transaction (`CityApplication.save_tracked`), or is made
by commands whose ids derive from the notification's facts (their receipts make a repeat
change nothing) before the position is recorded: either way a restart resumes after the
last tracked position and a notification takes effect once. Two runners of one process (the
projection thread and a request that waits for its own event, or two processes) take turns
the same way: the store refuses the second record of a position.

The logs are polled from the tracked position (the SQLite recorder has no subscriptions;
PostgreSQL serialises inserts with a table lock, so every notification up to the head read
first is visible), only for the event classes that matter, so the projection thread runs
every process beside the read-model followers at little cost (`projections.follower.
FollowerThread` asks for `process_batch`). A command whose second stream the caller reads
back at once waits for the process to have followed its own event (`catch_up_with`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import IntegrityError, ProcessRecorder, Tracking

from cityops.domain.application import CityApplication
from cityops.domain.former_topics import stored_topics

log = logging.getLogger(__name__)

BATCH_SIZE = 500
CATCH_UP_TIMEOUT_S = 10.0
"""How long a command that spans two streams waits for the process to take its second step
before answering anyway (the process completes it in the background)."""

Policy = Callable[[Any, Tracking], bool]
"""What a process does on one event of a log (the event, and the position to record with
what it does): True when it recorded the position itself, together with its effect."""


@dataclass(frozen=True)
class Upstream:
    """An application whose log a process follows, the events it reads there, and what it
    does on each."""

    application: CityApplication
    topics: tuple[str, ...]
    policy: Policy


def topics_of(*event_classes: type) -> tuple[str, ...]:
    """The stored topics of these event classes, current and former (the logs are read for
    these only)."""
    return tuple(topic for cls in event_classes for topic in stored_topics(cls))


class CrossStreamProcess:
    """A process that follows its upstreams' logs and acts on its downstream application,
    with its positions tracked in the downstream's store."""

    name = "process"

    def __init__(self, downstream: CityApplication, upstreams: Mapping[str, Upstream]) -> None:
        self.downstream = downstream
        self.upstreams: dict[str, Upstream] = dict(upstreams)
        self._turn = threading.Lock()
        """One runner of this process at a time in this process (the projection thread, or
        a request waiting for its own event): the other waits rather than repeat the work."""

    # --- what a follower runner asks (projections.follower.FollowerThread) -------------------

    @property
    def projection(self) -> str:
        return self.name

    @property
    def application_name(self) -> str:
        return "+".join(self.upstreams)

    @property
    def logs(self) -> frozenset[str]:
        """The applications whose logs it follows."""
        return frozenset(self.upstreams)

    @property
    def records_in(self) -> frozenset[str]:
        """It records in its downstream application."""
        return frozenset((self.downstream.name,))

    @property
    def tracking(self) -> ProcessRecorder:
        """The downstream application's store, where the process's positions are tracked."""
        recorder = self.downstream.recorder
        if not isinstance(recorder, ProcessRecorder):
            raise TypeError(f"the {self.downstream.name} application needs a process recorder")
        return recorder

    def position(self, upstream: str) -> int:
        """The last notification of `upstream`'s log that the process has followed."""
        return self.tracking.max_tracking_id(upstream) or 0

    def head(self, upstream: str) -> int:
        return self.upstreams[upstream].application.recorder.max_notification_id() or 0

    def lag(self) -> dict[str, int]:
        """Notifications of each followed log not followed yet."""
        return {name: max(0, self.head(name) - self.position(name)) for name in self.upstreams}

    def process_batch(self, size: int = BATCH_SIZE) -> int:
        """Follow at most `size` notifications of each log; returns how many positions the
        tracked positions moved on (0: nothing new)."""
        with self._turn:
            return sum(self._follow(name, size) for name in self.upstreams)

    def catch_up(self) -> int:
        """Follow everything recorded so far."""
        done = 0
        while (moved := self.process_batch()) > 0:
            done += moved
        return done

    def reset(self) -> None:
        """Nothing is cached between rounds (the runner calls this after a failure)."""

    # --- a command waiting for its second step ----------------------------------------------

    def catch_up_with(self, upstream: str, *, timeout: float = CATCH_UP_TIMEOUT_S) -> bool:
        """Follow `upstream`'s log up to its head as it is now, which includes the event the
        caller has just recorded there: here, unless another runner of this process is at
        it already (then wait for it). False if that took longer than `timeout` (the
        process then completes it in the background).

        The process runs as it always does (in log order, from its tracked position), so
        the projection thread never repeats it. Its commands carry their own explicit
        `CommandContext` (the actor of the source event, a command id derived from the
        source), so nothing of the caller's command (the versions its user saw, a batch)
        reaches them."""
        target = self.head(upstream)
        deadline = time.monotonic() + timeout
        while self.position(upstream) < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._turn.acquire(timeout=remaining):
                log.warning("%s: %s's log not followed up to %d within %.1f s; it is "
                            "completed in the background", self.name, upstream, target, timeout)
                return False
            try:
                if self.position(upstream) < target:
                    self._follow(upstream, BATCH_SIZE)
            except Exception:
                # The caller's own command is recorded: the projection thread retries.
                log.exception("%s: failed following %s; retried in the background",
                              self.name, upstream)
                return False
            finally:
                self._turn.release()
        return True

    # --- following -------------------------------------------------------------------------

    def track(self, tracking: Tracking) -> None:
        """Record a position without events (what it caused was saved by commands)."""
        # Refused when another runner following the same log is already as far.
        with suppress(IntegrityError):
            self.tracking.insert_tracking(tracking)

    def _follow(self, name: str, size: int) -> int:
        upstream = self.upstreams[name]
        start = self.position(name)
        head = self.head(name)
        if head <= start:
            return 0
        recorder = upstream.application.recorder
        notifications = recorder.select_notifications(
            start=start, limit=size, stop=head, topics=upstream.topics,
            inclusive_of_start=False)
        tracked = start
        for notification in notifications:
            event = upstream.application.mapper.to_domain_event(notification)
            if upstream.policy(event, Tracking(name, notification.id)):
                tracked = notification.id
        # A page that is not full holds everything of interest up to the head read first.
        end = head if len(notifications) < size else notifications[-1].id
        if end > tracked:
            self.track(Tracking(name, end))
        return end - start
