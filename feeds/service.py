"""The feeds of one CityOps process, wired from the city system and the feed settings: the
subscriptions, the sharing catalogue and the delivery log (the web app needs those), and
the three loops of the feed process (`cityops feeds run`):

- the Kafka publisher, when `CITYOPS_KAFKA_BOOTSTRAP_SERVERS` is set (embedded default:
  not started, nothing else changes);
- the webhook outbox, which turns events into webhook deliveries;
- the webhook deliverer, which sends them;
- the CAP alert log, which writes the CAP 1.2 document of each message of the warning desk
  (the warnings stream the Kafka publisher and the webhook outbox then carry).

Each loop runs in its own thread, so a broker outage does not hold up webhooks and a slow
endpoint holds up neither the outbox nor Kafka.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from eventsourcing.application import Application

from cityops.domain.catalogue import Catalogue
from cityops.domain.clock import Clock, SecondsClock, real_seconds
from cityops.domain.hazards.catalogue import HazardCatalogue
from cityops.domain.sharing import SharingPolicy
from cityops.domain.warnings.application import Warnings
from cityops.feeds.cap_publishing import CAP_ALERTS_SOURCE, CapAlertLog, CapAlertReader
from cityops.feeds.cap_signing import AlertSigner
from cityops.feeds.destinations import DestinationPolicy
from cityops.feeds.events import LogReader, StreamReader
from cityops.feeds.kafka_feed import (
    FeedTopics,
    KafkaFeedPublisher,
    PublisherFenced,
    read_published_positions,
)
from cityops.feeds.settings import FeedSettings
from cityops.feeds.sharing import SharingCatalogue
from cityops.feeds.streams import Stream, iter_specs
from cityops.feeds.subscriptions import SubscriptionBook, Subscriptions
from cityops.feeds.webhooks import (
    OUTBOX_PROJECTION,
    DeliveryLog,
    RetryPolicy,
    WebhookDeliverer,
    WebhookOutbox,
)
from cityops.settings import Settings
from cityops.storage import (
    PostgresListener,
    PostgresReadStore,
    ReadStore,
    SqliteReadStore,
    positions,
    set_position,
)

log = logging.getLogger(__name__)

KAFKA_POSITIONS_MIRROR = "cityops-feeds-kafka"
"""The Kafka publisher's committed positions, copied into the feed store for monitoring."""


class FeedLoop(threading.Thread):
    """Runs `step` until stopped: again at once while it finds work, after `idle` while it
    does not, and after `restart_delay_s` when it fails (it is then started afresh)."""

    def __init__(self, name: str, step: Callable[[], bool], *, idle: Callable[[float], object],
                 poll_interval_s: float, restart_delay_s: float,
                 on_failure: Callable[[], None] = lambda: None) -> None:
        super().__init__(name=name, daemon=True)
        self.step = step
        self.idle = idle
        self.poll_interval_s = poll_interval_s
        self.restart_delay_s = restart_delay_s
        self.on_failure = on_failure
        self.stopping = threading.Event()
        self.failures = 0
        self.last_error: str | None = None

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                busy = self.step()
            except PublisherFenced as error:
                self.last_error = str(error)
                log.error("%s: %s", self.name, error)
                return
            except Exception as error:
                self.failures += 1
                self.last_error = f"{type(error).__name__}: {error}"
                log.exception("%s failed; starting again in %.1f s", self.name,
                              self.restart_delay_s)
                self.on_failure()
                self.stopping.wait(self.restart_delay_s)
                continue
            if not busy:
                self.idle(self.poll_interval_s)


class Nudge:
    """Wakes an idle loop before its poll interval is over (work known to be waiting)."""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping
        self.event = threading.Event()

    def set(self) -> None:
        self.event.set()

    def wait(self, timeout_s: float) -> None:
        if not self.stopping.is_set():
            self.event.wait(timeout_s)
        self.event.clear()


if TYPE_CHECKING:
    from cityops.maps.city import City


class FeedSources(Protocol):
    """What the feeds read of the system (the composition root hands them the whole
    `CitySystem`, which has all of it)."""

    @property
    def applications(self) -> list[Application[Any]]:
        """The streams' applications, whose notification logs the feeds follow."""

    settings: Settings
    """The stores (for the feeds' own tables and subscriptions) and the broker."""

    city: City
    """The city map: where an event happened, for subscriptions by area."""

    catalogue: Catalogue
    """Categories and departments, which subscriptions are checked against."""

    hazard_catalogue: HazardCatalogue
    """Hazard categories, which subscriptions are checked against."""

    sharing: SharingPolicy
    """Which field each recipient may receive."""

    warnings: Warnings
    """The warning desk, whose messages the CAP alert log writes as CAP 1.2 alerts."""

    @property
    def clock(self) -> Clock:
        """The system's clock, which stamps the events and the subscriptions."""


