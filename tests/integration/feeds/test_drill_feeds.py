"""A drill's feeds stay in the drill, on both back ends: with a live department's webhook and
a drill department's webhook (real HTTP receivers checking every signature) and a drill in
progress, the drill's subscriber gets the drill's events (the history replayed into it and
what participants do in it), every one marked as the drill's, and nothing of live; the live
subscriber gets live events only, unmarked. On Kafka, a drill publishes under its own topic
prefix, every message marked, and the live topics carry nothing of it. Deleting the drill
stops its feed and removes its topics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from kafka import KafkaAdminClient

from cityops.bootstrap import CitySystem, build_system
from cityops.domain.actors import Actor, Role
from cityops.domain.commands import CommandContext
from cityops.domain.drills.commands import DeleteDrill, JumpDrillForward, StartDrill
from cityops.domain.geometry import GeoPoint
from cityops.domain.hotline.commands import ReceiveTicket
from cityops.drills import DRILL_HEADER, DrillRoom
from cityops.feeds.commands import Subscribe
from cityops.feeds.kafka_feed import FeedTopics
from cityops.feeds.service import FeedService
from cityops.feeds.streams import Stream
from cityops.feeds.subscription import Delivery, DeliveryKind, SubscriptionFilter
from cityops.settings import Settings

from .conftest import Cast, WebhookReceiver, feed_settings, read_committed, wait_until

PLANNER = CommandContext(actor=Actor("planner-1", Role.PLANNER))
DRILL_KAFKA_HEADER = "cityops-drill"
Receivers = Callable[[str], WebhookReceiver]
OpenFeeds = Callable[..., FeedService]


def hook(feeds: FeedService, cast: Cast, receiver: WebhookReceiver) -> UUID:
    """The hotline's own system subscribes to every ticket (all in its scope), by webhook
    and on its Kafka topic."""
    subscription_id: UUID = feeds.subscriptions.subscribe(
        Subscribe(department="hotline", subscription_name="hotline system",
                  filter=SubscriptionFilter(stream=Stream.HOTLINE),
                  triggers=["created", "updated", "closed"],
                  delivery=Delivery(kind=DeliveryKind.WEBHOOK, url=receiver.url,
                                    secret=receiver.secret)),
        CommandContext(actor=cast.admin)).subject
    return subscription_id


def call(system: CitySystem, cast: Cast, point: GeoPoint, text: str) -> UUID:
    ticket: UUID = system.hotline.handle(
        ReceiveTicket(channel="phone", ticket_type="complaint", topic="noise", description=text,
                      caller_name="Zhang San", caller_phone="13812345678", location=point),
        CommandContext(actor=cast.operator)).subject
    return ticket


def tickets(receiver: WebhookReceiver) -> set[str]:
    return {r.message["aggregate_id"] for r in receiver.accepted()}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres,
                                                                  pytest.mark.kafka])])
def live(request: pytest.FixtureRequest, tmp_path: Path, demo_city: Any) -> Iterator[CitySystem]:
    """The live city, on each back end (on PostgreSQL with the Kafka feed too), with feed
    topics of this test's own."""
    url = bootstrap = None
    prefix = "unused"
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_database")
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        prefix = request.getfixturevalue("topic_prefix")
    settings = Settings(data_dir=tmp_path / "live", database_url=url,
                        kafka_bootstrap_servers=bootstrap, feeds=feed_settings(prefix))
    system = build_system(settings, city=demo_city)
    yield system
    system.close()


