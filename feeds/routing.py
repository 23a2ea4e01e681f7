"""Where one event goes: which departments' Kafka topics and which webhooks, according to
the subscriptions that want it. Shared by the Kafka publisher and the webhook outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cityops.domain.ports import GridLocator
from cityops.domain.sharing import SharingPolicy
from cityops.feeds.events import FeedItem
from cityops.feeds.subscription import DeliveryKind, Subscription


@dataclass(frozen=True)
class Routes:
    """The deliveries of one event."""

    departments: dict[str, list[str]] = field(default_factory=dict)
    """Department code -> ids of its Kafka subscriptions that want the event (one message
    per department topic, however many of its subscriptions match)."""
    webhooks: list[Subscription] = field(default_factory=list)


def route(event: FeedItem, subscriptions: Sequence[Subscription],
          locator: GridLocator | None, policy: SharingPolicy) -> Routes:
    """The departments' topics and the webhooks that `event` goes to. The department scope
    of the screens holds for the feeds too (`policy.in_scope`): another department's case,
    ticket or resource is not delivered, whatever a subscription's filter."""
    departments: dict[str, list[str]] = {}
    webhooks: list[Subscription] = []
    for subscription in subscriptions:
        if not policy.in_scope(event.stream, event.subject.departments,
                               subscription.department):
            continue
        if not subscription.wants(stream=event.stream, trigger=event.trigger,
                                  occurred_at=event.occurred_at, subject=event.subject,
                                  locator=locator):
            continue
        if subscription.delivery.kind is DeliveryKind.KAFKA:
            departments.setdefault(subscription.department, []).append(str(subscription.id))
        else:
            webhooks.append(subscription)
    return Routes(departments=departments, webhooks=webhooks)
