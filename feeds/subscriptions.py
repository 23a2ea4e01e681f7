"""The subscription application: every command on departments' subscriptions, in one place,
and the book of current subscriptions that the feed process matches events against."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from cityops.domain.actors import Actor
from cityops.domain.application import (
    COMMAND_NAMESPACE,
    CityApplication,
    Clock,
    fingerprint,
    system_clock,
)
from cityops.domain.catalogue import Catalogue
from cityops.domain.errors import ConcurrencyConflict, InvalidValue
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.feeds.destinations import DestinationPolicy
from cityops.feeds.streams import Stream, Trigger
from cityops.feeds.subscription import (
    REGISTRY_ID,
    Delivery,
    DeliveryKind,
    Subscription,
    SubscriptionFilter,
    SubscriptionRegistry,
    SubscriptionStatus,
    check_webhook_url,
)

REGISTRY_RETRIES = 3
"""New subscriptions all append to the registry: a concurrent one makes the save conflict,
and the command is simply decided again."""


class Subscriptions(CityApplication):
    """Departments' subscriptions to the feeds (an administrator may act for a department)."""

    name = "subscriptions"

    def __init__(self, env: Mapping[str, str] | None = None, *, catalogue: Catalogue,
                 hazard_catalogue: HazardCatalogue, require_https: bool = False,
                 destinations: DestinationPolicy | None = None,
                 clock: Clock = system_clock) -> None:
        super().__init__(env, clock=clock)
        self.catalogue = catalogue
        self.hazard_catalogue = hazard_catalogue
        self.require_https = require_https
        self.destinations = destinations or DestinationPolicy()
        """Where webhooks may go: a URL whose host is internal is refused when set."""

    # --- queries ----------------------------------------------------------------------------

    def subscription(self, subscription_id: UUID) -> Subscription:
        return self.load(Subscription, subscription_id)

    def all(self, department: str | None = None, *,
            include_cancelled: bool = True) -> list[Subscription]:
        """Every subscription (of one department), oldest first."""
        try:
            registry: Aggregate = self.repository.get(REGISTRY_ID)
        except AggregateNotFoundError:
            return []
        assert isinstance(registry, SubscriptionRegistry)
        found = [self.subscription(sid) for sid in registry.subscription_ids(department)]
        return [s for s in found
                if include_cancelled or s.status is not SubscriptionStatus.CANCELLED]

    def head(self) -> int:
        """The last position of the subscriptions' log: it changes when anything changes."""
        return self.recorder.max_notification_id() or 0

    # --- commands ---------------------------------------------------------------------------

    def subscribe(self, *, department: str, name: str, filter: SubscriptionFilter,
                  triggers: Sequence[Trigger | str], delivery: Delivery, actor: Actor,
                  at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Subscribe a department to the events of one stream that match `filter`."""
        self.catalogue.department(department)
        self._check_filter(filter)
        self._check_delivery(delivery)
        when = self.now(at)
        subscription_id = (uuid5(COMMAND_NAMESPACE, f"subscription:{command_id}")
                           if command_id else uuid4())

        def decide() -> list[Aggregate]:
            if self.exists(subscription_id):
                self.subscription(subscription_id).refuse("create", "it already exists")
            subscription = Subscription.subscribe(
                subscription_id=subscription_id, department=department, name=name,
                filter=filter, triggers=triggers, delivery=delivery, actor=actor, at=when,
            )
            try:
                registry: Aggregate = self.repository.get(REGISTRY_ID)
            except AggregateNotFoundError:
                registry = SubscriptionRegistry.open()
            assert isinstance(registry, SubscriptionRegistry)
            registry.list_subscription(subscription, actor)
            return [subscription, registry]

        args = {"department": department, "name": name, "filter": filter.as_fact(),
                "triggers": sorted(str(t) for t in triggers),
                "delivery": _delivery_args(delivery)}
        for attempt in range(REGISTRY_RETRIES):
            try:
                return self.run_command("subscription.create", actor=actor,
                                        command_id=command_id, args=args, decide=decide)
            except ConcurrencyConflict:
                if attempt == REGISTRY_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def revise(self, subscription_id: UUID, *, name: str, filter: SubscriptionFilter,
               triggers: Sequence[Trigger | str], delivery: Delivery, actor: Actor,
               note: str = "", at: datetime | None = None,
               command_id: str | None = None) -> UUID:
        """Replace a subscription's filter, triggers and delivery (its stream stays)."""
        self._check_filter(filter)
        self._check_delivery(delivery)
        when = self.now(at)
        return self._change(
            "subscription.revise", subscription_id, actor, command_id,
            {"name": name, "filter": filter.as_fact(),
             "triggers": sorted(str(t) for t in triggers),
             "delivery": _delivery_args(delivery), "note": note},
            lambda s: s.revise(name=name, filter=filter, triggers=triggers, delivery=delivery,
                               note=note, actor=actor, at=when),
        )

    def pause(self, subscription_id: UUID, *, reason: str, actor: Actor,
              at: datetime | None = None, command_id: str | None = None) -> UUID:
        """Stop matching events for a while (events of the pause are not delivered later)."""
        when = self.now(at)
        return self._change("subscription.pause", subscription_id, actor, command_id,
                            {"reason": reason},
                            lambda s: s.pause(reason=reason, actor=actor, at=when))

    def resume(self, subscription_id: UUID, *, actor: Actor, note: str = "",
               at: datetime | None = None, command_id: str | None = None) -> UUID:
        when = self.now(at)
        return self._change("subscription.resume", subscription_id, actor, command_id,
                            {"note": note},
                            lambda s: s.resume(note=note, actor=actor, at=when))

    def unsubscribe(self, subscription_id: UUID, *, reason: str, actor: Actor,
                    at: datetime | None = None, command_id: str | None = None) -> UUID:
        """End a subscription for good (it stays on record with its history)."""
        when = self.now(at)
        return self._change("subscription.remove", subscription_id, actor, command_id,
                            {"reason": reason},
                            lambda s: s.unsubscribe(reason=reason, actor=actor, at=when))

    def _change(self, command: str, subscription_id: UUID, actor: Actor,
                command_id: str | None, args: dict[str, Any],
                change: Callable[[Subscription], None]) -> UUID:
        def decide() -> list[Subscription]:
            subscription = self.subscription(subscription_id)
            change(subscription)
            return [subscription]

        return self.run_command(command, actor=actor, command_id=command_id,
                                args={"subscription_id": subscription_id, **args},
                                decide=decide)

    # --- checks against the catalogue -------------------------------------------------------

    def known_categories(self, stream: Stream) -> set[str]:
        """The codes a filter's categories may name on a stream."""
        from cityops.domain.hotline.ticket import TicketType

        catalogue = self.catalogue
        if stream is Stream.GRID_CASES:
            return set(catalogue.case_categories)
        if stream is Stream.INCIDENTS:
            return set(catalogue.incident_categories) | {
                t for c in catalogue.incident_categories.values() for t in c.types}
        if stream is Stream.HAZARDS:
            return set(self.hazard_catalogue.hazard_types)
        if stream is Stream.HOTLINE:
            return set(catalogue.hotline_topics) | {t.value for t in TicketType}
        return set(catalogue.resource_kinds)

    def _check_filter(self, filter: SubscriptionFilter) -> None:
        if not isinstance(filter, SubscriptionFilter):
            raise InvalidValue("filter must be a subscription filter")
        unknown = sorted(filter.categories - self.known_categories(filter.stream))
        if unknown:
            raise InvalidValue(f"unknown {filter.stream.value} categories: "
                               f"{', '.join(unknown)}")
        levels = sorted(filter.levels - set(self.catalogue.incident_levels))
        if levels:
            raise InvalidValue(f"unknown incident levels: {', '.join(levels)}; levels are "
                               f"{', '.join(self.catalogue.incident_levels)}")

    def _check_delivery(self, delivery: Delivery) -> None:
        if not isinstance(delivery, Delivery):
            raise InvalidValue("delivery must be a delivery")
        if delivery.kind is DeliveryKind.WEBHOOK:
            check_webhook_url(delivery.url, require_https=self.require_https)
            assert delivery.url is not None
            self.destinations.check_url(delivery.url)


def _delivery_args(delivery: Delivery) -> dict[str, Any]:
    """A delivery as a command's fingerprint sees it: the secret only as a digest."""
    return {"kind": delivery.kind.value, "url": delivery.url,
            "secret": fingerprint("secret", {"secret": delivery.secret})
            if delivery.secret is not None else None}


class SubscriptionBook:
    """The subscriptions the feed process matches against, reloaded only when the
    subscriptions' log has moved (a cheap check per batch)."""

    def __init__(self, subscriptions: Subscriptions) -> None:
        self.subscriptions = subscriptions
        self._head = -1
        self._current: list[Subscription] = []
        self._lock = threading.Lock()

    def current(self) -> list[Subscription]:
        """Every subscription that can still match an event (cancelled ones too: an event
        from before their end may not be published yet)."""
        with self._lock:
            head = self.subscriptions.head()
            if head != self._head:
                self._current = self.subscriptions.all()
                self._head = head
            return list(self._current)
