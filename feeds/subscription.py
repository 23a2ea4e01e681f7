"""A department's subscription to a feed: a saved filter, the triggers it wants, and how its
events are delivered (the department's Kafka topic, or an HTTP webhook).

Subscriptions are event-sourced like everything a person decides in CityOps: who subscribed
which department to what, who changed, paused or ended it, and when, is history.

A subscription takes effect from the time it is recorded: it matches the events that
happened while it was active (between subscribing and unsubscribing, outside pauses),
whenever the feed process gets to them. So what a subscription delivers does not depend on
how far behind the publisher was, or on a restart.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

import shapely
from eventsourcing.domain import Aggregate

from cityops.domain.actors import Actor, Role
from cityops.domain.errors import InvalidValue, NotPermitted
from cityops.domain.geometry import Area
from cityops.domain.model import CityAggregate
from cityops.domain.ports import GridLocator
from cityops.domain.values import parse_enum
from cityops.feeds.streams import Stream, Trigger
from cityops.feeds.subject import Subject

SUBSCRIPTION_NAMESPACE = uuid5(NAMESPACE_URL, "https://cityops.invalid/subscriptions")
REGISTRY_ID = uuid5(SUBSCRIPTION_NAMESPACE, "registry")
MAX_NAME = 200
MAX_CATEGORIES = 200
MAX_URL = 2000
SECRET_LENGTH = (16, 256)
GRID_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
LEVELLED_STREAMS = frozenset({Stream.INCIDENTS, Stream.WARNINGS})


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    """Unsubscribed (terminal); the subscription and its history stay on record."""


class DeliveryKind(StrEnum):
    KAFKA = "kafka"
    """Into the department's Kafka topic, `<prefix>.department.<code>`."""
    WEBHOOK = "webhook"
    """An HTTP POST to the department's system, signed with the subscription's secret."""


def _text(label: str, value: Any, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"{label} must be non-empty text")
    text = value.strip()
    if len(text) > limit:
        raise InvalidValue(f"{label} is longer than {limit} characters")
    return text


# --- value objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaFilter:
    """Where: a grid code prefix (a district, street, community or cell), a bounding box, or
    a polygon, exactly one of them."""

    grid_prefix: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    """min_lon, min_lat, max_lon, max_lat in WGS84."""
    polygon: Area | None = None

    def __post_init__(self) -> None:
        given = [x for x in (self.grid_prefix, self.bbox, self.polygon) if x is not None]
        if len(given) != 1:
            raise InvalidValue("an area filter is exactly one of: a grid code prefix, a bbox "
                               "or a polygon")
        if self.grid_prefix is not None and (
                not isinstance(self.grid_prefix, str) or not GRID_PREFIX.match(self.grid_prefix)):
            raise InvalidValue(f"grid code prefix {self.grid_prefix!r} must be letters, digits "
                               "and hyphens (for example D01-S02)")
        if self.bbox is not None:
            object.__setattr__(self, "bbox", _bbox(self.bbox))
        if self.polygon is not None and not isinstance(self.polygon, Area):
            raise InvalidValue("an area filter's polygon must be an area")

    def contains(self, subject: Subject, locator: GridLocator | None) -> bool:
        """Whether the subject is in the area: its grid cell under the prefix (or, when it
        records no cell, the cell its point is in); its point in the box or polygon; an
        incident's affected area or a hazard's impact zone touching the polygon or box."""
        if self.grid_prefix is not None:
            cell = subject.grid_cell
            if cell is None and subject.point is not None and locator is not None:
                cell = locator.locate_cell(subject.point)
            return cell is not None and (cell == self.grid_prefix
                                         or cell.startswith(f"{self.grid_prefix}-"))
        shape = (self.polygon.shape if self.polygon is not None
                 else shapely.box(*self.bbox))  # type: ignore[misc]
        if subject.point is not None and shape.intersects(subject.point.shape):
            return True
        return subject.area is not None and shape.intersects(subject.area.shape)

    def as_fact(self) -> dict[str, Any]:
        if self.grid_prefix is not None:
            return {"grid_prefix": self.grid_prefix}
        if self.bbox is not None:
            return {"bbox": list(self.bbox)}
        assert self.polygon is not None
        return {"polygon": self.polygon.wkt}

    @classmethod
    def from_fact(cls, fact: dict[str, Any]) -> AreaFilter:
        if "bbox" in fact:
            return cls(bbox=tuple(fact["bbox"]))  # type: ignore[arg-type]
        if "polygon" in fact:
            return cls(polygon=Area(wkt=fact["polygon"]))
        return cls(grid_prefix=fact["grid_prefix"])

    def as_dict(self) -> dict[str, Any]:
        """As the API shows it (the polygon in GeoJSON)."""
        if self.polygon is not None:
            return {"polygon": self.polygon.to_geojson()}
        return self.as_fact()


