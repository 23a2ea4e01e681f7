"""The five event streams the feeds publish, what each is made of, and which of its events
mean that something was created, updated or closed (the triggers a subscription picks).

This is structure, not policy: which aggregate classes make a stream and which events close
one follow from the domain model, so they are code next to it (checked by the type checker
and by a test that every event class has its trigger). What each field may be shared with is
policy, kept as data in `data/sharing.json`.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from eventsourcing.domain import Aggregate, CanInitAggregate

from cityops.domain.event_facts import ENVELOPE
from cityops.domain.gridcases.case import GridCase
from cityops.domain.hazards.source import HazardSource
from cityops.domain.hotline.ticket import HotlineTicket
from cityops.domain.incidents.incident import Incident
from cityops.domain.resources.resource import Resource
from cityops.domain.values import parse_enum


class Stream(StrEnum):
    """A city-wide feed: one Kafka topic each, named `<prefix>.<stream>`."""

    GRID_CASES = "grid-cases"
    INCIDENTS = "incidents"
    HAZARDS = "hazards"
    HOTLINE = "hotline"
    RESOURCES = "resources"
    WARNINGS = "warnings"
    """The centre's warnings as they went out: CAP 1.2 alert documents (XML), not domain
    events (cityops.feeds.cap_publishing); it has no `StreamSpec`."""


class Trigger(StrEnum):
    """What kind of change an event is, as a subscription asks for it."""

    CREATED = "created"
    UPDATED = "updated"
    CLOSED = "closed"


LIBRARY_BASES = frozenset({"Event", "Created"})
"""Event base classes the library nests in every aggregate class; never triggered here."""


@dataclass(frozen=True)
class StreamSpec:
    """One stream: the application whose log it follows, its aggregate class, and the events
    that close one of its aggregates (its created event is the aggregate's `Created`)."""

    stream: Stream
    application: str
    """The `name` of the CityOps application whose notification log this stream follows."""
    aggregate: type[Aggregate]
    closing: frozenset[str]
    """Names of the nested event classes that end the aggregate's life (or its handling)."""

    def event_classes(self) -> list[type[Aggregate.Event]]:
        """Every event class nested in the aggregate class, in declaration order."""
        return [value for name, value in vars(self.aggregate).items()
                if isinstance(value, type) and issubclass(value, Aggregate.Event)
                and value.__qualname__.startswith(f"{self.aggregate.__name__}.")
                and name not in LIBRARY_BASES]

    def trigger_of(self, event_class: type[Any]) -> Trigger:
        """Created for the aggregate's first event, closed for a closing one, else updated."""
        if issubclass(event_class, CanInitAggregate):
            return Trigger.CREATED
        if event_class.__name__ in self.closing:
            return Trigger.CLOSED
        return Trigger.UPDATED


STREAMS: dict[Stream, StreamSpec] = {
    spec.stream: spec
    for spec in (
        StreamSpec(Stream.GRID_CASES, "gridcases", GridCase,
                   closing=frozenset({"Closed", "Rejected"})),
        # Contingency plans and their registry live in the incident application too; they are
        # the centre's reference data, not incident facts, and stay out of the feed.
        StreamSpec(Stream.INCIDENTS, "incidents", Incident,
                   closing=frozenset({"Closed", "Dismissed"})),
        StreamSpec(Stream.HAZARDS, "hazards", HazardSource,
                   closing=frozenset({"Decommissioned"})),
        StreamSpec(Stream.HOTLINE, "hotline", HotlineTicket,
                   # Answering at first contact and merging both end the ticket's handling.
                   closing=frozenset({"Closed", "MergedInto", "AnsweredAtFirstContact"})),
        # A resource is never closed: it goes out of service and comes back.
        StreamSpec(Stream.RESOURCES, "resources", Resource, closing=frozenset()),
    )
}

STREAM_BY_APPLICATION: dict[str, StreamSpec] = {spec.application: spec
                                                for spec in STREAMS.values()}


def stream_named(value: str) -> Stream:
    """The stream called `value`, or a clear error listing the streams."""
    return parse_enum(Stream, value, "stream")


def fact_fields(event_class: type[Any]) -> list[str]:
    """The names of an event class's facts (its dataclass fields minus the envelope)."""
    return [f.name for f in dataclasses.fields(event_class) if f.name not in ENVELOPE]


def all_fact_fields(spec: StreamSpec) -> dict[str, list[str]]:
    """Each fact field of the stream's events, with the event types that carry it."""
    carriers: dict[str, list[str]] = {}
    for event_class in spec.event_classes():
        for name in fact_fields(event_class):
            carriers.setdefault(name, []).append(event_class.__qualname__)
    return carriers


def owner_class(event: Any) -> type[Any] | None:
    """The aggregate class an event belongs to: from its topic for a created event, else from
    the class it is nested in (every CityOps event class is nested in its aggregate)."""
    if isinstance(event, CanInitAggregate):
        from eventsourcing.utils import resolve_topic

        resolved = resolve_topic(event.originator_topic)
        return resolved if isinstance(resolved, type) else None
    module = sys.modules.get(type(event).__module__)
    outer = getattr(module, type(event).__qualname__.split(".")[0], None)
    return outer if isinstance(outer, type) else None


def iter_specs() -> Iterator[StreamSpec]:
    """The streams of domain events in their documented order."""
    return iter(STREAMS[s] for s in Stream if s in STREAMS)