@dataclass
class FeedService:
    """Everything of the feeds in one process (see the module docstring)."""

    settings: FeedSettings
    system: FeedSources
    catalogue: SharingCatalogue
    subscriptions: Subscriptions
    book: SubscriptionBook
    delivery_log: DeliveryLog
    store: ReadStore
    """The feeds' own tables (webhook outbox, delivery log, outbox positions)."""
    topics: FeedTopics
    cap_alerts: CapAlertLog
    """The warnings' CAP alerts (written by the feed process, read by the public routes)."""
    clock: SecondsClock = real_seconds
    """The webhooks' transport clock: real time on purpose, whatever the city's clock says
    (retry and lease timers count real seconds, and a receiver checks a signature's
    timestamp against its own clock). What subscriptions match is decided on the system's
    clock, which stamps both the events and the subscriptions."""
    loops: list[FeedLoop] = field(default_factory=list)
    kafka: KafkaFeedPublisher | None = None
    outbox: WebhookOutbox | None = None
    deliverer: WebhookDeliverer | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _nudges: dict[str, Nudge] = field(default_factory=dict)
    _wakeup: PostgresListener | None = None

    @property
    def drill_id(self) -> str | None:
        """The drill whose feed this is (its warning desk's drill; None: live). Every
        message it sends says so (`drill` in JSON, the CAP document's code, the Kafka and
        webhook headers); its topics are under the drill's own prefix."""
        return self.cap_alerts.drill_id

    @property
    def bootstrap(self) -> str | None:
        """Kafka's bootstrap servers, or None when Kafka is not configured (unset or
        empty)."""
        return self.system.settings.kafka_bootstrap_servers or None

    def readers(self) -> list[LogReader]:
        """Fresh readers of every stream (each consumer of the logs follows its own), the
        warnings' CAP alerts among them."""
        applications = {a.name: a for a in self.system.applications}
        readers: list[LogReader] = [StreamReader(spec, applications[spec.application],
                                                 drill=self.drill_id)
                                    for spec in iter_specs()]
        if self.cap_alerts.warnings is not None:
            readers.append(CapAlertReader(self.cap_alerts))
        return readers

    def sources(self) -> dict[Stream, str]:
        """Stream -> the name its position is tracked under (its application's)."""
        return {reader.stream: reader.spec.application for reader in self.readers()}

    # --- the feed process -----------------------------------------------------------------

    def start(self) -> None:
        """Start the loops in background threads (idempotent)."""
        if self.loops:
            return
        settings = self.settings
        locator = self.system.city.map
        self.outbox = WebhookOutbox(self.store, self.readers(), self.catalogue,
                                    self.book, locator, batch_size=settings.batch_size,
                                    clock=self.clock)
        self.deliverer = WebhookDeliverer(
            self.store, self.book,
            RetryPolicy(max_attempts=settings.webhook_max_attempts,
                        base_delay_s=settings.webhook_backoff_base_s,
                        max_delay_s=settings.webhook_backoff_max_s),
            workers=settings.webhook_workers, timeout_s=settings.webhook_timeout_s,
            clock=self.clock, destinations=self.subscriptions.destinations,
            drill=self.drill_id)
        outbox, deliverer, cap_alerts = self.outbox, self.deliverer, self.cap_alerts
        # A loop that hands work to the next wakes it at once instead of leaving it to its
        # poll: the CAP alert log wakes the outbox and the Kafka publisher when it wrote an
        # alert, the outbox wakes the deliverer when it queued a delivery.
        self._nudges = {name: Nudge(self._stopping) for name in ("cap", "outbox", "kafka")}
        nudges = self._nudges
        if cap_alerts.warnings is not None:
            def follow_warnings() -> bool:
                written = cap_alerts.written
                read = cap_alerts.follow_round()
                if cap_alerts.written > written:
                    nudges["outbox"].set()
                    nudges["kafka"].set()
                return read > 0

            self.loops.append(FeedLoop(
                "cityops-feeds-cap-alerts", follow_warnings, idle=nudges["cap"].wait,
                poll_interval_s=settings.poll_interval_s,
                restart_delay_s=settings.restart_delay_s))
            self._listen_for_warnings(nudges["cap"])

        def fill_outbox() -> bool:
            queued = outbox.queued
            read = outbox.fill_round()
            if outbox.queued > queued:
                deliverer.wake()
            return read > 0

        self.loops.append(FeedLoop(
            "cityops-feeds-outbox", fill_outbox, idle=nudges["outbox"].wait,
            poll_interval_s=settings.poll_interval_s,
            restart_delay_s=settings.restart_delay_s))
        self.loops.append(FeedLoop(
            "cityops-feeds-webhooks", lambda: deliverer.dispatch_round() > 0,
            idle=deliverer.wait_for_a_worker, poll_interval_s=settings.poll_interval_s,
            restart_delay_s=settings.restart_delay_s))
        if self.bootstrap is not None:
            kafka = KafkaFeedPublisher(
                self.readers(), self.catalogue, self.book, locator, bootstrap=self.bootstrap,
                topics=self.topics, transactional_id=settings.transactional_id,
                batch_size=settings.batch_size, partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                timeout_s=settings.kafka_timeout_s, drill=self.drill_id)
            self.kafka = kafka
            started = threading.Event()

            def publish() -> bool:
                if not started.is_set():
                    kafka.start()
                    started.set()
                    self._mirror_kafka_positions(kafka)
                read = kafka.publish_round()
                if read:
                    self._mirror_kafka_positions(kafka)
                return read > 0

            def restart() -> None:
                # A failed transaction or connection: start afresh, which resumes from the
                # committed positions.
                kafka.close()
                started.clear()

            self.loops.append(FeedLoop(
                "cityops-feeds-kafka", publish, idle=nudges["kafka"].wait,
                poll_interval_s=settings.poll_interval_s,
                restart_delay_s=settings.restart_delay_s, on_failure=restart))
        else:
            log.info("no Kafka configured (CITYOPS_KAFKA_BOOTSTRAP_SERVERS): the Kafka feed "
                     "is not started; webhooks are delivered")
        for loop in self.loops:
            loop.start()

    def _listen_for_warnings(self, nudge: Nudge) -> None:
        """On PostgreSQL, wake the CAP alert log as soon as any process records a warning's
        event (the warnings' NOTIFY channel); the poll stays the fallback."""
        warnings = self.cap_alerts.warnings
        url = self.system.settings.database_url
        channel = getattr(getattr(warnings, "recorder", None), "channel_name", None)
        if url is None or not isinstance(channel, str):
            return
        self._wakeup = PostgresListener(url, [channel], lambda _channel: nudge.set(),
                                        purpose="CAP alerts")
        self._wakeup.start()

    def stop(self) -> None:
        """Stop the loops; a Kafka transaction under way completes first."""
        self._stopping.set()
        for nudge in self._nudges.values():
            nudge.set()
        if self._wakeup is not None:
            self._wakeup.stop()
            self._wakeup = None
        for loop in self.loops:
            loop.stop()
        for loop in self.loops:
            loop.join(timeout=self.settings.kafka_timeout_s + 5)
        self.loops.clear()
        self._stopping = threading.Event()
        if self.kafka is not None:
            self.kafka.close()
        if self.deliverer is not None:
            self.deliverer.close()

    def close(self) -> None:
        self.stop()
        self.subscriptions.close()
        self.store.close()

    # --- status --------------------------------------------------------------------------

    @property
    def kafka_mirror(self) -> str:
        """Under which name the Kafka publisher's positions are mirrored in the feed store."""
        return f"{KAFKA_POSITIONS_MIRROR}/{self.settings.transactional_id}"

    def _mirror_kafka_positions(self, kafka: KafkaFeedPublisher) -> None:
        """Copy the positions the publisher committed in Kafka into the feed store, for
        monitoring only (`/health` and metrics of any process read them there; Kafka stays
        the truth the publisher resumes from)."""
        specs = self.sources()
        try:
            with self.store.transaction() as txn:
                for stream, position in kafka.positions().items():
                    set_position(txn, self.kafka_mirror, specs[stream], position)
        except Exception as error:  # monitoring must never stop the publisher
            log.warning("could not record the Kafka feed's positions for monitoring: %s",
                        error)

    def published_positions(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(feed, stream) -> (head of the stream's log, position the feed has reached) for
        the webhook outbox and the Kafka publisher, wherever they run; a feed that has
        recorded no position yet (never run) is left out."""
        heads: dict[str, int] = {}
        for application in self.system.applications:
            heads[application.name] = application.recorder.max_notification_id() or 0
        if self.cap_alerts.warnings is not None:
            heads[CAP_ALERTS_SOURCE] = self.cap_alerts.head()
        found: dict[tuple[str, str], tuple[int, int]] = {}
        for feed, projection in (("webhook", OUTBOX_PROJECTION), ("kafka", self.kafka_mirror)):
            tracked = positions(self.store, projection)
            for stream, source in self.sources().items():
                if source in tracked:
                    found[(feed, stream.value)] = (heads[source], tracked[source])
        return found

    def loop_failures(self) -> dict[str, int]:
        """Failed rounds of each loop running in this process."""
        return {loop.name: loop.failures for loop in self.loops}

    def status(self) -> dict[str, Any]:
        """Positions and lag of each stream for the Kafka feed and the webhook outbox, and
        the webhook deliveries by state."""
        outbox = WebhookOutbox(self.store, self.readers(), self.catalogue, self.book,
                               None)
        webhook_positions = outbox.positions()
        kafka_positions: dict[Stream, int] | None = None
        kafka_error = None
        if self.bootstrap is not None:
            try:
                kafka_positions = read_published_positions(
                    self.bootstrap, self.topics, self.settings.transactional_id,
                    timeout_s=self.settings.kafka_timeout_s)
            except Exception as error:  # the status must still show the rest
                kafka_error = f"{type(error).__name__}: {error}"
        streams = {}
        for reader in outbox.readers:
            head = reader.head()
            webhook = webhook_positions.get(reader.stream, 0)
            entry: dict[str, Any] = {"head": head, "webhook_position": webhook,
                                     "webhook_lag": head - webhook}
            if kafka_positions is not None:
                entry["kafka_position"] = kafka_positions[reader.stream]
                entry["kafka_lag"] = head - kafka_positions[reader.stream]
            streams[reader.stream.value] = entry
        return {
            "kafka": {"bootstrap": self.bootstrap, "topic_prefix": self.topics.prefix,
                      "transactional_id": self.settings.transactional_id,
                      "error": kafka_error} if self.bootstrap is not None else None,
            "streams": streams,
            "webhook_deliveries": self.delivery_log.counts(),
            "loops": {loop.name: {"alive": loop.is_alive(), "failures": loop.failures,
                                  "last_error": loop.last_error} for loop in self.loops},
        }


def build_feed_service(system: FeedSources, settings: FeedSettings | None = None, *,
                       clock: SecondsClock = real_seconds,
                       warnings: Warnings | None = None) -> FeedService:
    """The feeds over an already-built city system; nothing runs until `start()`.

    Uses the system's sharing policy (loaded and validated when the system was built),
    opens the subscriptions' event store beside the others and creates the outbox tables.
    `warnings`: the warning desk's application (default: the system's, from the composition
    root; a drill's or a test's own desk otherwise)."""
    settings = settings if settings is not None else system.settings.feeds
    catalogue = system.sharing
    subscriptions = Subscriptions(
        system.settings.event_store_env(Subscriptions.name), catalogue=system.catalogue,
        hazard_catalogue=system.hazard_catalogue,
        require_https=settings.webhook_require_https, clock=system.clock,
        destinations=DestinationPolicy(settings.webhook_allowed_destinations))
    store = open_feed_store(system.settings)
    delivery_log = DeliveryLog(store)
    delivery_log.create_tables()
    if warnings is None:
        warnings = system.warnings
    signer = None
    if settings.cap_signing_key_file is not None and settings.cap_signing_cert_file is not None:
        signer = AlertSigner.from_files(settings.cap_signing_key_file,
                                        settings.cap_signing_cert_file)
    cap_alerts = CapAlertLog(store, warnings, signer=signer,
                             drill_id=warnings.drill_id,
                             batch_size=settings.batch_size, clock=clock)
    cap_alerts.create_tables()
    return FeedService(settings=settings, system=system, catalogue=catalogue,
                       subscriptions=subscriptions, book=SubscriptionBook(subscriptions),
                       delivery_log=delivery_log, store=store,
                       topics=FeedTopics(settings.topic_prefix), cap_alerts=cap_alerts,
                       clock=clock)


FEED_STORE_FILE = "feeds.sqlite"
FEED_STORE_POOL_SIZE = 3


def open_feed_store(settings: Settings) -> ReadStore:
    """Where the feeds keep their tables: not in a read-model generation (a rebuild of the
    read models must not forget what was delivered), but in a SQLite file of their own
    beside the event stores, or in the base schema of the PostgreSQL database."""
    if settings.database_url is None:
        return SqliteReadStore(settings.data_dir / FEED_STORE_FILE)
    return PostgresReadStore(settings.database_url, settings.database_schema,
                             FEED_STORE_POOL_SIZE)