def _bbox(value: Any) -> tuple[float, float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise InvalidValue("a bbox is four numbers: min_lon, min_lat, max_lon, max_lat")
    for number in value:
        if (not isinstance(number, int | float) or isinstance(number, bool)
                or not math.isfinite(number)):
            raise InvalidValue(f"bbox values must be finite numbers, got {number!r}")
    min_lon, min_lat, max_lon, max_lat = (float(v) for v in value)
    if not (-180 <= min_lon <= 180 and -180 <= max_lon <= 180):
        raise InvalidValue("bbox longitudes must be within -180..180")
    if not (-90 <= min_lat <= 90 and -90 <= max_lat <= 90):
        raise InvalidValue("bbox latitudes must be within -90..90 (are they swapped?)")
    if min_lon >= max_lon or min_lat >= max_lat:
        raise InvalidValue("bbox minimum must be less than its maximum")
    return (min_lon, min_lat, max_lon, max_lat)


@dataclass(frozen=True)
class SubscriptionFilter:
    """What a subscription wants from its stream. Empty `categories` or `levels` mean all."""

    stream: Stream
    categories: frozenset[str] = frozenset()
    area: AreaFilter | None = None
    levels: frozenset[str] = frozenset()
    """Incident levels (I to IV) of the incidents stream; warning levels (red, orange,
    yellow, blue, or I to IV) of the warnings stream."""
    own_department: bool = False
    """Only what is dispatched or assigned to the subscribing department (or that it owns)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stream", parse_enum(Stream, self.stream, "stream"))
        object.__setattr__(self, "categories", _codes("category", self.categories))
        object.__setattr__(self, "levels", _codes("level", self.levels))
        if len(self.categories) > MAX_CATEGORIES:
            raise InvalidValue(f"a filter lists at most {MAX_CATEGORIES} categories")
        if self.levels and self.stream not in LEVELLED_STREAMS:
            raise InvalidValue(f"levels filter incidents and warnings only, not the "
                               f"{self.stream.value} stream")
        if self.own_department and self.stream is Stream.HAZARDS:
            raise InvalidValue("hazard sources are not dispatched to departments: the "
                               "own-department filter does not apply to the hazards stream")
        if self.own_department and self.stream is Stream.WARNINGS:
            raise InvalidValue("warnings are not dispatched to departments: the "
                               "own-department filter does not apply to the warnings stream")
        if (self.stream is Stream.WARNINGS and isinstance(self.area, AreaFilter)
                and self.area.grid_prefix is not None):
            raise InvalidValue("a warning's area is polygons and circles, not grid cells: "
                               "filter the warnings stream by a bbox or a polygon")
        if self.area is not None and not isinstance(self.area, AreaFilter):
            raise InvalidValue("area must be an area filter")

    def matches(self, subject: Subject, department: str, locator: GridLocator | None) -> bool:
        if self.categories and not (self.categories & subject.categories):
            return False
        if self.levels and subject.level not in self.levels:
            return False
        if self.own_department and department not in subject.departments:
            return False
        return self.area is None or self.area.contains(subject, locator)

    def as_fact(self) -> dict[str, Any]:
        return {"stream": self.stream.value, "categories": sorted(self.categories),
                "area": self.area.as_fact() if self.area is not None else None,
                "levels": sorted(self.levels), "own_department": self.own_department}

    @classmethod
    def from_fact(cls, fact: dict[str, Any]) -> SubscriptionFilter:
        area = fact.get("area")
        return cls(stream=Stream(fact["stream"]), categories=frozenset(fact["categories"]),
                   area=AreaFilter.from_fact(area) if area is not None else None,
                   levels=frozenset(fact["levels"]), own_department=fact["own_department"])

    def as_dict(self) -> dict[str, Any]:
        body = self.as_fact()
        body["area"] = self.area.as_dict() if self.area is not None else None
        return body


def _codes(label: str, values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        raise InvalidValue(f"{label} codes must be a list, not one text")
    codes = set()
    for value in values:
        codes.add(_text(f"{label} code", value, 100))
    return frozenset(codes)


@dataclass(frozen=True)
class Delivery:
    """How a subscription's events reach the department."""

    kind: DeliveryKind
    url: str | None = None
    secret: str | None = None
    """The webhook's signing secret (HMAC-SHA256); never shown after it is set."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind",
                           parse_enum(DeliveryKind, self.kind, "delivery", "deliveries"))
        if self.kind is DeliveryKind.KAFKA:
            if self.url is not None or self.secret is not None:
                raise InvalidValue("a Kafka delivery goes to the department's topic: it takes "
                                   "no URL and no secret")
            return
        object.__setattr__(self, "url", check_webhook_url(self.url))
        if not isinstance(self.secret, str):
            raise InvalidValue("a webhook needs a secret to sign its requests")
        low, high = SECRET_LENGTH
        if not low <= len(self.secret) <= high or not self.secret.isprintable():
            raise InvalidValue(f"a webhook secret must be {low} to {high} printable "
                               "characters")

    @property
    def secret_fingerprint(self) -> str | None:
        """Enough to tell which secret is set, not enough to sign with it."""
        if self.secret is None:
            return None
        return hashlib.sha256(self.secret.encode()).hexdigest()[:12]

    def as_fact(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "url": self.url, "secret": self.secret}

    @classmethod
    def from_fact(cls, fact: dict[str, Any]) -> Delivery:
        return cls(kind=DeliveryKind(fact["kind"]), url=fact["url"], secret=fact["secret"])

    def as_dict(self) -> dict[str, Any]:
        """As the API shows it: never the secret."""
        return {"kind": self.kind.value, "url": self.url,
                "secret_fingerprint": self.secret_fingerprint}


def check_webhook_url(url: Any, *, require_https: bool = False) -> str:
    """An absolute http(s) URL with a host; https only when required."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidValue("a webhook needs a URL")
    text = str(url).strip()
    if len(text) > MAX_URL:
        raise InvalidValue(f"webhook URL is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise InvalidValue(f"webhook URL {text!r} is not a URL: {error}") from None
    schemes = ("https",) if require_https else ("http", "https")
    if parts.scheme not in schemes:
        raise InvalidValue(f"webhook URL must start with {' or '.join(schemes)}://, "
                           f"not {parts.scheme or 'nothing'}")
    if not parts.hostname:
        raise InvalidValue(f"webhook URL {text!r} has no host")
    if parts.username or parts.password:
        raise InvalidValue("webhook URL must not carry a user name or password; the "
                           "signature authenticates CityOps")
    if port == 0:
        raise InvalidValue("webhook URL port must not be 0")
    return text


def check_triggers(triggers: Iterable[Trigger | str]) -> list[str]:
    """The triggers as stored: known, each once, in a stable order; at least one."""
    if isinstance(triggers, str):
        raise InvalidValue("triggers must be a list, not one text")
    chosen = set()
    for trigger in triggers:
        chosen.add(parse_enum(Trigger, trigger, "trigger"))
    if not chosen:
        raise InvalidValue("a subscription needs at least one trigger (created, updated, "
                           "closed)")
    return [t.value for t in Trigger if t in chosen]


def check_may_manage(actor: Actor, department: str, attempted: str) -> None:
    """A department manages its own subscriptions; an administrator manages any."""
    if actor.role is Role.ADMIN:
        return
    if actor.role is Role.DEPARTMENT_USER and actor.department == department:
        return
    if actor.role is Role.DEPARTMENT_USER:
        raise NotPermitted(f"{actor.user_id} of {actor.department} may not {attempted} a "
                           f"subscription of {department}: only its own department's")
    raise NotPermitted(f"{actor.role.value} {actor.user_id} may not {attempted} a "
                       "subscription; allowed roles: admin, department-user (own department)")


# --- the aggregate ------------------------------------------------------------------------


@dataclass(frozen=True)
class ActivePeriod:
    """A stretch of time in which the subscription matched events."""

    start: datetime
    end: datetime | None = None

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)


class Subscription(CityAggregate):
    """A department's standing order for the events of one stream that it cares about."""

    KIND = "subscription"

    class Subscribed(CityAggregate.Created):
        actor: Actor
        department: str
        name: str
        filter: dict[str, Any]
        triggers: list[str]
        delivery: dict[str, Any]

        def apply(self, subscription: Subscription) -> None:
            subscription.status = SubscriptionStatus.ACTIVE
            subscription.department = self.department
            subscription.name = self.name
            subscription.filter = SubscriptionFilter.from_fact(self.filter)
            subscription.triggers = frozenset(Trigger(t) for t in self.triggers)
            subscription.delivery = Delivery.from_fact(self.delivery)
            subscription.subscribed_at = self.timestamp
            subscription.subscribed_by = self.actor.user_id
            subscription.periods = [ActivePeriod(self.timestamp)]
            subscription.revisions = 0
            subscription.ended_at = None
            subscription.end_reason = None

    class Revised(CityAggregate.Event):
        """Filter, triggers and delivery replaced as a whole (from now on)."""

        name: str
        filter: dict[str, Any]
        triggers: list[str]
        delivery: dict[str, Any]
        note: str

        def apply(self, subscription: Subscription) -> None:
            subscription.name = self.name
            subscription.filter = SubscriptionFilter.from_fact(self.filter)
            subscription.triggers = frozenset(Trigger(t) for t in self.triggers)
            subscription.delivery = Delivery.from_fact(self.delivery)
            subscription.revisions += 1

    class Paused(CityAggregate.Event):
        reason: str

        def apply(self, subscription: Subscription) -> None:
            subscription.status = SubscriptionStatus.PAUSED
            subscription.close_period(self.timestamp)

    class Resumed(CityAggregate.Event):
        note: str

        def apply(self, subscription: Subscription) -> None:
            subscription.status = SubscriptionStatus.ACTIVE
            subscription.periods.append(ActivePeriod(self.timestamp))

    class Unsubscribed(CityAggregate.Event):
        reason: str

        def apply(self, subscription: Subscription) -> None:
            subscription.status = SubscriptionStatus.CANCELLED
            subscription.close_period(self.timestamp)
            subscription.ended_at = self.timestamp
            subscription.end_reason = self.reason

    if TYPE_CHECKING:
        status: SubscriptionStatus
        department: str
        name: str
        filter: SubscriptionFilter
        triggers: frozenset[Trigger]
        delivery: Delivery
        subscribed_at: datetime
        subscribed_by: str
        periods: list[ActivePeriod]
        revisions: int
        ended_at: datetime | None
        end_reason: str | None

    # --- commands ---------------------------------------------------------------------------

    @classmethod
    def subscribe(cls, *, subscription_id: UUID, department: str, name: str,
                  filter: SubscriptionFilter, triggers: Sequence[Trigger | str],
                  delivery: Delivery, actor: Actor, at: datetime) -> Subscription:
        check_may_manage(actor, department, "create")
        return cls._create(
            cls.Subscribed, id=subscription_id, timestamp=at, actor=actor,
            department=department, name=_text("subscription name", name, MAX_NAME),
            filter=filter.as_fact(), triggers=check_triggers(triggers),
            delivery=delivery.as_fact(),
        )

    def revise(self, *, name: str, filter: SubscriptionFilter,
               triggers: Sequence[Trigger | str], delivery: Delivery, note: str, actor: Actor,
               at: datetime) -> None:
        check_may_manage(actor, self.department, "revise")
        self.require_status("revise", SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED)
        if filter.stream is not self.filter.stream:
            self.refuse("revise", f"it follows the {self.filter.stream.value} stream (a "
                        "subscription to another stream is a new subscription)")
        self.record(self.Revised, actor=actor, at=at,
                    name=_text("subscription name", name, MAX_NAME), filter=filter.as_fact(),
                    triggers=check_triggers(triggers), delivery=delivery.as_fact(),
                    note=note.strip() if isinstance(note, str) else "")

    def pause(self, *, reason: str, actor: Actor, at: datetime) -> None:
        check_may_manage(actor, self.department, "pause")
        self.require_status("pause", SubscriptionStatus.ACTIVE)
        self.record(self.Paused, actor=actor, at=at, reason=_text("reason", reason, 2000))

    def resume(self, *, note: str, actor: Actor, at: datetime) -> None:
        check_may_manage(actor, self.department, "resume")
        self.require_status("resume", SubscriptionStatus.PAUSED)
        self.record(self.Resumed, actor=actor, at=at,
                    note=note.strip() if isinstance(note, str) else "")

    def unsubscribe(self, *, reason: str, actor: Actor, at: datetime) -> None:
        check_may_manage(actor, self.department, "remove")
        self.require_status("remove", SubscriptionStatus.ACTIVE, SubscriptionStatus.PAUSED)
        self.record(self.Unsubscribed, actor=actor, at=at,
                    reason=_text("reason", reason, 2000))

    # --- state ------------------------------------------------------------------------------

    def close_period(self, moment: datetime) -> None:
        last = self.periods[-1]
        self.periods[-1] = ActivePeriod(last.start, moment)

    def active_at(self, moment: datetime) -> bool:
        return any(period.covers(moment) for period in self.periods)

    def wants(self, *, stream: Stream, trigger: Trigger, occurred_at: datetime,
              subject: Subject, locator: GridLocator | None) -> bool:
        """Whether an event (of `stream`, with `trigger`, at `occurred_at`, about `subject`)
        is one this subscription delivers."""
        return (stream is self.filter.stream and trigger in self.triggers
                and self.active_at(occurred_at)
                and self.filter.matches(subject, self.department, locator))

    def summary(self) -> dict[str, Any]:
        """The subscription as the API shows it (never the webhook secret)."""
        return {
            "id": str(self.id),
            "version": self.version,
            "department": self.department,
            "name": self.name,
            "status": self.status.value,
            "filter": self.filter.as_dict(),
            "triggers": [t.value for t in Trigger if t in self.triggers],
            "delivery": self.delivery.as_dict(),
            "subscribed_at": self.subscribed_at.isoformat(),
            "subscribed_by": self.subscribed_by,
            "revisions": self.revisions,
            "active_periods": [
                {"start": p.start.isoformat(), "end": p.end.isoformat() if p.end else None}
                for p in self.periods
            ],
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "end_reason": self.end_reason,
        }


class SubscriptionRegistry(Aggregate):
    """The list of all subscriptions ever made (event stores have no index by kind), kept
    under a fixed id and saved with each new subscription."""

    class Opened(Aggregate.Created):
        pass

    class Listed(Aggregate.Event):
        subscription_id: UUID
        department: str
        actor: Actor

        def apply(self, registry: SubscriptionRegistry) -> None:
            registry.entries[self.subscription_id] = self.department

    if TYPE_CHECKING:
        entries: dict[UUID, str]

    def __init__(self) -> None:
        self.entries = {}

    @classmethod
    def open(cls) -> SubscriptionRegistry:
        return cls._create(cls.Opened, id=REGISTRY_ID)

    def list_subscription(self, subscription: Subscription, actor: Actor) -> None:
        self.trigger_event(self.Listed, subscription_id=subscription.id,
                           department=subscription.department, actor=actor)

    def subscription_ids(self, department: str | None = None) -> list[UUID]:
        return [sid for sid, dept in self.entries.items()
                if department is None or dept == department]
