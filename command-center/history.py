"""An aggregate's stored events as the API shows them: what happened, who did it (in what
role, for which department), when, and the facts, as JSON with geometries in GeoJSON."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Any
from uuid import UUID

from cityops.domain.actors import Actor
from cityops.domain.geometry import Area, GeoPoint

ENVELOPE = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "actor"}
)
"""Event attributes that are the envelope, shown apart from the facts."""


def event_history(events: Iterable[Any]) -> list[dict[str, Any]]:
    """One entry per event, oldest first."""
    return [event_body(event) for event in events]


def event_body(event: Any) -> dict[str, Any]:
    actor = getattr(event, "actor", None)
    return {
        "event": type(event).__name__,
        "version": event.originator_version,
        "at": event.timestamp.isoformat(),
        "actor": actor.as_dict() if isinstance(actor, Actor) else None,
        "facts": {k: _plain(v) for k, v in vars(event).items() if k not in ENVELOPE},
    }


def _plain(value: Any) -> Any:
    """A fact as JSON-ready data (durations in seconds)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, GeoPoint | Area):
        return value.to_geojson()
    if isinstance(value, Actor):
        return value.as_dict()
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)
