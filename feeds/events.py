"""Domain events as the feeds carry them: read from an application's notification log,
described with their aggregate's state, and written as JSON messages after the sharing
filter.

A message (Kafka value or webhook body) is one JSON object:

    schema_version  1
    event_id        "<aggregate id>:<version>": unique, stable across republishing
    stream          grid-cases | incidents | hazards | hotline | resources
    event_type      "GridCase.Dispatched" (aggregate class . event class)
    trigger         created | updated | closed
    aggregate_id    the aggregate's UUID (also the Kafka key: order per aggregate holds)
    version         the aggregate's version after the event (1 for its first event)
    occurred_at     ISO 8601 time of the event
    position        the event's position in its application's notification log
    actor           who did it {user_id, role, department} (when shared), else null
    data            the event's facts that the recipient may receive
    context         the aggregate's state after the event (status, category, level, place,
                    departments...) that the recipient may receive
    drill           the drill's id, in a drill's messages only (a live message has no such
                    key: its bytes are what they always were)

Geometries are GeoJSON (WGS84), times ISO 8601, durations seconds, ids strings: the facts
are written by the one event encoder, `cityops.domain.event_facts` (the API's history too).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate

from cityops.domain.actors import Actor
from cityops.domain.aggregate_states import AggregateStates
from cityops.domain.event_facts import event_facts, to_json
from cityops.feeds.sharing import ACTOR_FIELD, Recipient, SharingCatalogue
from cityops.feeds.streams import Stream, StreamSpec, Trigger, owner_class
from cityops.feeds.subject import Subject, describe

SCHEMA_VERSION = 1
JSON_MEDIA_TYPE = "application/json"


DRILL_FIELD = "drill"
"""The key of a drill's id in every JSON message a drill's feeds send."""


def drill_marked(message: dict[str, Any], drill: str | None) -> dict[str, Any]:
    """`message` as a drill's feeds send it: with `"drill": "<id>"` (live: unchanged, no
    such key, so a live message is byte for byte what it always was)."""
    if drill is None:
        return message
    return {**message, DRILL_FIELD: drill}


def encode(message: dict[str, Any]) -> bytes:
    """A message as the bytes the feeds send: compact UTF-8 JSON."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class FeedEvent:
    """One domain event of a stream, with what the feeds need to match and publish it."""

    stream: Stream
    position: int
    event_type: str
    aggregate_id: UUID
    version: int
    occurred_at: datetime
    actor: Actor | None
    facts: dict[str, Any]
    trigger: Trigger
    subject: Subject
    drill: str | None = None
    """The drill whose event it is (None: a live event)."""

    @property
    def event_id(self) -> str:
        return f"{self.aggregate_id}:{self.version}"

    @property
    def key(self) -> bytes:
        """The Kafka key: the aggregate id, so one aggregate's events keep their order."""
        return str(self.aggregate_id).encode()

    @cached_property
    def json_facts(self) -> dict[str, Any]:
        """The facts written as JSON once, whatever the number of recipients."""
        facts: dict[str, Any] = to_json(self.facts)
        return facts

    @cached_property
    def json_context(self) -> dict[str, Any]:
        context: dict[str, Any] = to_json(self.subject.context)
        return context

    def message(self, catalogue: SharingCatalogue, recipient: Recipient) -> dict[str, Any]:
        """The event as `recipient` may receive it (sharing classes applied field by field
        to the actor, the facts and the context)."""
        share = catalogue.share
        actor = share(self.stream, {ACTOR_FIELD: to_json(self.actor)},
                      recipient).get(ACTOR_FIELD)
        return drill_marked({
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "stream": self.stream.value,
            "event_type": self.event_type,
            "trigger": self.trigger.value,
            "aggregate_id": str(self.aggregate_id),
            "version": self.version,
            "occurred_at": self.occurred_at.isoformat(),
            "position": self.position,
            "actor": actor,
            "data": share(self.stream, self.json_facts, recipient),
            "context": share(self.stream, self.json_context, recipient),
        }, self.drill)

    content_type = JSON_MEDIA_TYPE

    def payload(self, catalogue: SharingCatalogue, recipient: Recipient,
                extra: Mapping[str, Any] | None = None) -> bytes | None:
        """The bytes `recipient` receives: the message as JSON, with `extra` keys (a
        department's subscriptions, a webhook's delivery id)."""
        return encode({**self.message(catalogue, recipient), **(extra or {})})


