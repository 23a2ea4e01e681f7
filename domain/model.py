"""What every CityOps aggregate shares: the actor and time on each event, and guarded
transitions that raise a domain error naming the aggregate, its state and the attempt.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from eventsourcing.domain import Aggregate

from cityops.domain.actors import Actor
from cityops.domain.errors import IllegalTransition, InvalidValue


class CityAggregate(Aggregate):
    """Base of the domain's aggregates; subclasses declare `KIND` and a `status` enum."""

    KIND: ClassVar[str] = "aggregate"
    if TYPE_CHECKING:
        status: StrEnum

    class Event(Aggregate.Event):
        """Every fact records who did it; `timestamp` is when it happened."""

        actor: Actor

    def require_status(self, attempted: str, *allowed: StrEnum) -> None:
        """Refuse `attempted` unless the aggregate is in one of the `allowed` states."""
        if self.status not in allowed:
            raise IllegalTransition(self.KIND, self.id, self.status.value, attempted)

    def refuse(self, attempted: str, reason: str) -> NoReturn:
        """Refuse `attempted` for a reason other than the state (said in the message)."""
        raise IllegalTransition(self.KIND, self.id, f"{self.status.value} and {reason}", attempted)

    def record(self, event_class: type[Aggregate.Event], *, actor: Actor, at: datetime,
               **facts: Any) -> None:
        """Trigger an event at `at`, which may not precede the aggregate's last event."""
        if at < self.modified_on:
            raise InvalidValue(
                f"{self.KIND} {self.id}: time {at.isoformat()} precedes its last recorded "
                f"event at {self.modified_on.isoformat()}"
            )
        self.trigger_event(event_class, actor=actor, timestamp=at, **facts)
