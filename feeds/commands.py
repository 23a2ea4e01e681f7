"""Every command of the feeds' subscriptions, as values (handled by `Subscriptions`, one
handler each; who may issue them: their rows, added below to the table of
`domain/permissions.py`; the subscription checks the department).

Checks that need no state are made here, when the value is built; checks against the
catalogue, the destination policy or the subscription are the handler's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

from cityops.domain.commands import Command, fingerprint
from cityops.domain.errors import InvalidValue
from cityops.domain.permissions import ANY_ROLE, add_command_roles
from cityops.domain.values import checked_id
from cityops.feeds.streams import Trigger
from cityops.feeds.subscription import Delivery, SubscriptionFilter


def _delivery_args(delivery: Delivery) -> dict[str, Any]:
    """A delivery as a command's fingerprint sees it: the secret only as a digest."""
    return {"kind": delivery.kind.value, "url": delivery.url,
            "secret": fingerprint("secret", {"secret": delivery.secret})
            if delivery.secret is not None else None}


def _check_terms(filter: SubscriptionFilter, delivery: Delivery,
                 triggers: object) -> tuple[Trigger | str, ...]:
    if not isinstance(filter, SubscriptionFilter):
        raise InvalidValue("a subscription's filter must be a SubscriptionFilter")
    if not isinstance(delivery, Delivery):
        raise InvalidValue("a subscription's delivery must be a Delivery")
    if isinstance(triggers, str | bytes) or not hasattr(triggers, "__iter__"):
        raise InvalidValue("a subscription's triggers must be a list")
    return tuple(triggers)


@dataclass(frozen=True, kw_only=True)
class Subscribe(Command):
    """Subscribe a department to the events of one stream that match `filter` (the
    subscription's id derives from the command id, else it is new)."""

    name: ClassVar[str] = "subscription.create"
    department: str
    subscription_name: str
    filter: SubscriptionFilter
    triggers: tuple[Trigger | str, ...]
    delivery: Delivery

    def __post_init__(self) -> None:
        object.__setattr__(self, "triggers",
                           _check_terms(self.filter, self.delivery, self.triggers))

    def fingerprint_args(self) -> dict[str, Any]:
        return {"department": self.department, "name": self.subscription_name,
                "filter": self.filter.as_fact(),
                "triggers": sorted(str(t) for t in self.triggers),
                "delivery": _delivery_args(self.delivery)}


@dataclass(frozen=True, kw_only=True)
class SubscriptionCommand(Command):
    """A command on one subscription."""

    subscription_id: UUID

    def __post_init__(self) -> None:
        checked_id("subscription id", self.subscription_id)


@dataclass(frozen=True, kw_only=True)
class ReviseSubscription(SubscriptionCommand):
    """Replace a subscription's filter, triggers and delivery (its stream stays)."""

    name: ClassVar[str] = "subscription.revise"
    subscription_name: str
    filter: SubscriptionFilter
    triggers: tuple[Trigger | str, ...]
    delivery: Delivery
    note: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "triggers",
                           _check_terms(self.filter, self.delivery, self.triggers))

    def fingerprint_args(self) -> dict[str, Any]:
        return {"subscription_id": self.subscription_id, "name": self.subscription_name,
                "filter": self.filter.as_fact(),
                "triggers": sorted(str(t) for t in self.triggers),
                "delivery": _delivery_args(self.delivery), "note": self.note}


@dataclass(frozen=True, kw_only=True)
class PauseSubscription(SubscriptionCommand):
    """Stop matching events for a while (events of the pause are not delivered later)."""

    name: ClassVar[str] = "subscription.pause"
    reason: str


@dataclass(frozen=True, kw_only=True)
class ResumeSubscription(SubscriptionCommand):
    """Match events again from now on."""

    name: ClassVar[str] = "subscription.resume"
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Unsubscribe(SubscriptionCommand):
    """End a subscription for good (it stays on record with its history)."""

    name: ClassVar[str] = "subscription.remove"
    reason: str


# The subscription itself says who may change it (a department user its own department's,
# the administrator any), in its own words; the command centre's gate admits only those roles.
add_command_roles({Subscribe: ANY_ROLE, ReviseSubscription: ANY_ROLE,
                   PauseSubscription: ANY_ROLE, ResumeSubscription: ANY_ROLE,
                   Unsubscribe: ANY_ROLE})