class FeedItem(Protocol):
    """What the Kafka publisher and the webhook outbox publish and route: a domain event of
    a stream (`FeedEvent`), or a CAP alert of the warnings (`cityops.feeds.cap_publishing`)."""

    @property
    def stream(self) -> Stream: ...
    @property
    def position(self) -> int: ...
    @property
    def event_type(self) -> str: ...
    @property
    def aggregate_id(self) -> UUID: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def trigger(self) -> Trigger: ...
    @property
    def subject(self) -> Subject: ...
    @property
    def event_id(self) -> str: ...
    @property
    def key(self) -> bytes: ...
    @property
    def content_type(self) -> str: ...

    def payload(self, catalogue: SharingCatalogue, recipient: Recipient,
                extra: Mapping[str, Any] | None = None) -> bytes | None:
        """What `recipient` receives, or None when it may not receive the item at all."""


class SourceSpec(Protocol):
    """Which log a reader follows (its position is tracked under `application`)."""

    @property
    def stream(self) -> Stream: ...
    @property
    def application(self) -> str: ...


class LogReader(Protocol):
    """A reader of one feed's log from a position (`StreamReader`, `CapAlertReader`)."""

    @property
    def spec(self) -> SourceSpec: ...
    @property
    def stream(self) -> Stream: ...

    def head(self) -> int: ...
    def read(self, after: int, limit: int) -> LogBatch: ...
    def forget(self) -> None: ...


@dataclass(frozen=True)
class LogBatch:
    """What one read of a stream's log gave: its events, and the position it reached."""

    stream: Stream
    after: int
    last: int
    """The position of the last notification read (`after` when none was read)."""
    read: int
    """Notifications read, including those of other aggregates."""
    events: Sequence[FeedItem]


class StreamReader:
    """Reads one stream's events from its application's notification log after a position,
    following each aggregate's state (cached; rebuilt from the event store on a miss)."""

    def __init__(self, spec: StreamSpec, application: Application[Any], *,
                 drill: str | None = None) -> None:
        """`drill`: the drill whose stores `application` reads (None: live); its events
        are marked as that drill's."""
        if application.name != spec.application:
            raise ValueError(f"the {spec.stream.value} stream follows the {spec.application} "
                             f"application, not {application.name}")
        self.spec = spec
        self.application = application
        self.drill = drill
        self.states = AggregateStates(application)

    @property
    def stream(self) -> Stream:
        return self.spec.stream

    def head(self) -> int:
        """The last position of the application's log (0 when it is empty)."""
        return self.application.recorder.max_notification_id() or 0

    def read(self, after: int, limit: int) -> LogBatch:
        """The stream's events after position `after`, reading at most `limit`
        notifications. Other aggregates' events (command receipts, plans) are read and
        skipped, but they count and move the batch's `last` position."""
        notifications = self.application.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False)
        events = []
        for notification in notifications:
            event = self.application.mapper.to_domain_event(notification)
            if owner_class(event) is not self.spec.aggregate:
                continue
            events.append(self._feed_event(event, notification.id))
        last = notifications[-1].id if notifications else after
        return LogBatch(stream=self.spec.stream, after=after, last=last,
                        read=len(notifications), events=events)

    def forget(self) -> None:
        """Drop the followed states (after a batch was not published: it is read again)."""
        self.states.clear()

    def _feed_event(self, event: Any, position: int) -> FeedEvent:
        aggregate, departments_before = self._evolve(event)
        subject = describe(aggregate)
        if not departments_before <= subject.departments:
            # An event that takes a case or ticket away from a department (returned to the
            # centre) still concerns that department.
            subject = replace(subject, departments=subject.departments | departments_before)
        actor = getattr(event, "actor", None)
        return FeedEvent(
            stream=self.spec.stream,
            position=position,
            event_type=type(event).__qualname__,
            aggregate_id=event.originator_id,
            version=event.originator_version,
            occurred_at=event.timestamp,
            actor=actor if isinstance(actor, Actor) else None,
            facts=event_facts(event),
            trigger=self.spec.trigger_of(type(event)),
            subject=subject,
            drill=self.drill,
        )

    def _evolve(self, event: Any) -> tuple[Aggregate, frozenset[str]]:
        """The aggregate after `event`, and the departments it concerned before it."""
        before = self.states.before(event)
        departments_before = (describe(before).departments if before is not None
                               else frozenset())
        return self.states.after(event), departments_before
