"""Webhook delivery for departments' systems that do not speak Kafka: an outbox filled from
the event stores, and a deliverer that POSTs signed JSON with retries.

Outbox. The outbox follows each application's notification log from its own tracked
position (in the read store's `projection_positions`, projection `cityops-feeds-webhooks`)
and, for every event a webhook subscription wants, writes a delivery row; the rows and the
new position commit in one transaction. A delivery's id is derived from the subscription
and the event, and inserting it again changes nothing: the outbox never loses nor doubles a
delivery, whatever stops it.

Delivery. A POST of the message (the event as the subscribing department may see it, see
`cityops.feeds.events`) with headers:

    Content-Type: application/json (application/cap+xml for the warnings: CAP 1.2 alerts)
    X-CityOps-Delivery: <delivery id>   (the same on every retry: receivers deduplicate by it)
    X-CityOps-Event: <event id>
    X-CityOps-Timestamp: <unix seconds when this attempt was signed>
    X-CityOps-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body, keyed with the
                         subscription's secret>
    X-CityOps-Drill: <drill id>   (a drill's deliveries only, as every answer of a drill)

The timestamp is inside the signed text, so a receiver that checks the signature and refuses
timestamps older than a few minutes (`verify_signature`) cannot be fooled by a replayed
request. A 2xx answer delivers; 408, 425, 429, 5xx, timeouts and connection errors are retried
with exponential backoff and jitter (a Retry-After in seconds is honoured, within the
maximum); any other answer, or running out of attempts, puts the delivery in the dead-letter
state with the reason, for an operator to look at and redeliver. Every attempt is logged
(time, duration, status code or error).

Destinations. A delivery goes only where the deployment allows (feeds/destinations.py):
the URL's host is resolved at each attempt, every address is checked, and the request goes
to a checked address (TLS still verifies the certificate of the URL's host name). A refused
destination is dead-lettered at once as "destination refused"; a failed connection is logged
as "delivery failed", without the operating system's text (which would tell a closed port from
a filtered one).

Isolation. At most one request per subscription is in flight, and the events of one
aggregate go to a subscription in order (a later one waits while an earlier one is retried);
requests run on a small pool of workers, so a slow or failing endpoint holds one worker at a
time and never the outbox, the Kafka feed or other subscriptions.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from cityops.domain.clock import SecondsClock, real_seconds
from cityops.domain.errors import IllegalTransition, NotFound
from cityops.domain.ports import GridLocator
from cityops.feeds.cap import CAP_MEDIA_TYPE
from cityops.feeds.destinations import DestinationPolicy, DestinationRefused, IPAddress
from cityops.feeds.events import JSON_MEDIA_TYPE, LogReader
from cityops.feeds.routing import route
from cityops.feeds.sharing import Recipient, SharingCatalogue
from cityops.feeds.streams import Stream
from cityops.feeds.subscription import DeliveryKind, Subscription
from cityops.feeds.subscriptions import SubscriptionBook
from cityops.storage import (
    TRACKING_DDL,
    ReadStore,
    schema_transaction,
    set_position,
)

log = logging.getLogger(__name__)

OUTBOX_PROJECTION = "cityops-feeds-webhooks"
DELIVERY_NAMESPACE = uuid5(NAMESPACE_URL, "https://cityops.invalid/webhook-deliveries")
USER_AGENT = "CityOps-Feeds/1"
SIGNATURE_SCHEME = "sha256"
MAX_RESPONSE_BYTES = 64 * 1024
RETRYABLE_STATUSES = frozenset({408, 425, 429})
DESTINATION_REFUSED = "destination refused"
DELIVERY_FAILED = "delivery failed"
LEASE_MARGIN_S = 60.0
DRILL_HEADER = "X-CityOps-Drill"
"""The header of every delivery of a drill's feed (the drill's id; the same header marks
every API answer of a drill, `cityops.drills.DRILL_HEADER`); live deliveries have none."""


class DeliveryState(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in-flight"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead-lettered"


class InvalidSignature(Exception):
    """A webhook request whose signature or timestamp does not check out."""


# --- signing ------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value of `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_SCHEME}={digest.hexdigest()}"


def verify_signature(secret: str, *, timestamp: str | None, signature: str | None,
                     body: bytes, now: float, tolerance_s: float = 300.0) -> None:
    """What a receiver does: refuse a request whose signature does not match its body and
    timestamp, or whose timestamp is further than `tolerance_s` from `now` (a replay)."""
    if not timestamp or not signature:
        raise InvalidSignature("missing X-CityOps-Timestamp or X-CityOps-Signature header")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature(f"timestamp {timestamp!r} is not unix seconds") from None
    if abs(now - sent_at) > tolerance_s:
        raise InvalidSignature(f"timestamp {sent_at} is more than {tolerance_s:g} s from now "
                               "(a replayed or badly delayed request)")
    if not hmac.compare_digest(sign(secret, sent_at, body), signature):
        raise InvalidSignature("signature does not match the body and timestamp")


# --- retries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a failing delivery is retried."""

    max_attempts: int = 8
    base_delay_s: float = 2.0
    max_delay_s: float = 600.0

    def delay(self, attempt: int, rng: random.Random,
              retry_after_s: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based): exponential,
        capped, with "equal jitter" (between half and all of the step) so that endpoints
        coming back are not hit by every retry at once. A server's Retry-After is a floor,
        within the cap."""
        step = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        delay: float = step / 2 + rng.uniform(0, step / 2)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_delay_s))
        return delay


@dataclass(frozen=True)
class AttemptResult:
    """What one POST gave."""

    status: int | None
    error: str | None
    duration_ms: float
    retry_after_s: float | None = None
    refused: bool = False
    """The destination is not allowed (nothing was sent): not retried."""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        if self.refused:
            return False
        if self.status is None:
            return True  # timeout, refused connection, reset: the endpoint may come back
        return self.status in RETRYABLE_STATUSES or self.status >= 500

    def describe(self) -> str:
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.error or "no answer"


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to addresses checked beforehand (not resolved again)."""

    def __init__(self, host: str, port: int | None, addresses: Sequence[IPAddress],
                 timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = list(addresses)

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to addresses checked beforehand; TLS (SNI and the certificate
    check) is for the URL's host name."""

    def __init__(self, host: str, port: int | None, addresses: Sequence[IPAddress],
                 timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._addresses = list(addresses)
        self._tls = context

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _connect(addresses: Sequence[IPAddress], port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to the first of `addresses` that answers."""
    failure: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            return socket.create_connection((str(address), port), timeout)
        except OSError as error:
            failure = error
    raise failure


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float,
         destinations: DestinationPolicy | None = None) -> AttemptResult:
    """One POST, without following redirects (a moved endpoint is a subscription to fix),
    to an address of the URL's host that `destinations` allows (public ones by default)."""
    parts = urlsplit(url)
    started = time.monotonic()
    connection: http.client.HTTPConnection
    host = parts.hostname or ""
    https = parts.scheme == "https"
    try:
        port = parts.port or (443 if https else 80)
        addresses = (destinations or DestinationPolicy()).addresses(host, port)
    except (DestinationRefused, ValueError):
        return AttemptResult(status=None, error=DESTINATION_REFUSED, refused=True,
                             duration_ms=(time.monotonic() - started) * 1000)
    if https:
        connection = _PinnedHTTPSConnection(host, port, addresses, timeout_s,
                                            ssl.create_default_context())
    else:
        connection = _PinnedHTTPConnection(host, port, addresses, timeout_s)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    try:
        connection.request("POST", path, body=body, headers=dict(headers))
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        retry_after = _retry_after(response.getheader("Retry-After"))
        return AttemptResult(status=response.status, error=None,
                             duration_ms=(time.monotonic() - started) * 1000,
                             retry_after_s=retry_after)
    except (OSError, http.client.HTTPException):
        # One text for every failure: which error it was would map the destination's ports.
        return AttemptResult(status=None, error=DELIVERY_FAILED,
                             duration_ms=(time.monotonic() - started) * 1000)
    finally:
        connection.close()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: the backoff decides
    return seconds if seconds >= 0 else None


# --- storage ------------------------------------------------------------------------------


def outbox_ddl() -> list[str]:
    """The outbox tables (the same statements on SQLite and PostgreSQL)."""
    return [
        TRACKING_DDL,
        """
        CREATE TABLE IF NOT EXISTS feed_webhook_deliveries (
            delivery_id TEXT PRIMARY KEY,
            subscription_id TEXT NOT NULL,
            department TEXT NOT NULL,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            stream TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            position BIGINT NOT NULL,
            body TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            retry_from INTEGER NOT NULL,
            next_attempt_at DOUBLE PRECISION NOT NULL,
            lease_until DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            last_status INTEGER,
            last_error TEXT
        )
        """,
        "CREATE INDEX IF NOT EXISTS feed_webhook_due "
        "ON feed_webhook_deliveries (state, next_attempt_at)",
        "CREATE INDEX IF NOT EXISTS feed_webhook_order "
        "ON feed_webhook_deliveries (subscription_id, state, aggregate_id, position)",
        """
        CREATE TABLE IF NOT EXISTS feed_webhook_attempts (
            delivery_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            url TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            duration_ms DOUBLE PRECISION NOT NULL,
            status_code INTEGER,
            error TEXT,
            outcome TEXT NOT NULL,
            PRIMARY KEY (delivery_id, attempt)
        )
        """,
    ]


def delivery_id_for(subscription_id: UUID | str, event_id: str) -> str:
    """A delivery's id: the same subscription and event always give the same id."""
    return str(uuid5(DELIVERY_NAMESPACE, f"{subscription_id}/{event_id}"))


DELIVERY_COLUMNS = ("delivery_id", "subscription_id", "department", "event_id", "event_type",
                    "stream", "aggregate_id", "position", "state", "attempts", "retry_from",
                    "next_attempt_at", "created_at", "finished_at", "last_status",
                    "last_error")


class DeliveryLog:
    """Queries and operator actions on the outbox: deliveries with their attempts, counts,
    and redelivery of dead letters."""

    def __init__(self, store: ReadStore) -> None:
        self.store = store

    def create_tables(self) -> None:
        with schema_transaction(self.store) as txn:
            for statement in outbox_ddl():
                txn.execute(statement)

    def deliveries(self, subscription_id: UUID, *, state: DeliveryState | None = None,
                   limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """A page of a subscription's deliveries, newest first, each with its attempts."""
        where = "subscription_id = %s"
        params: list[Any] = [str(subscription_id)]
        if state is not None:
            where += " AND state = %s"
            params.append(state.value)
        with self.store.transaction() as txn:
            txn.execute(f"SELECT count(*) FROM feed_webhook_deliveries WHERE {where}", params)
            row = txn.fetchone()
            total = int(row[0]) if row else 0
            txn.execute(
                f"SELECT {', '.join(DELIVERY_COLUMNS)} FROM feed_webhook_deliveries "
                f"WHERE {where} ORDER BY position DESC, delivery_id LIMIT %s OFFSET %s",
                [*params, limit, offset])
            rows = [dict(zip(DELIVERY_COLUMNS, r, strict=True)) for r in txn.fetchall()]
            for item in rows:
                txn.execute(
                    "SELECT attempt, url, started_at, duration_ms, status_code, error, outcome "
                    "FROM feed_webhook_attempts WHERE delivery_id = %s ORDER BY attempt",
                    (item["delivery_id"],))
                item["attempt_log"] = [
                    {"attempt": a, "url": u, "started_at": s, "duration_ms": d,
                     "status_code": c, "error": e, "outcome": o}
                    for a, u, s, d, c, e, o in txn.fetchall()
                ]
        return rows, total

    def body(self, delivery_id: str) -> dict[str, Any]:
        with self.store.transaction() as txn:
            txn.execute("SELECT body FROM feed_webhook_deliveries WHERE delivery_id = %s",
                        (delivery_id,))
            row = txn.fetchone()
        if row is None:
            raise NotFound("webhook delivery", delivery_id)
        parsed: dict[str, Any] = json.loads(row[0])
        return parsed

    def counts(self) -> dict[str, int]:
        """Deliveries per state."""
        with self.store.transaction() as txn:
            txn.execute("SELECT state, count(*) FROM feed_webhook_deliveries GROUP BY state")
            found = {str(state): int(n) for state, n in txn.fetchall()}
        return {s.value: found.get(s.value, 0) for s in DeliveryState}

    def redeliver(self, subscription_id: UUID, delivery_id: str, *, now: float) -> None:
        """Give a dead-lettered delivery a fresh set of attempts, starting now."""
        with self.store.transaction() as txn:
            txn.execute(
                "SELECT state FROM feed_webhook_deliveries "
                "WHERE delivery_id = %s AND subscription_id = %s",
                (delivery_id, str(subscription_id)))
            row = txn.fetchone()
            if row is None:
                raise NotFound("webhook delivery", delivery_id)
            if row[0] != DeliveryState.DEAD_LETTERED.value:
                raise IllegalTransition("webhook delivery", delivery_id, str(row[0]),
                                        "redeliver")
            txn.execute(
                "UPDATE feed_webhook_deliveries SET state = %s, retry_from = attempts, "
                "next_attempt_at = %s, finished_at = NULL WHERE delivery_id = %s",
                (DeliveryState.PENDING.value, now, delivery_id))


# --- the outbox ---------------------------------------------------------------------------


class WebhookOutbox:
    """Turns the events that webhook subscriptions want into delivery rows, following each
    stream's log from its tracked position (rows and position in one transaction)."""

    def __init__(self, store: ReadStore, readers: Sequence[LogReader],
                 catalogue: SharingCatalogue, book: SubscriptionBook,
                 locator: GridLocator | None, *, batch_size: int = 200,
                 clock: SecondsClock = real_seconds) -> None:
        self.store = store
        self.readers = list(readers)
        self.catalogue = catalogue
        self.book = book
        self.locator = locator
        self.batch_size = batch_size
        self.clock = clock
        self.queued = 0

    def positions(self) -> dict[Stream, int]:
        from cityops.storage import positions

        tracked = positions(self.store, OUTBOX_PROJECTION)
        return {r.stream: tracked.get(r.spec.application, 0) for r in self.readers}

    def fill_round(self) -> int:
        """One batch of every stream; returns how many notifications were read."""
        read = 0
        for reader in self.readers:
            try:
                read += self._fill(reader)
            except Exception:
                reader.forget()
                raise
        return read

    def _fill(self, reader: LogReader) -> int:
        application = reader.spec.application
        with self.store.transaction() as txn:
            lock = " FOR UPDATE" if self.store.dialect == "postgres" else ""
            txn.execute("SELECT position FROM projection_positions WHERE projection = %s "
                        f"AND application = %s{lock}", (OUTBOX_PROJECTION, application))
            row = txn.fetchone()
            batch = reader.read(int(row[0]) if row else 0, self.batch_size)
            if not batch.read:
                return 0
            subscriptions = self.book.current()
            rows = []
            now = self.clock()
            for event in batch.events:
                routes = route(event, subscriptions, self.locator, self.catalogue)
                for subscription in routes.webhooks:
                    delivery_id = delivery_id_for(subscription.id, event.event_id)
                    body = event.payload(self.catalogue,
                                         Recipient.department_feed(subscription.department),
                                         {"subscription_id": str(subscription.id),
                                          "delivery_id": delivery_id})
                    if body is None:
                        continue
                    rows.append((delivery_id, str(subscription.id), subscription.department,
                                 event.event_id, event.event_type, event.stream.value,
                                 str(event.aggregate_id), event.position,
                                 body.decode(), DeliveryState.PENDING.value, 0, 0, now,
                                 now))
            if rows:
                txn.executemany(
                    "INSERT INTO feed_webhook_deliveries (delivery_id, subscription_id, "
                    "department, event_id, event_type, stream, aggregate_id, position, body, "
                    "state, attempts, retry_from, next_attempt_at, created_at) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (delivery_id) DO NOTHING", rows)
            set_position(txn, OUTBOX_PROJECTION, application, batch.last)
        self.queued += len(rows)
        return batch.read


# --- the deliverer ------------------------------------------------------------------------


MEDIA_TYPES = {Stream.WARNINGS.value: CAP_MEDIA_TYPE}
"""The body's media type of each stream's deliveries (JSON unless listed): the warnings
are CAP 1.2 XML documents."""


@dataclass(frozen=True)
class DueDelivery:
    delivery_id: str
    subscription_id: str
    event_id: str
    body: bytes
    attempts: int
    retry_from: int
    stream: str = ""

    @property
    def content_type(self) -> str:
        return MEDIA_TYPES.get(self.stream, JSON_MEDIA_TYPE)


class WebhookDeliverer:
    """Sends due deliveries on a pool of workers, at most one per subscription at a time,
    and records every attempt and its outcome."""

    def __init__(self, store: ReadStore, book: SubscriptionBook, policy: RetryPolicy, *,
                 workers: int = 4, timeout_s: float = 10.0,
                 clock: SecondsClock = real_seconds,
                 rng: random.Random | None = None,
                 destinations: DestinationPolicy | None = None,
                 drill: str | None = None) -> None:
        """`drill`: the drill whose feed this is (None: live): its deliveries carry
        `X-CityOps-Drill`."""
        self.store = store
        self.book = book
        self.policy = policy
        self.destinations = destinations or DestinationPolicy()
        """Where requests may go (checked again at every attempt: DNS may have changed)."""
        self.workers = workers
        self.timeout_s = timeout_s
        self.clock = clock
        self.drill = drill
        self.rng = rng or random.Random()
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self.delivered = 0
        self.dead_lettered = 0
        self.failed_attempts = 0

    @property
    def lease_s(self) -> float:
        return self.timeout_s * 3 + LEASE_MARGIN_S

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.workers,
                                            thread_name_prefix="cityops-webhook")

    def close(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def wake(self) -> None:
        """New deliveries were queued: claim them now rather than after the poll."""
        self._finished.set()

    def wait_for_a_worker(self, timeout_s: float) -> None:
        """Sleep until an attempt finishes or `timeout_s` passes."""
        self._finished.wait(timeout_s)
        self._finished.clear()

    def dispatch_round(self) -> int:
        """Claim due deliveries for the free workers and start them; returns how many."""
        self.start()
        assert self._pool is not None
        free = self.workers - self.in_flight()
        if free <= 0:
            return 0
        subscriptions = {str(s.id): s for s in self.book.current()}
        claimed = self._claim(free)
        for due in claimed:
            subscription = subscriptions.get(due.subscription_id)
            with self._lock:
                future = self._pool.submit(self._deliver, due, subscription)
                self._in_flight[due.delivery_id] = future
            future.add_done_callback(partial(self._done, due.delivery_id))
        return len(claimed)

    def _done(self, delivery_id: str, _future: Future[None]) -> None:
        with self._lock:
            self._in_flight.pop(delivery_id, None)
        self._finished.set()

    def _claim(self, limit: int) -> list[DueDelivery]:
        now = self.clock()
        with self._lock:
            mine = set(self._in_flight)
        postgres = self.store.dialect == "postgres"
        with self.store.transaction() as txn:
            # A lease that ran out belongs to a process that died mid-attempt.
            txn.execute(
                "UPDATE feed_webhook_deliveries SET state = %s, lease_until = NULL "
                "WHERE state = %s AND lease_until < %s",
                (DeliveryState.PENDING.value, DeliveryState.IN_FLIGHT.value, now))
            txn.execute(
                "SELECT d.delivery_id, d.subscription_id, d.event_id, d.body, d.attempts, "
                "d.retry_from, d.stream FROM feed_webhook_deliveries d "
                "WHERE d.state = %s AND d.next_attempt_at <= %s AND NOT EXISTS ("
                "  SELECT 1 FROM feed_webhook_deliveries e "
                "  WHERE e.subscription_id = d.subscription_id AND (e.state = %s "
                "   OR (e.state = %s AND e.aggregate_id = d.aggregate_id "
                "       AND e.position < d.position))) "
                "ORDER BY d.next_attempt_at, d.position LIMIT %s"
                + (" FOR UPDATE OF d SKIP LOCKED" if postgres else ""),
                (DeliveryState.PENDING.value, now, DeliveryState.IN_FLIGHT.value,
                 DeliveryState.PENDING.value, limit * 4))
            chosen: list[DueDelivery] = []
            busy_subscriptions: set[str] = set()
            for (delivery_id, subscription_id, event_id, body, attempts, retry_from,
                 stream) in txn.fetchall():
                if subscription_id in busy_subscriptions or delivery_id in mine:
                    continue
                busy_subscriptions.add(subscription_id)
                chosen.append(DueDelivery(str(delivery_id), str(subscription_id),
                                          str(event_id), str(body).encode(), int(attempts),
                                          int(retry_from), str(stream)))
                if len(chosen) == limit:
                    break
            if chosen:
                txn.executemany(
                    "UPDATE feed_webhook_deliveries SET state = %s, lease_until = %s "
                    "WHERE delivery_id = %s",
                    [(DeliveryState.IN_FLIGHT.value, now + self.lease_s, d.delivery_id)
                     for d in chosen])
        return chosen

    def _deliver(self, due: DueDelivery, subscription: Subscription | None) -> None:
        try:
            self._attempt(due, subscription)
        except Exception:
            # The attempt could not be recorded (store down): the lease runs out and the
            # delivery is tried again; it is never lost.
            log.exception("webhook delivery %s could not be recorded", due.delivery_id)

    def _attempt(self, due: DueDelivery, subscription: Subscription | None) -> None:
        attempt = due.attempts + 1
        started = self.clock()
        url = ""
        if subscription is None or subscription.delivery.kind is not DeliveryKind.WEBHOOK:
            result = AttemptResult(status=None, duration_ms=0.0,
                                   error="the subscription no longer delivers by webhook")
            self._record(due, attempt, url, started, result, give_up=True)
            return
        delivery = subscription.delivery
        assert delivery.url is not None and delivery.secret is not None
        url = delivery.url
        timestamp = int(started)
        headers = {
            "Content-Type": due.content_type,
            "User-Agent": USER_AGENT,
            "X-CityOps-Delivery": due.delivery_id,
            "X-CityOps-Event": due.event_id,
            "X-CityOps-Timestamp": str(timestamp),
            "X-CityOps-Signature": sign(delivery.secret, timestamp, due.body),
        }
        if self.drill is not None:
            headers[DRILL_HEADER] = self.drill
        result = post(url, due.body, headers, self.timeout_s, self.destinations)
        give_up = not result.delivered and (
            not result.retryable or attempt - due.retry_from >= self.policy.max_attempts)
        self._record(due, attempt, url, started, result, give_up=give_up)

    def _record(self, due: DueDelivery, attempt: int, url: str, started: float,
                result: AttemptResult, *, give_up: bool) -> None:
        now = self.clock()
        if result.delivered:
            outcome = DeliveryState.DELIVERED
        elif give_up:
            outcome = DeliveryState.DEAD_LETTERED
        else:
            outcome = DeliveryState.PENDING
        error = result.error
        if outcome is DeliveryState.DEAD_LETTERED:
            used = attempt - due.retry_from
            why = ("not retried" if not result.retryable
                   else f"gave up after {used} attempt{'s' if used != 1 else ''}")
            error = f"{result.describe()}: {why}"
        with self.store.transaction() as txn:
            txn.execute(
                "INSERT INTO feed_webhook_attempts (delivery_id, attempt, url, started_at, "
                "duration_ms, status_code, error, outcome) VALUES (%s, %s, %s, %s, %s, %s, "
                "%s, %s) ON CONFLICT (delivery_id, attempt) DO NOTHING",
                (due.delivery_id, attempt, url, started, result.duration_ms, result.status,
                 result.error, "retry" if outcome is DeliveryState.PENDING else outcome.value))
            if outcome is DeliveryState.PENDING:
                delay = self.policy.delay(attempt - due.retry_from, self.rng,
                                          result.retry_after_s)
                txn.execute(
                    "UPDATE feed_webhook_deliveries SET state = %s, attempts = %s, "
                    "next_attempt_at = %s, lease_until = NULL, last_status = %s, "
                    "last_error = %s WHERE delivery_id = %s",
                    (outcome.value, attempt, now + delay, result.status, error,
                     due.delivery_id))
            else:
                txn.execute(
                    "UPDATE feed_webhook_deliveries SET state = %s, attempts = %s, "
                    "finished_at = %s, lease_until = NULL, last_status = %s, last_error = %s "
                    "WHERE delivery_id = %s",
                    (outcome.value, attempt, now, result.status, error, due.delivery_id))
        if outcome is DeliveryState.DELIVERED:
            self.delivered += 1
        elif outcome is DeliveryState.DEAD_LETTERED:
            self.dead_lettered += 1
            log.warning("webhook delivery %s dead-lettered: %s", due.delivery_id, error)
        else:
            self.failed_attempts += 1
