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

MAX_TEXT = 4000
"""Longest free text a command accepts (descriptions, notes, results)."""


def checked_text(label: str, value: str | None, *, required: bool = True,
                 limit: int = MAX_TEXT) -> str:
    """Free text from a command, trimmed; empty (when required) or too long is refused."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidValue(f"{label} must be text")
    value = value.strip()
    if required and not value:
        raise InvalidValue(f"{label} must not be empty")
    if len(value) > limit:
        raise InvalidValue(f"{label} is longer than {limit} characters")
    return value


def iso_or_none(value: datetime | None) -> str | None:
    """A time as ISO 8601 text for summaries (None stays None)."""
    return value.isoformat() if value is not None else None


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
