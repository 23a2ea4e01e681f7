"""A domain event's facts as JSON-ready data: the one encoder of events, for the API's
`/{id}/history` (command-center/history.py) and the feeds' messages (feeds/events.py).

Geometries are GeoJSON (WGS84), times ISO 8601, durations seconds, ids and decimals strings,
enums their values, sets sorted lists, value objects (dataclasses) objects of their fields.
A type nobody decided how to write is an error, not a guess: what leaves the system is
written on purpose.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from cityops.domain.actors import Actor
from cityops.domain.geometry import Area, GeoPoint

ENVELOPE = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "actor"}
)
"""Event attributes that are the envelope (which aggregate, which version, when, who), shown
apart from the facts."""


def event_facts(event: Any) -> dict[str, Any]:
    """The facts an event carries (its attributes but the envelope), as they are."""
    return {k: v for k, v in vars(event).items() if k not in ENVELOPE}


def to_json(value: Any) -> Any:
    """A fact as JSON-ready data (see the module's text)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, GeoPoint | Area):
        # Shapely's mapping gives tuples: written as lists like every other sequence.
        return to_json(value.to_geojson())
    if isinstance(value, Actor):
        return value.as_dict()
    if isinstance(value, Enum):
        return to_json(value.value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [to_json(v) for v in value]
        # A set has no order of its own: sorted, so that the same facts read the same.
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise TypeError(f"cannot write a {type(value).__name__} as JSON: nobody decided its "
                    "form (add it to cityops.domain.event_facts.to_json)")
