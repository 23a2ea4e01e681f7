"""The warnings as a feed stream: who receives which CAP alert (the sharing catalogue by
scope; a drill's alert nobody), and what a department's subscription to warnings can ask."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import shapely

from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.errors import InvalidValue
from cityops.domain.geometry import Area
from cityops.feeds.cap import CAP_MEDIA_TYPE
from cityops.feeds.cap_publishing import AlertItem, StoredAlert
from cityops.feeds.commands import Subscribe
from cityops.feeds.sharing import Recipient, SharingCatalogue
from cityops.feeds.streams import Stream, Trigger
from cityops.feeds.subscription import (
    AreaFilter,
    Delivery,
    DeliveryKind,
    Subscription,
    SubscriptionFilter,
)
from cityops.feeds.subscriptions import Subscriptions

SENT = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)
ZONE = shapely.box(118.78, 32.04, 118.80, 32.06)
ADMIN = Actor("root-wu", Role.ADMIN)


def alert(*, scope: str = "Public", held: bool = False, level: str = "red") -> StoredAlert:
    return StoredAlert(
        seq=7, identifier="cityops-warning.w.1", warning_id=uuid4(), sequence=1,
        msg_type="Alert", status="Exercise" if held else "Actual", scope=scope, sent=SENT,
        onset=SENT, expires=SENT + timedelta(hours=6), headline="Gas leak",
        drill_id="drill-7" if held else None, held=held, trigger=Trigger.CREATED,
        occurred_at=SENT, categories=frozenset({"accident-disaster", "gas-leak"}), level=level,
        area_wkt=ZONE.wkt, document=b"<alert/>", signed=False, recorded_at=0.0)


def test_a_public_alert_goes_to_everyone(sharing: SharingCatalogue) -> None:
    item = AlertItem(alert())
    assert item.content_type == CAP_MEDIA_TYPE
    assert item.payload(sharing, Recipient.city_wide()) == b"<alert/>"
    assert item.payload(sharing, Recipient.department_feed("water")) == b"<alert/>"


def test_a_restricted_alert_goes_only_where_the_catalogue_allows(
        sharing: SharingCatalogue) -> None:
    item = AlertItem(alert(scope="Restricted"))
    assert item.payload(sharing, Recipient.city_wide()) is None
    assert item.payload(sharing, Recipient.department_feed("water")) is None
    for department in ("fire", "police", "emergency-management", "health"):
        assert item.payload(sharing, Recipient.department_feed(department)) == b"<alert/>"


def test_a_held_drill_alert_goes_to_nobody(sharing: SharingCatalogue) -> None:
    item = AlertItem(alert(held=True))
    assert item.payload(sharing, Recipient.city_wide()) is None
    assert item.payload(sharing, Recipient.department_feed("fire")) is None


def subscribe(subscriptions: Subscriptions, **filters: object) -> Subscription:
    subscription_id = subscriptions.subscribe(Subscribe(
        department="fire", subscription_name="fire warnings",
        filter=SubscriptionFilter(stream=Stream.WARNINGS, **filters),  # type: ignore[arg-type]
        triggers=("created", "closed"), delivery=Delivery(kind=DeliveryKind.KAFKA)),
        CommandContext(actor=ADMIN, at=SENT - timedelta(hours=1))).subject
    return subscriptions.subscription(subscription_id)


def test_a_subscription_to_warnings_filters_by_level_category_and_area(
        subscriptions: Subscriptions) -> None:
    near = Area(wkt=shapely.box(118.79, 32.05, 118.81, 32.07).wkt)
    far = Area(wkt=shapely.box(118.90, 32.10, 118.91, 32.11).wkt)
    wanted = subscribe(subscriptions, levels=frozenset({"red", "I"}),
                       categories=frozenset({"gas-leak"}), area=AreaFilter(polygon=near))
    elsewhere = subscribe(subscriptions, area=AreaFilter(polygon=far))

    def wants(subscription: Subscription, item: AlertItem,
              trigger: Trigger = Trigger.CREATED) -> bool:
        return subscription.wants(stream=Stream.WARNINGS, trigger=trigger,
                                  occurred_at=SENT, subject=item.subject, locator=None)

    assert wants(wanted, AlertItem(alert()))
    assert not wants(wanted, AlertItem(alert(level="blue")))
    assert not wants(wanted, AlertItem(alert()), Trigger.UPDATED)
    assert not wants(elsewhere, AlertItem(alert()))


def test_what_a_warnings_subscription_cannot_ask(subscriptions: Subscriptions) -> None:
    with pytest.raises(InvalidValue, match="unknown warning levels: V"):
        subscribe(subscriptions, levels=frozenset({"V"}))
    with pytest.raises(InvalidValue, match="not grid cells"):
        SubscriptionFilter(stream=Stream.WARNINGS, area=AreaFilter(grid_prefix="D01"))
    with pytest.raises(InvalidValue, match="own-department"):
        SubscriptionFilter(stream=Stream.WARNINGS, own_department=True)
    with pytest.raises(InvalidValue, match="unknown warnings categories"):
        subscribe(subscriptions, categories=frozenset({"C0101"}))
