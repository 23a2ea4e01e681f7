"""The state of each aggregate while a reader follows an application's log event by event:
what the read-model followers (projections/follower.py) and the feeds (feeds/events.py)
need to describe an event with the aggregate it changed.

Applying the events in log order to the states kept here is much cheaper than loading the
aggregate for each event. The states are kept for the most recently changed aggregates
only; a state that is missing, or not just before the event (another reader of the log
moved on, a batch was read again), is loaded from the event store at the version before
the event, so the answer is always exact.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, CanInitAggregate

DEFAULT_SIZE = 20_000
"""Aggregates whose state is kept (the least recently changed are forgotten first)."""


class AggregateStates:
    """The followed state of each aggregate of one application, kept up to date by
    `after(event)` in log order."""

    def __init__(self, application: Application[Any], size: int = DEFAULT_SIZE) -> None:
        self.application = application
        self.size = size
        self._states: OrderedDict[UUID, Aggregate] = OrderedDict()

    def before(self, event: Any) -> Aggregate | None:
        """The aggregate just before `event` (None before its first event): the followed
        state, or (on a miss) the one loaded from the event store. Call `after` next: the
        returned object is the one the event then changes."""
        if isinstance(event, CanInitAggregate):
            return None
        aggregate = self._states.get(event.originator_id)
        if aggregate is None or aggregate.version != event.originator_version - 1:
            aggregate = self.application.repository.get(
                event.originator_id, version=event.originator_version - 1)
            self._keep(aggregate)
        return aggregate

    def after(self, event: Any) -> Aggregate:
        """The aggregate just after `event`, which becomes its followed state."""
        aggregate: Aggregate | None = event.mutate(self.before(event))
        assert aggregate is not None
        self._keep(aggregate)
        return aggregate

    def known(self, aggregate_id: UUID) -> Aggregate | None:
        """The followed state of an aggregate, if one is kept (not loaded on a miss)."""
        return self._states.get(aggregate_id)

    def forget(self, aggregate_id: UUID) -> None:
        """Drop one aggregate's state (its events are read again from an earlier one)."""
        self._states.pop(aggregate_id, None)

    def clear(self) -> None:
        """Drop every state (a batch was not written and is read again, or a rebuild)."""
        self._states.clear()

    def _keep(self, aggregate: Aggregate) -> None:
        self._states[aggregate.id] = aggregate
        self._states.move_to_end(aggregate.id)
        if len(self._states) > self.size:
            self._states.popitem(last=False)
