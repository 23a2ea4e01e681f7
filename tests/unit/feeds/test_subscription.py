"""Subscriptions: a department (or an administrator for it) subscribes to a stream with a
filter, triggers and a delivery; every change is an event; a subscription matches the events
of the times it was active."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest

from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.errors import (
    CommandIdReused,
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
)
from cityops.domain.geometry import Area, GeoPoint
from cityops.feeds.commands import (
    PauseSubscription,
    ResumeSubscription,
    ReviseSubscription,
    Subscribe,
    Unsubscribe,
)
from cityops.feeds.sharing import SharingCatalogue
from cityops.feeds.streams import Stream, Trigger
from cityops.feeds.subject import Subject
from cityops.feeds.subscription import (
    AreaFilter,
    Delivery,
    DeliveryKind,
    Subscription,
    SubscriptionFilter,
    SubscriptionStatus,
)
from cityops.feeds.subscriptions import SubscriptionBook, Subscriptions

from .conftest import FixedClock, People

SECRET = "s3cret-for-webhook-signing"
KAFKA = Delivery(kind=DeliveryKind.KAFKA)
ALL = [t.value for t in Trigger]
POINT = GeoPoint(118.80, 32.05)


def subject(**facets: Any) -> Subject:
    defaults: dict[str, Any] = {"status": "reported", "categories": frozenset({"C0101"})}
    return Subject(**{**defaults, **facets})


def subscribe(subscriptions: Subscriptions, actor: Actor, *, department: str = "water",
              stream: Stream = Stream.GRID_CASES, delivery: Delivery = KAFKA,
              triggers: list[str] | None = None, **filters: Any) -> Subscription:
    subscription_id = subscriptions.subscribe(
        Subscribe(department=department, subscription_name="manhole covers",
            filter=SubscriptionFilter(stream=stream, **filters), triggers=triggers or ALL,
            delivery=delivery),
        CommandContext(actor=actor)).subject
    return subscriptions.subscription(subscription_id)


# --- who may do what ---------------------------------------------------------------------


def test_a_department_subscribes_itself_and_an_admin_any_department(
        subscriptions: Subscriptions, people: People) -> None:
    own = subscribe(subscriptions, people.water, categories=frozenset({"C0101"}))
    assert own.department == "water" and own.status is SubscriptionStatus.ACTIVE
    assert own.subscribed_by == "water-chen"
    for_police = subscribe(subscriptions, people.admin, department="police",
                           stream=Stream.HOTLINE)
    assert for_police.department == "police"
    assert [s.id for s in subscriptions.all("water")] == [own.id]
    assert {s.id for s in subscriptions.all()} == {own.id, for_police.id}


@pytest.mark.parametrize(("actor", "message"), [
    (Actor("police-ma", Role.DEPARTMENT_USER, "police"),
     "police-ma of police may not create a subscription of water"),
    (Actor("duty-zhao", Role.DISPATCHER), "dispatcher duty-zhao may not create a subscription"),
    (Actor("op-li", Role.HOTLINE_OPERATOR), "hotline-operator op-li may not create"),
])
def test_nobody_else_manages_a_departments_subscriptions(
        subscriptions: Subscriptions, actor: Actor, message: str) -> None:
    with pytest.raises(NotPermitted, match=message):
        subscribe(subscriptions, actor)
    assert subscriptions.all() == []


def test_another_department_cannot_change_or_end_it(subscriptions: Subscriptions,
                                                    people: People) -> None:
    water = subscribe(subscriptions, people.water)
    with pytest.raises(NotPermitted):
        subscriptions.handle(
            PauseSubscription(subscription_id=water.id, reason="not yours"),
            CommandContext(actor=people.police))
    with pytest.raises(NotPermitted):
        subscriptions.handle(
            Unsubscribe(subscription_id=water.id, reason="not yours"),
            CommandContext(actor=people.police))
    assert subscriptions.subscription(water.id).version == 1


# --- what is refused ------------------------------------------------------------------------


@pytest.mark.parametrize(("filters", "message"), [
    ({"stream": "weather"}, "unknown stream 'weather'"),
    ({"categories": frozenset({"C9999"})}, "unknown grid-cases categories: C9999"),
    ({"stream": Stream.INCIDENTS, "levels": frozenset({"V"})}, "unknown incident levels: V"),
    ({"levels": frozenset({"I"})}, "levels filter incidents only"),
    ({"stream": Stream.HAZARDS, "own_department": True}, "does not apply to the hazards"),
    ({"categories": "C0101"}, "must be a list"),
])
def test_a_filter_the_catalogue_does_not_allow_is_refused(
        subscriptions: Subscriptions, people: People, filters: dict[str, Any],
        message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        subscribe(subscriptions, people.admin, **filters)


@pytest.mark.parametrize(("area", "message"), [
    ({}, "exactly one of"),
    ({"grid_prefix": "D01", "bbox": (118.7, 32.0, 118.9, 32.1)}, "exactly one of"),
    ({"grid_prefix": "D01 S02"}, "letters, digits and hyphens"),
    ({"bbox": (118.9, 32.0, 118.7, 32.1)}, "minimum must be less than its maximum"),
    ({"bbox": (32.0, 118.7, 32.1, 118.9)}, "latitudes must be within -90..90"),
    ({"bbox": (118.7, 32.0, 118.9)}, "four numbers"),
    ({"bbox": (118.7, 32.0, float("nan"), 32.1)}, "finite numbers"),
])
def test_a_bad_area_is_refused(area: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        AreaFilter(**area)


@pytest.mark.parametrize(("delivery", "message"), [
    ({"kind": "carrier-pigeon"}, "unknown delivery 'carrier-pigeon'"),
    ({"kind": "kafka", "url": "http://x.example"}, "takes no URL and no secret"),
    ({"kind": "webhook", "secret": SECRET}, "needs a URL"),
    ({"kind": "webhook", "url": "ftp://x.example/h", "secret": SECRET}, "http or https"),
    ({"kind": "webhook", "url": "https:///hook", "secret": SECRET}, "has no host"),
    ({"kind": "webhook", "url": "https://u:p@x.example/h", "secret": SECRET},
     "must not carry a user name"),
    ({"kind": "webhook", "url": "https://x.example/h"}, "needs a secret"),
    ({"kind": "webhook", "url": "https://x.example/h", "secret": "short"}, "16 to 256"),
])
def test_a_bad_delivery_is_refused(delivery: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        Delivery(**delivery)


def test_plain_http_webhooks_are_refused_where_https_is_required(
        catalogue: Any, hazard_catalogue: Any, people: People) -> None:
    strict = Subscriptions({"PERSISTENCE_MODULE": "eventsourcing.popo"}, catalogue=catalogue,
                           hazard_catalogue=hazard_catalogue, require_https=True)
    plain = Delivery(kind=DeliveryKind.WEBHOOK, url="http://water.example/hook", secret=SECRET)
    with pytest.raises(InvalidValue, match="must start with https://"):
        subscribe(strict, people.water, delivery=plain)


def test_triggers_are_known_and_at_least_one(subscriptions: Subscriptions,
                                             people: People) -> None:
    with pytest.raises(InvalidValue, match="unknown trigger 'deleted'"):
        subscribe(subscriptions, people.water, triggers=["deleted"])
    with pytest.raises(InvalidValue, match="at least one trigger"):
        subscriptions.subscribe(
            Subscribe(department="water", subscription_name="n",
                filter=SubscriptionFilter(stream=Stream.GRID_CASES), triggers=[], delivery=KAFKA),
            CommandContext(actor=people.water))
    with pytest.raises(InvalidValue, match="unknown department"):
        subscribe(subscriptions, people.admin, department="ministry-of-magic")


# --- commands and history -------------------------------------------------------------------


def test_a_repeated_command_changes_nothing_and_a_reused_id_is_refused(
        subscriptions: Subscriptions, people: People) -> None:
    def create(name: str) -> Any:
        return subscriptions.subscribe(
            Subscribe(department="water", subscription_name=name,
                filter=SubscriptionFilter(stream=Stream.HOTLINE), triggers=["created"],
                delivery=KAFKA),
            CommandContext(actor=people.water, command_id="cmd-1")).subject

    first = create("hotline calls")
    assert create("hotline calls") == first
    assert len(subscriptions.all()) == 1
    with pytest.raises(CommandIdReused):
        create("something else")


def test_pause_resume_revise_and_unsubscribe_are_recorded(
        subscriptions: Subscriptions, people: People, clock: FixedClock) -> None:
    subscription = subscribe(subscriptions, people.water)
    clock.advance(hours=1)
    subscriptions.handle(
        PauseSubscription(subscription_id=subscription.id, reason="maintenance window"),
        CommandContext(actor=people.water))
    with pytest.raises(IllegalTransition, match=r"cannot pause subscription .*: it is paused"):
        subscriptions.handle(
            PauseSubscription(subscription_id=subscription.id, reason="again"),
            CommandContext(actor=people.water))
    clock.advance(hours=1)
    subscriptions.handle(
        ResumeSubscription(subscription_id=subscription.id),
        CommandContext(actor=people.water))
    webhook = Delivery(kind=DeliveryKind.WEBHOOK, url="https://water.example/hook",
                       secret=SECRET)
    subscriptions.handle(
        ReviseSubscription(subscription_id=subscription.id,
            subscription_name="covers, by webhook",
            filter=SubscriptionFilter(stream=Stream.GRID_CASES,
                                                   categories=frozenset({"C0102"})),
            triggers=["closed"], delivery=webhook, note="moved to our API"),
        CommandContext(actor=people.water))
    with pytest.raises(IllegalTransition, match="follows the grid-cases stream"):
        subscriptions.handle(
            ReviseSubscription(subscription_id=subscription.id, subscription_name="x",
                filter=SubscriptionFilter(stream=Stream.HOTLINE), triggers=["closed"],
                delivery=webhook),
            CommandContext(actor=people.water))
    clock.advance(hours=1)
    subscriptions.handle(
        Unsubscribe(subscription_id=subscription.id, reason="system retired"),
        CommandContext(actor=people.admin))
    with pytest.raises(IllegalTransition):
        subscriptions.handle(
            ResumeSubscription(subscription_id=subscription.id),
            CommandContext(actor=people.admin))
    final = subscriptions.subscription(subscription.id)
    assert final.status is SubscriptionStatus.CANCELLED
    summary = final.summary()
    assert summary["filter"]["categories"] == ["C0102"]
    assert summary["triggers"] == ["closed"]
    assert summary["delivery"]["url"] == "https://water.example/hook"
    assert SECRET not in str(summary)
    assert summary["delivery"]["secret_fingerprint"] == webhook.secret_fingerprint
    assert len(summary["active_periods"]) == 2 and summary["end_reason"] == "system retired"
    names = [type(e).__name__ for e in subscriptions.events.get(subscription.id)]
    assert names == ["Subscribed", "Paused", "Resumed", "Revised", "Unsubscribed"]
    assert subscriptions.all(include_cancelled=False) == []


def test_an_unknown_subscription_is_not_found(subscriptions: Subscriptions,
                                              people: People) -> None:
    with pytest.raises(NotFound, match=r"subscription .* does not exist"):
        subscriptions.handle(
            PauseSubscription(subscription_id=uuid4(), reason="x"),
            CommandContext(actor=people.admin))


def test_the_book_reloads_only_when_subscriptions_changed(
        subscriptions: Subscriptions, people: People) -> None:
    book = SubscriptionBook(subscriptions)
    assert book.current() == []
    first = subscribe(subscriptions, people.water)
    loaded = book.current()
    assert [s.id for s in loaded] == [first.id]
    assert book.current()[0] is loaded[0]  # not reloaded
    subscriptions.handle(
        PauseSubscription(subscription_id=first.id, reason="x"),
        CommandContext(actor=people.water))
    assert book.current()[0].status is SubscriptionStatus.PAUSED


# --- matching --------------------------------------------------------------------------------


def test_a_subscription_matches_only_events_of_its_active_periods(
        subscriptions: Subscriptions, people: People, clock: FixedClock) -> None:
    start = clock.now
    subscription = subscribe(subscriptions, people.water, triggers=["created", "closed"])
    clock.advance(hours=2)
    subscriptions.handle(
        PauseSubscription(subscription_id=subscription.id, reason="x"),
        CommandContext(actor=people.water))
    clock.advance(hours=2)
    subscriptions.handle(
        ResumeSubscription(subscription_id=subscription.id),
        CommandContext(actor=people.water))
    subscription = subscriptions.subscription(subscription.id)

    def wants(at_hours: float, trigger: Trigger = Trigger.CREATED,
              stream: Stream = Stream.GRID_CASES) -> bool:
        return subscription.wants(stream=stream, trigger=trigger,
                                  occurred_at=start + timedelta(hours=at_hours),
                                  subject=subject(), locator=None)

    assert not wants(-1)  # before it existed
    assert wants(0) and wants(1)
    assert not wants(3)  # paused
    assert wants(5)
    assert not wants(1, Trigger.UPDATED)
    assert wants(1, Trigger.CLOSED)
    assert not wants(1, stream=Stream.HOTLINE)


def test_filters_match_categories_levels_departments_and_areas(demo_city: Any) -> None:
    locator = demo_city.map
    cell = demo_city.map.cells.iloc[0]
    inside = cell.geometry.representative_point()
    point = GeoPoint(inside.x, inside.y)
    code = str(cell["code"])  # D01-S01-C01-0001
    incident = subject(categories=frozenset({"accident-disaster", "fire"}), level="II",
                       point=point, departments=frozenset({"fire", "health"}))

    def matches(department: str = "fire", **filters: Any) -> bool:
        return SubscriptionFilter(stream=Stream.INCIDENTS, **filters).matches(
            incident, department, locator)

    assert matches()
    assert matches(categories=frozenset({"fire", "flood"}))
    assert not matches(categories=frozenset({"flood"}))
    assert matches(levels=frozenset({"I", "II"}))
    assert not matches(levels=frozenset({"III", "IV"}))
    assert matches(own_department=True)
    assert not matches("water", own_department=True)
    # The incident records no grid cell: a grid prefix filter locates its point.
    assert matches(area=AreaFilter(grid_prefix="D01-S01"))
    assert matches(area=AreaFilter(grid_prefix=code))
    assert not matches(area=AreaFilter(grid_prefix="D01-S0"))  # prefixes end at a hyphen
    assert not matches(area=AreaFilter(grid_prefix="D02"))
    box = (point.lon - 0.001, point.lat - 0.001, point.lon + 0.001, point.lat + 0.001)
    assert matches(area=AreaFilter(bbox=box))
    far = (point.lon + 0.01, point.lat, point.lon + 0.02, point.lat + 0.01)
    assert not matches(area=AreaFilter(bbox=far))
    polygon = Area(wkt=f"POLYGON(({far[0]} {far[1]}, {far[2]} {far[1]}, {far[2]} {far[3]}, "
                       f"{far[0]} {far[3]}, {far[0]} {far[1]}))")
    assert not matches(area=AreaFilter(polygon=polygon))
    spreading = subject(categories=frozenset({"fire"}), point=point,
                        area=Area(wkt=f"POLYGON(({point.lon} {point.lat}, {far[0] + 0.001} "
                                      f"{point.lat}, {far[0] + 0.001} {far[1] + 0.001}, "
                                      f"{point.lon} {point.lat}))"))
    assert SubscriptionFilter(stream=Stream.INCIDENTS, area=AreaFilter(polygon=polygon)
                              ).matches(spreading, "fire", locator)
    recorded = subject(grid_cell="D03-S02-C04-0007", point=point)
    assert SubscriptionFilter(stream=Stream.GRID_CASES, area=AreaFilter(grid_prefix="D03")
                              ).matches(recorded, "water", locator)


@pytest.mark.parametrize("stream", [Stream.GRID_CASES, Stream.HOTLINE, Stream.RESOURCES])
def test_a_department_subscribed_to_a_whole_stream_gets_only_its_own_items(
        stream: Stream, sharing: SharingCatalogue) -> None:
    # Reproduction (issue 9, item 8): water, subscribed to every hotline ticket, received
    # the tickets routed to roads (description and location) that REST hides from it.
    roads_item = frozenset({"roads"})
    assert not sharing.in_scope(stream, roads_item, "water")
    assert not sharing.in_scope(stream, frozenset(), "water")  # not routed yet
    assert sharing.in_scope(stream, frozenset({"water"}), "water")
    assert sharing.in_scope(stream, roads_item, "roads")
    # The centre's own departments' systems see every item.
    assert sharing.in_scope(stream, roads_item, "hotline")
    assert sharing.in_scope(stream, frozenset(), "command-centre")


def test_incidents_and_hazards_are_shared_by_filter_not_by_task(
        sharing: SharingCatalogue) -> None:
    # Departments subscribe to incidents before they have a task there (the domain's
    # information-sharing rules); their conditional fields stay with the catalogue.
    assert sharing.in_scope(Stream.INCIDENTS, frozenset({"health"}), "fire")
    assert sharing.in_scope(Stream.HAZARDS, frozenset(), "fire")


def test_filters_survive_their_stored_form() -> None:
    polygon = Area(wkt="POLYGON((118.7 32.0, 118.8 32.0, 118.8 32.1, 118.7 32.0))")
    for area in (AreaFilter(grid_prefix="D01"), AreaFilter(bbox=(118.7, 32.0, 118.9, 32.1)),
                 AreaFilter(polygon=polygon), None):
        original = SubscriptionFilter(stream=Stream.INCIDENTS, categories=frozenset({"fire"}),
                                      area=area, levels=frozenset({"I"}), own_department=True)
        assert SubscriptionFilter.from_fact(original.as_fact()) == original
    shown = AreaFilter(polygon=polygon).as_dict()
    assert shown["polygon"]["type"] == "Polygon"
