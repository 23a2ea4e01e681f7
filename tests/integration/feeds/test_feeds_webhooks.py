"""Webhooks against a real local HTTP server that checks every signature: retries with
backoff, the delivery log, dead letters and redelivery, order per aggregate, isolation of a
slow endpoint (from the Kafka feed and from other subscriptions), and the embedded default
without Kafka."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest

from cityops.bootstrap import CitySystem
from cityops.domain.commands import CommandContext
from cityops.domain.errors import IllegalTransition, NotFound
from cityops.domain.geometry import GeoPoint
from cityops.domain.gridcases.commands import (
    CloseCase,
    DispatchCase,
    HandleCase,
    RegisterCase,
    ReportCase,
    VerifyCase,
)
from cityops.domain.hotline.commands import ReceiveTicket
from cityops.feeds.commands import (
    Subscribe,
)
from cityops.feeds.kafka_feed import FeedTopics
from cityops.feeds.service import FeedService
from cityops.feeds.streams import Stream
from cityops.feeds.subscription import Delivery, DeliveryKind, SubscriptionFilter
from cityops.feeds.webhooks import DeliveryState

from .conftest import (
    Cast,
    WebhookReceiver,
    feed_settings,
    read_committed,
    wait_until,
)

SECRET = "police-dispatch-webhook-secret"
ALL = ["created", "updated", "closed"]
Receivers = Callable[[str], WebhookReceiver]
OpenFeeds = Callable[..., FeedService]


def hook(feeds: FeedService, cast: Cast, department: str, stream: Stream,
         receiver: WebhookReceiver, **filters: Any) -> UUID:
    subscription_id: UUID = feeds.subscriptions.subscribe(
        Subscribe(department=department, subscription_name=f"{department} system",
            filter=SubscriptionFilter(stream=stream, **filters), triggers=ALL,
            delivery=Delivery(kind=DeliveryKind.WEBHOOK, url=receiver.url,
                          secret=receiver.secret)),
        CommandContext(actor=cast.admin)).subject
    return subscription_id


def call(system: CitySystem, cast: Cast, point: GeoPoint, text: str = "noise") -> UUID:
    ticket: UUID = system.hotline.handle(
        ReceiveTicket(channel="phone", ticket_type="complaint", topic="noise", description=text,
                      caller_name="Zhang San", caller_phone="13812345678", location=point),
        CommandContext(actor=cast.operator)).subject
    return ticket


def states(feeds: FeedService, subscription_id: UUID) -> list[dict[str, Any]]:
    rows, _ = feeds.delivery_log.deliveries(subscription_id, limit=500)
    return rows


@pytest.mark.postgres
def test_a_webhook_is_signed_retried_with_backoff_and_logged(
        pg_system: CitySystem, webhook_receiver: Receivers, open_feeds: OpenFeeds, cast: Cast,
        cell_points: list[tuple[str, GeoPoint]]) -> None:
    police = webhook_receiver(SECRET)
    police.fail_next(2, status=503)
    feeds = open_feeds(pg_system, feed_settings("unused", webhook_backoff_base_s=0.3))
    # The hotline's own system: every ticket is in its scope (a department's feed gets only
    # the tickets routed to it).
    subscription = hook(feeds, cast, "hotline", Stream.HOTLINE, police)
    ticket = call(pg_system, cast, cell_points[3][1])
    feeds.start()
    try:
        wait_until(lambda: len(police.accepted()) == 1, 30, "the delivery to succeed")
        wait_until(lambda: states(feeds, subscription)[0]["state"] == "delivered", 10,
                   "the delivery to be logged")
    finally:
        feeds.stop()

    requests = police.all_requests()
    assert [r.status for r in requests] == [503, 503, 200]
    assert all(r.signature_ok for r in requests)
    assert len({r.headers["X-CityOps-Delivery"] for r in requests}) == 1
    assert {r.headers["X-CityOps-Event"] for r in requests} == {f"{ticket}:1"}
    assert requests[0].headers["Content-Type"] == "application/json"
    # Backoff: at least half of each step (0.3 s, then 0.6 s) passed between attempts.
    assert requests[1].arrived - requests[0].arrived >= 0.15
    assert requests[2].arrived - requests[1].arrived >= 0.3
    message = requests[2].message
    assert message["event_type"] == "HotlineTicket.Received"
    assert message["data"]["caller_name"] == "Zhang San"  # the hotline may have it
    assert message["subscription_id"] == str(subscription)
    assert message["delivery_id"] == requests[2].headers["X-CityOps-Delivery"]
    (logged,) = states(feeds, subscription)
    assert logged["attempts"] == 3 and logged["last_status"] == 200
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in logged["attempt_log"]] == [
        (1, 503, "retry"), (2, 503, "retry"), (3, 200, "delivered")]
    assert all(a["url"] == police.url for a in logged["attempt_log"])


@pytest.mark.postgres
def test_a_failing_webhook_is_dead_lettered_and_can_be_redelivered(
        pg_system: CitySystem, webhook_receiver: Receivers, open_feeds: OpenFeeds, cast: Cast,
        cell_points: list[tuple[str, GeoPoint]]) -> None:
    broken = webhook_receiver(SECRET)
    broken.always = 500
    gone = webhook_receiver("hotline-centre-webhook-secret")
    gone.always = 404
    feeds = open_feeds(pg_system, feed_settings(
        "unused", webhook_max_attempts=3, webhook_backoff_base_s=0.05))
    police = hook(feeds, cast, "command-centre", Stream.HOTLINE, broken)
    centre = hook(feeds, cast, "hotline", Stream.HOTLINE, gone)
    call(pg_system, cast, cell_points[4][1])
    feeds.start()
    try:
        wait_until(lambda: [r["state"] for r in states(feeds, police) + states(feeds, centre)]
                   == ["dead-lettered", "dead-lettered"], 30, "both to be dead-lettered")
        (dead,) = states(feeds, police)
        assert dead["last_error"] == "HTTP 500: gave up after 3 attempts"
        assert len(broken.all_requests()) == 3
        (refused,) = states(feeds, centre)
        assert refused["last_error"] == "HTTP 404: not retried"
        assert len(gone.all_requests()) == 1
        assert feeds.delivery_log.counts()["dead-lettered"] == 2

        # The endpoint is fixed: an operator redelivers the dead letter.
        broken.always = None
        with pytest.raises(NotFound, match=r"webhook delivery .* does not exist"):
            feeds.delivery_log.redeliver(police, str(UUID(int=0)), now=feeds.clock())
        feeds.delivery_log.redeliver(police, dead["delivery_id"], now=feeds.clock())
        wait_until(lambda: states(feeds, police)[0]["state"] == "delivered", 30,
                   "the redelivery")
        with pytest.raises(IllegalTransition, match=r"cannot redeliver .*: it is delivered"):
            feeds.delivery_log.redeliver(police, dead["delivery_id"], now=feeds.clock())
    finally:
        feeds.stop()
    (delivered,) = states(feeds, police)
    assert delivered["attempts"] == 4
    assert [a["outcome"] for a in delivered["attempt_log"]] == [
        "retry", "retry", "dead-lettered", "delivered"]
    assert [r.status for r in broken.all_requests()] == [500, 500, 500, 200]


@pytest.mark.postgres
@pytest.mark.kafka
def test_a_slow_webhook_holds_up_neither_the_kafka_feed_nor_other_subscriptions(
        pg_kafka_system: CitySystem, topic_prefix: str, kafka_bootstrap: str,
        webhook_receiver: Receivers, open_feeds: OpenFeeds, cast: Cast,
        cell_points: list[tuple[str, GeoPoint]]) -> None:
    slow = webhook_receiver(SECRET)
    slow.hold()  # answers nothing until released
    fast = webhook_receiver("hotline-centre-webhook-secret")
    feeds = open_feeds(pg_kafka_system, feed_settings(topic_prefix,
                                                              webhook_timeout_s=30.0))
    hook(feeds, cast, "command-centre", Stream.HOTLINE, slow)
    hook(feeds, cast, "hotline", Stream.HOTLINE, fast)
    tickets = [call(pg_kafka_system, cast, point, f"noise {i}")
               for i, (_, point) in enumerate(cell_points[:5])]
    topic = FeedTopics(topic_prefix).stream(Stream.HOTLINE)
    feeds.start()
    try:
        wait_until(lambda: len(read_committed(kafka_bootstrap, topic)) == 5, 30,
                   "the Kafka feed while the slow endpoint holds a request")
        wait_until(lambda: len(fast.accepted()) == 5, 30,
                   "the other subscription while the slow endpoint holds a request")
        # Still holding its first request: one at a time, nothing answered yet.
        assert slow.holding == 1 and slow.all_requests() == []
        slow.release()
        wait_until(lambda: len(slow.accepted()) == 5, 30, "the slow endpoint to catch up")
    finally:
        slow.release()
        feeds.stop()
    assert {r.message["aggregate_id"] for r in slow.accepted()} == {str(t) for t in tickets}


def test_webhooks_work_without_kafka_on_the_embedded_stores_in_order_per_aggregate(
        embedded_system: CitySystem, webhook_receiver: Receivers, open_feeds: OpenFeeds,
        cast: Cast,
        cell_points: list[tuple[str, GeoPoint]]) -> None:
    water = webhook_receiver("water-company-webhook-secret")
    water.fail_next(1)  # the first delivery is retried; the case's later events wait for it
    feeds = open_feeds(embedded_system, feed_settings("unused"))
    hook(feeds, cast, "water", Stream.GRID_CASES, water, own_department=True)
    system = embedded_system
    case = system.grid_cases.handle(
        ReportCase(source="inspector", category="C0101", description="cover missing",
                   location=cell_points[7][1]),
        CommandContext(actor=cast.patroller(system, cell_points[7][1]))).subject
    system.grid_cases.handle(RegisterCase(case_id=case), CommandContext(actor=cast.dispatcher))
    system.grid_cases.handle(DispatchCase(case_id=case), CommandContext(actor=cast.dispatcher))
    system.grid_cases.handle(
        HandleCase(case_id=case, result="cover replaced"),
        CommandContext(actor=cast.water))
    system.grid_cases.handle(
        VerifyCase(case_id=case, fixed=True),
        CommandContext(actor=cast.dispatcher))
    system.grid_cases.handle(CloseCase(case_id=case), CommandContext(actor=cast.dispatcher))
    other = system.grid_cases.handle(
        ReportCase(source="inspector", category="C0101", description="not yet dispatched",
                   location=cell_points[8][1]),
        CommandContext(actor=cast.patroller(system, cell_points[8][1]))).subject
    feeds.start()
    try:
        assert feeds.kafka is None
        assert feeds.status()["kafka"] is None
        wait_until(lambda: len(water.accepted()) == 4, 30, "the water company's webhooks")
    finally:
        feeds.stop()
    accepted = [r.message for r in water.accepted()]
    # Dispatched to water from version 3 on: dispatched, handled, verified, closed, in order.
    assert [(m["aggregate_id"], m["version"]) for m in accepted] == [
        (str(case), v) for v in (3, 4, 5, 6)]
    assert [m["event_type"] for m in accepted] == [
        "GridCase.Dispatched", "GridCase.Handled", "GridCase.Verified", "GridCase.Closed"]
    assert str(other) not in {m["aggregate_id"] for m in accepted}
    assert [r.status for r in water.all_requests()][:2] == [503, 200]
    status = feeds.status()
    assert status["streams"]["grid-cases"]["webhook_lag"] == 0
    assert status["webhook_deliveries"][DeliveryState.DELIVERED.value] == 4


def test_a_destination_no_longer_allowed_is_refused_when_a_delivery_connects(
        embedded_system: CitySystem, webhook_receiver: Receivers, open_feeds: OpenFeeds,
        cast: Cast, cell_points: list[tuple[str, GeoPoint]]) -> None:
    """A subscription set while the deployment allowed the destination (or whose name then
    resolved to a public address) is checked again at every delivery: nothing is sent to a
    destination refused now, and the log says only that it was refused (issue 10 item 5)."""
    internal = webhook_receiver("water-company-webhook-secret")
    allowed = open_feeds(embedded_system, feed_settings("unused"))
    # The centre's own feed: a case just reported is in no other department's scope.
    subscription = hook(allowed, cast, "command-centre", Stream.GRID_CASES, internal)
    feeds = open_feeds(embedded_system, feed_settings("unused",
                                                      webhook_allowed_destinations=[]))
    embedded_system.grid_cases.handle(
        ReportCase(source="inspector", category="C0101", description="cover missing",
                   location=cell_points[7][1]),
        CommandContext(actor=cast.inspector))
    feeds.start()
    try:
        # One delivery per event of the report (an inspector reporting outside their cells
        # records two).
        wait_until(lambda: {d["state"] for d in states(feeds, subscription)}
                   == {DeliveryState.DEAD_LETTERED.value}, 30, "the deliveries to be refused")
    finally:
        feeds.stop()
    assert internal.all_requests() == []
    for refused in states(feeds, subscription):
        assert refused["last_error"] == "destination refused: not retried"
        assert [(a["status_code"], a["error"]) for a in refused["attempt_log"]] == [
            (None, "destination refused")]
