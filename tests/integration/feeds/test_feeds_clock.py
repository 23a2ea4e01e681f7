"""The feeds on the demo's clock: subscriptions are stamped by the system's clock, which also
stamps the events, so a subscription made during the demo's day gets that day's events by
webhook (it used to be stamped with the wall clock, hours after the simulated events: no
webhook was ever delivered in the demo). The webhook's own transport keeps real time: a
receiver checks the signature's timestamp against its own clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.commands import CommandContext
from cityops.domain.hotline.commands import ReceiveTicket
from cityops.feeds.commands import (
    Subscribe,
)
from cityops.feeds.service import FeedService
from cityops.feeds.streams import Stream
from cityops.feeds.subscription import Delivery, DeliveryKind, SubscriptionFilter
from cityops.settings import Settings
from cityops.simulator import SimulatedClock

from .conftest import Cast, WebhookReceiver, feed_settings, wait_until

SECRET = "police-dispatch-webhook-secret"


@pytest.fixture
def demo_clock() -> SimulatedClock:
    """As `cityops demo` runs: a day that started hours before the wall clock's now, at 60x."""
    return SimulatedClock(datetime.now(UTC) - timedelta(hours=7), 60.0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def demo_system(request: pytest.FixtureRequest, tmp_path: Path, demo_city: Any,
                demo_clock: SimulatedClock) -> Iterator[CitySystem]:
    if request.param == "sqlite":
        settings = Settings(data_dir=tmp_path / "embedded")
    else:
        settings = Settings(database_url=request.getfixturevalue("fresh_database"),
                            data_dir=tmp_path / "data")
    system = build_system(settings, city=demo_city, clock=demo_clock)
    yield system
    system.close()


def test_a_webhook_is_delivered_on_the_demos_clock(
        demo_system: CitySystem, demo_clock: SimulatedClock,
        webhook_receiver: Callable[[str], WebhookReceiver],
        open_feeds: Callable[..., FeedService], cast: Cast,
        cell_points: list[Any]) -> None:
    police = webhook_receiver(SECRET)
    feeds = open_feeds(demo_system, feed_settings("unused"))
    # The hotline's own system: a department feed gets only the tickets in its scope, and a
    # ticket just received is in the hotline's alone.
    subscription_id = feeds.subscriptions.subscribe(
        Subscribe(department="hotline", subscription_name="hotline system",
            filter=SubscriptionFilter(stream=Stream.HOTLINE), triggers=["created"],
            delivery=Delivery(kind=DeliveryKind.WEBHOOK, url=police.url, secret=SECRET)),
        CommandContext(actor=cast.admin)).subject
    ticket = demo_system.hotline.handle(
        ReceiveTicket(channel="phone", ticket_type="complaint", topic="noise",
                      description="music at 2am", caller_name="Zhang San",
                      caller_phone="13812345678", location=cell_points[3][1]),
        CommandContext(actor=cast.operator)).subject
    feeds.start()
    try:
        wait_until(lambda: len(police.accepted()) == 1, 30, "the webhook to be delivered")
    finally:
        feeds.stop()
    subscribed_at = feeds.subscriptions.subscription(subscription_id).subscribed_at
    assert abs(subscribed_at - demo_clock()) < timedelta(minutes=30), "the system's clock"
    (delivered,) = police.accepted()
    assert delivered.signature_ok  # signed on real time: the receiver's clock agrees
    assert delivered.message["aggregate_id"] == str(ticket)
