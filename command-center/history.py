"""An aggregate's stored events as the API shows them: what happened, who did it (in what
role, for which department), when, and the facts, written by the one event encoder
(`cityops.domain.event_facts`, which the feeds use too)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cityops.domain.actors import Actor
from cityops.domain.event_facts import event_facts, to_json


def event_history(events: Iterable[Any]) -> list[dict[str, Any]]:
    """One entry per event, oldest first."""
    return [event_body(event) for event in events]


def event_body(event: Any) -> dict[str, Any]:
    """One event as the history shows it."""
    actor = getattr(event, "actor", None)
    return {
        "event": type(event).__name__,
        "version": event.originator_version,
        "at": event.timestamp.isoformat(),
        "actor": actor.as_dict() if isinstance(actor, Actor) else None,
        "facts": to_json(event_facts(event)),
    }