def test_a_drills_feed_goes_only_to_the_drills_subscribers_marked_as_the_drill(
        live: CitySystem, open_feeds: OpenFeeds, webhook_receiver: Receivers, cast: Cast,
        cell_points: list[tuple[str, GeoPoint]], request: pytest.FixtureRequest) -> None:
    live_feeds = open_feeds(live, live.settings.feeds)
    live_feeds.start()
    live_receiver = webhook_receiver("live-hotline-webhook-secret")
    drill_receiver = webhook_receiver("drill-hotline-webhook-secret")
    hook(live_feeds, cast, live_receiver)
    window_from = live.clock() - timedelta(seconds=60)
    # A call of live history, which the drill replays.
    replayed = call(live, cast, cell_points[1][1], "before the drill")
    room = DrillRoom(live)
    try:
        drill_id = uuid4()
        window_to = live.clock()
        room.handle(StartDrill(drill_id=drill_id, title="feeds drill",
                               window_from=window_from, window_to=window_to, speed=1.0,
                               participants=("op-li",)), PLANNER)
        run = room.run_of(drill_id)
        assert run is not None
        # The drill's own department subscribes in the drill (its clock is still before
        # the replayed call), then the drill jumps to its window's end.
        hook(run.feeds, cast, drill_receiver)
        room.handle(JumpDrillForward(drill_id=drill_id, to=window_to, current=window_to),
                    PLANNER)
        wait_until(lambda: room.view(drill_id).summary()["window_replayed"], 60,
                   "the window to be replayed")
        # A participant takes a call in the drill; live takes a call of its own.
        in_drill = call(run.system, cast, cell_points[2][1], "in the drill")
        in_live = call(live, cast, cell_points[3][1], "live, while the drill runs")
        wait_until(lambda: tickets(drill_receiver) >= {str(replayed), str(in_drill)}, 60,
                   "the drill's subscriber to get the drill's calls")
        wait_until(lambda: tickets(live_receiver) >= {str(replayed), str(in_live)}, 60,
                   "the live subscriber to get the live calls")
        time.sleep(1.5)  # anything that should not come would have come by now

        assert tickets(drill_receiver) == {str(replayed), str(in_drill)}
        assert tickets(live_receiver) == {str(replayed), str(in_live)}
        for received in drill_receiver.all_requests():
            assert received.signature_ok
            assert received.message["drill"] == str(drill_id)
            assert received.headers[DRILL_HEADER] == str(drill_id)
        for received in live_receiver.all_requests():
            assert received.signature_ok
            assert "drill" not in received.message
            assert DRILL_HEADER not in received.headers
        # Each delivery log is its own system's.
        assert live_feeds.delivery_log.counts()["delivered"] == len(live_receiver.accepted())
        assert run.feeds.delivery_log.counts()["delivered"] == len(drill_receiver.accepted())

        if live.settings.kafka_bootstrap_servers:
            _check_kafka(live, run.feeds, drill_id, replayed, in_drill, in_live)
        room.handle(DeleteDrill(drill_id=drill_id), PLANNER)
        assert not any(loop.is_alive() for loop in run.feeds.loops)
        if live.settings.kafka_bootstrap_servers:
            admin: KafkaAdminClient = request.getfixturevalue("kafka_admin")
            drill_prefix = run.feeds.topics.prefix
            wait_until(lambda: not [t for t in admin.list_topics()
                                    if t.startswith(f"{drill_prefix}.")], 30,
                       "the deleted drill's topics to be removed")
    finally:
        room.close()


def _check_kafka(live: CitySystem, drill_feeds: FeedService, drill_id: UUID, replayed: UUID,
                 in_drill: UUID, in_live: UUID) -> None:
    bootstrap = str(live.settings.kafka_bootstrap_servers)
    live_topics = FeedTopics(live.settings.feeds.topic_prefix)
    drill_topics = drill_feeds.topics
    assert drill_topics.prefix == f"{live_topics.prefix}.drill-{drill_id.hex[:12]}"

    def published(topics: FeedTopics) -> list[Any]:
        return read_committed(bootstrap, topics.stream(Stream.HOTLINE))

    wait_until(lambda: {m.body["aggregate_id"] for m in published(drill_topics)}
               >= {str(replayed), str(in_drill)}, 60, "the drill's Kafka feed")
    wait_until(lambda: {m.body["aggregate_id"] for m in published(live_topics)}
               >= {str(replayed), str(in_live)}, 60, "the live Kafka feed")
    drill_messages = published(drill_topics)
    assert str(in_live) not in {m.body["aggregate_id"] for m in drill_messages}
    assert all(m.body["drill"] == str(drill_id) for m in drill_messages)
    assert all((DRILL_KAFKA_HEADER, str(drill_id).encode()) in m.headers
               for m in drill_messages)
    live_messages = published(live_topics)
    assert str(in_drill) not in {m.body["aggregate_id"] for m in live_messages}
    assert all("drill" not in m.body for m in live_messages)
    assert not any(name == DRILL_KAFKA_HEADER for m in live_messages for name, _ in m.headers)
