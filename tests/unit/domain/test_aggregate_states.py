"""The followed states of aggregates (issue 11: the read-model followers and the feeds each
kept their own cache of aggregate states and replayed it the same way; now one class)."""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from cityops.domain.aggregate_states import AggregateStates
from cityops.feeds.events import StreamReader
from cityops.projections.follower import Follower


class Counter(Aggregate):
    def __init__(self) -> None:
        self.count = 0

    @event("Counted")
    def count_one(self) -> None:
        self.count += 1


def _logged_events() -> tuple[Application[Any], list[Any]]:
    application: Application[Any] = Application(env={"IS_SNAPSHOTTING_ENABLED": "n"})
    counter = Counter()
    counter.count_one()
    counter.count_one()
    application.save(counter)
    other = Counter()
    application.save(other)
    notifications = application.recorder.select_notifications(start=1, limit=10)
    return application, [application.mapper.to_domain_event(n) for n in notifications]


def test_states_follow_the_log_and_load_what_they_do_not_keep() -> None:
    application, events = _logged_events()
    states = AggregateStates(application, size=1)
    assert [states.after(e).version for e in events] == [1, 2, 3, 1]
    first = events[0].originator_id
    # Only one state is kept: the first counter's was forgotten for the second's.
    assert states.known(first) is None
    # Read again from an earlier event (a batch read again): loaded at the version before.
    before = states.before(events[2])
    assert before is not None and before.version == 2
    assert states.after(events[2]).count == 2
    assert states.before(events[0]) is None  # nothing before a first event
    states.forget(first)
    assert states.known(first) is None


def test_the_followers_and_the_feeds_follow_states_with_it() -> None:
    assert "_evolve" not in vars(Follower)
    import inspect

    for reader in (Follower, StreamReader):
        assert "AggregateStates(" in inspect.getsource(reader.__init__), reader
