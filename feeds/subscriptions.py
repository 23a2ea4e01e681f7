"""The subscription application: the handler of every command on departments'
subscriptions (the commands themselves, as values: `feeds/commands.py`), and the book of
current subscriptions that the feed process matches events against."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from uuid import UUID, uuid4, uuid5

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate

from cityops.domain.application import (
    COMMAND_NAMESPACE,
    CityApplication,
    Clock,
    UnitOfWork,
    system_clock,
)
from cityops.domain.catalogue import Catalogue
from cityops.domain.commands import CommandContext, CommandOutcome, handles
from cityops.domain.errors import ConcurrencyConflict, InvalidValue
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.feeds.commands import (
    PauseSubscription,
    ResumeSubscription,
    ReviseSubscription,
    Subscribe,
    Unsubscribe,
)
from cityops.feeds.destinations import DestinationPolicy
from cityops.feeds.streams import Stream
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

    # --- command handlers (run through `handle`, see `domain/commands.py`) ----------------

    def subscribe(self, command: Subscribe, context: CommandContext) -> CommandOutcome:
        """Handle `command`, again when another subscription was listed in the registry at
        the same moment (each new subscription is listed in the one registry)."""
        for attempt in range(REGISTRY_RETRIES):
            try:
                return self.handle(command, context)
            except ConcurrencyConflict:
                if attempt == REGISTRY_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    @handles(Subscribe)
    def create(self, command: Subscribe, uow: UnitOfWork) -> list[Aggregate]:
        """A department subscribes to the events of one stream that match its filter; the
        registry lists the subscription in the same transaction."""
        self.catalogue.department(command.department)
        self._check_filter(command.filter)
        self._check_delivery(command.delivery)
        subscription_id = (uuid5(COMMAND_NAMESPACE, f"subscription:{uow.command_id}")
                           if uow.command_id else uuid4())
        if uow.exists(subscription_id):
            uow.load(Subscription, subscription_id).refuse("create", "it already exists")
        subscription = Subscription.subscribe(
            subscription_id=subscription_id, department=command.department,
            name=command.subscription_name, filter=command.filter, triggers=command.triggers,
            delivery=command.delivery, actor=uow.actor, at=uow.now,
        )
        try:
            registry: Aggregate = self.repository.get(REGISTRY_ID)
        except AggregateNotFoundError:
            registry = SubscriptionRegistry.open()
        assert isinstance(registry, SubscriptionRegistry)
        registry.list_subscription(subscription, uow.actor)
        return [subscription, registry]

    @handles(ReviseSubscription)
    def revise(self, command: ReviseSubscription, uow: UnitOfWork) -> list[Subscription]:
        """A subscription's filter, triggers and delivery are replaced (its stream stays)."""
        self._check_filter(command.filter)
        self._check_delivery(command.delivery)
        subscription = uow.load(Subscription, command.subscription_id)
        subscription.revise(name=command.subscription_name, filter=command.filter,
                            triggers=command.triggers, delivery=command.delivery,
                            note=command.note, actor=uow.actor, at=uow.now)
        return [subscription]

    @handles(PauseSubscription)
    def pause(self, command: PauseSubscription, uow: UnitOfWork) -> list[Subscription]:
        """Matching stops for a while (events of the pause are not delivered later)."""
        subscription = uow.load(Subscription, command.subscription_id)
        subscription.pause(reason=command.reason, actor=uow.actor, at=uow.now)
        return [subscription]

    @handles(ResumeSubscription)
    def resume(self, command: ResumeSubscription, uow: UnitOfWork) -> list[Subscription]:
        """Matching starts again."""
        subscription = uow.load(Subscription, command.subscription_id)
        subscription.resume(note=command.note, actor=uow.actor, at=uow.now)
        return [subscription]

    @handles(Unsubscribe)
    def unsubscribe(self, command: Unsubscribe, uow: UnitOfWork) -> list[Subscription]:
        """A subscription ends for good (it stays on record with its history)."""
        subscription = uow.load(Subscription, command.subscription_id)
        subscription.unsubscribe(reason=command.reason, actor=uow.actor, at=uow.now)
        return [subscription]

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
